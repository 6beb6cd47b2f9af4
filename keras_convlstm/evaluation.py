"""Owns evaluation: the baselines, the table of per-step metrics of several systems, and :func:`evaluate`.

- :func:`copy_last_frame` and :func:`blank_frames`: the baselines every model is reported beside.
- :class:`MetricTable`: per-step values of the :mod:`keras_convlstm.metrics` functions for several named
  systems, printed as text (:meth:`MetricTable.to_text`) and saved and reloaded as JSON.
- :func:`evaluate`: a model's autoregressive rollout scored beside both baselines on held-out sequences.
- :func:`evaluate_views`: the same frames predicted three ways (the rollout, one step ahead from true frames, and
  the whole true sequence in one call, as in training), which separates a model's forecast from what its training
  loss and the keras.io page's pictures show.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from keras_convlstm.checks import check_integer
from keras_convlstm.files import write_json
from keras_convlstm.frames import as_float, check_frame_layout, to_float_frames, validate_frames
from keras_convlstm.metrics import frame_metrics
from keras_convlstm.models import check_input
from keras_convlstm.rollout import predict_one_step, predict_rollout


def copy_last_frame(context: np.ndarray, horizon: int) -> np.ndarray:
    """Baseline that predicts the last context frame for every future step.

    Args:
        context: ``(batch, time, height, width, channels)``, any dtype (kept).
        horizon: number of frames to predict, >= 1.

    Returns:
        ``(batch, horizon, height, width, channels)``, same dtype as ``context``.
    """
    context = check_frame_layout(context, name="context")
    return np.repeat(context[:, -1:], check_integer(horizon, "horizon"), axis=1)


def blank_frames(context: np.ndarray, horizon: int) -> np.ndarray:
    """Baseline that predicts all-zero (black) frames.

    Args:
        context: ``(batch, time, height, width, channels)``; only its shape and dtype are used.
        horizon: number of frames to predict, >= 1.

    Returns:
        zeros ``(batch, horizon, height, width, channels)``, same dtype as ``context``.
    """
    context = check_frame_layout(context, name="context")
    batch, _, height, width, channels = context.shape
    return np.zeros((batch, check_integer(horizon, "horizon"), height, width, channels), dtype=context.dtype)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligns a text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def format_value(value: float) -> str:
    """Four significant digits, but no exponent for large finite values (an MSE of 32998.4, not 3.3e+04)."""
    if math.isfinite(value) and abs(value) >= 1000:
        return f"{value:.1f}"
    return f"{value:.4g}"


@dataclasses.dataclass(eq=False)
class MetricTable:
    """Per-step metrics of several named systems scored on the same truth frames.

    Attributes:
        metrics: ``{system: {metric: values}}`` with ``values`` a float64 array ``(horizon,)``; every system
            has the same metric names (in the same order) and the same horizon.
        threshold: binarisation threshold used for CSI, FAR and POD, or None when unknown.

    Example:
        >>> import numpy as np
        >>> frames = np.random.default_rng(0).random((4, 20, 16, 16, 1))
        >>> context, truth = frames[:, :10], frames[:, 10:]
        >>> prediction = np.full_like(truth, truth.mean())
        >>> table = MetricTable.from_predictions(
        ...     {"model": prediction, "copy-last-frame": copy_last_frame(context, 10)}, truth)
        >>> list(table.metrics), table.metrics["model"]["mse"].shape
        (['model', 'copy-last-frame'], (10,))
    """

    metrics: dict[str, dict[str, np.ndarray]]
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("expected metrics for at least one system, got an empty mapping")
        converted: dict[str, dict[str, np.ndarray]] = {}
        reference_names: list[str] | None = None
        reference_horizon: int | None = None
        for system, values_by_metric in self.metrics.items():
            names = list(values_by_metric)
            if reference_names is None:
                reference_names = names
            if names != reference_names:
                raise ValueError(
                    f"expected every system to have metrics {reference_names}, got {names} for {system!r}"
                )
            converted[system] = {}
            for name, values in values_by_metric.items():
                values = np.asarray(values, dtype=np.float64)
                if reference_horizon is None:
                    reference_horizon = values.size
                if values.shape != (reference_horizon,):
                    raise ValueError(
                        f"expected per-step values of shape ({reference_horizon},), "
                        f"got {values.shape} for {system!r} / {name!r}"
                    )
                converted[system][name] = values
        self.metrics = converted

    @classmethod
    def from_predictions(
        cls, predictions: Mapping[str, np.ndarray], truth: np.ndarray, threshold: float = 0.5
    ) -> MetricTable:
        """Scores several predictions of the same truth with :func:`keras_convlstm.metrics.frame_metrics`.

        Args:
            predictions: ``{system: prediction}``, each ``(batch, horizon, height, width, channels)``, float
                in [0, 1] or uint8 (divided by 255).
            truth: same shape as each prediction.
            threshold: binarisation threshold of CSI, FAR and POD.
        """
        truth = to_float_frames(truth, name="truth", dtype=np.float64)
        return cls(
            {
                system: frame_metrics(prediction, truth, threshold)
                for system, prediction in predictions.items()
            },
            threshold=threshold,
        )

    @property
    def systems(self) -> list[str]:
        """System names in insertion order."""
        return list(self.metrics)

    @property
    def metric_names(self) -> list[str]:
        """Metric names, in the order of the first system."""
        return list(next(iter(self.metrics.values())))

    @property
    def horizon(self) -> int:
        """Number of predicted frames (steps)."""
        return next(iter(next(iter(self.metrics.values())).values())).size

    def means(self) -> dict[str, dict[str, float]]:
        """Mean over the horizon of each metric of each system.

        Steps where a metric is undefined (``nan``, for example FAR when nothing is predicted on) are skipped;
        a metric undefined at every step stays ``nan``.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {
                system: {name: float(np.nanmean(values)) for name, values in values_by_metric.items()}
                for system, values_by_metric in self.metrics.items()
            }

    def to_text(self, step_metrics: Sequence[str] = ("mse", "ssim")) -> str:
        """Plain-text report: one row per system with its mean metrics, then per-step tables.

        Args:
            step_metrics: metrics shown step by step (those the table does not hold are skipped).
        """
        names = self.metric_names
        means = self.means()
        sections = [
            "Mean over the predicted frames",
            format_table(
                ["system", *names],
                [
                    [system, *(format_value(means[system][name]) for name in names)]
                    for system in self.systems
                ],
            ),
        ]
        for name in step_metrics:
            if name not in names:
                continue
            sections += [
                "",
                f"{name} per predicted frame",
                format_table(
                    ["system", *(str(step) for step in range(1, self.horizon + 1))],
                    [
                        [system, *(format_value(value) for value in self.metrics[system][name])]
                        for system in self.systems
                    ],
                ),
            ]
        if self.threshold is not None:
            sections += ["", f"csi, far and pod binarise frames at >= {self.threshold:g}"]
        return "\n".join(sections)

    def __str__(self) -> str:
        return self.to_text()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricTable):
            return NotImplemented
        if self.threshold != other.threshold or self.systems != other.systems:
            return False
        return all(
            list(self.metrics[system]) == list(other.metrics[system])
            and all(
                np.array_equal(values, other.metrics[system][name], equal_nan=True)
                for name, values in self.metrics[system].items()
            )
            for system in self.systems
        )

    __hash__ = None  # mutable and compared by value

    def to_dict(self) -> dict:
        """Plain Python form: ``{"threshold": float | None, "metrics": {system: {metric: [float, ...]}}}``."""
        return {
            "threshold": self.threshold,
            "metrics": {
                system: {name: values.tolist() for name, values in values_by_metric.items()}
                for system, values_by_metric in self.metrics.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> MetricTable:
        """Inverse of :meth:`to_dict`."""
        return cls(
            {system: dict(values_by_metric) for system, values_by_metric in data["metrics"].items()},
            threshold=data.get("threshold"),
        )

    def to_json(self, path: str | os.PathLike) -> Path:
        """Writes :meth:`to_dict` as JSON and returns the path.

        Undefined and infinite values are written as ``NaN`` and ``Infinity``, which Python's :mod:`json` (and
        :meth:`from_json`) reads back but strict JSON parsers reject.
        """
        return write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> MetricTable:
        """Reads a table written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _context_frames(context_frames: int, context: int | None) -> int:
    """The number of context frames, from ``context_frames`` or from the former keyword ``context``."""
    if context is not None:
        warnings.warn(
            "the keyword 'context' is now 'context_frames' (a number of frames; 'context' is kept until the next "
            "release)",
            DeprecationWarning,
            stacklevel=3,
        )
        context_frames = context
    return check_integer(context_frames, "context_frames")


def evaluate(
    model: keras.Model,
    sequences: np.ndarray,
    context_frames: int = 10,
    horizon: int = 10,
    *,
    batch_size: int = 32,
    threshold: float = 0.5,
    return_predictions: bool = False,
    context: int | None = None,
) -> MetricTable | tuple[MetricTable, dict[str, np.ndarray]]:
    """Rolls ``model`` out from the first ``context_frames`` frames and scores the next ``horizon`` frames.

    The baselines see the same context: "copy-last-frame" repeats its last frame, "blank" predicts zeros.

    Args:
        model: a frame-prediction model.
        sequences: held-out sequences ``(batch, time, height, width, channels)`` with
            ``time >= context_frames + horizon``, uint8 or float in [0, 1].
        context_frames: how many true frames the model reads before it predicts.
        horizon: frames predicted and scored.
        batch_size: sequences per rollout batch.
        threshold: binarisation threshold of CSI, FAR and POD.
        return_predictions: also return the predicted frames, so that a caller who shows them does not roll
            the model out a second time.
        context: the former name of ``context_frames``, kept until the next release.

    Returns:
        A :class:`MetricTable` with per-step metrics of "model", "copy-last-frame" and "blank"; with
        ``return_predictions``, ``(table, predictions)`` where ``predictions`` maps the same names to float32
        ``(batch, horizon, height, width, channels)``.
    """
    context_frames = _context_frames(context_frames, context)
    horizon = check_integer(horizon, "horizon")
    sequences = validate_frames(sequences, name="sequences", min_frames=context_frames + horizon)
    given = sequences[:, :context_frames]
    predictions = {
        "model": predict_rollout(model, given, horizon, batch_size=batch_size),
        "copy-last-frame": copy_last_frame(as_float(given), horizon),
        "blank": blank_frames(as_float(given[:, -1:]), horizon),
    }
    truth = as_float(sequences[:, context_frames : context_frames + horizon])  # float32, as the model sees it
    table = MetricTable.from_predictions(predictions, truth, threshold=threshold)
    return (table, predictions) if return_predictions else table


VIEWS = ("rollout", "one-step", "whole-sequence")


def evaluate_views(
    model: keras.Model,
    sequences: np.ndarray,
    context_frames: int = 10,
    horizon: int = 10,
    *,
    batch_size: int = 32,
    threshold: float = 0.5,
    context: int | None = None,
) -> MetricTable:
    """Scores frames ``context_frames .. context_frames + horizon - 1`` predicted three ways, beside both baselines.

    - "rollout": read ``context_frames`` true frames, then feed each prediction back (:func:`predict_rollout`):
      a forecast, the only view available when the future is unknown.
    - "one-step": each frame predicted from the true frames before it (:func:`predict_one_step`), as the
      keras.io page's "predicted videos" are: every step starts again from the truth.
    - "whole-sequence": the true frames ``0 .. context_frames + horizon - 2`` in one call of the model, as in
      training and in ``val_loss``. A causal model gives the one-step frames again; a model whose output ``t``
      reads input ``t + 1`` (the keras.io network's last ``Conv3D``) sees each frame it is asked to predict.

    Args:
        model: a sequence-to-sequence frame model (output ``t`` predicts frame ``t + 1``).
        sequences: held-out sequences ``(batch, time, height, width, channels)`` with
            ``time >= context_frames + horizon``, uint8 or float in [0, 1].
        context_frames: true frames read before the first scored frame.
        horizon: frames scored.
        batch_size: sequences per batch.
        threshold: binarisation threshold of CSI, FAR and POD.
        context: the former name of ``context_frames``, kept until the next release.

    Returns:
        A :class:`MetricTable` with the systems of :data:`VIEWS`, then "copy-last-frame" and "blank".
    """
    context_frames = _context_frames(context_frames, context)
    horizon = check_integer(horizon, "horizon")
    batch_size = check_integer(batch_size, "batch_size")
    sequences = validate_frames(sequences, name="sequences", min_frames=context_frames + horizon)
    kind = getattr(getattr(model, "config", None), "kind", "seq2seq")
    if kind != "seq2seq":
        raise ValueError(f"the three views need a sequence-to-sequence frame model, got a {kind!r} model")
    check_input(model, sequences, check_time=False)
    given = sequences[:, :context_frames]
    inputs = sequences[:, : context_frames + horizon - 1]  # output t of these predicts frame t + 1
    scored = slice(context_frames - 1, context_frames + horizon - 1)
    whole = [
        keras.ops.convert_to_numpy(model(as_float(inputs[start : start + batch_size]), training=False))
        for start in range(0, len(inputs), batch_size)
    ]
    predictions = {
        "rollout": predict_rollout(model, given, horizon, batch_size=batch_size),
        "one-step": predict_one_step(model, inputs, batch_size=batch_size)[:, scored],
        "whole-sequence": np.concatenate(whole).astype(np.float32)[:, scored],
        "copy-last-frame": copy_last_frame(as_float(given), horizon),
        "blank": blank_frames(as_float(given[:, -1:]), horizon),
    }
    truth = as_float(sequences[:, context_frames : context_frames + horizon])
    return MetricTable.from_predictions(predictions, truth, threshold=threshold)
