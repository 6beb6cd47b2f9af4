"""Random frames for the tests of the pictures (used by tests)."""

import numpy as np


def random_frames(time: int = 4, height: int = 8, width: int = 10, channels: int | None = None, seed: int = 0):
    """Random float frames; every frame differs from the previous one, so GIF writers keep them all."""
    shape = (time, height, width) if channels is None else (time, height, width, channels)
    return np.random.default_rng(seed).random(shape)
