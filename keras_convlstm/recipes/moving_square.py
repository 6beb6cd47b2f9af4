"""The moving-square recipe: the PyTorch many-to-one demo, one white square, frames 1-9 -> frame 10.

Owns the recipe's settings (:class:`MovingSquareSettings`, :data:`QUICK`, :data:`FULL`) and its steps, each
callable alone: :func:`build_data`, :func:`build_model`, :func:`train`, :func:`evaluate`,
:func:`write_pictures`, :func:`summarize`; :func:`run` chains them. The training batches are
:class:`MovingSquareBatches`.

Example:
    >>> settings = choose_settings(quick=True, max_steps=20)
    >>> batches, held_out = build_data(settings, seed=0)
    >>> model = build_model(settings, seed=0)
    >>> history = train(model, batches, settings, "runs/moving-square", verbose=0)
    >>> table = evaluate(model, held_out)
    >>> table.systems
    ['model', 'copy-last-frame', 'blank']
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from keras_convlstm import animation, data, evaluation, synthetic, training, viz
from keras_convlstm.checks import check_integer
from keras_convlstm.evaluation import evaluate as evaluate_against_baselines
from keras_convlstm.frames import to_float_frames
from keras_convlstm.models import build_model as build_preset
from keras_convlstm.recipes import common
from keras_convlstm.rollout import predict_rollout

NAME = "moving-square"
PRESET = "moving-square"
NUM_FRAMES = 10  # frames 0..8 are given, frame 9 is predicted
SQUARE_SIZE = 5
FILES = ("inputs.png", "truth_vs_prediction.png", "mse_curve.png", "inputs_and_prediction.gif")


@dataclasses.dataclass(frozen=True)
class MovingSquareSettings:
    """Settings of the moving-square recipe.

    Attributes:
        image_size: canvas side in pixels.
        max_steps: most training steps; training runs whole epochs of ``steps_per_epoch`` steps.
        batch_size: fresh sequences per step.
        steps_per_epoch: steps between two checks of the stopping threshold (the loss is their mean).
        stop_below_mse: stop once an epoch's training MSE is below it.
        held_out_sequences: held-out sequences scored.
    """

    image_size: int
    max_steps: int
    batch_size: int = 8
    steps_per_epoch: int = 10
    stop_below_mse: float = 0.001
    held_out_sequences: int = 256

    def __post_init__(self) -> None:
        common.check_settings(self, ("image_size", "max_steps", "batch_size", "steps_per_epoch", "held_out_sequences"))

    @property
    def epochs(self) -> int:
        """Most epochs: ``max_steps`` rounded up to whole epochs."""
        return math.ceil(self.max_steps / self.steps_per_epoch)


# The demo's 64x64 canvas and 100 steps: there the 5x5 square is 0.6% of the frame and in 100 steps the network
# learns little more than a blank frame.
FULL = MovingSquareSettings(image_size=64, max_steps=100)
# A 16x16 canvas (the square covers 10% of the frame) and 300 steps: the network learns where the square goes
# next.
QUICK = MovingSquareSettings(image_size=16, max_steps=300)


def choose_settings(quick: bool = False, **overrides: object) -> MovingSquareSettings:
    """:data:`QUICK` or :data:`FULL` with the overrides that are not None (fields of :class:`MovingSquareSettings`)."""
    return common.choose(QUICK, FULL, quick, **overrides)


class MovingSquareBatches(data.EpochDataset):
    """Fresh moving-square batches: frames ``0..T-2`` of each sequence as input, frame ``T-1`` as target.

    Batch ``i`` of epoch ``e`` is :func:`keras_convlstm.synthetic.generate_moving_squares` with seed
    ``np.random.SeedSequence([seed, e, i])``, so every step sees new squares and a run can be repeated exactly.

    Args:
        batches_per_epoch: batches per epoch.
        batch_size: sequences per batch.
        image_size: canvas side in pixels.
        num_frames: frames per sequence (``T``); the last is the target.
        seed: base seed.
        **kwargs: ``keras.utils.PyDataset`` arguments.

    Batches:
        ``(x, y)``: float32 ``(batch, num_frames - 1, image_size, image_size, 1)`` and
        ``(batch, image_size, image_size, 1)``, values 0 or 1.
    """

    def __init__(
        self,
        batches_per_epoch: int,
        batch_size: int = 8,
        image_size: int = 64,
        num_frames: int = 10,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(batch_size, seed, **kwargs)
        self.batches_per_epoch = check_integer(batches_per_epoch, "batches_per_epoch")
        self.image_size = image_size
        self.num_frames = check_integer(num_frames, "num_frames", minimum=2)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_index(index)
        squares = synthetic.generate_moving_squares(
            self.batch_size,
            self.num_frames,
            image_size=self.image_size,
            seed=np.random.SeedSequence([self.seed, self.epoch, index]),
        )
        frames = to_float_frames(squares)
        return frames[:, :-1], frames[:, -1]


def build_data(settings: MovingSquareSettings, seed: int = 0) -> tuple[MovingSquareBatches, np.ndarray]:
    """The training batches and the held-out sequences.

    Returns:
        ``(batches, held_out)``: :class:`MovingSquareBatches` serving ``batch_size`` fresh
        sequences per step from ``seed``, and uint8 ``(held_out_sequences, 10, image_size, image_size, 1)``
        squares from seed ``synthetic.HELD_OUT_SEED + seed``, values 0 or 255.
    """
    batches = MovingSquareBatches(
        settings.steps_per_epoch, settings.batch_size, settings.image_size, NUM_FRAMES, seed=seed
    )
    held_out = synthetic.generate_moving_squares(
        settings.held_out_sequences,
        NUM_FRAMES,
        image_size=settings.image_size,
        square_size=SQUARE_SIZE,
        seed=synthetic.HELD_OUT_SEED + seed,
    )
    return batches, held_out


def build_model(settings: MovingSquareSettings, seed: int = 0) -> keras.Model:
    """The ``moving-square`` preset (one ConvLSTM2D, 16 filters, 3x3; MSE and Adam 1e-3), weights seeded by ``seed``.

    Calls ``keras.utils.set_random_seed(seed)`` first.
    """
    keras.utils.set_random_seed(seed)
    return build_preset(PRESET, image_size=settings.image_size)


def train(
    model: keras.Model,
    batches: MovingSquareBatches,
    settings: MovingSquareSettings,
    out_dir: str | os.PathLike,
    seed: int = 0,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Trains at a constant learning rate until the mean MSE of an epoch is below ``stop_below_mse``.

    At most ``settings.epochs`` epochs; no early stopping on plateaus and no learning-rate schedule, as the demo.
    ``verbose`` is ``model.fit``'s (0 silent, 2 one line per epoch). Writes ``out_dir/run/``.

    Returns:
        The Keras history; ``history.history["loss"]`` holds one mean MSE per epoch.
    """
    return training.train(
        model,
        batches,
        epochs=settings.epochs,
        out_dir=Path(out_dir) / "run",
        seed=seed,
        steps_per_epoch=settings.steps_per_epoch,
        patience=settings.epochs,
        lr_patience=settings.epochs,
        loss_threshold=settings.stop_below_mse,
        verbose=verbose,
    )


def evaluate(model: keras.Model, held_out: np.ndarray) -> evaluation.MetricTable:
    """Scores frame 10 predicted from frames 1-9 of ``held_out`` beside copy-last-frame and a blank frame.

    Args:
        model: a trained ``moving-square`` model.
        held_out: ``(sequence, 10, height, width, 1)`` frames, uint8 or float in [0, 1].
    """
    return evaluate_against_baselines(model, held_out, context_frames=NUM_FRAMES - 1, horizon=1)


def write_pictures(
    model: keras.Model, held_out: np.ndarray, losses: Sequence[float], out_dir: str | os.PathLike
) -> list[str]:
    """Pictures of the first held-out sequence and the training curve.

    ``losses`` holds the training MSE of each epoch of 10 steps (``history.history["loss"]`` of :func:`train`,
    or the ``loss`` column of a shipped model's history).

    Writes ``inputs.png`` (the 9 input frames), ``truth_vs_prediction.png`` (frame 10 and its prediction),
    ``mse_curve.png`` and ``inputs_and_prediction.gif`` (9 inputs then the prediction) into ``out_dir``.

    Returns:
        The file names written.
    """
    out_dir = common.recipe_folder(out_dir)
    context = NUM_FRAMES - 1
    example = to_float_frames(held_out[:1])[0]
    prediction = predict_rollout(model, held_out[:1, :context], 1)[0]
    viz.plot_frames(example[:context], ncols=context, title="Input frames 1-9", path=out_dir / "inputs.png")
    viz.plot_truth_vs_prediction(
        example[context:], prediction, first_frame_number=NUM_FRAMES, path=out_dir / "truth_vs_prediction.png"
    )
    viz.plot_history({"loss (MSE, mean of 10 steps)": list(losses)}, path=out_dir / "mse_curve.png")
    animation.save_gif(
        np.concatenate([example[:context], prediction]), out_dir / "inputs_and_prediction.gif", context_frames=context
    )
    return list(FILES)


def summarize(
    model: keras.Model,
    settings: MovingSquareSettings,
    losses: Sequence[float],
    table: evaluation.MetricTable,
) -> dict:
    """The recipe's summary: settings, steps trained, final training MSE and held-out means beside the baselines.

    ``losses``: the training MSE of each epoch, as for :func:`write_pictures`.
    """
    means = common.summary_means(table, ("mse_per_pixel", "mse"))
    return {
        "settings": {
            "preset": PRESET,
            "image_size": settings.image_size,
            "square_size": SQUARE_SIZE,
            "batch_size": settings.batch_size,
            "max_steps": settings.epochs * settings.steps_per_epoch,
            "learning_rate": model.config.learning_rate,
            "stop_below_mse": settings.stop_below_mse,
        },
        "parameters": model.count_params(),
        "steps_trained": len(losses) * settings.steps_per_epoch,
        "final_train_mse": round(losses[-1], 6),
        "reached_threshold": losses[-1] < settings.stop_below_mse,
        "held_out_sequences": settings.held_out_sequences,
        "held_out": means,
        "beats_copy_last_frame": means["model"]["mse_per_pixel"] < means["copy-last-frame"]["mse_per_pixel"],
        "files": list(FILES),
    }


def run(
    out_dir: str | os.PathLike,
    quick: bool = False,
    seed: int = 0,
    *,
    image_size: int | None = None,
    max_steps: int | None = None,
    held_out_sequences: int | None = None,
    verbose: int = 2,
) -> dict:
    """The PyTorch moving-square demo: one ConvLSTM2D (16, 3x3) reads frames 1-9 and predicts frame 10.

    Trains the ``moving-square`` preset with MSE and Adam (1e-3) on 8 fresh sequences per step, stopping once
    the training MSE is below 0.001 (checked on the mean of every 10 steps) or after ``max_steps``, then
    scores held-out squares (seed ``10000 + seed``) against copy-last-frame and a blank frame.

    Args:
        out_dir: folder for the pictures, the training run, ``metrics.json`` and ``summary.json``.
        quick: :data:`QUICK` instead of :data:`FULL` settings.
        seed: seed of the weights and of the training data.
        image_size, max_steps, held_out_sequences: override the chosen settings (None keeps them).
        verbose: ``model.fit`` verbosity (0 silent, 2 one line per 10 steps).

    Returns:
        The summary written to ``summary.json`` (see :func:`summarize`).
    """
    started = time.perf_counter()
    out_dir = common.recipe_folder(out_dir)
    settings = choose_settings(quick, image_size=image_size, max_steps=max_steps, held_out_sequences=held_out_sequences)
    batches, held_out = build_data(settings, seed)
    model = build_model(settings, seed)
    history = train(model, batches, settings, out_dir, seed, verbose)
    table = evaluate(model, held_out)
    table.to_json(out_dir / "metrics.json")
    losses = history.history["loss"]
    write_pictures(model, held_out, losses, out_dir)
    return common.finish(out_dir, NAME, quick, seed, summarize(model, settings, losses, table), started)
