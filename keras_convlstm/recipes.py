"""End-to-end recipes for the systems reproduced beside the official example.

Each recipe trains, evaluates against a baseline, writes pictures and ``summary.json`` into ``out_dir`` and
returns the summary (JSON-serialisable). ``RECIPES[name](out_dir=..., quick=..., seed=...)`` is what
``python -m keras_convlstm recipe NAME [--quick]`` runs. ``quick=True`` picks small settings that finish in
well under a minute on a 2-core CPU; their numbers are quick-mode numbers, not reproductions of the originals.

- ``moving-square`` (:func:`moving_square`): the PyTorch many-to-one demo, one white square, frames 0..8 -> 9.
- ``noisy-squares`` (:func:`noisy_squares`): the Keras 2 example, with its 'same' Conv3D and the causal fix,
  rolled out 16 frames from 7.
- ``shi2015`` (:func:`shi2015`): Shi et al. 2015 on Moving MNIST 10 -> 10, the seq2seq stack and the
  encoder-forecaster, scored in the paper's Table 1 convention beside its numbers, plus 3-digit sequences.
- ``actions`` (:func:`actions`): video classification of a digit's direction of motion, through a video
  folder written as GIFs, a person-wise split and the ``classifier`` preset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from keras_convlstm import data, evaluation, metrics, synthetic, training, videos, viz
from keras_convlstm.checks import check_integer
from keras_convlstm.evaluation import evaluate
from keras_convlstm.files import write_json
from keras_convlstm.models import build_model
from keras_convlstm.rollout import predict_frames

RECIPES: dict[str, Callable[..., dict]] = {}

# Cross-entropy per sequence on the Moving MNIST test set (10 -> 10 frames): Shi et al. 2015, "Convolutional
# LSTM Network: A Machine Learning Approach for Precipitation Nowcasting" (NIPS), Table 1, as reported in a
# secondary source. The row names give the kernel of the input-to-state transition in brackets, then the
# state-to-state kernel and the number of hidden channels of each layer.
SHI2015_SOURCE = "Shi et al. 2015 (NIPS), Table 1: cross-entropy per sequence, Moving MNIST test set"
SHI2015_TABLE1 = {
    "FC-LSTM-2048-2048": 4832.49,
    "ConvLSTM(5x5)-5x5-256": 3887.94,
    "ConvLSTM(5x5)-5x5-128-5x5-128": 3733.56,
    "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64": 3670.85,
    "ConvLSTM(9x9)-1x1-128-1x1-128": 4782.84,
    "ConvLSTM(9x9)-1x1-128-1x1-64-1x1-64": 4231.50,
}
# The best model (128-64-64) on sequences with three digits, trained on two: the out-of-domain test.
SHI2015_THREE_DIGITS = 6379.42
# Radar echo nowcasting (their HKO data set, not Moving MNIST): these do not compare with Moving MNIST scores.
SHI2015_RADAR = {
    "source": "Shi et al. 2015, radar echo data set (rainfall threshold 0.5 mm/h)",
    "ConvLSTM": {"csi": 0.577, "far": 0.195, "pod": 0.660, "correlation": 0.908},
    "ROVER (optical flow)": {"csi": 0.522, "far": 0.301, "pod": 0.642, "correlation": 0.850},
}
THRESHOLD = 0.5
# Held-out data use seeds far from the training seeds.
HELD_OUT_SEED_OFFSET = 10_000


def _register(name: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    def add(recipe: Callable[..., dict]) -> Callable[..., dict]:
        RECIPES[name] = recipe
        return recipe

    return add


def _finish(out_dir: Path, summary: dict, started: float) -> dict:
    """Adds the run time, writes ``summary.json`` and returns the summary."""
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out_dir / "summary.json", summary)
    return summary


def _number(value: float, digits: int = 6) -> float | None:
    """``value`` rounded for a summary; None for an undefined (nan) or infinite value, which JSON lacks."""
    return round(float(value), digits) if math.isfinite(value) else None


def _means(table: evaluation.MetricTable, names: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """``{system: {metric: mean over the horizon}}`` for the chosen metrics, rounded for the summary."""
    return {
        system: {name: _number(values[name]) for name in names} for system, values in table.means().items()
    }


# ---------------------------------------------------------------------------------------------------------
# Moving square (the PyTorch many-to-one demo)
# ---------------------------------------------------------------------------------------------------------


class MovingSquareBatches(keras.utils.PyDataset):
    """Fresh moving-square batches: frames 0..8 of each sequence as input, frame 9 as target.

    Batch ``i`` of epoch ``e`` is :func:`~keras_convlstm.synthetic.generate_moving_squares` with seed
    ``SeedSequence([seed, e, i])``, so every step sees new squares and a run can be repeated exactly.

    Args:
        batches_per_epoch: batches per epoch.
        batch_size: sequences per batch.
        image_size: canvas side in pixels.
        num_frames: frames per sequence; the last is the target.
        seed: base seed.

    Batches:
        ``(x, y)``: float32 ``(batch, num_frames - 1, size, size, 1)`` and ``(batch, size, size, 1)``,
        values 0 or 1.
    """

    def __init__(
        self,
        batches_per_epoch: int,
        batch_size: int = 8,
        image_size: int = 64,
        num_frames: int = 10,
        seed: int = 0,
    ):
        super().__init__()
        self.batches_per_epoch = check_integer(batches_per_epoch, "batches_per_epoch")
        self.batch_size = check_integer(batch_size, "batch_size")
        self.image_size = image_size
        self.num_frames = check_integer(num_frames, "num_frames", minimum=2)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose batches are served."""
        self.epoch = epoch

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index must be in [0, {len(self)}), got {index}")
        squares = synthetic.generate_moving_squares(
            self.batch_size,
            self.num_frames,
            image_size=self.image_size,
            seed=np.random.SeedSequence([self.seed, self.epoch, index]),
        )
        frames = data.to_float_frames(squares)
        return frames[:, :-1], frames[:, -1]


@_register("moving-square")
def moving_square(
    out_dir: Path,
    quick: bool = False,
    seed: int = 0,
    *,
    image_size: int | None = None,
    max_steps: int | None = None,
    held_out_sequences: int = 256,
    verbose: int = 2,
) -> dict:
    """The PyTorch moving-square demo: one ConvLSTM2D (16, 3x3) reads frames 0..8 and predicts frame 9.

    Trains the ``moving-square`` preset with MSE and Adam (1e-3) on 8 fresh sequences per step, stopping once
    the training MSE is below 0.001 (checked on the mean of every 10 steps) or after ``max_steps``, then
    scores held-out squares (seed ``10000 + seed``) against copy-last-frame and a blank frame.

    Settings. Full: the demo's 64x64 canvas and 100 steps; there the 5x5 square is 0.6% of the frame and in
    100 steps the network learns little more than a blank frame (see the summary). Quick: a 16x16 canvas and
    300 steps (about 15 s on 2 CPU cores), where the square covers 10% of the frame and the network learns
    where it goes next.

    Args:
        out_dir: folder for the pictures, the training run and ``summary.json``.
        quick: quick settings (see above).
        seed: seed of the weights and of the training data.
        image_size: canvas side (default 64, quick 16).
        max_steps: most training steps, a multiple of 10 (default 100, quick 300).
        held_out_sequences: held-out sequences scored.
        verbose: ``model.fit`` verbosity (0 silent, 2 one line per 10 steps).

    Writes:
        ``inputs.png`` (the 9 input frames), ``truth_vs_prediction.png`` (frame 10 and its prediction),
        ``mse_curve.png``, ``inputs_and_prediction.gif`` (9 inputs then the prediction), ``run/``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_size = image_size or (16 if quick else 64)
    max_steps = max_steps or (300 if quick else 100)
    steps_per_epoch = 10
    epochs = math.ceil(max_steps / steps_per_epoch)

    keras.utils.set_random_seed(seed)
    model = build_model("moving-square", image_size=image_size)
    batches = MovingSquareBatches(steps_per_epoch, 8, image_size, seed=seed)
    # No early stopping on plateaus and no learning-rate schedule: the demo trains at a constant rate.
    history = training.train(
        model,
        batches,
        epochs=epochs,
        out_dir=out_dir / "run",
        seed=seed,
        steps_per_epoch=steps_per_epoch,
        patience=epochs,
        lr_patience=epochs,
        loss_threshold=0.001,
        verbose=verbose,
    )
    losses = history.history["loss"]

    held_out = synthetic.generate_moving_squares(
        held_out_sequences, 10, image_size=image_size, seed=HELD_OUT_SEED_OFFSET + seed
    )
    table = evaluate(model, held_out, context=9, horizon=1)
    table.to_json(out_dir / "metrics.json")
    means = _means(table, ("mse_per_pixel", "mse"))

    example = data.to_float_frames(held_out[:1])[0]
    prediction = predict_frames(model, held_out[:1, :9], 1)[0]
    viz.plot_frames(example[:9], ncols=9, title="Input frames 1-9", path=out_dir / "inputs.png")
    viz.plot_truth_vs_prediction(
        example[9:], prediction, first_frame_number=10, path=out_dir / "truth_vs_prediction.png"
    )
    viz.plot_history({"loss (MSE, mean of 10 steps)": losses}, path=out_dir / "mse_curve.png")
    viz.save_gif(np.concatenate([example[:9], prediction]), out_dir / "inputs_and_prediction.gif")

    summary = {
        "recipe": "moving-square",
        "quick": quick,
        "seed": seed,
        "settings": {
            "preset": "moving-square",
            "image_size": image_size,
            "square_size": 5,
            "batch_size": 8,
            "max_steps": epochs * steps_per_epoch,
            "learning_rate": 1e-3,
            "stop_below_mse": 0.001,
        },
        "parameters": model.count_params(),
        "steps_trained": len(losses) * steps_per_epoch,
        "final_train_mse": round(losses[-1], 6),
        "reached_threshold": losses[-1] < 0.001,
        "held_out_sequences": held_out_sequences,
        "held_out": means,
        "beats_copy_last_frame": means["model"]["mse_per_pixel"] < means["copy-last-frame"]["mse_per_pixel"],
        "files": ["inputs.png", "truth_vs_prediction.png", "mse_curve.png", "inputs_and_prediction.gif"],
    }
    return _finish(out_dir, summary, started)


# ---------------------------------------------------------------------------------------------------------
# Noisy squares (the Keras 2 example)
# ---------------------------------------------------------------------------------------------------------


@_register("noisy-squares")
def noisy_squares(
    out_dir: Path,
    quick: bool = False,
    seed: int = 0,
    *,
    num_train: int | None = None,
    epochs: int | None = None,
    filters: tuple[int, ...] | None = None,
    verbose: int = 2,
) -> dict:
    """The Keras 2 example on noisy squares, with its 'same' final Conv3D and with the causal one.

    Movies come from :func:`~keras_convlstm.synthetic.generate_noisy_squares` (23 frames, so that the
    rollout has truth): the models train on frames 0..14 of the first ``num_train`` movies (5% of them held
    out for validation, batch 10, Adadelta at learning rate 1.0), each frame's target being the clean squares
    one frame later. Then movie ``num_train + 4`` (1004 in the full setting) gives 7 frames and each model
    predicts 16 more autoregressively; the truth is the clean squares of frames 8..23. The package's frames
    are in [0, 1], so the -0.1 noise the generator puts on the background is clipped to 0 in the inputs.

    Settings. Full: the original 1000 training movies and 300 epochs with the preset networks
    (4 x ConvLSTM2D 40); about 20 hours per network on 2 CPU cores, roughly an hour on one GPU (estimates).
    Quick: 40 movies, 3 epochs, filters (8, 8) (under a minute on 2 CPU cores; the models barely train).

    Args:
        out_dir: folder for the figures, the runs and ``summary.json``.
        quick: quick settings (see above).
        seed: seed of the movies and of the weights.
        num_train: movies used for training (default 1000, quick 40); 1.2 times as many are generated.
        epochs: epochs (default 300, quick 3).
        filters: ConvLSTM2D filters, one per layer, 3x3 kernels (default the preset's (40, 40, 40, 40)).
        verbose: ``model.fit`` verbosity.

    Writes:
        ``rollout_noisy-squares.png`` and ``rollout_noisy-squares-causal.png`` (truth over prediction),
        ``context.png`` (the 7 given frames), ``runs/<preset>/``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_train = num_train or (40 if quick else 1000)
    epochs = epochs or (3 if quick else 300)
    filters = tuple(filters or ((8, 8) if quick else (40, 40, 40, 40)))
    context_frames, horizon, train_frames = 7, 16, 15
    test_movie = num_train + 4

    num_movies = max(round(1.2 * num_train), test_movie + 1)  # 1200 in the full setting, as the original
    noisy, shifted = synthetic.generate_noisy_squares(num_movies, context_frames + horizon, seed=seed)
    inputs = np.clip(noisy, 0.0, 1.0)
    train_idx, val_idx = data.split_indices(num_train, 0.05, seed=seed)
    x, y = inputs[:, :train_frames], shifted[:, :train_frames]
    context = inputs[test_movie : test_movie + 1, :context_frames]
    truth = shifted[test_movie : test_movie + 1, context_frames - 1 : context_frames - 1 + horizon]
    viz.plot_frames(
        context[0],
        ncols=context_frames,
        title=f"Movie {test_movie}: given frames",
        path=out_dir / "context.png",
    )

    predictions = {}
    for preset in ("noisy-squares", "noisy-squares-causal"):
        keras.utils.set_random_seed(seed)
        model = build_model(preset, filters=filters, kernel_sizes=(3,) * len(filters))
        training.train(
            model,
            (x[train_idx], y[train_idx]),
            (x[val_idx], y[val_idx]),
            epochs=epochs,
            batch_size=10,
            out_dir=out_dir / "runs" / preset,
            seed=seed,
            patience=epochs,  # the original trains for all its epochs at a constant rate
            lr_patience=epochs,
            verbose=verbose,
        )
        predictions[preset] = predict_frames(model, context, horizon)
        viz.plot_truth_vs_prediction(
            truth[0],
            predictions[preset][0],
            first_frame_number=context_frames + 1,
            labels=("Truth", preset),
            path=out_dir / f"rollout_{preset}.png",
        )
    predictions["copy-last-frame"] = evaluation.copy_last_frame(context, horizon)
    table = evaluation.MetricTable.from_predictions(predictions, truth, threshold=THRESHOLD)
    table.to_json(out_dir / "metrics.json")

    summary = {
        "recipe": "noisy-squares",
        "quick": quick,
        "seed": seed,
        "settings": {
            "movies_generated": num_movies,
            "train_movies": len(train_idx),
            "validation_movies": len(val_idx),
            "epochs": epochs,
            "batch_size": 10,
            "filters": list(filters),
            "test_movie": test_movie,
            "context_frames": context_frames,
            "predicted_frames": horizon,
        },
        "rollout": _means(table, ("mse", "mse_per_pixel", "ssim")),
        "files": ["context.png", "rollout_noisy-squares.png", "rollout_noisy-squares-causal.png"],
    }
    return _finish(out_dir, summary, started)


# ---------------------------------------------------------------------------------------------------------
# Shi et al. 2015 on Moving MNIST
# ---------------------------------------------------------------------------------------------------------


class ContextHorizonMovingMNIST(data.GeneratedMovingMNIST):
    """Fresh Moving MNIST batches split into given and future frames, for an encoder-forecaster.

    The sequences are exactly those of :class:`~keras_convlstm.data.GeneratedMovingMNIST` with the same
    arguments (a pure function of seed, epoch and batch index; call ``set_epoch`` at each epoch begin).

    Args:
        sequences_per_epoch: sequences per epoch.
        batch_size: sequences per batch.
        context: frames given; the other ``num_frames - context`` frames are the targets.
        **kwargs: the other arguments of :class:`~keras_convlstm.data.GeneratedMovingMNIST` (``seed``,
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


@_register("shi2015")
def shi2015(
    out_dir: Path,
    quick: bool = False,
    seed: int = 0,
    *,
    sequences_per_epoch: int | None = None,
    epochs: int | None = None,
    test_sequences: int | None = None,
    filters: tuple[int, ...] | None = None,
    digit_source: str = "auto",
    verbose: int = 2,
) -> dict:
    """Shi et al. 2015 on Moving MNIST 10 -> 10: the seq2seq ConvLSTM stack and the encoder-forecaster.

    Training sequences are generated afresh every epoch from the MNIST train digits; the sequence-to-sequence
    ``shi2015`` learns next frames from shifted frames (teacher forcing) and is rolled out 10 frames
    autoregressively, while ``shi2015-encoder-forecaster`` learns (first 10 frames -> last 10 frames) pairs
    and emits all 10 at once. Both use 4x4 patches, RMSProp (learning rate 1e-3, rho 0.9) and binary
    cross-entropy, early stopping on generated validation sequences. Test sequences use held-out MNIST
    digits, with two digits (the paper's setting) and three (its out-of-domain test). Scores: cross-entropy
    per sequence summed over the 10 predicted 64x64 frames (Table 1's convention), beside the paper's
    numbers; CSI, FAR, POD and correlation at a threshold of 0.5; MSE per frame and SSIM; copy-last-frame.

    Settings. Full: the presets (128-64-64, 5x5), 10,000 sequences per epoch, up to 100 epochs with early
    stopping (patience 10) on 2,000 validation sequences, 3,000 test sequences: GPU-scale (an epoch of the
    seq2seq network takes about an hour on 2 CPU cores). Quick: filters (16, 16), 200 sequences per epoch,
    2 epochs, 32 test sequences (about a minute on 2 CPU cores): the numbers are far from the paper's.

    Args:
        out_dir: folder for the figures, metric tables, runs and ``summary.json``.
        quick: quick settings (see above).
        seed: seed of the weights and of the generated sequences.
        sequences_per_epoch: training sequences per epoch (default 10,000, quick 200).
        epochs: most epochs (default 100, quick 2).
        test_sequences: test sequences per digit count (default 3,000, quick 32).
        filters: ConvLSTM2D filters per layer, 5x5 kernels (default the presets' (128, 64, 64)).
        digit_source: MNIST digit source of :func:`~keras_convlstm.synthetic.load_mnist_digits`.
        verbose: ``model.fit`` verbosity.

    Writes:
        ``rollout_<preset>.png`` (a two-digit test sequence), ``metric_curves_<n>digits.png``,
        ``metrics_<n>digits.json``, ``runs/<preset>/``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sequences_per_epoch = sequences_per_epoch or (200 if quick else 10_000)
    epochs = epochs or (2 if quick else 100)
    test_sequences = test_sequences or (32 if quick else 3_000)
    val_sequences = 16 if quick else 2_000
    batch_size = 8 if quick else 16
    filters = filters or ((16, 16) if quick else None)
    overrides = {} if filters is None else {"filters": tuple(filters), "kernel_sizes": (5,) * len(filters)}
    context = horizon = 10
    train_digits, _ = synthetic.load_mnist_digits(digit_source, "train", verbose=False)
    test_digits, _ = synthetic.load_mnist_digits(digit_source, "test", verbose=False)
    validation = synthetic.generate_moving_mnist(val_sequences, 20, seed=seed + 1, digits=train_digits)
    tests = {
        num_digits: synthetic.generate_moving_mnist(
            test_sequences, 20, num_digits=num_digits, seed=HELD_OUT_SEED_OFFSET + seed, digits=test_digits
        )
        for num_digits in (2, 3)
    }

    models = {}
    for preset in ("shi2015", "shi2015-encoder-forecaster"):
        keras.utils.set_random_seed(seed)
        model = build_model(preset, **overrides)
        if preset == "shi2015":
            train_set = data.GeneratedMovingMNIST(
                sequences_per_epoch, batch_size, seed=seed, digits=train_digits
            )
            val_data = validation
        else:
            train_set = ContextHorizonMovingMNIST(
                sequences_per_epoch, batch_size, context=context, seed=seed, digits=train_digits
            )
            val_data = (
                data.to_float_frames(validation[:, :context]),
                data.to_float_frames(validation[:, context:]),
            )
        training.train(
            model,
            train_set,
            val_data,
            epochs=epochs,
            batch_size=batch_size,
            out_dir=out_dir / "runs" / preset,
            seed=seed,
            verbose=verbose,
        )
        models[preset] = model

    results = {}
    for num_digits, sequences in tests.items():
        given, truth = sequences[:, :context], data.to_float_frames(sequences[:, context:])
        predictions = {name: predict_frames(model, given, horizon) for name, model in models.items()}
        predictions["copy-last-frame"] = evaluation.copy_last_frame(data.to_float_frames(given), horizon)
        table = evaluation.MetricTable.from_predictions(predictions, truth, threshold=THRESHOLD)
        table.to_json(out_dir / f"metrics_{num_digits}digits.json")
        viz.plot_metric_curves(table, ("mse", "ssim"), path=out_dir / f"metric_curves_{num_digits}digits.png")
        scores = _means(table, ("mse", "ssim", "csi", "far", "pod", "correlation"))
        for name, prediction in predictions.items():
            scores[name]["bce_per_sequence"] = _number(metrics.bce_per_sequence(prediction, truth), 2)
        results[f"{num_digits}_digits"] = scores
        if num_digits == 2:
            for name, prediction in predictions.items():
                if name in models:
                    viz.plot_truth_vs_prediction(
                        truth[0], prediction[0], labels=("Truth", name), path=out_dir / f"rollout_{name}.png"
                    )

    summary = {
        "recipe": "shi2015",
        "quick": quick,
        "seed": seed,
        "settings": {
            "filters": list(models["shi2015"].config.filters),
            "kernel_sizes": list(models["shi2015"].config.kernel_sizes),
            "patch_size": 4,
            "sequences_per_epoch": sequences_per_epoch,
            "epochs": epochs,
            "batch_size": batch_size,
            "validation_sequences": val_sequences,
            "test_sequences": test_sequences,
            "digit_source": digit_source,
            "threshold": THRESHOLD,
        },
        "parameters": {name: model.count_params() for name, model in models.items()},
        "results": results,
        "paper": {
            "source": SHI2015_SOURCE,
            "table1_bce_per_sequence": SHI2015_TABLE1,
            "three_digits_bce_per_sequence": SHI2015_THREE_DIGITS,
            "radar_nowcasting": SHI2015_RADAR,
        },
        "files": [
            "rollout_shi2015.png",
            "rollout_shi2015-encoder-forecaster.png",
            "metric_curves_2digits.png",
            "metric_curves_3digits.png",
        ],
    }
    return _finish(out_dir, summary, started)


# ---------------------------------------------------------------------------------------------------------
# Video classification: moving-digit actions through a video folder
# ---------------------------------------------------------------------------------------------------------


def write_action_folder(
    root: Path,
    num_people: int,
    clips_per_person: int,
    *,
    num_classes: int = 4,
    num_frames: int = 15,
    image_size: int | tuple[int, int] = (60, 80),
    digit_size: int = 28,
    seed: int = 0,
    digit_source: str = "auto",
) -> Path:
    """Writes a KTH-style folder of moving-digit action GIFs: ``root/<direction>/personNN_<direction>_K.gif``.

    Each "person" draws its digits from its own share of the MNIST digits (digit ``i`` belongs to person
    ``i mod num_people``), so a person-wise split also holds out the digits.

    Args:
        root: folder to create.
        num_people: number of people (groups).
        clips_per_person: clips per person, spread evenly over the classes.
        num_classes: 4 or 8 directions.
        num_frames: frames per clip.
        image_size: frame side or ``(height, width)``.
        digit_size: digit side in pixels.
        seed: base seed; person ``p`` uses ``SeedSequence([seed, p])``.
        digit_source: MNIST digit source of :func:`~keras_convlstm.synthetic.load_mnist_digits`.

    Returns:
        ``root``.
    """
    root = Path(root)
    digits, _ = synthetic.load_mnist_digits(digit_source, "all", verbose=False)
    names = synthetic.ACTION_DIRECTIONS[num_classes]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for person in range(num_people):
        clips, labels = synthetic.generate_moving_digit_actions(
            clips_per_person,
            num_classes,
            num_frames,
            image_size,
            digit_size,
            seed=np.random.SeedSequence([seed, person]),
            digits=np.ascontiguousarray(digits[person::num_people]),
        )
        for index, (clip, label) in enumerate(zip(clips, labels, strict=True)):
            viz.save_gif(
                clip, root / names[label] / f"person{person + 1:02d}_{names[label]}_{index}.gif", 100
            )
    return root


@_register("actions")
def actions(
    out_dir: Path,
    quick: bool = False,
    seed: int = 0,
    *,
    num_people: int | None = None,
    clips_per_person: int | None = None,
    epochs: int | None = None,
    num_classes: int = 4,
    digit_source: str = "auto",
    verbose: int = 2,
) -> dict:
    """Video classification: which way does the digit move? A KTH-style pipeline that needs no download.

    Writes moving-digit clips as GIFs into a video folder (one sub-folder per direction, file names carrying
    a person id as KTH's do), loads it with :func:`~keras_convlstm.videos.load_video_folder`, holds out a
    quarter of the people with :func:`~keras_convlstm.videos.split_by_group` (and a tenth of the others for
    validation), trains the ``classifier`` preset (ConvLSTM2D layers, max-pool 5 stride 2, softmax) and
    reports the held-out accuracy and confusion matrix. Chance is ``1 / num_classes``.

    Settings. Full: the preset (2 x ConvLSTM2D 32, 3x3) on 60x80 frames, 15-frame clips, 28-pixel digits,
    24 people x 100 clips, up to 20 epochs with early stopping. Quick: 32x32 frames, 14-pixel digits, 10-frame
    clips, filters (8, 8), learning rate 3e-3, 16 people x 44 clips, 4 epochs (about 30 s on 2 CPU cores).

    Args:
        out_dir: folder for the video folder, figures, run and ``summary.json``.
        quick: quick settings (see above).
        seed: seed of the clips, the split and the weights.
        num_people: people in the video folder (default 24, quick 16).
        clips_per_person: clips per person (default 100, quick 44).
        epochs: most epochs (default 20, quick 4).
        num_classes: 4 or 8 directions.
        digit_source: MNIST digit source of :func:`~keras_convlstm.synthetic.load_mnist_digits`.
        verbose: ``model.fit`` verbosity.

    Writes:
        ``videos/<direction>/*.gif``, ``confusion_matrix.png``, ``example.png``, ``history.png``, ``run/``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_people = num_people or (16 if quick else 24)
    clips_per_person = clips_per_person or (44 if quick else 100)
    epochs = epochs or (4 if quick else 20)
    if quick:
        frame_size, digit_size, num_frames = (32, 32), 14, 10
        overrides = {"filters": (8, 8), "learning_rate": 3e-3}
    else:
        frame_size, digit_size, num_frames = (60, 80), 28, 15
        overrides = {}

    root = write_action_folder(
        out_dir / "videos",
        num_people,
        clips_per_person,
        num_classes=num_classes,
        num_frames=num_frames,
        image_size=frame_size,
        digit_size=digit_size,
        seed=seed,
        digit_source=digit_source,
    )
    folder = videos.load_video_folder(root, num_frames, frame_size, grayscale=True)
    # load_video_folder sorts the classes by name; relabel them in direction order (right, down, ...).
    directions = list(synthetic.ACTION_DIRECTIONS[num_classes])
    labels = np.asarray([directions.index(folder.class_names[label]) for label in folder.labels])
    rest_idx, test_idx = videos.split_by_group(folder.groups, 0.25, seed=seed)
    fit_part, val_part = videos.split_by_group(folder.groups[rest_idx], 0.1, seed=seed)
    train_idx, val_idx = rest_idx[fit_part], rest_idx[val_part]

    keras.utils.set_random_seed(seed)
    model = build_model(
        "classifier", image_size=frame_size, input_frames=num_frames, num_classes=num_classes, **overrides
    )
    history = training.train(
        model,
        (folder.clips[train_idx], labels[train_idx]),
        (folder.clips[val_idx], labels[val_idx]),
        epochs=epochs,
        batch_size=16,
        out_dir=out_dir / "run",
        seed=seed,
        verbose=verbose,
    )
    test_clips = data.to_float_frames(folder.clips[test_idx])
    predicted = model.predict(test_clips, batch_size=32, verbose=0).argmax(axis=-1)
    counts = videos.confusion_matrix(labels[test_idx], predicted, num_classes)
    accuracy = float(np.trace(counts) / counts.sum())
    viz.plot_confusion_matrix(
        counts, directions, title="Held-out people", path=out_dir / "confusion_matrix.png"
    )
    first = test_idx[0]
    viz.plot_frames(
        folder.clips[first],
        ncols=num_frames,
        title=f"{folder.sources[first]}: {directions[labels[first]]}, predicted {directions[predicted[0]]}",
        path=out_dir / "example.png",
    )
    viz.plot_history(out_dir / "run" / "history.csv", path=out_dir / "history.png")

    summary = {
        "recipe": "actions",
        "quick": quick,
        "seed": seed,
        "settings": {
            "num_classes": num_classes,
            "class_names": directions,
            "frame_size": list(frame_size),
            "num_frames": num_frames,
            "digit_size": digit_size,
            "filters": list(model.config.filters),
            "people": num_people,
            "clips_per_person": clips_per_person,
            "epochs": epochs,
        },
        "clips": {"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)},
        "test_people": sorted(set(folder.groups[test_idx].tolist())),
        "held_out_accuracy": round(accuracy, 4),
        "chance_accuracy": round(1 / num_classes, 4),
        "per_class_accuracy": {
            name: round(float(counts[k, k] / max(1, counts[k].sum())), 4) for k, name in enumerate(directions)
        },
        "confusion_matrix": counts.tolist(),
        "epochs_trained": len(history.history["loss"]),
        "files": ["confusion_matrix.png", "example.png", "history.png"],
    }
    return _finish(out_dir, summary, started)
