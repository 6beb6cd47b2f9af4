"""Owns the frame-prediction metrics and their conventions, each reported per predicted frame (horizon step).

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
    - ``sharpness`` scores frames alone (a prediction or the truth, to compare how blurred they are): the mean
      root mean square of the differences between horizontally and vertically neighbouring pixels.

This module owns the metric functions and these conventions only; :mod:`keras_convlstm.evaluation` owns the
baselines and the table that collects these values for several systems.
"""

from __future__ import annotations

import numpy as np

from keras_convlstm.frames import to_float_frames

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


def _as_pair(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arguments checked once and in float64 (the public functions' boundary), with the same shape."""
    prediction = to_float_frames(prediction, name="prediction", dtype=np.float64)
    truth = to_float_frames(truth, name="truth", dtype=np.float64)
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
    return _mse_per_frame(*_as_pair(prediction, truth))


def mae_per_frame(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute error summed over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    return _mae_per_frame(*_as_pair(prediction, truth))


def mse_per_pixel(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Squared error averaged over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    return _mse_per_pixel(*_as_pair(prediction, truth))


def mae_per_pixel(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute error averaged over the pixels of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    return _mae_per_pixel(*_as_pair(prediction, truth))


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
    ``channel_axis=-1`` on several channels): see the module docstring for the window and constants. A colour
    frame scores the mean of its per-channel SSIMs (R, G and B weigh the same; no luma conversion).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255);
            height and width at least 7.
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)`` with values in [-1, 1].
    """
    return _ssim(*_as_pair(prediction, truth))


def psnr(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio ``10 * log10(1 / mse_per_pixel)`` (dB) of each frame, batch-averaged.

    An exactly predicted frame has infinite PSNR, which makes the batch mean of its step ``inf`` (no cap).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``.
    """
    return _psnr(*_as_pair(prediction, truth))


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
    return _bce_per_frame(*_as_pair(prediction, truth), eps)


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
    return _contingency_counts(*_as_pair(prediction, truth), threshold)


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
    return _csi(contingency_counts(prediction, truth, threshold))


def far(prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """False alarm ratio ``false_alarms / (hits + false_alarms)`` per step (``nan`` if nothing is predicted).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        threshold: a pixel is on when ``>= threshold``.

    Returns:
        float64 array ``(horizon,)``.
    """
    return _far(contingency_counts(prediction, truth, threshold))


def pod(prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Probability of detection ``hits / (hits + misses)`` per step (``nan`` when the truth is never on).

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.
        threshold: a pixel is on when ``>= threshold``.

    Returns:
        float64 array ``(horizon,)``.
    """
    return _pod(contingency_counts(prediction, truth, threshold))


def correlation(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``sum(P * T) / sqrt(sum(P ** 2) * sum(T ** 2) + 1e-9)`` of each frame, averaged over the batch.

    Args:
        prediction: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).
        truth: same shape and conventions as ``prediction``.

    Returns:
        float64 array ``(horizon,)``; about 1 when ``prediction == truth`` (and not all zero).
    """
    return _correlation(*_as_pair(prediction, truth))


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
    counts = _contingency_counts(prediction, truth, threshold)
    return {
        "mse": _mse_per_frame(prediction, truth),
        "mae": _mae_per_frame(prediction, truth),
        "mse_per_pixel": _mse_per_pixel(prediction, truth),
        "mae_per_pixel": _mae_per_pixel(prediction, truth),
        "ssim": _ssim(prediction, truth),
        "psnr": _psnr(prediction, truth),
        "bce": _bce_per_frame(prediction, truth, BCE_EPSILON),
        "csi": _csi(counts),
        "far": _far(counts),
        "pod": _pod(counts),
        "correlation": _correlation(prediction, truth),
    }


def sharpness(frames: np.ndarray) -> np.ndarray:
    """Root mean square of the differences between neighbouring pixels of each frame, averaged over the batch.

    ``sqrt((mean((P[i, j + 1] - P[i, j]) ** 2) + mean((P[i + 1, j] - P[i, j]) ** 2)) / 2)`` for a frame: 0 for a
    flat frame, 1 for a checkerboard of 0 and 1. A blur spreads an edge over several pixels, the same rise in
    smaller steps, which the square counts less (one step of 1 scores more than three steps of 1/3); and since
    this is a norm of the frame, an average of frames is never sharper than their mean sharpness. Unlike the
    metrics above it scores one set of frames, not a prediction against the truth.

    Args:
        frames: ``(batch, horizon, height, width, channels)``, float in [0, 1] or uint8 (divided by 255).

    Returns:
        float64 array ``(horizon,)``.
    """
    frames = to_float_frames(frames, dtype=np.float64)
    across = np.square(np.diff(frames, axis=3)).mean(axis=(2, 3, 4))
    down = np.square(np.diff(frames, axis=2)).mean(axis=(2, 3, 4))
    return np.sqrt(0.5 * (across + down)).mean(axis=0)


# ---------------------------------------------------------------------------------------------------------
# The metrics on float64 pairs of the same shape that _as_pair has checked: each public function above checks its
# arguments once and calls one of these; frame_metrics checks once and calls them all.
# ---------------------------------------------------------------------------------------------------------


def _mse_per_frame(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return _frame_sum((prediction - truth) ** 2).mean(axis=0)


def _mae_per_frame(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return _frame_sum(np.abs(prediction - truth)).mean(axis=0)


def _mse_per_pixel(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return _frame_mean((prediction - truth) ** 2).mean(axis=0)


def _mae_per_pixel(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return _frame_mean(np.abs(prediction - truth)).mean(axis=0)


def _ssim(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
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


def _psnr(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    error = _frame_mean((prediction - truth) ** 2)
    with np.errstate(divide="ignore"):
        return (-10.0 * np.log10(error)).mean(axis=0)


def _bce_per_frame(prediction: np.ndarray, truth: np.ndarray, eps: float) -> np.ndarray:
    prediction = np.clip(prediction, eps, 1.0 - eps)
    entropy = -(truth * np.log(prediction) + (1.0 - truth) * np.log1p(-prediction))
    return _frame_sum(entropy).mean(axis=0)


def _contingency_counts(prediction: np.ndarray, truth: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    if not 0 < threshold <= 1:  # frames are in [0, 1]: any other threshold makes every pixel "on" or every "off"
        raise ValueError(f"expected a threshold in (0, 1], got {threshold}")
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


def _csi(counts: dict[str, np.ndarray]) -> np.ndarray:
    return _ratio(counts["hits"], counts["hits"] + counts["misses"] + counts["false_alarms"])


def _far(counts: dict[str, np.ndarray]) -> np.ndarray:
    return _ratio(counts["false_alarms"], counts["hits"] + counts["false_alarms"])


def _pod(counts: dict[str, np.ndarray]) -> np.ndarray:
    return _ratio(counts["hits"], counts["hits"] + counts["misses"])


def _correlation(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    numerator = _frame_sum(prediction * truth)
    denominator = np.sqrt(_frame_sum(prediction**2) * _frame_sum(truth**2) + CORRELATION_EPSILON)
    return (numerator / denominator).mean(axis=0)
