"""Solutions to the exercises of notebook 05 (bouncing balls written as .mp4 files, read as a user's videos).

Each ``exercise_N`` computes its answer and asserts it; all run in seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from keras_convlstm import bouncing_balls, clips, evaluation, metrics


def exercise_1() -> float:
    """Without gravity a ball moves in straight lines between bounces: its speed never changes.

    One ball, no collisions: between two frames its velocity either stays the same or has a component reversed
    by a wall, so both absolute components stay at their starting values. Returns the largest change of speed.
    """
    start, velocity = np.array([[20.0, 30.0]]), np.array([[2.3, -1.7]])
    state = bouncing_balls.simulate_balls(start, velocity, np.array([5.0]), 100, 64, gravity=0.0)
    np.testing.assert_allclose(np.abs(state.velocities), np.abs(velocity) + np.zeros((100, 1, 2)), atol=1e-12)
    reversals = np.sum(np.diff(np.sign(state.velocities), axis=0) != 0)
    assert reversals > 2  # it did hit walls
    speed = np.linalg.norm(state.velocities, axis=-1)
    return float(np.abs(speed - speed[0]).max())


def exercise_2() -> float:
    """The total energy ``sum(mass * (speed**2 / 2 - gravity * row))`` of colliding balls stays constant.

    Masses are proportional to the disc areas (``radius**2``); rows grow downwards, so falling lowers
    ``-gravity * row``. Returns the largest relative change over 500 frames.
    """
    radii = np.array([6.0, 5.0, 7.0, 4.0])
    start = np.array([[15.0, 12.0], [30.0, 30.0], [45.0, 50.0], [50.0, 15.0]])
    velocity = np.array([[1.0, 2.0], [-1.5, 0.5], [0.5, -2.0], [-2.0, -1.0]])
    gravity = 0.15
    state = bouncing_balls.simulate_balls(start, velocity, radii, 500, 64, gravity=gravity)
    energy = (radii**2 * (0.5 * (state.velocities**2).sum(-1) - gravity * state.positions[..., 0])).sum(-1)
    change = float(np.abs(energy / energy[0] - 1).max())
    assert change < 1e-9
    return change


def exercise_3() -> tuple[float, int]:
    """How much H.264 changes the frames: the mean and largest absolute difference per pixel value.

    The mean is a few levels out of 255; the largest is much larger, at the edges of the balls, because H.264
    stores colour at half resolution.
    """
    frames = bouncing_balls.generate_bouncing_balls(30, 64, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        path = bouncing_balls.write_mp4(Path(folder) / "balls.mp4", frames)
        decoded = clips.read_frames(path, frame_size=None, channels=3)
    difference = np.abs(decoded.astype(np.int64) - frames)
    assert decoded.shape == frames.shape and difference.mean() < 4
    return float(difference.mean()), int(difference.max())


def exercise_4() -> np.ndarray:
    """Where copy-last-frame is weakest: its MSE per forecast step on rendered clips, frames 11-20 from 1-10.

    The error grows with the step, as the balls move away from where they were; a model gains most at the later
    steps, and most of all on clips with a bounce there (copy-last-frame cannot turn a ball round). Check it by
    splitting the per-step scores of a trained model into clips with and without a bounce in the horizon.
    """
    videos = np.stack([bouncing_balls.generate_bouncing_balls(20, 64, seed=seed) for seed in range(8)])
    context, truth = videos[:, :10] / np.float32(255), videos[:, 10:] / np.float32(255)
    per_step = metrics.frame_metrics(evaluation.copy_last_frame(context, 10), truth)["mse"]
    assert per_step[-1] > 2 * per_step[0]
    return per_step
