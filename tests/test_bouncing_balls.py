"""Bouncing balls: trajectories against closed-form motion, conserved energy, discs, and .mp4 files read back."""

import numpy as np
import pytest

from keras_convlstm import bouncing_balls, clips

SIZE = 64


def energy(state: bouncing_balls.BallState, radii: np.ndarray, gravity: float) -> np.ndarray:
    """Total energy per frame, masses proportional to the disc areas (rows grow downwards)."""
    kinetic = 0.5 * (state.velocities**2).sum(-1)
    return ((radii**2) * (kinetic - gravity * state.positions[..., 0])).sum(-1)


def test_a_seed_gives_the_same_colour_video_and_another_seed_another():
    frames = bouncing_balls.generate_bouncing_balls(12, (48, 64), num_balls=3, seed=7)
    assert frames.shape == (12, 48, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, bouncing_balls.generate_bouncing_balls(12, (48, 64), num_balls=3, seed=7))
    assert not np.array_equal(frames, bouncing_balls.generate_bouncing_balls(12, (48, 64), num_balls=3, seed=8))
    colours = {tuple(pixel) for pixel in frames[0].reshape(-1, 3)}
    assert len(set(map(tuple, bouncing_balls.PALETTE)) & colours) == 3  # three distinct palette colours drawn
    assert not np.array_equal(frames[0], frames[-1])  # the balls move


def test_without_gravity_or_walls_a_ball_moves_in_a_straight_line():
    start, velocity = np.array([[30.0, 20.0]]), np.array([[0.7, 1.3]])
    state = bouncing_balls.simulate_balls(start, velocity, np.array([4.0]), 15, SIZE, gravity=0.0, collisions=False)
    times = np.arange(15)[:, None, None]
    np.testing.assert_allclose(state.positions, start + times * velocity, rtol=0, atol=1e-9)
    np.testing.assert_allclose(state.velocities, np.broadcast_to(velocity, (15, 1, 2)), rtol=0, atol=1e-12)


def test_under_gravity_a_free_ball_follows_the_parabola():
    start, velocity, gravity = np.array([[10.0, 12.0]]), np.array([[-0.5, 1.0]]), 0.2
    state = bouncing_balls.simulate_balls(start, velocity, np.array([3.0]), 20, SIZE, gravity=gravity)
    times = np.arange(20)[:, None, None]
    expected = start + times * velocity + 0.5 * np.array([gravity, 0.0]) * times**2
    assert expected[..., 0].max() < SIZE - 3  # the reference never reaches a wall
    np.testing.assert_allclose(state.positions, expected, rtol=0, atol=1e-9)


def test_walls_reflect_a_ball_like_a_folded_straight_line():
    radius, start, velocity = 5.0, np.array([[20.0, 50.0]]), np.array([[3.1, 2.7]])
    state = bouncing_balls.simulate_balls(start, velocity, np.array([radius]), 80, SIZE, gravity=0.0)
    # Unfolded, the centre moves in a straight line over a track of length SIZE - 2 * radius; walls fold it back.
    track = SIZE - 2 * radius
    unfolded = (start - radius) + np.arange(80)[:, None, None] * velocity
    folded = np.abs((unfolded + track) % (2 * track) - track)
    np.testing.assert_allclose(state.positions, radius + folded, rtol=0, atol=1e-9)


def test_equal_balls_meeting_head_on_swap_velocities():
    start = np.array([[32.0, 20.0], [32.0, 44.0]])
    velocity = np.array([[0.0, 1.5], [0.0, -0.5]])
    state = bouncing_balls.simulate_balls(start, velocity, np.array([4.0, 4.0]), 12, SIZE, gravity=0.0)
    np.testing.assert_allclose(state.velocities[-1], velocity[::-1], atol=1e-12)
    assert state.positions[-1, 0, 1] < state.positions[-1, 1, 1] - 8  # apart again, in the same order


@pytest.mark.parametrize("seed", range(4))
def test_energy_is_conserved_and_every_ball_stays_inside(seed):
    rng = np.random.default_rng(seed)
    radii = rng.uniform(4, 8, size=5)
    columns = np.linspace(10, SIZE - 10, 5)
    start = np.stack([rng.uniform(10, SIZE - 10, size=5), columns], axis=-1)
    velocity = rng.uniform(-2.5, 2.5, size=(5, 2))
    gravity = 0.15
    state = bouncing_balls.simulate_balls(start, velocity, radii, 300, SIZE, gravity=gravity)
    total = energy(state, radii, gravity)
    np.testing.assert_allclose(total, total[0], rtol=1e-9)
    assert np.all(state.positions >= radii[:, None]) and np.all(state.positions <= SIZE - radii[:, None])
    # The collisions happened: with balls passing through each other the velocities differ.
    ghosts = bouncing_balls.simulate_balls(start, velocity, radii, 300, SIZE, gravity=gravity, collisions=False)
    assert not np.allclose(state.velocities[-1], ghosts.velocities[-1])


def test_a_disc_has_its_colour_inside_its_area_and_black_around():
    colour = np.array([[200, 100, 50]], dtype=np.uint8)
    frames = bouncing_balls.render_balls(np.array([[[20.5, 30.5]]]), np.array([6.0]), colour, (40, 60))
    assert frames.shape == (1, 40, 60, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0, 20, 30], colour[0])
    np.testing.assert_array_equal(frames[0, 20, 40:], 0)
    coverage = frames[0, ..., 0].astype(np.float64).sum() / 200
    assert abs(coverage - np.pi * 6.0**2) < 0.02 * np.pi * 6.0**2  # anti-aliased edge: the area of the disc
    partial = frames[0, ..., 0][(frames[0, ..., 0] > 0) & (frames[0, ..., 0] < 200)]
    assert len(partial) > 20  # a soft edge, not a jagged one


def test_written_mp4_videos_read_back_as_clips(tmp_path):
    paths = bouncing_balls.write_bouncing_balls(tmp_path / "videos", 2, num_frames=30, image_size=SIZE, seed=3)
    assert [path.name for path in paths] == ["balls_000.mp4", "balls_001.mp4"]
    clip_set = clips.load_video_clips(
        tmp_path / "videos", 10, channels=3, frame_size=SIZE, cache_dir=tmp_path / "cache", verbose=False
    )
    assert clip_set.clips.shape == (6, 10, SIZE, SIZE, 3) and clip_set.clips.dtype == np.uint8
    assert clip_set.videos == ["balls_000.mp4", "balls_001.mp4"]
    rendered = bouncing_balls.generate_bouncing_balls(30, SIZE, seed=4)
    error = np.abs(clip_set.clips[3:].reshape(rendered.shape).astype(np.int64) - rendered)
    assert error.mean() < 4  # H.264 is lossy, but close


def test_bad_input_gives_one_line_errors_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"expected every ball inside the 64x64 frame"):
        bouncing_balls.simulate_balls(np.array([[2.0, 30.0]]), np.zeros((1, 2)), np.array([4.0]), 5)
    with pytest.raises(ValueError, match=r"expected 6 balls of radius 20.0-20.0 px to fit apart in a 64x64 frame"):
        bouncing_balls.generate_bouncing_balls(5, num_balls=6, radius=(20, 20))
    with pytest.raises(ValueError, match=r"radius must be a pair \(low, high\) with 0 < low <= high, got \(5, 2\)"):
        bouncing_balls.generate_bouncing_balls(5, radius=(5, 2))
    with pytest.raises(ValueError, match=r"with even height and width, got uint8 \(3, 15, 16, 3\)"):
        bouncing_balls.write_mp4(tmp_path / "odd.mp4", np.zeros((3, 15, 16, 3), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []
