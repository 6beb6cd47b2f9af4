"""Moving MNIST generation speed on one core: ``synthetic.generate_moving_mnist`` against a per-sequence loop.

The reference below follows the same protocol (Srivastava et al. 2015: 28x28 digits on a 64x64 canvas,
start uniform in the free range, direction uniform in [0, 2 pi), 0.1 of the free range per frame, clamp and
reflect at the borders, overlaps combined with max) the straightforward way: a Python loop over sequences,
digits and frames that pastes one digit window at a time. It draws its random numbers exactly as the library
does, so both give the same array for the same seed, which the benchmark checks before timing them.

The process is pinned to one core (``os.sched_setaffinity``) before anything is timed.

Usage (from the repository root)::

    python -m benchmarks.generation_speed [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

from benchmarks import common
from keras_convlstm import mnist_digits, synthetic

NAME = "generation_speed"
FULL = {"ours_sequences": 2000, "naive_sequences": 300, "repeats": 5, "check_sequences": 50}
QUICK = {"ours_sequences": 100, "naive_sequences": 20, "repeats": 2, "check_sequences": 5}
NUM_FRAMES = 20
IMAGE_SIZE = 64
NUM_DIGITS = 2


def naive_moving_mnist(
    num_sequences: int, digits: np.ndarray, seed: int, num_frames: int = NUM_FRAMES, image_size: int = IMAGE_SIZE
) -> np.ndarray:
    """Moving MNIST by per-sequence Python loops: uint8 ``(num_sequences, num_frames, image_size, image_size, 1)``.

    Random numbers are drawn in the library's order (start positions, directions, digit choices) so that the
    result can be compared with :func:`keras_convlstm.synthetic.generate_moving_mnist` element by element.
    """
    rng = np.random.default_rng(seed)
    start = rng.random((num_sequences, NUM_DIGITS, 2))
    theta = rng.uniform(0.0, 2.0 * np.pi, size=(num_sequences, NUM_DIGITS))
    choices = rng.integers(0, len(digits), size=(num_sequences, NUM_DIGITS))
    # The trigonometry is evaluated as the library does (numpy's sin and cos); the motion is plain Python.
    step_rows = (synthetic.MOVING_MNIST_STEP * np.sin(theta)).tolist()
    step_cols = (synthetic.MOVING_MNIST_STEP * np.cos(theta)).tolist()
    size = digits.shape[1]
    free = image_size - size
    movies = np.zeros((num_sequences, num_frames, image_size, image_size, 1), dtype=np.uint8)
    for sequence in range(num_sequences):
        for digit_index in range(NUM_DIGITS):
            digit = digits[choices[sequence, digit_index]]
            row, col = start[sequence, digit_index].tolist()
            step_row, step_col = step_rows[sequence][digit_index], step_cols[sequence][digit_index]
            for frame in range(num_frames):
                if frame > 0:
                    row, col = row + step_row, col + step_col
                    if row <= 0.0 or row >= 1.0:
                        step_row = -step_row
                    if col <= 0.0 or col >= 1.0:
                        step_col = -step_col
                    row, col = min(max(row, 0.0), 1.0), min(max(col, 0.0), 1.0)
                top, left = round(row * free), round(col * free)
                window = movies[sequence, frame, top : top + size, left : left + size, 0]
                np.maximum(window, digit, out=window)
    return movies


def sequences_per_second(generate, count: int, repeats: int) -> tuple[float, list[float]]:
    """Median sequences/s of ``generate(count, seed)`` over ``repeats`` calls with different seeds.

    One untimed call comes first: the first large allocation of a process pays for fresh memory pages.
    """
    generate(count, repeats)
    seconds = []
    for seed in range(repeats):
        started = time.perf_counter()
        generate(count, seed)
        seconds.append(time.perf_counter() - started)
    return count / statistics.median(seconds), seconds


def pin_to_one_core() -> int | None:
    """Restricts this thread (and the threads it starts) to its first allowed core; returns that core."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = common.argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    settings = QUICK if args.quick else FULL
    core = pin_to_one_core()
    print(common.describe_machine(common.machine_info()), flush=True)
    print(f"pinned to core {core}" if core is not None else "could not pin to one core (no sched_setaffinity)")
    digits, _ = mnist_digits.load_mnist_digits(split="train", verbose=False)

    def ours(count: int, seed: int) -> np.ndarray:
        return synthetic.generate_moving_mnist(count, NUM_FRAMES, IMAGE_SIZE, NUM_DIGITS, seed=seed, digits=digits)

    def naive(count: int, seed: int) -> np.ndarray:
        return naive_moving_mnist(count, digits, seed)

    check = settings["check_sequences"]
    identical = bool(np.array_equal(ours(check, 123), naive(check, 123)))
    ours_rate, ours_seconds = sequences_per_second(ours, settings["ours_sequences"], settings["repeats"])
    naive_rate, naive_seconds = sequences_per_second(naive, settings["naive_sequences"], settings["repeats"])
    results = {
        "core": core,
        "identical_output": identical,
        "ours_sequences_per_s": ours_rate,
        "ours_call_seconds": ours_seconds,
        "naive_sequences_per_s": naive_rate,
        "naive_call_seconds": naive_seconds,
        "speedup": ours_rate / naive_rate,
    }
    rows = [
        ["synthetic.generate_moving_mnist (ours)", settings["ours_sequences"], ours_rate],
        ["per-sequence Python loop (reference)", settings["naive_sequences"], naive_rate],
    ]
    print(
        f"\n{NUM_FRAMES}-frame {IMAGE_SIZE}x{IMAGE_SIZE} sequences, {NUM_DIGITS} digits, one core; median of "
        f"{settings['repeats']} calls"
    )
    print(common.table(["generator", "sequences per call", "sequences/s"], rows))
    print(f"\nspeed-up: {results['speedup']:.3g}x; same output for the same seed ({check} sequences): {identical}")
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
