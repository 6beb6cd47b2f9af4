"""Owns a scene with physics: coloured balls under gravity, bouncing off the walls and off each other.

Moving MNIST digits move in straight lines at constant speed; these balls accelerate under gravity and exchange
momentum when they meet, so a forecaster has to learn curved paths and collisions. Everything is vectorised
numpy and seeded, so a seed gives the same video on every machine.

- :func:`simulate_balls`: the trajectories from an initial state (positions and velocities in pixels and pixels
  per frame), integrated in ``substeps`` steps per frame with elastic walls and elastic ball-ball collisions
  (masses proportional to the area of each disc).
- :func:`render_balls`: anti-aliased discs (each pixel covered in proportion to its overlap with the disc edge)
  over a black background, uint8 ``(time, height, width, 3)``.
- :func:`generate_bouncing_balls`: a random initial state drawn from ``seed``, simulated and rendered.
- :func:`write_mp4` and :func:`write_bouncing_balls`: such videos as ``.mp4`` files (H.264 through imageio's
  ``pyav`` plugin), a folder of them standing for a user's own videos
  (:func:`keras_convlstm.clips.load_video_clips` reads it).

Coordinates are ``(row, column)`` in pixels, rows growing downwards (gravity pulls towards larger rows); the
centre of pixel ``(i, j)`` is at ``(i + 0.5, j + 0.5)``, so a ball of radius ``r`` stays within
``[r, height - r] x [r, width - r]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import imageio.v3 as iio
import numpy as np

from keras_convlstm import files
from keras_convlstm.checks import check_integer, check_size

# Saturated colours, distinct on black and after H.264's halved colour resolution.
PALETTE = np.array(
    [(255, 64, 64), (64, 220, 64), (80, 120, 255), (255, 210, 40), (230, 80, 230), (40, 220, 220)], dtype=np.uint8
)
DEFAULT_FPS = 10
_PLACEMENT_ATTEMPTS = 1000  # random draws per ball before the balls are judged not to fit


class BallState(NamedTuple):
    """Balls at every frame.

    Attributes:
        positions: float64 ``(time, balls, 2)``: centres ``(row, column)`` in pixels.
        velocities: float64 ``(time, balls, 2)``: pixels per frame.
    """

    positions: np.ndarray
    velocities: np.ndarray


def _check_balls(positions: np.ndarray, velocities: np.ndarray, radii: np.ndarray, size: tuple[int, int]) -> None:
    count = len(radii)
    if radii.ndim != 1 or count == 0 or not np.all(radii > 0):
        raise ValueError(f"expected radii of shape (balls,) with every radius > 0, got {radii.tolist()!r}")
    for name, value in (("positions", positions), ("velocities", velocities)):
        if value.shape != (count, 2) or not np.all(np.isfinite(value)):
            raise ValueError(f"expected finite {name} of shape ({count}, 2) for {count} balls, got {value.shape}")
    low, high = radii[:, None], np.asarray(size, dtype=np.float64) - radii[:, None]
    if np.any(positions < low) or np.any(positions > high):
        raise ValueError(
            f"expected every ball inside the {size[0]}x{size[1]} frame (centre at least its radius from each wall), "
            f"got centres {positions.tolist()} with radii {radii.tolist()}"
        )


def _bounce_off_walls(
    positions: np.ndarray, velocities: np.ndarray, radii: np.ndarray, size: np.ndarray, gravity: float
) -> None:
    """Mirrors a ball that crossed a wall back inside and reverses that velocity component, in place.

    The mirrored ball sits higher or lower than where it crossed: its vertical speed is set from the energy
    ``speed**2 / 2 - gravity * row``, which the bounce keeps.
    """
    low, high = radii[:, None], size - radii[:, None]
    below, above = positions < low, positions > high
    mirrored = np.where(below, 2 * low - positions, np.where(above, 2 * high - positions, positions))
    vertical_speed = np.sqrt(np.maximum(velocities[:, 0] ** 2 + 2 * gravity * (mirrored[:, 0] - positions[:, 0]), 0))
    speed = np.stack([vertical_speed, np.abs(velocities[:, 1])], axis=-1)
    positions[:] = mirrored
    velocities[:] = np.where(below, speed, np.where(above, -speed, velocities))


def _collide(positions: np.ndarray, velocities: np.ndarray, radii: np.ndarray) -> None:
    """Elastic collisions of every pair of touching balls that approach each other, in place.

    Each pair exchanges momentum along the line joining the centres (masses proportional to ``radius**2``), and
    overlapping balls are pushed apart, keeping their centre of mass, so that they cannot stick together. Pairs
    are found at once and resolved one after the other, so a ball touching two others conserves energy too.
    """
    first, second = np.triu_indices(len(radii), k=1)
    distance = np.linalg.norm(positions[first] - positions[second], axis=-1)
    touching = (distance < radii[first] + radii[second]) & (distance > 0)
    mass = radii**2
    for one, other in zip(first[touching], second[touching], strict=True):
        offset = positions[one] - positions[other]
        gap = np.linalg.norm(offset)
        normal = offset / gap
        closing = np.dot(velocities[one] - velocities[other], normal)
        share_one, share_other = mass[other] / (mass[one] + mass[other]), mass[one] / (mass[one] + mass[other])
        if closing < 0:
            velocities[one] -= 2 * share_one * closing * normal
            velocities[other] += 2 * share_other * closing * normal
        overlap = max(radii[one] + radii[other] - gap, 0.0) * normal
        positions[one] += share_one * overlap
        positions[other] -= share_other * overlap


def simulate_balls(
    positions: np.ndarray,
    velocities: np.ndarray,
    radii: np.ndarray,
    num_frames: int,
    image_size: int | tuple[int, int] = 64,
    *,
    gravity: float = 0.15,
    collisions: bool = True,
    substeps: int = 8,
) -> BallState:
    """Moves balls under gravity for ``num_frames`` frames; frame 0 is the initial state.

    Each frame is ``substeps`` steps; a step moves every ball along its exact parabola under gravity, then
    resolves ball-ball collisions, then the walls. Flight, walls and collisions keep the total energy
    ``sum(mass * (speed**2 / 2 - gravity * row))`` up to rounding, unless a collision pushes a slow ball into a
    wall.

    Args:
        positions: ``(balls, 2)`` initial centres ``(row, column)`` in pixels, each inside the frame.
        velocities: ``(balls, 2)`` initial velocities in pixels per frame.
        radii: ``(balls,)`` radii in pixels.
        num_frames: frames to return, >= 1.
        image_size: ``(height, width)`` or one side.
        gravity: downward acceleration in pixels per frame squared (0: none).
        collisions: whether balls bounce off each other (False: they pass through).
        substeps: integration steps per frame.

    Returns:
        A :class:`BallState` of ``num_frames`` frames.

    Raises:
        ValueError: arrays of the wrong shape, a ball outside the frame, or a bad number.
    """
    num_frames, substeps = check_integer(num_frames, "num_frames"), check_integer(substeps, "substeps")
    size = check_size(image_size, "image_size")
    position, velocity = np.array(positions, dtype=np.float64), np.array(velocities, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    _check_balls(position, velocity, radii, size)
    if not np.isfinite(gravity):
        raise ValueError(f"gravity must be a finite number of pixels per frame squared, got {gravity!r}")
    bounds = np.asarray(size, dtype=np.float64)
    step, pull = 1.0 / substeps, np.array([gravity, 0.0])
    all_positions, all_velocities = np.empty((2, num_frames, len(radii), 2))
    all_positions[0], all_velocities[0] = position, velocity
    for frame in range(1, num_frames):
        for _ in range(substeps):
            position += velocity * step + pull * (step**2 / 2)
            velocity += pull * step
            if collisions:
                _collide(position, velocity, radii)
            _bounce_off_walls(position, velocity, radii, bounds, gravity)
        all_positions[frame], all_velocities[frame] = position, velocity
    return BallState(all_positions, all_velocities)


def render_balls(
    positions: np.ndarray, radii: np.ndarray, colours: np.ndarray, image_size: int | tuple[int, int] = 64
) -> np.ndarray:
    """Draws anti-aliased discs on black, later balls over earlier ones.

    A pixel's coverage is ``clip(radius + 0.5 - distance, 0, 1)`` for the distance from its centre to the
    ball's centre: 1 inside, 0 outside, a one-pixel ramp across the edge.

    Args:
        positions: ``(time, balls, 2)`` centres ``(row, column)`` in pixels.
        radii: ``(balls,)`` radii in pixels.
        colours: ``(balls, 3)`` uint8 RGB colours.
        image_size: ``(height, width)`` or one side.

    Returns:
        uint8 ``(time, height, width, 3)`` in [0, 255].
    """
    height, width = check_size(image_size, "image_size")
    positions, radii = np.asarray(positions, dtype=np.float64), np.asarray(radii, dtype=np.float64)
    colours = np.asarray(colours)
    if positions.ndim != 3 or positions.shape[1:] != (len(radii), 2) or colours.shape != (len(radii), 3):
        raise ValueError(
            f"expected positions (time, {len(radii)}, 2) and colours ({len(radii)}, 3) for {len(radii)} radii, "
            f"got {positions.shape} and {colours.shape}"
        )
    rows = np.arange(height) + 0.5
    cols = np.arange(width) + 0.5
    frames = np.zeros((len(positions), height, width, 3))
    for ball, radius in enumerate(radii):
        row_gap = rows[None, :, None] - positions[:, ball, 0, None, None]
        col_gap = cols[None, None, :] - positions[:, ball, 1, None, None]
        coverage = np.clip(radius + 0.5 - np.hypot(row_gap, col_gap), 0.0, 1.0)[..., None]
        frames = frames * (1 - coverage) + colours[ball].astype(np.float64) * coverage
    return np.round(frames).astype(np.uint8)


def _initial_state(
    num_balls: int, size: tuple[int, int], radius: tuple[float, float], speed: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random radii, non-overlapping positions, velocities and palette colours, all drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    radii = rng.uniform(*radius, size=num_balls)
    positions = np.zeros((num_balls, 2))
    for ball in range(num_balls):
        for _ in range(_PLACEMENT_ATTEMPTS):
            candidate = rng.uniform(radii[ball], np.asarray(size) - radii[ball])
            gaps = np.linalg.norm(positions[:ball] - candidate, axis=-1) - radii[:ball] - radii[ball]
            if np.all(gaps > 0):
                positions[ball] = candidate
                break
        else:
            raise ValueError(
                f"expected {num_balls} balls of radius {radius[0]}-{radius[1]} px to fit apart in a "
                f"{size[0]}x{size[1]} frame, got no room after {_PLACEMENT_ATTEMPTS} tries for ball {ball + 1}"
            )
    angles = rng.uniform(0, 2 * np.pi, size=num_balls)
    velocities = rng.uniform(*speed, size=num_balls)[:, None] * np.stack([np.sin(angles), np.cos(angles)], axis=-1)
    if num_balls <= len(PALETTE):
        colours = PALETTE[rng.permutation(len(PALETTE))[:num_balls]]
    else:
        colours = PALETTE[rng.integers(0, len(PALETTE), size=num_balls)]
    return positions, velocities, radii, colours


def _check_range(value: object, name: str) -> tuple[float, float]:
    low, high = value if isinstance(value, tuple | list) and len(value) == 2 else (None, None)
    if low is None or not 0 < float(low) <= float(high) or not np.isfinite(float(high)):
        raise ValueError(f"{name} must be a pair (low, high) with 0 < low <= high, got {value!r}")
    return float(low), float(high)


def generate_bouncing_balls(
    num_frames: int = 20,
    image_size: int | tuple[int, int] = 64,
    *,
    num_balls: int = 3,
    radius: tuple[float, float] = (5.0, 9.0),
    speed: tuple[float, float] = (1.5, 3.0),
    gravity: float = 0.15,
    collisions: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """A colour video of balls bouncing under gravity, drawn from ``seed``.

    Radii are uniform in ``radius``, speeds uniform in ``speed`` (pixels per frame) in a uniform direction,
    positions uniform among those where no two balls overlap, colours distinct picks from :data:`PALETTE`.

    Args:
        num_frames: frames, >= 1.
        image_size: ``(height, width)`` or one side.
        num_balls: balls, >= 1.
        radius: ``(low, high)`` radius in pixels.
        speed: ``(low, high)`` initial speed in pixels per frame.
        gravity: downward acceleration in pixels per frame squared.
        collisions: whether balls bounce off each other.
        seed: the seed of every random draw.

    Returns:
        uint8 ``(num_frames, height, width, 3)`` in [0, 255].

    Raises:
        ValueError: a bad argument, or balls too large to fit apart in the frame.
    """
    size = check_size(image_size, "image_size")
    num_balls = check_integer(num_balls, "num_balls")
    positions, velocities, radii, colours = _initial_state(
        num_balls, size, _check_range(radius, "radius"), _check_range(speed, "speed"), seed
    )
    state = simulate_balls(positions, velocities, radii, num_frames, size, gravity=gravity, collisions=collisions)
    return render_balls(state.positions, radii, colours, size)


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int = DEFAULT_FPS) -> Path:
    """Writes uint8 RGB frames ``(time, height, width, 3)`` as an H.264 ``.mp4`` file, atomically.

    Height and width must be even (H.264 stores colour at half resolution).

    Raises:
        ValueError: frames of another dtype or shape, or odd sides.
    """
    frames = np.asarray(frames)
    if (
        frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[-1] != 3
        or frames.shape[1] % 2
        or frames.shape[2] % 2
    ):
        raise ValueError(
            f"expected uint8 RGB frames (time, height, width, 3) with even height and width, "
            f"got {frames.dtype} {frames.shape}"
        )
    fps = check_integer(fps, "fps")
    with files.atomic_path(path) as temporary:
        iio.imwrite(temporary, frames, plugin="pyav", codec="libx264", fps=fps)
    return Path(path)


def write_bouncing_balls(
    folder: str | os.PathLike,
    num_videos: int,
    num_frames: int = 40,
    image_size: int | tuple[int, int] = 64,
    *,
    seed: int = 0,
    fps: int = DEFAULT_FPS,
    **scene: object,
) -> list[Path]:
    """Writes ``num_videos`` videos of :func:`generate_bouncing_balls` as ``folder/balls_000.mp4``, ...

    Video ``i`` is drawn from seed ``seed + i``; ``scene`` passes ``num_balls``, ``radius``, ``speed``,
    ``gravity`` and ``collisions`` on.

    Returns:
        The paths written, in order.
    """
    num_videos = check_integer(num_videos, "num_videos")
    folder = files.check_folder_path(folder)
    width = len(str(num_videos - 1))
    paths = []
    for index in range(num_videos):
        frames = generate_bouncing_balls(num_frames, image_size, seed=seed + index, **scene)
        paths.append(write_mp4(folder / f"balls_{index:0{max(width, 3)}d}.mp4", frames, fps))
    return paths
