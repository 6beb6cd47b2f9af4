"""Argument checks shared by every module: whole-number counts and image and kernel sizes.

This module owns the wording of these errors, so that the same mistake reads the same wherever it is made:
"batch_size must be an integer >= 1, got 0", "image_size must be a positive integer or 2 positive integers
(height, width), got (64, 0)". Frames have their own module, :mod:`keras_convlstm.frames`. It imports nothing from
the rest of the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
