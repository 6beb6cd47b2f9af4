"""The Shi et al. 2015 recipe: Moving MNIST 10 -> 10, the seq2seq ConvLSTM stack and the encoder-forecaster.

Owns the recipe's settings (:class:`Shi2015Settings`, :data:`QUICK`, :data:`FULL`), the paper's published
numbers (:data:`PAPER_TABLE1`, :data:`PAPER_THREE_DIGITS`, :data:`PAPER_RADAR`), its data
(:class:`Shi2015Data`) and its steps, each callable alone: :func:`build_data`, :func:`build_model`,
:func:`train`, :func:`evaluate`, :func:`write_pictures`, :func:`summarize`; :func:`run` chains them. The
encoder-forecaster trains on :class:`ContextHorizonMovingMNIST`; :func:`test_sequences` generates its test sets alone.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_convlstm import data, evaluation, metrics, mnist_digits, synthetic, training, viz
from keras_convlstm.frames import to_float_frames
from keras_convlstm.models import build_model as build_preset
from keras_convlstm.recipes import common
from keras_convlstm.rollout import predict_rollout

NAME = "shi2015"
PRESETS = ("shi2015", "shi2015-encoder-forecaster")
NUM_FRAMES = 20
TEST_DIGITS = (2, 3)  # the paper's setting and its out-of-domain test

# Cross-entropy per sequence on the Moving MNIST test set (10 -> 10 frames): Shi et al. 2015, "Convolutional
# LSTM Network: A Machine Learning Approach for Precipitation Nowcasting" (NIPS), Table 1, as reported in a
# secondary source. The row names give the kernel of the input-to-state transition in brackets, then the
# state-to-state kernel and the number of hidden channels of each layer.
PAPER_SOURCE = "Shi et al. 2015 (NIPS), Table 1: cross-entropy per sequence, Moving MNIST test set"
PAPER_TABLE1 = {
    "FC-LSTM-2048-2048": 4832.49,
    "ConvLSTM(5x5)-5x5-256": 3887.94,
    "ConvLSTM(5x5)-5x5-128-5x5-128": 3733.56,
    "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64": 3670.85,
    "ConvLSTM(9x9)-1x1-128-1x1-128": 4782.84,
    "ConvLSTM(9x9)-1x1-128-1x1-64-1x1-64": 4231.50,
}
# The best model (128-64-64) on sequences with three digits, trained on two: the out-of-domain test.
PAPER_THREE_DIGITS = 6379.42
# Radar echo nowcasting (their HKO data set, not Moving MNIST): these do not compare with Moving MNIST scores.
PAPER_RADAR = {
    "source": "Shi et al. 2015, radar echo data set (rainfall threshold 0.5 mm/h)",
    "ConvLSTM": {"csi": 0.577, "far": 0.195, "pod": 0.660, "correlation": 0.908},
    "ROVER (optical flow)": {"csi": 0.522, "far": 0.301, "pod": 0.642, "correlation": 0.850},
}


@dataclasses.dataclass(frozen=True)
class Shi2015Settings:
    """Settings of the Shi et al. 2015 recipe.

    Attributes:
        sequences_per_epoch: training sequences generated per epoch.
        epochs: most epochs (early stopping on the validation loss, patience 10).
        test_sequences: test sequences per digit count.
        validation_sequences: validation sequences, generated once from the training digits.
        batch_size: sequences per batch.
        filters: ConvLSTM2D filters per layer, or None for the presets' (128, 64, 64).
        kernel_size: side of the ConvLSTM2D kernels when ``filters`` is given (the presets' are 5).
        digit_source: MNIST digit source of :func:`~keras_convlstm.mnist_digits.load_mnist_digits`.
        context_frames: frames given; the other ``20 - context_frames`` are predicted.
        threshold: binarisation threshold of CSI, FAR and POD.
        precision: the models' compute precision (see :func:`~keras_convlstm.precision.resolve_precision`).
    """

    sequences_per_epoch: int
    epochs: int
    test_sequences: int
    validation_sequences: int
    batch_size: int
    filters: tuple[int, ...] | None = None
    kernel_size: int = 5
    digit_source: str = "auto"
    context_frames: int = 10
    threshold: float = 0.5
    precision: str = "float32"

    def __post_init__(self) -> None:
        common.check_settings(
            self,
            (
                "sequences_per_epoch",
                "epochs",
                "test_sequences",
                "validation_sequences",
                "batch_size",
                "kernel_size",
                "context_frames",
            ),
        )

    @property
    def predicted_frames(self) -> int:
        """Frames predicted after the context."""
        return NUM_FRAMES - self.context_frames


# The presets (128-64-64, 5x5), 10,000 sequences per epoch, up to 100 epochs on 2,000 validation sequences,
# 3,000 test sequences: GPU-scale.
FULL = Shi2015Settings(
    sequences_per_epoch=10_000, epochs=100, test_sequences=3_000, validation_sequences=2_000, batch_size=16
)
# Filters (16, 16), 200 sequences per epoch, 2 epochs, 32 test sequences: about a minute on 2 CPU cores, with
# numbers far from the paper's.
QUICK = Shi2015Settings(
    sequences_per_epoch=200, epochs=2, test_sequences=32, validation_sequences=16, batch_size=8, filters=(16, 16)
)


@dataclasses.dataclass(frozen=True, eq=False)
class Shi2015Data:
    """MNIST digits and the fixed validation and test sequences.

    Attributes:
        train_digits: uint8 ``(digits, 28, 28)`` MNIST training digits; every training epoch draws from them.
        validation: uint8 ``(validation_sequences, 20, 64, 64, 1)`` two-digit sequences of training digits.
        tests: ``{num_digits: uint8 (test_sequences, 20, 64, 64, 1)}`` of held-out test digits, for 2 and 3.
    """

    train_digits: np.ndarray
    validation: np.ndarray
    tests: dict[int, np.ndarray]


@dataclasses.dataclass(frozen=True, eq=False)
class Shi2015Result:
    """Every system on one test set.

    Attributes:
        truth: float32 ``(sequences, predicted_frames, 64, 64, 1)`` in [0, 1].
        predictions: ``{system: like truth}``: each model, ``"copy-last-frame"`` and ``"blank"``.
        table: per-frame metrics of every system.
        scores: ``{system: {metric: mean}}`` for MSE, SSIM, CSI, FAR, POD, correlation and the cross-entropy per
            sequence (Table 1's convention), rounded for the summary.
    """

    truth: np.ndarray
    predictions: dict[str, np.ndarray]
    table: evaluation.MetricTable
    scores: dict[str, dict[str, float | None]]


def choose_settings(quick: bool = False, **overrides: object) -> Shi2015Settings:
    """:data:`QUICK` or :data:`FULL` with the overrides that are not None (fields of :class:`Shi2015Settings`)."""
    return common.choose(QUICK, FULL, quick, **overrides)


class ContextHorizonMovingMNIST(data.GeneratedMovingMNIST):
    """Fresh Moving MNIST batches split into given and future frames, for an encoder-forecaster.

    The sequences are exactly those of :class:`keras_convlstm.data.GeneratedMovingMNIST` with the same arguments
    (a pure function of seed, epoch and batch index; call ``set_epoch`` at each epoch begin).

    Args:
        sequences_per_epoch: sequences per epoch.
        batch_size: sequences per batch.
        context: frames given; the other ``num_frames - context`` frames are the targets.
        **kwargs: the other arguments of :class:`keras_convlstm.data.GeneratedMovingMNIST` (``seed``,
            ``num_frames``, ``image_size``, ``num_digits``, ``digits``, ...).

    Batches:
        ``(x, y)``: float32 ``(batch, context, 64, 64, 1)`` and ``(batch, num_frames - context, 64, 64, 1)``
        in [0, 1].
    """

    def __init__(self, sequences_per_epoch: int = 1000, batch_size: int = 5, *, context: int = 10, **kwargs):
        super().__init__(sequences_per_epoch, batch_size, **kwargs)
        if not 1 <= context < self.num_frames:
            raise ValueError(
                f"context must be in [1, {self.num_frames - 1}] for {self.num_frames} frames, got {context}"
            )
        self.context = context

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        inputs, shifted = super().__getitem__(index)  # frames 0..T-2 and 1..T-1
        return inputs[:, : self.context], shifted[:, self.context - 1 :]


def test_sequences(
    settings: Shi2015Settings, num_digits: int, seed: int = 0, digits: np.ndarray | None = None
) -> np.ndarray:
    """The recipe's test set: uint8 ``(settings.test_sequences, 20, 64, 64, 1)`` with ``num_digits`` digits.

    Generated with seed ``synthetic.HELD_OUT_SEED + seed`` from the held-out MNIST test digits (``digits``, or
    those of ``settings.digit_source``), so no training sequence shares a digit with it.
    """
    if digits is None:
        digits, _ = mnist_digits.load_mnist_digits(settings.digit_source, "test", verbose=False)
    return synthetic.generate_moving_mnist(
        settings.test_sequences, NUM_FRAMES, num_digits=num_digits, seed=synthetic.HELD_OUT_SEED + seed, digits=digits
    )


def build_data(settings: Shi2015Settings, seed: int = 0) -> Shi2015Data:
    """Loads the MNIST digits and generates the validation (seed ``seed + 1``) and :func:`test_sequences`."""
    train_digits, _ = mnist_digits.load_mnist_digits(settings.digit_source, "train", verbose=False)
    test_digits, _ = mnist_digits.load_mnist_digits(settings.digit_source, "test", verbose=False)
    validation = synthetic.generate_moving_mnist(
        settings.validation_sequences, NUM_FRAMES, seed=seed + 1, digits=train_digits
    )
    tests = {num_digits: test_sequences(settings, num_digits, seed, test_digits) for num_digits in TEST_DIGITS}
    return Shi2015Data(train_digits, validation, tests)


def build_model(preset: str, settings: Shi2015Settings, seed: int = 0) -> keras.Model:
    """One of :data:`PRESETS` in the settings' precision, with their filters if given; seeds the run first.

    Calls ``keras.utils.set_random_seed(seed)`` before building.

    Both presets cut frames into 4x4 patches and train with RMSProp (learning rate 1e-3, rho 0.9) and binary
    cross-entropy.
    """
    keras.utils.set_random_seed(seed)
    filters = settings.filters
    overrides = {} if filters is None else {"filters": filters, "kernel_sizes": (settings.kernel_size,) * len(filters)}
    return build_preset(preset, precision=settings.precision, **overrides)


def train(
    model: keras.Model,
    sequences: Shi2015Data,
    settings: Shi2015Settings,
    out_dir: str | os.PathLike,
    seed: int = 0,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Trains on sequences generated afresh every epoch, with early stopping on the validation sequences.

    The seq2seq ``shi2015`` learns next frames from shifted frames (teacher forcing,
    :class:`~keras_convlstm.data.GeneratedMovingMNIST`); the encoder-forecaster learns (first 10 frames ->
    last 10 frames) pairs (:class:`ContextHorizonMovingMNIST`). Writes
    ``out_dir/runs/<preset>/``. ``verbose`` is ``model.fit``'s.
    """
    context = settings.context_frames
    common_args = {"batch_size": settings.batch_size, "seed": seed, "digits": sequences.train_digits}
    if model.config.kind == "encoder_forecaster":
        train_set = ContextHorizonMovingMNIST(settings.sequences_per_epoch, context=context, **common_args)
        val_data = (
            to_float_frames(sequences.validation[:, :context]),
            to_float_frames(sequences.validation[:, context:]),
        )
    else:
        train_set = data.GeneratedMovingMNIST(settings.sequences_per_epoch, **common_args)
        val_data = sequences.validation
    return training.train(
        model,
        train_set,
        val_data,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        out_dir=Path(out_dir) / "runs" / model.config.name,
        seed=seed,
        verbose=verbose,
    )


def evaluate(models: dict[str, keras.Model], sequences: np.ndarray, settings: Shi2015Settings) -> Shi2015Result:
    """Rolls every model out from the first frames of ``sequences`` and scores it beside copy-last-frame and blank.

    Args:
        models: ``{name: trained model}``.
        sequences: uint8 ``(sequences, 20, 64, 64, 1)``, e.g. ``Shi2015Data.tests[2]``.
        settings: the context length and the threshold.
    """
    context, horizon = settings.context_frames, settings.predicted_frames
    given, truth = sequences[:, :context], to_float_frames(sequences[:, context:])
    predictions = {name: predict_rollout(model, given, horizon) for name, model in models.items()}
    predictions["copy-last-frame"] = evaluation.copy_last_frame(to_float_frames(given), horizon)
    predictions["blank"] = evaluation.blank_frames(to_float_frames(given), horizon)
    table = evaluation.MetricTable.from_predictions(predictions, truth, threshold=settings.threshold)
    scores = common.summary_means(table, ("mse", "ssim", "csi", "far", "pod", "correlation"))
    for name, prediction in predictions.items():
        scores[name]["bce_per_sequence"] = common.summary_number(metrics.bce_per_sequence(prediction, truth), 2)
    return Shi2015Result(truth, predictions, table, scores)


def write_pictures(result: Shi2015Result, num_digits: int, out_dir: str | os.PathLike) -> list[str]:
    """Writes ``metric_curves_<num_digits>digits.png`` (MSE and SSIM per frame) and, for two digits,
    ``rollout_<model>.png`` (truth over the rollout of the first test sequence) for every model.

    Returns:
        The file names written.
    """
    out_dir = common.recipe_folder(out_dir)
    files = [f"metric_curves_{num_digits}digits.png"]
    viz.plot_metric_curves(result.table, ("mse", "ssim"), path=out_dir / files[0])
    if num_digits == 2:
        for name, prediction in result.predictions.items():
            if name in PRESETS:
                viz.plot_truth_vs_prediction(
                    result.truth[0], prediction[0], labels=("Truth", name), path=out_dir / f"rollout_{name}.png"
                )
                files.append(f"rollout_{name}.png")
    return files


def summarize(
    models: dict[str, keras.Model], settings: Shi2015Settings, scores: dict[int, dict[str, dict[str, float | None]]]
) -> dict:
    """The recipe's summary: settings, each model's architecture, scores per digit count and the paper's numbers.

    Args:
        models: ``{name: trained model}``.
        settings: the settings trained and tested with.
        scores: ``{num_digits: Shi2015Result.scores}``.
    """
    return {
        "settings": {
            "filters": None if settings.filters is None else list(settings.filters),
            "kernel_size": settings.kernel_size,
            "precision": settings.precision,
            "sequences_per_epoch": settings.sequences_per_epoch,
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "validation_sequences": settings.validation_sequences,
            "test_sequences": settings.test_sequences,
            "digit_source": settings.digit_source,
            "threshold": settings.threshold,
        },
        "models": {
            name: {
                "parameters": model.count_params(),
                "filters": list(model.config.filters),
                "kernel_sizes": list(model.config.kernel_sizes),
                "patch_size": model.config.patch_size,
                "precision": model.config.precision,
            }
            for name, model in models.items()
        },
        "results": {f"{num_digits}_digits": means for num_digits, means in scores.items()},
        "paper": {
            "source": PAPER_SOURCE,
            "table1_bce_per_sequence": PAPER_TABLE1,
            "three_digits_bce_per_sequence": PAPER_THREE_DIGITS,
            "radar_nowcasting": PAPER_RADAR,
        },
        # What write_pictures writes for these models and digit counts (the rollouts for two digits only).
        "files": [f"metric_curves_{num_digits}digits.png" for num_digits in scores]
        + [f"rollout_{name}.png" for name in models if name in PRESETS and 2 in scores],
    }


def run(
    out_dir: str | os.PathLike,
    quick: bool = False,
    seed: int = 0,
    *,
    sequences_per_epoch: int | None = None,
    epochs: int | None = None,
    test_sequences: int | None = None,
    filters: tuple[int, ...] | None = None,
    digit_source: str | None = None,
    verbose: int = 2,
) -> dict:
    """Shi et al. 2015 on Moving MNIST 10 -> 10: the seq2seq ConvLSTM stack and the encoder-forecaster.

    Both models train on sequences generated afresh every epoch from the MNIST train digits and are tested
    on held-out digits, with two digits (the paper's setting) and three (its out-of-domain test). Scores:
    cross-entropy per sequence summed over the 10 predicted 64x64 frames (Table 1's convention), beside the
    paper's numbers; CSI, FAR, POD and correlation at a threshold of 0.5; MSE per frame and SSIM;
    copy-last-frame.

    Args:
        out_dir: folder for the figures, ``metrics_<n>digits.json``, runs and ``summary.json``.
        quick: :data:`QUICK` instead of :data:`FULL` settings.
        seed: seed of the weights and of the generated sequences.
        sequences_per_epoch, epochs, test_sequences, filters, digit_source: override the chosen settings
            (None keeps them).
        verbose: ``model.fit`` verbosity.

    Returns:
        The summary written to ``summary.json`` (see :func:`summarize`).
    """
    started = time.perf_counter()
    out_dir = common.recipe_folder(out_dir)
    settings = choose_settings(
        quick,
        sequences_per_epoch=sequences_per_epoch,
        epochs=epochs,
        test_sequences=test_sequences,
        filters=filters,
        digit_source=digit_source,
    )
    sequences = build_data(settings, seed)
    models = {}
    for preset in PRESETS:
        models[preset] = build_model(preset, settings, seed)
        train(models[preset], sequences, settings, out_dir, seed, verbose)
    scores = {}
    for num_digits, test_set in sequences.tests.items():
        result = evaluate(models, test_set, settings)
        result.table.to_json(out_dir / f"metrics_{num_digits}digits.json")
        write_pictures(result, num_digits, out_dir)
        scores[num_digits] = result.scores
    return common.finish(out_dir, NAME, quick, seed, summarize(models, settings, scores), started)
