"""Frames: the one place where movie arrays are checked and converted between uint8 and float.

A batch of movies is channels-last ``(batch, time, height, width, channels)``, either uint8 in [0, 255] or float in
[0, 1]; one movie (as the animations take it) is ``(time, height, width)`` or ``(time, height, width, channels)``
with 1 or 3 channels. Each public function of the package checks the frames it is given once, here, and passes
checked arrays on: :func:`validate_frames` checks a batch, :func:`to_float_frames` checks and converts it (uint8 is
divided by 255 in the target precision, never through a wider one), :func:`check_frame_layout` checks only the
shape of a batch whose values do not matter, and :func:`validate_sequence` checks one movie. This module owns the
wording of these errors: "expected frames of shape (batch, time, height, width, channels), got shape (20, 64, 64)
(3-D)". It imports nothing from the rest of the package.
"""

from __future__ import annotations

import numpy as np

FRAMES_LAYOUT = "(batch, time, height, width, channels)"
SEQUENCE_LAYOUT = "(time, height, width), (time, height, width, 1) or (time, height, width, 3)"


def check_frame_layout(frames: np.ndarray, *, name: str = "frames", min_frames: int = 1) -> np.ndarray:
    """Checks the shape of a batch ``(batch, time, height, width, channels)``, whatever its dtype and values.

    Args:
        frames: the array (or nested lists) to check.
        name: the argument name used in error messages.
        min_frames: the smallest acceptable number of time steps.

    Returns:
        ``frames`` as an array (no copy when it already is one).

    Raises:
        ValueError: not 5-D, channels-first, an empty axis, or fewer than ``min_frames`` frames.
    """
    frames = np.asarray(frames)
    shape = frames.shape
    if frames.ndim != 5:
        raise ValueError(f"expected {name} of shape {FRAMES_LAYOUT}, got shape {shape} ({frames.ndim}-D)")
    if shape[2] in (1, 3) and shape[-1] > 4:
        raise ValueError(
            f"expected channels-last {name} of shape {FRAMES_LAYOUT}, got shape {shape}, which looks "
            f"channels-first (batch, time, channels, height, width); use np.moveaxis({name}, 2, -1)"
        )
    if 0 in shape:
        raise ValueError(f"expected non-empty {name} of shape {FRAMES_LAYOUT}, got shape {shape}")
    if shape[1] < min_frames:
        raise ValueError(f"expected {name} with at least {min_frames} time steps, got {shape[1]} (shape {shape})")
    return frames


def _describe_dtype(given: object, frames: np.ndarray) -> str:
    """The dtype of an array; for nested lists, the Python type of their values (NumPy would read ints as int64)."""
    if hasattr(given, "dtype"):
        return str(frames.dtype)
    return f"a {type(given).__name__} of Python {type(frames.flat[0].item()).__name__} values (use uint8 or float32)"


def validate_frames(frames: np.ndarray, *, name: str = "frames", min_frames: int = 1) -> np.ndarray:
    """Checks that ``frames`` is a channels-last movie batch ``(batch, time, height, width, channels)``.

    Args:
        frames: uint8 in [0, 255] or floating in [0, 1].
        name: the argument name used in error messages.
        min_frames: the smallest acceptable number of time steps.

    Returns:
        ``frames`` as an array (no copy when it already is one).

    Raises:
        TypeError: dtype neither uint8 nor floating.
        ValueError: not 5-D, channels-first, an empty axis, fewer than ``min_frames`` frames, NaN or
            infinite values, or float values outside [0, 1].
    """
    given = frames
    frames = check_frame_layout(frames, name=name, min_frames=min_frames)
    if frames.dtype == np.uint8:
        return frames
    if not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(
            f"expected {name} of dtype uint8 in [0, 255] or float in [0, 1], got {_describe_dtype(given, frames)}"
        )
    non_finite = np.count_nonzero(~np.isfinite(frames))
    if non_finite:
        raise ValueError(f"expected finite {name}, found {non_finite:,} NaN or infinite values")
    low, high = frames.min(), frames.max()
    if low < 0 or high > 1:
        outside = np.count_nonzero((frames < 0) | (frames > 1))
        hint = " (divide [0, 255] floats by 255)" if high > 1 else ""
        raise ValueError(
            f"expected float {name} in [0, 1], found {outside:,} values outside (min {low:g}, max {high:g}){hint}"
        )
    return frames


def as_float(frames: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Frames already checked, in ``dtype`` on the [0, 1] scale: uint8 divided by 255 in ``dtype``, floats cast.

    No check and no copy of a float array already in ``dtype``: for arrays that :func:`validate_frames` has
    accepted (or that come from the package's own data), such as each batch read from a stored dataset.

    Example:
        >>> as_float(np.array([0, 51, 255], dtype=np.uint8)).tolist()
        [0.0, 0.20000000298023224, 1.0]
    """
    if frames.dtype == np.uint8:
        return np.divide(frames, dtype(255), dtype=dtype)
    return np.asarray(frames, dtype=dtype)


def to_float_frames(frames: np.ndarray, *, name: str = "frames", dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Validates ``frames`` and returns them in ``dtype`` on the [0, 1] scale.

    Args:
        frames: ``(batch, time, height, width, channels)``, uint8 in [0, 255] (divided by 255 in ``dtype``) or
            float in [0, 1] (cast to ``dtype``; an input already in ``dtype`` is returned as is).
        name: the argument name used in error messages.
        dtype: ``np.float32`` (what models take) or ``np.float64`` (what the metrics work in).

    Returns:
        ``(batch, time, height, width, channels)`` in ``dtype``, values in [0, 1].
    """
    return as_float(validate_frames(frames, name=name), dtype)


def validate_sequence(frames: np.ndarray, *, name: str = "frames") -> np.ndarray:
    """Checks one movie ``(time, height, width)`` or ``(time, height, width, 1 or 3)``, float or uint8, no NaN.

    Float values outside [0, 1] are allowed (pictures clip them). Returns ``frames`` as an array (no copy).
    """
    frames = np.asarray(frames)
    layout_ok = frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] in (1, 3))
    if not layout_ok or frames.shape[0] < 1:
        raise ValueError(f"expected {name} of shape {SEQUENCE_LAYOUT} with time >= 1, got shape {frames.shape}")
    if frames.dtype != np.uint8 and not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(f"expected {name} as float in [0, 1] or uint8, got dtype {frames.dtype}")
    if np.issubdtype(frames.dtype, np.floating) and np.isnan(frames).any():
        raise ValueError(f"expected {name} without NaN, got {int(np.isnan(frames).sum())} NaN values")
    return frames
