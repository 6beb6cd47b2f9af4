"""Tests of keras_convlstm.synthetic: Moving MNIST, moving squares and noisy squares."""

import time

import numpy as np
import pytest

from keras_convlstm import mnist_digits, synthetic

FREE_RANGE = 64 - 28
STEP_PX = 0.1 * FREE_RANGE


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return mnist_digits.load_mnist_digits("offline", "train", verbose=False)[0]


# --------------------------------------------------------------------------------------------- trajectories


def _reference_trajectories(seed, n, num_frames, num_digits):
    """Straightforward per-sequence loop of the documented motion, from the same draws."""
    rng = np.random.default_rng(seed)
    start = rng.random((n, num_digits, 2))
    theta = rng.uniform(0.0, 2.0 * np.pi, size=(n, num_digits))
    out = np.empty((n, num_frames, num_digits, 2))
    for sequence in range(n):
        for digit in range(num_digits):
            row, col = start[sequence, digit]
            d_row, d_col = 0.1 * np.sin(theta[sequence, digit]), 0.1 * np.cos(theta[sequence, digit])
            for frame in range(num_frames):
                if frame:
                    row, col = row + d_row, col + d_col
                    if row <= 0 or row >= 1:
                        row, d_row = min(max(row, 0.0), 1.0), -d_row
                    if col <= 0 or col >= 1:
                        col, d_col = min(max(col, 0.0), 1.0), -d_col
                out[sequence, frame, digit] = row * FREE_RANGE, col * FREE_RANGE
    return out


def test_trajectories_match_a_loop_reference_and_are_seeded():
    positions = synthetic.moving_mnist_trajectories(7, num_frames=30, num_digits=3, seed=11)
    assert positions.shape == (7, 30, 3, 2) and positions.dtype == np.float64
    np.testing.assert_allclose(positions, _reference_trajectories(11, 7, 30, 3), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(positions, synthetic.moving_mnist_trajectories(7, 30, 3, seed=11))
    assert not np.array_equal(positions, synthetic.moving_mnist_trajectories(7, 30, 3, seed=12))


def test_trajectories_bounce_with_steps_of_3_6_px():
    positions = synthetic.moving_mnist_trajectories(500, num_frames=20, num_digits=2, seed=0)
    assert positions.min() >= 0.0 and positions.max() <= FREE_RANGE
    steps = np.diff(positions, axis=1)  # (n, T - 1, digits, 2)
    at_border = (positions[:, 1:] <= 0.0) | (positions[:, 1:] >= FREE_RANGE)  # clamped after the step
    free = ~at_border.any(axis=-1)
    assert free.mean() > 0.5
    np.testing.assert_allclose(np.linalg.norm(steps, axis=-1)[free], STEP_PX, rtol=1e-9)
    # After a border hit the velocity component changes sign: the next step goes the other way.
    hits = at_border[:, :-1]
    assert hits.sum() > 100
    before, after = steps[:, :-1][hits], steps[:, 1:][hits]
    assert np.all(np.sign(before) * np.sign(after) < 0)
    # Away from the borders the velocity is constant.
    no_hit = ~at_border[:, :-1] & ~at_border[:, 1:]
    np.testing.assert_allclose(steps[:, 1:][no_hit], steps[:, :-1][no_hit], atol=1e-9)


# --------------------------------------------------------------------------------------------- moving mnist


def _reference_moving_mnist(seed, n, num_frames, num_digits, digits, image_size=64):
    rng = np.random.default_rng(seed)
    positions = synthetic.moving_mnist_trajectories(n, num_frames, num_digits, image_size, digits.shape[1], seed=rng)
    choices = rng.integers(0, len(digits), size=(n, num_digits))
    size = digits.shape[1]
    out = np.zeros((n, num_frames, image_size, image_size, 1), np.uint8)
    for sequence in range(n):
        for frame in range(num_frames):
            for digit in range(num_digits):
                row, col = (int(round(value)) for value in positions[sequence, frame, digit])
                window = out[sequence, frame, row : row + size, col : col + size, 0]
                np.maximum(window, digits[choices[sequence, digit]], out=window)
    return out


def test_moving_mnist_matches_a_loop_reference(digits):
    movies = synthetic.generate_moving_mnist(6, num_frames=12, num_digits=3, seed=5, digits=digits)
    assert movies.shape == (6, 12, 64, 64, 1) and movies.dtype == np.uint8
    np.testing.assert_array_equal(movies, _reference_moving_mnist(5, 6, 12, 3, digits))
    assert movies.max() == 255 and (movies > 0).mean() > 0.05


def test_moving_mnist_other_sizes_match_the_reference(digits):
    small = digits[:10, ::2, ::2].copy()  # 14x14 digits on a 32x32 canvas
    movies = synthetic.generate_moving_mnist(4, 5, image_size=32, num_digits=1, seed=1, digits=small)
    assert movies.shape == (4, 5, 32, 32, 1)
    np.testing.assert_array_equal(movies, _reference_moving_mnist(1, 4, 5, 1, small, image_size=32))


def test_moving_mnist_overlaps_combine_with_max():
    flat = np.stack([np.full((28, 28), 100, np.uint8), np.full((28, 28), 200, np.uint8)])
    movies = synthetic.generate_moving_mnist(40, num_frames=4, num_digits=2, seed=3, digits=flat)
    rng = np.random.default_rng(3)
    positions = synthetic.moving_mnist_trajectories(40, 4, 2, seed=rng)
    values = flat[rng.integers(0, 2, size=(40, 2)), 0, 0]  # (n, digits)
    corners = np.rint(positions).astype(int)
    overlaps = 0
    for sequence, frame in np.ndindex(40, 4):
        (r0, c0), (r1, c1) = corners[sequence, frame]
        top, left, bottom, right = max(r0, r1), max(c0, c1), min(r0, r1) + 28, min(c0, c1) + 28
        if top < bottom and left < right:
            overlaps += 1
            region = movies[sequence, frame, top:bottom, left:right, 0]
            assert np.all(region == values[sequence].max())
    assert overlaps > 20


def test_moving_mnist_is_seeded(digits):
    first = synthetic.generate_moving_mnist(3, seed=42, digits=digits)
    np.testing.assert_array_equal(first, synthetic.generate_moving_mnist(3, seed=42, digits=digits))
    assert not np.array_equal(first, synthetic.generate_moving_mnist(3, seed=43, digits=digits))


def test_moving_mnist_speed(digits):
    """At least 1,000 sequences/s is the target; the assertion leaves room for a loaded machine."""
    synthetic.generate_moving_mnist(50, seed=0, digits=digits)
    start = time.perf_counter()
    synthetic.generate_moving_mnist(2000, seed=0, digits=digits)
    rate = 2000 / (time.perf_counter() - start)
    print(f"generate_moving_mnist: {rate:,.0f} sequences/s")
    assert rate > 500


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_sequences": 0}, "num_sequences must be an integer >= 1, got 0"),
        ({"num_sequences": 2, "num_frames": 0}, "num_frames must be an integer >= 1, got 0"),
        ({"num_sequences": 2, "num_digits": 0}, "num_digits must be an integer >= 1, got 0"),
        ({"num_sequences": 2, "image_size": 28}, r"image_size must be larger than digit_size \(28\), got 28"),
    ],
)
def test_moving_mnist_rejects_bad_sizes(digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic.generate_moving_mnist(digits=digits, **kwargs)


def test_moving_mnist_rejects_bad_digits(digits):
    with pytest.raises(TypeError, match="uint8.*got float32"):
        synthetic.generate_moving_mnist(2, digits=digits.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(num_digits, size, size\).*got shape \(4000, 784\)"):
        synthetic.generate_moving_mnist(2, digits=digits.reshape(4000, 784))


# --------------------------------------------------------------------------------------------- squares


def test_moving_squares_move_at_constant_speed_and_wrap():
    movies = synthetic.generate_moving_squares(300, num_frames=10, seed=0)
    assert movies.shape == (300, 10, 64, 64, 1) and movies.dtype == np.uint8
    assert set(np.unique(movies).tolist()) == {0, 255}
    np.testing.assert_array_equal((movies == 255).sum(axis=(2, 3, 4)), np.full((300, 10), 25))
    candidates = [(dr, dc) for dr in (-2, -1, 1, 2) for dc in (-2, -1, 1, 2)]
    seen = set()
    for movie in movies[..., 0]:
        speeds = [v for v in candidates if np.array_equal(np.roll(movie[0], v, axis=(0, 1)), movie[1])]
        assert len(speeds) == 1
        (dr, dc) = speeds[0]
        seen.add(speeds[0])
        for t in range(10):
            np.testing.assert_array_equal(movie[t], np.roll(movie[0], (t * dr, t * dc), axis=(0, 1)))
    assert seen == set(candidates)
    # Some squares straddle a border: pixels on both the first and the last row.
    straddle = (movies[:, :, 0, :, 0] == 255).any(-1) & (movies[:, :, -1, :, 0] == 255).any(-1)
    assert straddle.any()


def test_moving_squares_seeded_and_validated():
    first = synthetic.generate_moving_squares(4, seed=1)
    np.testing.assert_array_equal(first, synthetic.generate_moving_squares(4, seed=1))
    assert not np.array_equal(first, synthetic.generate_moving_squares(4, seed=2))
    with pytest.raises(ValueError, match="image_size must be larger than square_size"):
        synthetic.generate_moving_squares(2, image_size=5, square_size=5)


def _reference_noisy_squares(seed, n, num_frames):
    """The Keras 2 loops (80x80 canvas, crop, clip) applied to the same random parameters."""
    squares = synthetic._draw_noisy_squares(n, num_frames, np.random.default_rng(seed))
    noisy = np.zeros((n, num_frames, 80, 80))
    shifted = np.zeros((n, num_frames, 80, 80))
    for movie, square in zip(*np.nonzero(squares.active), strict=True):
        row0, col0 = squares.centre[movie, square].astype(int)
        d_row, d_col = squares.direction[movie, square].astype(int)
        w = int(squares.half_width[movie, square])
        for t in range(num_frames):
            row, col = row0 + d_row * t, col0 + d_col * t
            noisy[movie, t, row - w : row + w, col - w : col + w] += 1
            ring = squares.noise[movie, t, square]
            noisy[movie, t, row - w - 1 : row + w + 1, col - w - 1 : col + w + 1] += ring
            row, col = row0 + d_row * (t + 1), col0 + d_col * (t + 1)
            shifted[movie, t, row - w : row + w, col - w : col + w] += 1
    crop = (slice(None), slice(None), slice(20, 60), slice(20, 60))
    return np.minimum(noisy[crop], 1)[..., None], np.minimum(shifted[crop], 1)[..., None]


def test_noisy_squares_match_the_keras2_loops():
    noisy, shifted = synthetic.generate_noisy_squares(20, num_frames=15, seed=4)
    assert noisy.shape == shifted.shape == (20, 15, 40, 40, 1)
    assert noisy.dtype == shifted.dtype == np.float32
    reference_noisy, reference_shifted = _reference_noisy_squares(4, 20, 15)
    np.testing.assert_allclose(noisy, reference_noisy, atol=1e-6)
    np.testing.assert_array_equal(shifted, reference_shifted)


def test_noisy_squares_targets_are_the_next_clean_frame():
    """Where noisy frame t + 1 is exactly 0 or 1 no noise changed it, so it must equal the target of frame t.

    (Noise only adds multiples of 0.1 of at most 0.7 in size, so a noisy value of exactly 0 means no square
    and a value of exactly 1 means at least one square, whatever noise was added.)
    """
    noisy, shifted = synthetic.generate_noisy_squares(200, num_frames=15, seed=0)
    assert set(np.unique(shifted).tolist()) == {0.0, 1.0}
    assert noisy.max() == 1.0 and noisy.min() < 0
    upcoming, target = noisy[:, 1:], shifted[:, :-1]
    clean = (upcoming == 0) | (upcoming == 1)
    assert 0.9 < clean.mean() < 1.0
    np.testing.assert_array_equal(target[clean], upcoming[clean])
    # Pixels that noise touched differ from 0 and 1 by a multiple of 0.1.
    tenths = upcoming[~clean] * 10
    np.testing.assert_allclose(tenths, np.round(tenths), atol=1e-4)


def test_noisy_squares_seeded_and_fast():
    first = synthetic.generate_noisy_squares(5, seed=9)
    np.testing.assert_array_equal(first[0], synthetic.generate_noisy_squares(5, seed=9)[0])
    assert not np.array_equal(first[0], synthetic.generate_noisy_squares(5, seed=10)[0])
    # CPU time of this process, not wall time: other work on the same cores (a training run) does not count.
    timings = []
    for _ in range(2):
        start = time.process_time()
        synthetic.generate_noisy_squares(1200, seed=0)
        timings.append(time.process_time() - start)
    assert min(timings) < 2.0


def test_generate_moving_mnist_split_is_seeded_chunked_generation_from_the_split_digits():
    sequences = synthetic.generate_moving_mnist_split(5, seed=7, split="test", num_frames=4, chunk=2)
    assert sequences.shape == (5, 4, 64, 64, 1) and sequences.dtype == np.uint8
    digits, _ = mnist_digits.load_mnist_digits(split="test", verbose=False)
    seeds = np.random.SeedSequence(7).spawn(3)
    sizes = (2, 2, 1)
    expected = [synthetic.generate_moving_mnist(n, 4, digits=digits, seed=s) for n, s in zip(sizes, seeds, strict=True)]
    np.testing.assert_array_equal(sequences, np.concatenate(expected))
    again = synthetic.generate_moving_mnist_split(5, seed=7, split="test", num_frames=4, chunk=2)
    np.testing.assert_array_equal(sequences, again)
    train_digits = synthetic.generate_moving_mnist_split(5, seed=7, split="train", num_frames=4, chunk=2)
    assert not np.array_equal(sequences, train_digits)
