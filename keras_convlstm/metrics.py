"""Frame-prediction metrics, each reported per predicted frame (per horizon step).

Every metric takes ``prediction`` and ``truth`` of shape ``(batch, horizon, height, width, channels)``:
float frames in [0, 1], or uint8 frames that are converted explicitly with ``/ 255``. Work is done in
float64. Unless stated otherwise a metric returns an array of shape ``(horizon,)``: one value per predicted
frame, computed for each sequence and then averaged over the batch. Below, ``P`` and ``T`` are one predicted
and one true frame, and sums run over the ``height * width * channels`` values of that frame.

Conventions
    - ``mse``: ``sum((P - T) ** 2)``, squared error summed over the pixels of a frame (OpenSTL's Moving MNIST
      convention: a 64x64 frame on [0, 1] scores in the tens to hundreds). ``mae``: ``sum(|P - T|)``.
    - ``mse_per_pixel`` / ``mae_per_pixel``: the same errors averaged instead of summed over the pixels.
    - ``ssim``: structural similarity as computed by ``skimage.metrics.structural_similarity(P, T,
      data_range=1)`` for a grey image: 7x7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample
      (``N - 1``) covariances, averaged over the windows that lie fully inside the frame (skimage crops the
      3-pixel border). With several channels it is the mean of the per-channel values (skimage's
      ``channel_axis``). Frames must be at least 7x7.
    - ``psnr``: ``10 * log10(1 / mse_per_pixel)`` in dB for each frame (peak value 1), then averaged over
      the batch. A frame predicted exactly has ``psnr = inf``, so the batch mean of that step is ``inf``
      too; no cap is applied.
    - ``bce``: binary cross-entropy ``-sum(T * log(P) + (1 - T) * log(1 - P))`` with ``P`` clipped to
      ``[eps, 1 - eps]``, ``eps = 1e-7``. :func:`bce_per_frame` sums over the pixels of a frame;
      :func:`bce_per_sequence` also sums over the predicted frames (the "cross-entropy per sequence" of Shi
      et al. 2015, Table 1) and returns one number.
    - ``csi``, ``far``, ``pod``: both frames are binarised with ``value >= threshold``; hits (both on),
      misses (truth on, prediction off) and false alarms (prediction on, truth off) are counted over all
      pixels of all sequences of a step (pooled, not averaged per sequence).
      ``csi = hits / (hits + misses + false_alarms)``, ``far = false_alarms / (hits + false_alarms)``,
      ``pod = hits / (hits + misses)``. A ratio whose denominator is 0 (for example FAR when nothing is
      predicted on) is undefined and returned as ``nan``.
    - ``correlation``: ``sum(P * T) / sqrt(sum(P ** 2) * sum(T ** 2) + 1e-9)`` (Shi et al. 2015), per frame.

:class:`MetricTable` collects these per-step values for several systems, for example a model beside the
:func:`copy_last_frame` and :func:`blank_frames` baselines, and prints, saves and reloads them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_convlstm.files import write_json

SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
BCE_EPSILON = 1e-7
CORRELATION_EPSILON = 1e-9
METRIC_NAMES = (
    "mse",
    "mae",
    "mse_per_pixel",
    "mae_per_pixel",
    "ssim",
    "psnr",
    "bce",
    "csi",
    "far",
    "pod",
    "correlation",
)

# Frames per block in the SSIM computation: bounds the temporary float64 arrays to a few tens of MB.
_SSIM_BLOCK = 512


def _as_unit_float(frames: np.ndarray, name: str) -> np.ndarray:
    """Returns ``frames`` as float64 in [0, 1] scale, checking the 5-D layout and finiteness."""
    frames = np.asarray(frames)
    if frames.ndim != 5:
        raise ValueError(
            f"expected {name} of shape (batch, horizon, height, width, channels), got shape {frames.shape}"
        )
    if frames.dtype == np.uint8:
        return frames.astype(np.float64) / 255.0
    if not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(f"expected {name} as float in [0, 1] or uint8, got dtype {frames.dtype}")
    frames = frames.astype(np.float64, copy=False)
    if not np.all(np.isfinite(frames)):
        raise ValueError(
            f"expected finite values in {name}, got {np.size(frames) - np.isfinite(frames).sum()} "
            "NaN or infinite values"
        )
    low, high = frames.min(initial=0), frames.max(initial=0)
    if low < 0 or high > 1:
        hint = " (divide [0, 255] floats by 255)" if high > 1 else ""
        raise ValueError(f"expected float {name} in [0, 1], got values from {low:g} to {high:g}{hint}")
    return frames


def _as_pair(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prediction = _as_unit_float(prediction, "prediction")
    truth = _as_unit_float(truth, "truth")
    if prediction.shape != truth.shape:
        raise ValueError(
            f"expected prediction and truth of the same shape, got {prediction.shape} and {truth.shape}"
        )
    return prediction, truth


def _frame_sum(values: np.ndarray) -> np.ndarray:
    """Sums ``(batch, horizon, height, width, channels)`` over each frame: ``(batch, horizon)``."""
    return values.sum(axis=(2, 3, 4))


def _frame_mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=(2, 3, 4))


def mse_per_frame(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Squared error summed over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    prediction, truth = _as_pair(prediction, truth)
    return _frame_sum((prediction - truth) ** 2).mean(axis=0)


def mae_per_frame(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute error summed over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    prediction, truth = _as_pair(prediction, truth)
    return _frame_sum(np.abs(prediction - truth)).mean(axis=0)


def mse_per_pixel(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Squared error averaged over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    prediction, truth = _as_pair(prediction, truth)
    return _frame_mean((prediction - truth) ** 2).mean(axis=0)


def mae_per_pixel(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute error averaged over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    prediction, truth = _as_pair(prediction, truth)
    return _frame_mean(np.abs(prediction - truth)).mean(axis=0)


def _window_means(images: np.ndarray, size: int) -> np.ndarray:
    """Means of every ``size x size`` window lying inside ``(frames, height, width, channels)`` images."""
    rows = np.lib.stride_tricks.sliding_window_view(images, size, axis=1).sum(axis=-1)
    windows = np.lib.stride_tricks.sliding_window_view(rows, size, axis=2).sum(axis=-1)
    return windows / (size * size)


def _ssim_frames(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """SSIM of each image of ``(frames, height, width, channels)`` float64 stacks: ``(frames,)``."""
    size = SSIM_WINDOW
    count = size * size
    covariance_norm = count / (count - 1)
    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    mean_p = _window_means(prediction, size)
    mean_t = _window_means(truth, size)
    var_p = covariance_norm * (_window_means(prediction * prediction, size) - mean_p * mean_p)
    var_t = covariance_norm * (_window_means(truth * truth, size) - mean_t * mean_t)
    cov = covariance_norm * (_window_means(prediction * truth, size) - mean_p * mean_t)
    ssim_map = ((2 * mean_p * mean_t + c1) * (2 * cov + c2)) / (
        (mean_p**2 + mean_t**2 + c1) * (var_p + var_t + c2)
    )
    return ssim_map.mean(axis=(1, 2, 3))


def ssim(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Structural similarity of each frame (data range 1), averaged over the batch.

    Matches ``skimage.metrics.structural_similarity(p, t, data_range=1)`` on each grey frame (and with
    ``channel_axis=-1`` on several channels): see the module docstring for the window and constants.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255);
            height and width at least 7.
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)`` with values in [-1, 1].
    """
    prediction, truth = _as_pair(prediction, truth)
    batch, horizon, height, width, channels = prediction.shape
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"expected frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels for SSIM, got {height}x{width}"
        )
    flat_prediction = prediction.reshape(batch * horizon, height, width, channels)
    flat_truth = truth.reshape(batch * horizon, height, width, channels)
    values = np.concatenate(
        [
            _ssim_frames(
                flat_prediction[start : start + _SSIM_BLOCK], flat_truth[start : start + _SSIM_BLOCK]
            )
            for start in range(0, batch * horizon, _SSIM_BLOCK)
        ]
    )
    return values.reshape(batch, horizon).mean(axis=0)


def psnr(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio ``10 * log10(1 / mse_per_pixel)`` (dB) of each frame, batch-averaged.

    An exactly predicted frame has infinite PSNR, which makes the batch mean of its step ``inf`` (no cap).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    prediction, truth = _as_pair(prediction, truth)
    error = _frame_mean((prediction - truth) ** 2)
    with np.errstate(divide="ignore"):
        return (-10.0 * np.log10(error)).mean(axis=0)


def bce_per_frame(prediction: np.ndarray, truth: np.ndarray, eps: float = BCE_EPSILON) -> np.ndarray:
    """Binary cross-entropy summed over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255);
            clipped to ``[eps, 1 - eps]`` before the logarithms.
        truth: same shape and conventions as ``prediction`` (soft targets in [0, 1] are allowed).
        eps: clipping margin, in (0, 0.5).

    Returns:
        float64 array ``(horizon,)``.
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"expected eps in (0, 0.5), got {eps}")
    prediction, truth = _as_pair(prediction, truth)
    prediction = np.clip(prediction, eps, 1.0 - eps)
    entropy = -(truth * np.log(prediction) + (1.0 - truth) * np.log1p(-prediction))
    return _frame_sum(entropy).mean(axis=0)


def bce_per_sequence(prediction: np.ndarray, truth: np.ndarray, eps: float = BCE_EPSILON) -> float:
    """Binary cross-entropy summed over all pixels of all predicted frames, averaged over sequences.

    This is the "cross-entropy per sequence" of Shi et al. 2015 (Table 1); it equals
    ``bce_per_frame(...).sum()``.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        eps: clipping margin of the predictions, in (0, 0.5).

    Returns:
        The mean cross-entropy of one sequence.
    """
    return float(bce_per_frame(prediction, truth, eps).sum())


def contingency_counts(
    prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5
) -> dict[str, np.ndarray]:
    """Counts hits, misses, false alarms and correct negatives per step, pooled over the batch.

    A pixel is "on" when its value is ``>= threshold`` (values on the [0, 1] scale).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        threshold: binarisation threshold.

    Returns:
        ``{"hits", "misses", "false_alarms", "correct_negatives"}``, each an int64 array ``(horizon,)``.
    """
    if not math.isfinite(threshold):
        raise ValueError(f"expected a finite threshold, got {threshold}")
    prediction, truth = _as_pair(prediction, truth)
    predicted_on = prediction >= threshold
    true_on = truth >= threshold

    def count(mask: np.ndarray) -> np.ndarray:
        return mask.sum(axis=(0, 2, 3, 4), dtype=np.int64)

    return {
        "hits": count(predicted_on & true_on),
        "misses": count(~predicted_on & true_on),
        "false_alarms": count(predicted_on & ~true_on),
        "correct_negatives": count(~predicted_on & ~true_on),
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float64, with ``nan`` where the denominator is 0."""
    result = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def csi(prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Critical success index ``hits / (hits + misses + false_alarms)`` per step (``nan`` when 0 / 0).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        threshold: a pixel is on when ``>= threshold``.

    Returns:
        float64 array ``(horizon,)``.
    """
    counts = contingency_counts(prediction, truth, threshold)
    return _ratio(counts["hits"], counts["hits"] + counts["misses"] + counts["false_alarms"])


def far(prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """False alarm ratio ``false_alarms / (hits + false_alarms)`` per step (``nan`` if nothing is predicted).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        threshold: a pixel is on when ``>= threshold``.

    Returns:
        float64 array ``(horizon,)``.
    """
    counts = contingency_counts(prediction, truth, threshold)
    return _ratio(counts["false_alarms"], counts["hits"] + counts["false_alarms"])


def pod(prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Probability of detection ``hits / (hits + misses)`` per step (``nan`` when the truth is never on).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        threshold: a pixel is on when ``>= threshold``.

    Returns:
        float64 array ``(horizon,)``.
    """
    counts = contingency_counts(prediction, truth, threshold)
    return _ratio(counts["hits"], counts["hits"] + counts["misses"])


def correlation(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``sum(P * T) / sqrt(sum(P ** 2) * sum(T ** 2) + 1e-9)`` of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``; about 1 when ``prediction == truth`` (and not all zero).
    """
    prediction, truth = _as_pair(prediction, truth)
    numerator = _frame_sum(prediction * truth)
    denominator = np.sqrt(_frame_sum(prediction**2) * _frame_sum(truth**2) + CORRELATION_EPSILON)
    return (numerator / denominator).mean(axis=0)


def frame_metrics(prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Computes every metric of this module per predicted frame.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        threshold: binarisation threshold of CSI, FAR and POD.

    Returns:
        A dict keyed by :data:`METRIC_NAMES` ("mse", "mae", "mse_per_pixel", "mae_per_pixel", "ssim", "psnr",
        "bce", "csi", "far", "pod", "correlation"), each a float64 array ``(horizon,)``; "bce" is
        :func:`bce_per_frame`.
    """
    prediction, truth = _as_pair(prediction, truth)
    return {
        "mse": mse_per_frame(prediction, truth),
        "mae": mae_per_frame(prediction, truth),
        "mse_per_pixel": mse_per_pixel(prediction, truth),
        "mae_per_pixel": mae_per_pixel(prediction, truth),
        "ssim": ssim(prediction, truth),
        "psnr": psnr(prediction, truth),
        "bce": bce_per_frame(prediction, truth),
        "csi": csi(prediction, truth, threshold),
        "far": far(prediction, truth, threshold),
        "pod": pod(prediction, truth, threshold),
        "correlation": correlation(prediction, truth),
    }


def _check_context(context: np.ndarray, horizon: int) -> np.ndarray:
    context = np.asarray(context)
    if context.ndim != 5 or context.shape[1] < 1:
        raise ValueError(
            f"expected context of shape (batch, time, height, width, channels) with time >= 1, "
            f"got shape {context.shape}"
        )
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"expected horizon as an integer >= 1, got {horizon!r}")
    return context


def copy_last_frame(context: np.ndarray, horizon: int) -> np.ndarray:
    """Baseline that predicts the last context frame for every future step.

    Args:
        context: ``(batch, time, height, width, channels)``, any dtype (kept).
        horizon: number of frames to predict, >= 1.

    Returns:
        ``(batch, horizon, height, width, channels)``, same dtype as ``context``.
    """
    context = _check_context(context, horizon)
    return np.repeat(context[:, -1:], horizon, axis=1)


def blank_frames(context: np.ndarray, horizon: int) -> np.ndarray:
    """Baseline that predicts all-zero (black) frames.

    Args:
        context: ``(batch, time, height, width, channels)``; only its shape and dtype are used.
        horizon: number of frames to predict, >= 1.

    Returns:
        zeros ``(batch, horizon, height, width, channels)``, same dtype as ``context``.
    """
    context = _check_context(context, horizon)
    batch, _, height, width, channels = context.shape
    return np.zeros((batch, horizon, height, width, channels), dtype=context.dtype)


def _format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligns a text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _format_value(value: float) -> str:
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
        >>> table = MetricTable.from_predictions(
        ...     {"model": prediction, "copy-last-frame": copy_last_frame(context, 10)}, truth)
        >>> print(table)
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
        """Scores several predictions of the same truth with :func:`frame_metrics`.

        Args:
            predictions: ``{system: prediction}``, each ``(batch, horizon, height, width, channels)``, float
                in [0, 1] or uint8 (divided by 255).
            truth: same shape as each prediction.
            threshold: binarisation threshold of CSI, FAR and POD.
        """
        truth = _as_unit_float(truth, "truth")
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
            _format_table(
                ["system", *names],
                [
                    [system, *(_format_value(means[system][name]) for name in names)]
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
                _format_table(
                    ["system", *(str(step) for step in range(1, self.horizon + 1))],
                    [
                        [system, *(_format_value(value) for value in self.metrics[system][name])]
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
