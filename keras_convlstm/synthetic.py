"""Owns generating synthetic movies: bouncing MNIST digits, moving squares, noisy squares and digit actions.

Every generator is vectorised numpy and seeded: ``seed`` may be an int, a ``np.random.SeedSequence``, a
``np.random.Generator`` (used as is) or None (fresh entropy). Movies are returned channels-last,
``(batch, time, height, width, 1)``.

- :func:`generate_moving_mnist`: the standard Moving MNIST generator (Srivastava et al. 2015): 28x28 digits
  bounce on a 64x64 canvas, overlapping digits are combined with ``max``. uint8 in [0, 255].
- :func:`generate_moving_squares`: one white square that moves at a constant speed and wraps around the
  borders (the PyTorch many-to-one ConvLSTM demo). uint8 in {0, 255}.
- :func:`generate_noisy_squares`: the ``generate_movies`` data of the Keras 2 ConvLSTM example: 3 to 7 squares
  with +-0.1 noise, and the same squares one frame later as targets. float32.
- :func:`generate_moving_digit_actions`: one digit moving in a straight line, labelled by its direction.

The digit generators paste the digits they are given, by default those of
:func:`keras_convlstm.mnist_digits.load_mnist_digits`, which owns where MNIST digits come from.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from keras_convlstm.checks import check_integer, check_size
from keras_convlstm.mnist_digits import load_mnist_digits

# Standard Moving MNIST motion, in units of the free range (image_size - digit_size) per frame.
MOVING_MNIST_STEP = 0.1
NOISY_SQUARES_CROP = (20, 60)
NOISY_SQUARES_NOISE = 0.1
NOISY_SQUARES_MAX_COUNT = 7
# Seed of the fixed held-out Moving MNIST set (generated from the held-out test digits).
HELD_OUT_SEED = 10_000


# ---------------------------------------------------------------------------------------------------------
# Moving MNIST
# ---------------------------------------------------------------------------------------------------------


def _check_digits(digits: np.ndarray) -> np.ndarray:
    if not isinstance(digits, np.ndarray) or digits.dtype != np.uint8:
        received = digits.dtype if isinstance(digits, np.ndarray) else type(digits).__name__
        raise TypeError(f"expected digits as a uint8 numpy array of shape (num_digits, 28, 28), got {received}")
    if digits.ndim != 3 or digits.shape[0] < 1 or digits.shape[1] != digits.shape[2]:
        raise ValueError(
            f"expected digits of shape (num_digits, size, size) such as (M, 28, 28), got shape {digits.shape}"
        )
    return digits


def moving_mnist_trajectories(
    num_sequences: int,
    num_frames: int = 20,
    num_digits: int = 2,
    image_size: int = 64,
    digit_size: int = 28,
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
) -> np.ndarray:
    """Top-left positions of bouncing digits, the standard Moving MNIST motion (Srivastava et al. 2015).

    In units of the free range ``image_size - digit_size`` (36 px for 28x28 digits on 64x64), each digit
    starts at a position uniform in [0, 1]^2 and moves in a direction uniform in [0, 2 pi) by 0.1 per frame
    (3.6 px). When a step crosses or touches a border, that coordinate is clamped to the border and its
    velocity component changes sign. Frame 0 is the start position. The recurrence runs as one vectorised
    step per frame over all sequences and digits.

    Args:
        num_sequences: number of sequences, >= 1.
        num_frames: frames per sequence, >= 1.
        num_digits: digits per sequence, >= 1.
        image_size: side of the square canvas in pixels, > ``digit_size``.
        digit_size: side of the square digit in pixels, >= 1.
        seed: int, SeedSequence, Generator or None.

    Returns:
        float64 ``(num_sequences, num_frames, num_digits, 2)``: (row, col) of each digit's top-left corner in pixels,
        within [0, image_size - digit_size].
    """
    n = check_integer(num_sequences, "num_sequences")
    num_frames = check_integer(num_frames, "num_frames")
    num_digits = check_integer(num_digits, "num_digits")
    digit_size = check_integer(digit_size, "digit_size")
    image_size = check_integer(image_size, "image_size")
    if image_size <= digit_size:
        raise ValueError(f"image_size must be larger than digit_size ({digit_size}), got {image_size}")
    rng = np.random.default_rng(seed)
    position = rng.random((n, num_digits, 2))
    theta = rng.uniform(0.0, 2.0 * np.pi, size=(n, num_digits))
    velocity = MOVING_MNIST_STEP * np.stack([np.sin(theta), np.cos(theta)], axis=-1)
    positions = np.empty((n, num_frames, num_digits, 2))
    positions[:, 0] = position
    for frame in range(1, num_frames):
        position = position + velocity
        hit = (position <= 0.0) | (position >= 1.0)
        position = np.clip(position, 0.0, 1.0)
        velocity = np.where(hit, -velocity, velocity)
        positions[:, frame] = position
    return positions * (image_size - digit_size)


def _paste_max(canvas: np.ndarray, patches: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """``canvas[k, r:r+s, c:c+s] = max(canvas[k, r:r+s, c:c+s], patch)`` for every frame k, in place.

    ``canvas`` is uint8 ``(frames, height, width)``; ``rows`` and ``cols`` are integer arrays of one shape
    with ``frames`` elements (frame k is their k-th element in C order); ``patches`` is ``(s, s)`` windows
    broadcastable against that shape, e.g. ``(sequences, 1, s, s)`` for rows of shape ``(sequences, time)``.
    A writable sliding-window view exposes every ``s x s`` window of every frame as ``windows[frame, row, col]``,
    so one fancy index gathers (and one scatters) all the windows at once. Windows of different frames never
    share memory, so the scatter has no conflicting writes.
    """
    size = patches.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (size, size), axis=(1, 2), writeable=True)
    index = (np.arange(canvas.shape[0]).reshape(rows.shape), rows, cols)
    windows[index] = np.maximum(windows[index], patches)


def generate_moving_mnist(
    num_sequences: int,
    num_frames: int = 20,
    image_size: int = 64,
    num_digits: int = 2,
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
    digits: np.ndarray | None = None,
) -> np.ndarray:
    """Generates Moving MNIST sequences: digits bouncing on a black canvas.

    Each sequence draws ``num_digits`` digits uniformly (with replacement) from ``digits`` and moves them
    along :func:`moving_mnist_trajectories`; each digit is pasted at its rounded position and overlapping
    digits are combined with ``max``. The trajectories are drawn first, then the digit choices, from one
    generator, so a seed fixes the whole array.

    Args:
        num_sequences: number of sequences, >= 1.
        num_frames: frames per sequence, >= 1.
        image_size: side of the square canvas in pixels, larger than the digits.
        num_digits: digits per sequence, >= 1.
        seed: int, SeedSequence, Generator or None.
        digits: uint8 ``(num_digits_available, size, size)`` in [0, 255]; default: the MNIST train digits of
            ``load_mnist_digits("auto", "train", verbose=False)``.

    Returns:
        uint8 ``(num_sequences, num_frames, image_size, image_size, 1)`` in [0, 255].
    """
    n = check_integer(num_sequences, "num_sequences")
    if digits is None:
        digits, _ = load_mnist_digits("auto", "train", verbose=False)
    digits = _check_digits(digits)
    rng = np.random.default_rng(seed)
    positions = moving_mnist_trajectories(n, num_frames, num_digits, image_size, digits.shape[1], seed=rng)
    choices = rng.integers(0, len(digits), size=(n, num_digits))
    corners = np.rint(positions).astype(np.intp)
    canvas = np.zeros((n * num_frames, image_size, image_size), dtype=np.uint8)
    for digit in range(num_digits):
        # Patches of shape (n, 1, size, size) broadcast over the frames of their sequence.
        patches = digits[choices[:, digit], np.newaxis]
        _paste_max(canvas, patches, corners[:, :, digit, 0], corners[:, :, digit, 1])
    return canvas.reshape(n, num_frames, image_size, image_size, 1)


# ---------------------------------------------------------------------------------------------------------
# Squares
# ---------------------------------------------------------------------------------------------------------


def generate_moving_squares(
    num_sequences: int,
    num_frames: int = 10,
    image_size: int = 64,
    square_size: int = 5,
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
) -> np.ndarray:
    """Generates one white square per sequence moving at a constant speed and wrapping around the borders.

    The square's top-left corner starts at a uniform pixel of the canvas; its speed along rows and along
    columns is each 1 or 2 px per frame (uniform), with a uniform random sign so that squares move in all
    four diagonal directions. Position ``p_t = (p_0 + t * v) mod image_size``, and the square's pixels wrap
    too: rows ``(p_t + i) mod image_size`` for ``0 <= i < square_size`` (columns alike).

    Args:
        num_sequences: number of sequences, >= 1.
        num_frames: frames per sequence, >= 1.
        image_size: side of the square canvas in pixels, > ``square_size``.
        square_size: side of the square in pixels, >= 1.
        seed: int, SeedSequence, Generator or None.

    Returns:
        uint8 ``(num_sequences, num_frames, image_size, image_size, 1)``: 255 on the square, 0 elsewhere.
    """
    n = check_integer(num_sequences, "num_sequences")
    num_frames = check_integer(num_frames, "num_frames")
    square_size = check_integer(square_size, "square_size")
    image_size = check_integer(image_size, "image_size")
    if image_size <= square_size:
        raise ValueError(f"image_size must be larger than square_size ({square_size}), got {image_size}")
    rng = np.random.default_rng(seed)
    start = rng.integers(0, image_size, size=(n, 1, 2))
    velocity = rng.integers(1, 3, size=(n, 1, 2)) * rng.choice([-1, 1], size=(n, 1, 2))
    corner = (start + np.arange(num_frames)[:, np.newaxis] * velocity) % image_size  # (n, T, 2)
    pixels = np.arange(image_size)
    # covered[..., axis, p]: pixel p of that axis lies inside the square (distance modulo the canvas size).
    covered = (pixels - corner[..., np.newaxis]) % image_size < square_size
    frames = covered[..., 0, :, np.newaxis] & covered[..., 1, np.newaxis, :]
    return (frames * np.uint8(255)).astype(np.uint8)[..., np.newaxis]


def generate_noisy_squares(
    num_sequences: int,
    num_frames: int = 15,
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generates the noisy moving squares of the Keras 2 ConvLSTM example, and their next frames.

    On an 80x80 canvas each movie holds 3 to 7 squares. A square starts with its centre (row, col) uniform
    in [20, 60) (integers), moves by (dr, dc) px per frame with dr, dc each in {-1, 0, 1}, and has half-width
    2 or 3 (it covers rows ``r - w .. r + w - 1``, 4 or 6 px). Squares add up where they overlap. In each
    frame, independently for each square, with probability 1/2 the block one pixel wider on every side
    (the square and a one-pixel ring around it) gets +0.1 or -0.1 (sign uniform). The target of frame t is
    the same squares, without noise, at frame t + 1. Both movies are cropped to rows and columns [20, 60)
    and values above 1 are set to 1, as in the original.

    Because of the noise these movies are float32 and not confined to [0, 1]: the interior of a square can
    be 0.9, and noise that falls on the background gives -0.1 (or -0.2 where two rings overlap), as in the
    original example. Targets are exactly 0 or 1.

    Args:
        num_sequences: number of movies, >= 1.
        num_frames: frames per movie, >= 1.
        seed: int, SeedSequence, Generator or None.

    Returns:
        ``(noisy, shifted)``, each float32 ``(num_sequences, num_frames, 40, 40, 1)``.
    """
    n = check_integer(num_sequences, "num_sequences")
    num_frames = check_integer(num_frames, "num_frames")
    squares = _draw_noisy_squares(n, num_frames, np.random.default_rng(seed))
    pixels = np.arange(*NOISY_SQUARES_CROP, dtype=np.int16)

    def coverage(time_offset: int, grow: int) -> np.ndarray:
        """(n, T, 2, pixel, square) float32: 1 where that pixel of the cropped rows / columns is covered."""
        times = np.arange(time_offset, num_frames + time_offset, dtype=np.int16)[:, np.newaxis, np.newaxis]
        centre = squares.centre[:, np.newaxis] + times * squares.direction[:, np.newaxis]  # (n, T, square, 2)
        offset = pixels[:, np.newaxis] - centre.transpose(0, 1, 3, 2)[:, :, :, np.newaxis, :]
        reach = (squares.half_width + grow)[:, np.newaxis, np.newaxis, np.newaxis, :]
        return ((offset >= -reach) & (offset < reach)).astype(np.float32)

    def render(blocks: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Sum over blocks of weight * (row indicator outer column indicator), as one batched matmul."""
        rows = blocks[:, :, 0] * weights[:, :, np.newaxis, :]
        return np.minimum(rows @ blocks[:, :, 1].swapaxes(-1, -2), np.float32(1.0))[..., np.newaxis]

    on = np.broadcast_to(squares.active[:, np.newaxis], squares.noise.shape).astype(np.float32)
    noisy = render(
        np.concatenate([coverage(0, 0), coverage(0, 1)], axis=-1),
        np.concatenate([on, squares.noise], axis=-1),
    )
    shifted = render(coverage(1, 0), on)
    return noisy, shifted


class _NoisySquares(NamedTuple):
    """Random parameters of :func:`generate_noisy_squares` for ``n`` movies of up to 7 squares each."""

    active: np.ndarray  # bool (n, square): the first 3 to 7 squares of a movie are drawn
    centre: np.ndarray  # int16 (n, square, 2): (row, col) of the centre at frame 0, in [20, 60)
    direction: np.ndarray  # int16 (n, square, 2): px per frame, each in {-1, 0, 1}
    half_width: np.ndarray  # int16 (n, square): 2 or 3
    noise: np.ndarray  # float32 (n, time, square): 0 or +-0.1 added to the wider block; 0 when inactive


def _draw_noisy_squares(n: int, num_frames: int, rng: np.random.Generator) -> _NoisySquares:
    count = NOISY_SQUARES_MAX_COUNT
    low, high = NOISY_SQUARES_CROP
    active = np.arange(count) < rng.integers(3, count + 1, size=(n, 1))
    centre = rng.integers(low, high, size=(n, count, 2), dtype=np.int16)
    direction = rng.integers(-1, 2, size=(n, count, 2), dtype=np.int16)
    half_width = rng.integers(2, 4, size=(n, count), dtype=np.int16)
    noisy = rng.integers(0, 2, size=(n, num_frames, count)).astype(bool) & active[:, np.newaxis]
    sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=noisy.shape)
    noise = np.where(noisy, np.float32(NOISY_SQUARES_NOISE) * sign, np.float32(0.0))
    return _NoisySquares(active, centre, direction, half_width, noise)


# ---------------------------------------------------------------------------------------------------------
# Moving-digit actions (a labelled set for video classification)
# ---------------------------------------------------------------------------------------------------------

ACTION_DIRECTIONS = {
    4: ("right", "down", "left", "up"),
    8: ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right"),
}


def action_displacements(num_classes: int = 4) -> np.ndarray:
    """Unit (row, col) steps of the classes of :func:`generate_moving_digit_actions`.

    Class ``k`` moves at the angle ``2 pi k / num_classes`` measured clockwise from "right" on the image
    (rows grow downwards): class 0 is right, then down, left and up (with the diagonals between them for 8
    classes); :data:`ACTION_DIRECTIONS` names them.

    Args:
        num_classes: 4 or 8.

    Returns:
        float64 ``(num_classes, 2)``: ``(sin, cos)`` of each class angle, i.e. the row and column step.
    """
    if num_classes not in ACTION_DIRECTIONS:
        raise ValueError(f"num_classes must be one of {tuple(ACTION_DIRECTIONS)}, got {num_classes!r}")
    angles = 2.0 * np.pi * np.arange(num_classes) / num_classes
    return np.stack([np.sin(angles), np.cos(angles)], axis=-1)


def _resize_digits(digits: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 ``(num_digits, s, s)`` digits to ``(num_digits, size, size)``."""
    from PIL import Image

    if digits.shape[1] == size:
        return digits
    resized = [Image.fromarray(digit).resize((size, size), Image.BILINEAR) for digit in digits]
    return np.stack([np.asarray(image) for image in resized])


def generate_moving_digit_actions(
    num_sequences: int,
    num_classes: int = 4,
    num_frames: int = 15,
    image_size: int | tuple[int, int] = (60, 80),
    digit_size: int = 28,
    speed: float = 2.0,
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
    digits: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generates clips of one MNIST digit moving in a straight line; the label is the direction of motion.

    A synthetic stand-in for an action data set such as KTH, with nothing to download. The labels cycle
    through the classes (``num_sequences // num_classes`` or one more clip each) in a shuffled order. Each clip draws a
    digit uniformly from ``digits``, a start position uniform over the canvas and moves the digit by
    ``speed`` px per frame in its class direction (:func:`action_displacements`); the top-left corner at
    frame ``t`` is ``round(start + t * speed * direction)`` taken modulo the canvas size, and the digit wraps
    around the borders. Because of the wrapping, the position in any single frame is uniform whatever the
    label: only the motion between frames tells the class apart.

    Args:
        num_sequences: number of clips, >= 1.
        num_classes: 4 (right, down, left, up) or 8 (with the diagonals).
        num_frames: frames per clip, >= 2.
        image_size: canvas side, or ``(height, width)``; each side larger than ``digit_size``.
        digit_size: side of the digit in pixels (the 28x28 digits are resized bilinearly when it differs).
        speed: displacement per frame in pixels, > 0.
        seed: int, SeedSequence, Generator or None.
        digits: uint8 ``(num_digits, size, size)`` in [0, 255]; default the MNIST train digits of
            ``load_mnist_digits("auto", "train", verbose=False)`` (pass the "test" split for held-out clips).

    Returns:
        ``(clips, labels)``: uint8 ``(num_sequences, num_frames, height, width, 1)`` in [0, 255] and int64
        ``(num_sequences,)`` in ``[0, num_classes)``.
    """
    n = check_integer(num_sequences, "num_sequences")
    num_frames = check_integer(num_frames, "num_frames", minimum=2)
    digit_size = check_integer(digit_size, "digit_size")
    displacement = action_displacements(num_classes)
    height, width = check_size(image_size, "image_size")
    if min(height, width) <= digit_size:
        raise ValueError(f"image_size must be larger than digit_size ({digit_size}) on both sides, got {image_size}")
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0:
        raise ValueError(f"speed must be a positive number of pixels per frame, got {speed!r}")
    if digits is None:
        digits, _ = load_mnist_digits("auto", "train", verbose=False)
    digits = _resize_digits(_check_digits(digits), digit_size)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    start = rng.random((n, 1, 2)) * (height, width)
    choices = rng.integers(0, len(digits), size=n)
    steps = np.arange(num_frames)[:, np.newaxis] * speed * displacement[labels][:, np.newaxis]  # (n, T, 2)
    corner = np.rint(start + steps).astype(np.intp) % (height, width)
    offsets = np.arange(digit_size)
    rows = (corner[..., 0, np.newaxis] + offsets) % height  # (n, T, digit_size)
    cols = (corner[..., 1, np.newaxis] + offsets) % width
    canvas = np.zeros((n, num_frames, height, width), dtype=np.uint8)
    clip = np.arange(n)[:, np.newaxis, np.newaxis, np.newaxis]
    frame = np.arange(num_frames)[np.newaxis, :, np.newaxis, np.newaxis]
    canvas[clip, frame, rows[..., :, np.newaxis], cols[..., np.newaxis, :]] = digits[choices][:, np.newaxis]
    return canvas[..., np.newaxis], labels


def generate_moving_mnist_split(
    num_sequences: int, *, seed: int, split: str, num_frames: int = 20, chunk: int = 500
) -> np.ndarray:
    """Moving MNIST from the ``split`` digits ("train", "test" or "all"), generated in chunks with a progress bar.

    The fixed held-out set of the benchmarks and the shipped model is
    ``generate_moving_mnist_split(1000, seed=HELD_OUT_SEED, split="test")``.

    Returns:
        uint8 ``(num_sequences, num_frames, 64, 64, 1)``.
    """
    digits, _ = load_mnist_digits(split=split, verbose=False)
    seeds = np.random.SeedSequence(seed).spawn((num_sequences + chunk - 1) // chunk)
    parts = []
    with tqdm(total=num_sequences, desc="generating", unit="seq", leave=False) as bar:
        for index, child in enumerate(seeds):
            size = min(chunk, num_sequences - index * chunk)
            parts.append(generate_moving_mnist(size, num_frames, digits=digits, seed=child))
            bar.update(size)
    return np.concatenate(parts)
