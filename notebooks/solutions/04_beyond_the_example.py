"""Solutions to the exercises of notebook 04 (moving square, noisy squares, Shi et al. 2015, classification).

Each ``exercise_N`` computes its answer and asserts it. ``exercise_3`` trains two networks (about 8 minutes on 2
busy CPU cores); the others run in seconds.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_convlstm import models, synthetic, videos

SLOW = {"exercise_3"}


def _convlstm_weights(kernel: int, channels_in: int, filters: int) -> int:
    """Weights of one ConvLSTM2D: four gates, each a k x k convolution of input and hidden state, plus a bias."""
    return 4 * (kernel * kernel * (channels_in + filters) * filters + filters)


def exercise_1() -> int:
    """A 3x3 third kernel in ``shi2015``: how many parameters does it lose?

    The third ConvLSTM layer has 64 filters and reads the 64 channels of the second. Its kernels shrink from 5x5
    to 3x3, so it loses ``4 * (25 - 9) * (64 + 64) * 64`` weights; the biases and every other layer are unchanged.
    """
    full = models.build_model("shi2015").count_params()
    smaller = models.build_model("shi2015", kernel_sizes=(5, 5, 3)).count_params()
    lost = full - smaller
    assert lost == _convlstm_weights(5, 64, 64) - _convlstm_weights(3, 64, 64) == 4 * 16 * 128 * 64
    return lost


def exercise_2() -> dict[int, list[int]]:
    """How far does information travel per step through a ConvLSTM layer?

    One bright pixel enters at frame 0 and every later frame is black. With ``k x k`` kernels the input-to-state
    convolution spreads it ``k // 2`` pixels at frame 0, and every later step the state-to-state convolution
    spreads the state another ``k // 2`` pixels: after ``t`` frames it reaches ``t * (k // 2)`` pixels (1, 2, 3
    for 3x3; 2, 4, 6 for 5x5). A stack of ``L`` layers reaches ``L * (k // 2)`` pixels per frame. Motion faster
    than that cannot be followed from one frame to the next, which is why Shi et al. found 1x1 state kernels
    worse and larger kernels better for fast motion (and why patches help: 4x4 patches make every step of a
    5x5 kernel cover 8 pixels of the frame).
    """
    size, centre = 21, 10
    frames = np.zeros((1, 3, size, size, 1), np.float32)
    frames[0, 0, centre, centre, 0] = 1.0
    reach = {}
    for kernel in (3, 5):
        keras.utils.set_random_seed(0)
        layer = keras.layers.ConvLSTM2D(4, kernel, padding="same", return_sequences=True)
        hidden = keras.ops.convert_to_numpy(layer(frames))[0]
        rows, cols = np.arange(size)[:, None], np.arange(size)[None, :]
        distance = np.maximum(abs(rows - centre), abs(cols - centre))
        reach[kernel] = [int(distance[np.abs(hidden[t]).max(axis=-1) > 0].max()) for t in range(3)]
        assert reach[kernel] == [(t + 1) * (kernel // 2) for t in range(3)]
    return reach


def exercise_3() -> dict[str, tuple[float, float]]:
    """Re-measure the leak after training: does output 3 react to a change of input frame 4?

    Output ``t`` of these networks is trained to predict input frame ``t + 1``. The 'same' final Conv3D reads input
    frames ``t - 1, t, t + 1``: output 3 reacts to frame 4, its own target, before training (random weights) and
    after. The causal Conv3D reads frames ``t - 2 .. t`` only: output 3 cannot change when frame 4 does, before or
    after training (exactly 0). How strongly the leaky network leans on frame 4 depends on how long it trains; in
    a short run such as this one (3 epochs of 64 movies, about 8 minutes on 2 busy CPU cores) the reaction stays
    small, because the network has not yet learned to copy its target; the leak is in the architecture, which is
    why the causal fix removes it whatever the weights.

    Returns:
        ``{preset: (largest change of output 3 before training, after training)}``.
    """
    movies, targets = synthetic.generate_noisy_squares(64, num_frames=8, seed=0)
    movies = np.clip(movies, 0, 1)
    changed = movies[:1].copy()
    changed[0, 4] = 1.0 - changed[0, 4]
    effect = {}
    for preset in ("noisy-squares", "noisy-squares-causal"):
        keras.utils.set_random_seed(0)
        model = models.build_model(preset)
        measured = []
        for epochs in (0, 3):
            if epochs:
                model.fit(movies, targets, batch_size=8, epochs=epochs, verbose=0)
            before = keras.ops.convert_to_numpy(model(movies[:1], training=False))
            after = keras.ops.convert_to_numpy(model(changed, training=False))
            measured.append(float(np.abs(after[0, 3] - before[0, 3]).max()))
        effect[preset] = tuple(measured)
    assert effect["noisy-squares-causal"] == (0.0, 0.0)
    assert min(effect["noisy-squares"]) > 0.0
    return effect


def exercise_4() -> tuple[int, int]:
    """Split clips at random instead of by person: how many people end up on both sides?

    Each person contributes many clips. A random 25 % of the clips takes a few clips of almost every person, so
    nearly everyone is in both train and test, and the test accuracy rewards recognising a person's clips (their
    digits' shapes here, their clothes and background in KTH) rather than the action. ``videos.split_by_group``
    keeps each person on one side, so the held-out score is that of new people.
    """
    groups = np.repeat([f"person{index:02d}" for index in range(16)], 44)
    order = np.random.default_rng(0).permutation(len(groups))
    test_size = len(groups) // 4
    random_test, random_train = order[:test_size], order[test_size:]
    shared_random = len(set(groups[random_train]) & set(groups[random_test]))
    train_idx, test_idx = videos.split_by_group(groups, test_fraction=0.25, seed=0)
    shared_grouped = len(set(groups[train_idx]) & set(groups[test_idx]))
    assert shared_random == 16 and shared_grouped == 0
    return shared_random, shared_grouped
