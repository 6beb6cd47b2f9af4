"""Solutions to the exercises of notebook 01 (Moving MNIST: data, layout, splits and batches).

Each ``exercise_N`` computes its answer and asserts it; all run in seconds on the offline digits.
"""

from __future__ import annotations

from unittest import mock

import keras
import numpy as np

from keras_convlstm import cell, data, frames, mnist_digits, synthetic


def exercise_1() -> float:
    """Twice the step length: ``synthetic.MOVING_MNIST_STEP = 0.2``; what median step length comes out?

    Each digit moves 0.2 of the free range (64 - 28 = 36 px) per frame: 7.2 px, twice the standard 3.6 px. The
    median is exactly that, but not every step is: in a frame where a digit reaches a border its position is
    clamped there (and its velocity reflected), so that step is shorter. Faster digits hit the borders more often,
    so more steps are short.
    """
    shortened = {}
    for step, expected in ((0.1, 3.6), (0.2, 7.2)):
        with mock.patch.object(synthetic, "MOVING_MNIST_STEP", step):
            positions = synthetic.moving_mnist_trajectories(200, num_frames=20, seed=0)
        lengths = np.linalg.norm(np.diff(positions, axis=1), axis=-1)
        assert abs(np.median(lengths) - expected) < 1e-9
        assert lengths.max() <= expected + 1e-9  # clamping only shortens a step
        shortened[step] = np.mean(lengths < expected - 1e-6)
    assert shortened[0.2] > shortened[0.1]  # faster digits bounce more often
    return float(np.median(lengths))


def exercise_2() -> int:
    """Split with seed 1 instead of 0: how many validation sequences of the first split are validation again?

    Each split is a uniform random choice of 10 of 100 sequences, so a sequence of the first validation set is in
    the second with probability 10/100: about 1 of 10 on average (a hypergeometric count, 0 to 3 typically).
    The seed is what makes a split reproducible; a different seed is a different experiment.
    """
    _, first = data.split_indices(100, 0.1, seed=0)
    _, second = data.split_indices(100, 0.1, seed=1)
    shared = np.intersect1d(first, second).size
    # Over many seed pairs the mean overlap is 10 * 10 / 100 = 1.
    overlaps = [np.intersect1d(data.split_indices(100, 0.1, seed=s)[1], first).size for s in range(1, 401)]
    assert abs(np.mean(overlaps) - 1.0) < 0.15
    assert 0 <= shared <= 10
    return shared


def exercise_3() -> tuple[float, float]:
    """Memory of the keras.io float64 normalisation of all 10,000 sequences, and of one float32 batch of 5.

    Dividing the uint8 frames by the Python number 255 gives float64, 8 bytes per pixel: 10,000 x 20 x 64 x 64
    pixels x 8 bytes = 6.55 GB. A batch of 5 sequences gives ``x`` and ``y`` of (5, 19, 64, 64, 1) float32 each,
    but, as the shifted-frames cell showed, both are views of one float32 copy of the 20 frames: 5 x 20 x 64 x 64
    x 4 bytes = 1,638,400 bytes (1.6 MB) in all, not the 3.1 MB that ``x.nbytes + y.nbytes`` suggests.
    """
    batch = synthetic.generate_moving_mnist(
        5, seed=0, digits=mnist_digits.load_mnist_digits("offline", verbose=False)[0]
    )
    keras_io_batch = batch / 255
    assert keras_io_batch.dtype == np.float64
    full_float64 = keras_io_batch.nbytes // len(batch) * 10_000
    assert full_float64 == 10_000 * 20 * 64 * 64 * 8 == 6_553_600_000
    x, y = data.create_shifted_frames(batch)
    assert x.shape == y.shape == (5, 19, 64, 64, 1) and x.dtype == np.float32
    assert np.shares_memory(x, y)
    one_copy = frames.to_float_frames(batch).nbytes
    assert one_copy == 5 * 20 * 64 * 64 * 4 == 1_638_400
    assert x.nbytes + y.nbytes == 2 * 5 * 19 * 64 * 64 * 4 > one_copy  # counting the views twice overstates it
    return full_float64 / 1e9, one_copy / 1e6


def _largest_jump(sequences: np.ndarray) -> int:
    """Largest distance (in pixels, along the rows or the columns) from a lit pixel of a frame to the nearest lit
    pixel of the frame before, over all frames of ``(batch, time, height, width, 1)`` uint8 sequences."""
    largest = 0
    for sequence in sequences:
        for before, after in zip(sequence[:-1, :, :, 0], sequence[1:, :, :, 0], strict=True):
            lit_before, lit_after = np.argwhere(before > 0), np.argwhere(after > 0)
            distances = np.abs(lit_after[:, None, :] - lit_before[None, :, :]).max(axis=-1)
            largest = max(largest, int(distances.min(axis=1).max()))
    return largest


def exercise_4() -> tuple[int, int, int]:
    """Open question: digits that wrap around instead of bouncing.

    A wrapping digit leaves on one side and enters on the other in the same frame: lit pixels appear tens of
    pixels away from any lit pixel of the frame before. Measured below on generated frames: with bouncing digits
    no lit pixel is more than 4 px from a lit pixel of the previous frame; with wrapping digits of the same size
    and speed (``generate_moving_digit_actions`` wraps) the largest jump is 50 px. A ConvLSTM moves information
    only through its kernels: a 5x5 kernel with 'same' padding carries a pixel 2 px per step (measured with
    ``cell.convlstm_step``), and a pixel at the left border never reaches the right one, because 'same' padding
    gives the two borders no connection. The model would have to keep the digit in its state and redraw it at the
    far side, which local convolutions cannot express; circular padding (or a model that sees the whole frame)
    would. Bouncing keeps every motion local: the largest jump is about the step length itself (3.6 px).
    """
    digits = mnist_digits.load_mnist_digits("offline", verbose=False)[0]
    bouncing = synthetic.generate_moving_mnist(4, seed=0, digits=digits)
    step = synthetic.MOVING_MNIST_STEP * (64 - mnist_digits.MNIST_DIGIT_SIZE)
    wrapping, _ = synthetic.generate_moving_digit_actions(
        4, num_frames=20, image_size=64, digit_size=mnist_digits.MNIST_DIGIT_SIZE, speed=step, seed=0, digits=digits
    )
    bounce_jump, wrap_jump = _largest_jump(bouncing), _largest_jump(wrapping)

    # One step of a 5x5 ConvLSTM cell (kernels of 0.5, no bias) from a single lit pixel at the left border.
    frame = np.zeros((1, 64, 64, 1), np.float32)
    frame[0, 32, 0] = 1.0
    kernel = np.full((5, 5, 1, 4), 0.5, np.float32)
    state = np.zeros_like(frame)
    hidden, _ = cell.convlstm_step(frame, state, state, kernel, kernel)
    reached_columns = np.nonzero(keras.ops.convert_to_numpy(hidden)[0, 32, :, 0])[0]
    reach = int(reached_columns.max())

    assert reach == 2 and 63 not in reached_columns  # 2 px per step, no path across the border
    assert bounce_jump <= np.ceil(step)  # bouncing: every motion is local
    assert wrap_jump >= 10 * bounce_jump  # wrapping: a jump across the frame
    assert wrap_jump / reach > 20  # more than 20 steps of a 5x5 memory for what happens in one frame
    return bounce_jump, wrap_jump, reach
