"""Solutions to the exercises of notebook 01 (Moving MNIST: data, layout, splits and batches).

Each ``exercise_N`` computes its answer and asserts it; all run in seconds on the offline digits.
"""

from __future__ import annotations

from unittest import mock

import numpy as np

from keras_convlstm import data, synthetic


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

    10,000 x 20 x 64 x 64 pixels x 8 bytes = 6.55 GB. A batch of 5 sequences gives ``x`` and ``y`` of
    (5, 19, 64, 64, 1) float32 each; ``create_shifted_frames`` makes them views of one float32 copy of the 20
    frames, so 5 x 20 x 64 x 64 x 4 bytes = 1,638,400 bytes (1.6 MB) in all.
    """
    full_float64 = 10_000 * 20 * 64 * 64 * 8
    assert full_float64 == 6_553_600_000
    batch = synthetic.generate_moving_mnist(5, seed=0, digits=synthetic.load_mnist_digits("offline", verbose=False)[0])
    x, y = data.create_shifted_frames(batch)
    assert x.shape == y.shape == (5, 19, 64, 64, 1) and x.dtype == np.float32
    assert np.shares_memory(x, y)
    one_copy = data.to_float_frames(batch).nbytes
    assert one_copy == 5 * 20 * 64 * 64 * 4 == 1_638_400
    return full_float64 / 1e9, one_copy / 1e6


def exercise_4() -> float:
    """Open question: digits that wrap around instead of bouncing.

    A wrapping digit leaves on one side and enters on the other in the same frame: part of it jumps by about
    64 - 3.6 pixels. A ConvLSTM moves information only through its kernels: with 5x5 kernels a state pixel sees
    2 pixels further per layer and step, so no single step can carry a digit across the frame, and 'same'
    padding gives the two borders no connection at all. The model would have to keep the digit in its state and
    redraw it at the far side, which convolutions cannot express; circular padding (or a model that sees the
    whole frame) would. Bouncing keeps every motion local: the largest step is the step length itself.
    """
    free_range, step, kernel = 64 - 28, 0.1 * (64 - 28), 5
    wrap_jump = 64 - step  # the pixel that leaves on the right reappears this far to the left
    reach_per_step = kernel // 2
    assert step <= free_range and wrap_jump / reach_per_step > 30
    return wrap_jump / reach_per_step
