"""Solutions to the exercises of notebook 04 (moving square, noisy squares, Shi et al. 2015, classification).

Each ``exercise_N`` computes its answer and asserts it. ``exercise_3`` trains two networks (about 8 minutes on 2
busy CPU cores); the others run in seconds.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_convlstm import mnist_digits, models, recipes, synthetic, videos

SLOW = {"exercise_3"}


def exercise_1() -> dict[int, dict[str, float]]:
    """Moving square: the scores of a blank frame and of copy-last-frame, and what the stopping threshold asks.

    On held-out squares the blank prediction's per-pixel MSE is the fraction of the frame the square covers:
    25 / 4,096 = 0.0061 on the demo's 64x64 canvas and 25 / 256 = 0.098 on the quick 16x16 one. Copying frame 9
    is no better: the square moves 1 or 2 pixels along each axis, so the old and the new square differ in 18 to
    32 pixels, about the 25 that a blank frame gets wrong. The demo stops below an MSE of 0.001, which allows
    0.001 x 4,096 = 4.1 fully wrong pixels on 64x64 but 0.26 on 16x16: on the large canvas a blank frame is only
    6 times the threshold, so the square is a small part of the loss and a blurred guess of it nearly stops
    training; on the small canvas the square is a tenth of the loss and the threshold asks for an exact frame.
    """
    threshold = recipes.moving_square.QUICK.stop_below_mse
    scores = {}
    for size in (64, 16):
        squares = synthetic.generate_moving_squares(200, num_frames=10, image_size=size, seed=1) / np.float32(255)
        last, target = squares[:, 8], squares[:, 9]
        covered = float(np.mean(target > 0))
        blank = float(np.mean(target**2))
        copy_last = float(np.mean((target - last) ** 2))
        assert covered == 25 / size**2 and blank == covered  # the square is white (1) on black (0)
        assert abs(copy_last - blank) < 0.05 * blank  # copying the last frame is about as wrong as a blank one
        scores[size] = {"blank": blank, "copy_last": copy_last, "wrong_pixels_allowed": threshold * size**2}
    assert threshold == 0.001
    assert scores[64]["blank"] < 10 * threshold < scores[16]["blank"]
    assert scores[16]["wrong_pixels_allowed"] < 1 < scores[64]["wrong_pixels_allowed"]
    return scores


def exercise_2() -> tuple[float, float]:
    """Action clips: which way the digit moves, from one frame and from two, without training a network.

    From the last frame alone, a nearest-class-mean classifier (the mean last frame of each class's training
    clips) is about as good as chance, 25 % for 4 classes: because the digit wraps around the borders, its
    position in any frame is uniform whatever the class. From two consecutive frames the shift that best aligns
    them (the peak of their circular cross-correlation, computed with ``np.fft``) gives the direction of every
    clip. So the classifier must compare frames, which a ConvLSTM does through its state.
    """
    digits = mnist_digits.load_mnist_digits("offline", verbose=False)[0]
    size = 32
    clips, labels = synthetic.generate_moving_digit_actions(
        400, num_classes=4, num_frames=10, image_size=size, digit_size=14, seed=0, digits=digits
    )
    frames = clips[..., 0] / np.float32(255)  # (clip, time, height, width)
    train, test = slice(0, 300), slice(300, 400)

    class_means = np.stack([frames[train][labels[train] == k, -1].mean(axis=0) for k in range(4)])
    distances = ((frames[test, -1][:, None] - class_means[None]) ** 2).sum(axis=(-2, -1))
    one_frame_accuracy = float(np.mean(distances.argmin(axis=1) == labels[test]))

    spectra = np.fft.fft2(frames[test, 1]) * np.conj(np.fft.fft2(frames[test, 0]))
    correlation = np.real(np.fft.ifft2(spectra)).reshape(len(spectra), -1)
    shifts = np.stack(np.unravel_index(correlation.argmax(axis=1), (size, size)), axis=-1)
    shifts = (shifts + size // 2) % size - size // 2  # (row, col) steps, wrapped into [-16, 16)
    predicted = np.argmax(shifts @ synthetic.action_displacements(4).T, axis=1)
    two_frame_accuracy = float(np.mean(predicted == labels[test]))

    assert one_frame_accuracy < 0.4  # near chance (0.25): one frame does not show the direction
    assert two_frame_accuracy == 1.0  # two frames show it for every clip
    return one_frame_accuracy, two_frame_accuracy


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
