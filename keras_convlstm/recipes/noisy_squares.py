"""The noisy-squares recipe: the Keras 2 example, with its 'same' final Conv3D and the causal fix.

Owns the recipe's settings (:class:`NoisySquaresSettings`, :data:`QUICK`, :data:`FULL`), its data
(:class:`NoisySquaresData`) and its steps, each callable alone: :func:`build_data`, :func:`build_model`,
:func:`train`, :func:`predict`, :func:`evaluate`, :func:`write_pictures`, :func:`summarize`; :func:`run`
chains them for both presets.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_convlstm import data, evaluation, synthetic, training, viz
from keras_convlstm.models import build_model as build_preset
from keras_convlstm.recipes import common
from keras_convlstm.rollout import predict_rollout

NAME = "noisy-squares"
PRESETS = ("noisy-squares", "noisy-squares-causal")
THRESHOLD = 0.5
FILES = ("context.png", "rollout_noisy-squares.png", "rollout_noisy-squares-causal.png")


@dataclasses.dataclass(frozen=True)
class NoisySquaresSettings:
    """Settings of the noisy-squares recipe.

    Attributes:
        num_train: movies for training and validation; ``1.2 * num_train`` are generated, as the original.
        epochs: epochs, all trained at a constant learning rate (the original stops neither early nor late).
        filters: ConvLSTM2D filters, one per layer.
        kernel_size: side of every ConvLSTM2D kernel.
        batch_size: movies per batch.
        validation_fraction: share of the ``num_train`` movies held out for validation.
        train_frames: frames of each movie trained on (frames 1..15).
        context_frames: frames given to the rollout.
        predicted_frames: frames the rollout predicts after them.
        test_movie_offset: the rollout's movie is ``num_train + test_movie_offset`` (1004 in the original).
        precision: the models' compute precision (see :func:`~keras_convlstm.precision.resolve_precision`).
    """

    num_train: int
    epochs: int
    filters: tuple[int, ...]
    kernel_size: int = 3
    batch_size: int = 10
    validation_fraction: float = 0.05
    train_frames: int = 15
    context_frames: int = 7
    predicted_frames: int = 16
    test_movie_offset: int = 4
    precision: str = "float32"

    def __post_init__(self) -> None:
        common.check_settings(
            self,
            ("num_train", "epochs", "kernel_size", "batch_size", "train_frames", "context_frames", "predicted_frames"),
        )

    @property
    def test_movie(self) -> int:
        """Index of the movie the rollout starts from."""
        return self.num_train + self.test_movie_offset

    @property
    def num_movies(self) -> int:
        """Movies generated: 1.2 times ``num_train`` (1200 in the original), at least up to the test movie."""
        return max(round(1.2 * self.num_train), self.test_movie + 1)


# The original: 1000 training movies, 300 epochs, 4 x ConvLSTM2D 40 (its time on a CPU: BENCHMARKS.md, section (n)).
FULL = NoisySquaresSettings(num_train=1000, epochs=300, filters=(40, 40, 40, 40))
# 40 movies, 3 epochs, 2 x ConvLSTM2D 8: the networks barely train.
QUICK = NoisySquaresSettings(num_train=40, epochs=3, filters=(8, 8))


@dataclasses.dataclass(frozen=True, eq=False)
class NoisySquaresData:
    """Training pairs and the rollout's movie.

    Attributes:
        train, validation: ``(inputs, targets)``, float32 ``(movies, train_frames, 40, 40, 1)`` in [0, 1]:
            noisy frames (the -0.1 noise on the background clipped to 0) and the clean squares one frame later.
        context: float32 ``(1, context_frames, 40, 40, 1)``, the test movie's first noisy frames.
        truth: float32 ``(1, predicted_frames, 40, 40, 1)``, its clean frames that follow them.
    """

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    context: np.ndarray
    truth: np.ndarray


def choose_settings(quick: bool = False, **overrides: object) -> NoisySquaresSettings:
    """:data:`QUICK` or :data:`FULL` with the overrides that are not None (fields of :class:`NoisySquaresSettings`)."""
    return common.choose(QUICK, FULL, quick, **overrides)


def build_data(settings: NoisySquaresSettings, seed: int = 0) -> NoisySquaresData:
    """Generates the movies (:func:`~keras_convlstm.synthetic.generate_noisy_squares`) and splits them.

    The movies have ``context_frames + predicted_frames`` frames (23), so that the rollout has truth. The first
    ``num_train`` movies are split into training and validation by :func:`~keras_convlstm.data.split_indices`.
    """
    inputs, shifted = _movies(settings.num_movies, settings, seed)
    train_idx, val_idx = data.split_indices(settings.num_train, settings.validation_fraction, seed=seed)
    x, y = inputs[:, : settings.train_frames], shifted[:, : settings.train_frames]
    movie = slice(settings.test_movie, settings.test_movie + 1)
    context, truth = _context_and_truth(inputs[movie], shifted[movie], settings)
    return NoisySquaresData(
        train=(x[train_idx], y[train_idx]), validation=(x[val_idx], y[val_idx]), context=context, truth=truth
    )


def held_out_movies(
    settings: NoisySquaresSettings, num_movies: int, seed: int = synthetic.HELD_OUT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Movies generated with their own seed, none of them trained on: the fixed set the shipped model is scored on.

    Returns:
        ``(context, truth)``: float32 ``(num_movies, context_frames, 40, 40, 1)``, the first noisy frames
        (clipped to [0, 1]), and float32 ``(num_movies, predicted_frames, 40, 40, 1)``, the clean frames after them.
    """
    inputs, shifted = _movies(num_movies, settings, seed)
    return _context_and_truth(inputs, shifted, settings)


def _movies(num_movies: int, settings: NoisySquaresSettings, seed: int) -> tuple[np.ndarray, np.ndarray]:
    noisy, shifted = synthetic.generate_noisy_squares(
        num_movies, settings.context_frames + settings.predicted_frames, seed=seed
    )
    return np.clip(noisy, 0.0, 1.0), shifted


def _context_and_truth(
    inputs: np.ndarray, shifted: np.ndarray, settings: NoisySquaresSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The given noisy frames and the clean frames that follow them (``shifted[t]`` is clean frame ``t + 1``)."""
    context_frames = settings.context_frames
    return inputs[:, :context_frames], shifted[:, context_frames - 1 : context_frames - 1 + settings.predicted_frames]


def build_model(preset: str, settings: NoisySquaresSettings, seed: int = 0) -> keras.Model:
    """One of :data:`PRESETS` with the settings' filters and kernels; calls ``keras.utils.set_random_seed(seed)``."""
    keras.utils.set_random_seed(seed)
    filters = settings.filters
    return build_preset(
        preset, filters=filters, kernel_sizes=(settings.kernel_size,) * len(filters), precision=settings.precision
    )


def train(
    model: keras.Model,
    movies: NoisySquaresData,
    settings: NoisySquaresSettings,
    out_dir: str | os.PathLike,
    seed: int = 0,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Trains for all ``settings.epochs`` at a constant rate (Adadelta, learning rate 1.0, as the original).

    Writes ``out_dir/runs/<preset>/``. ``verbose`` is ``model.fit``'s.
    """
    return training.train(
        model,
        movies.train,
        movies.validation,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        out_dir=Path(out_dir) / "runs" / model.config.name,
        seed=seed,
        patience=settings.epochs,  # the original trains for all its epochs at a constant rate
        lr_patience=settings.epochs,
        verbose=verbose,
    )


def predict(
    models: dict[str, keras.Model], context: np.ndarray, settings: NoisySquaresSettings
) -> dict[str, np.ndarray]:
    """Each model's autoregressive rollout from ``context``, then the copy-last-frame and blank baselines.

    Args:
        models: ``{name: model}``.
        context: float32 ``(movies, context_frames, 40, 40, 1)``: ``NoisySquaresData.context`` or the first
            array of :func:`held_out_movies`.

    Returns:
        ``{system: float32 (movies, predicted_frames, 40, 40, 1)}``, the models first.
    """
    horizon = settings.predicted_frames
    predictions = {name: predict_rollout(model, context, horizon) for name, model in models.items()}
    predictions["copy-last-frame"] = evaluation.copy_last_frame(context, horizon)
    predictions["blank"] = evaluation.blank_frames(context, horizon)
    return predictions


def evaluate(predictions: dict[str, np.ndarray], truth: np.ndarray) -> evaluation.MetricTable:
    """Per-frame metrics of every rollout against the clean ``truth`` (threshold 0.5 for the binary ones)."""
    return evaluation.MetricTable.from_predictions(predictions, truth, threshold=THRESHOLD)


def write_pictures(
    predictions: dict[str, np.ndarray], context: np.ndarray, truth: np.ndarray, title: str, out_dir: str | os.PathLike
) -> list[str]:
    """Writes ``context.png`` (the given frames) and ``rollout_<preset>.png`` (truth over each preset's rollout).

    Args:
        predictions: :func:`predict`'s output; the presets among its keys get a figure.
        context, truth: the movies it was predicted from and their truth, as given to :func:`predict` and
            :func:`evaluate`; the first movie is drawn.
        title: the given frames' title, for example ``"Movie 1004: given frames"``.
        out_dir: the folder written to.

    Returns:
        The file names written.
    """
    out_dir = common.recipe_folder(out_dir)
    context_frames = context.shape[1]
    viz.plot_frames(context[0], ncols=context_frames, title=title, path=out_dir / "context.png")
    files = ["context.png"]
    for name in PRESETS:
        if name in predictions:
            viz.plot_truth_vs_prediction(
                truth[0],
                predictions[name][0],
                first_frame_number=context_frames + 1,
                labels=("Truth", name),
                path=out_dir / f"rollout_{name}.png",
            )
            files.append(f"rollout_{name}.png")
    return files


def summarize(settings: NoisySquaresSettings, movies: NoisySquaresData, table: evaluation.MetricTable) -> dict:
    """The recipe's summary: settings and the rollout's mean MSE, MSE per pixel and SSIM of every system."""
    return {
        "settings": {
            "movies_generated": settings.num_movies,
            "train_movies": len(movies.train[0]),
            "validation_movies": len(movies.validation[0]),
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "filters": list(settings.filters),
            "test_movie": settings.test_movie,
            "context_frames": settings.context_frames,
            "predicted_frames": settings.predicted_frames,
        },
        "rollout": common.summary_means(table, ("mse", "mse_per_pixel", "ssim")),
        "files": list(FILES),
    }


def run(
    out_dir: str | os.PathLike,
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
    rollout has truth): the models train on frames 1..15 of the first ``num_train`` movies (5% of them held
    out for validation, batch 10, Adadelta at learning rate 1.0), each frame's target being the clean squares
    one frame later. Then movie ``num_train + 4`` (1004 in the full setting) gives 7 frames and each model
    predicts 16 more autoregressively; the truth is the clean squares of frames 8..23. The package's frames
    are in [0, 1], so the -0.1 noise the generator puts on the background is clipped to 0 in the inputs.

    Args:
        out_dir: folder for the figures, the runs, ``metrics.json`` and ``summary.json``.
        quick: :data:`QUICK` instead of :data:`FULL` settings.
        seed: seed of the movies and of the weights.
        num_train, epochs, filters: override the chosen settings (None keeps them).
        verbose: ``model.fit`` verbosity.

    Returns:
        The summary written to ``summary.json`` (see :func:`summarize`).
    """
    started = time.perf_counter()
    out_dir = common.recipe_folder(out_dir)
    settings = choose_settings(quick, num_train=num_train, epochs=epochs, filters=filters)
    movies = build_data(settings, seed)
    models = {}
    for preset in PRESETS:
        models[preset] = build_model(preset, settings, seed)
        train(models[preset], movies, settings, out_dir, seed, verbose)
    predictions = predict(models, movies.context, settings)
    table = evaluate(predictions, movies.truth)
    table.to_json(out_dir / "metrics.json")
    write_pictures(predictions, movies.context, movies.truth, f"Movie {settings.test_movie}: given frames", out_dir)
    return common.finish(out_dir, NAME, quick, seed, summarize(settings, movies, table), started)
