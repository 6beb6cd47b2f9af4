"""Argument checks shared by every module: whole-number counts, image and kernel sizes, and frame batches.

This module owns the wording of these errors, so that the same mistake reads the same wherever it is made:
"batch_size must be an integer >= 1, got 0", "image_size must be a positive integer or 2 positive integers
(height, width), got (64, 0)", "expected frames of shape (batch, time, height, width, channels), got shape
(20, 64, 64)". It imports nothing from the rest of the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FRAMES_LAYOUT = "(batch, time, height, width, channels)"


def is_positive_int(value: object) -> bool:
    """True for a Python or NumPy integer >= 1 (``True`` and ``False`` are not integers here)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1


def check_integer(value: object, name: str, *, minimum: int = 1) -> int:
    """Returns ``value`` as an ``int``, or raises ``ValueError`` unless it is an integer >= ``minimum``.

    Args:
        value: a Python or NumPy integer (booleans are refused).
        name: the argument name used in the error message.
        minimum: the smallest accepted value.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_size(value: object, name: str, axes: Sequence[str] = ("height", "width")) -> tuple[int, ...]:
    """A size given as one positive integer (the same on every axis) or one positive integer per axis.

    Args:
        value: an integer, or a sequence of ``len(axes)`` integers.
        name: the argument name used in the error message.
        axes: the names of the axes, in order, e.g. ``("time", "height", "width")`` for a 3-D kernel.

    Returns:
        One ``int`` per axis.
    """
    sizes = (value,) * len(axes) if isinstance(value, int | np.integer) else value
    if (
        isinstance(sizes, str | bytes)
        or not isinstance(sizes, Sequence)
        or len(sizes) != len(axes)
        or not all(map(is_positive_int, sizes))
    ):
        raise ValueError(
            f"{name} must be a positive integer or {len(axes)} positive integers ({', '.join(axes)}), "
            f"got {value!r}"
        )
    return tuple(int(size) for size in sizes)


def _describe_dtype(given: object, frames: np.ndarray) -> str:
    """The dtype of an array; for nested lists, the Python type of their values (NumPy would read ints as int64)."""
    if hasattr(given, "dtype"):
        return str(frames.dtype)
    return f"a {type(given).__name__} of Python {type(frames.flat[0].item()).__name__} values (use uint8 or float32)"


def validate_frames(frames: np.ndarray, *, name: str = "frames", min_frames: int = 1) -> None:
    """Checks that ``frames`` is a channels-last movie batch ``(batch, time, height, width, channels)``.

    Args:
        frames: uint8 in [0, 255] or floating in [0, 1].
        name: the argument name used in error messages.
        min_frames: the smallest acceptable number of time steps.

    Raises:
        TypeError: dtype neither uint8 nor floating.
        ValueError: not 5-D, channels-first, an empty axis, fewer than ``min_frames`` frames, NaN or
            infinite values, or float values outside [0, 1].
    """
    given = frames
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
    if frames.dtype == np.uint8:
        return
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
