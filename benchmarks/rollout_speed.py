"""Rollout speed: ``rollout.predict_rollout`` against the official loop (``rollout.official_rollout``).

The official network (``build_model("keras-example")``, seeded weights) continues Moving MNIST sequences from
their first ``context`` frames by ``horizon`` frames. The official loop calls ``model.predict`` on the whole
sequence so far for every new frame (quadratic work, a new input length each step); ``predict_rollout`` steps
the layers one frame at a time (linear work, one compiled step). Each batch size gets a freshly built model,
so the first call of each path includes its tracing, as a user meets it; the steady state is the median of
the calls after it. Both paths must give the same frames: the largest absolute difference is reported.

Usage (from the repository root)::

    python -m benchmarks.rollout_speed [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time

import keras
import numpy as np

from benchmarks import common, flops
from keras_convlstm import models, rollout, synthetic

NAME = "rollout_speed"
FULL = {"stride": 1, "context": 10, "horizon": 10, "batch_sizes": [1, 8], "repeats": 3, "official_repeats": 2}
QUICK = {"stride": 4, "context": 4, "horizon": 3, "batch_sizes": [1, 2], "repeats": 2, "official_repeats": 1}
SEED = 0
TARGET_SPEEDUP = 10.0
TARGET_MAX_DIFFERENCE = 1e-5


def timed_calls(function, repeats: int) -> tuple[np.ndarray, float, list[float]]:
    """Calls ``function`` ``1 + repeats`` times: returns its last output, the first call's and the later times."""
    seconds = []
    for _ in range(1 + repeats):
        started = time.perf_counter()
        output = function()
        seconds.append(time.perf_counter() - started)
    return output, seconds[0], seconds[1:]


def warm_up_runtime() -> None:
    """Runs both paths once on a tiny throwaway model, so that one-time runtime start-up is charged to neither."""
    tiny = models.build_model("keras-example", image_size=8, filters=(2, 2, 2))
    frames = np.zeros((1, 2, 8, 8, 1), np.float32)
    rollout.predict_rollout(tiny, frames, 2)
    rollout.official_rollout(tiny, frames, 2)
    keras.backend.clear_session()


def frames_run(settings: dict) -> tuple[int, int]:
    """Frames per sequence that the official loop and ``predict_rollout`` push through the network."""
    context, horizon = settings["context"], settings["horizon"]
    return sum(range(context, context + horizon)), context + horizon - 1


def measure(batch_size: int, sequences: np.ndarray, settings: dict) -> dict:
    """Times both rollouts of a freshly built, seeded official network on ``batch_size`` sequences."""
    keras.utils.set_random_seed(SEED)
    model = models.build_model("keras-example", image_size=64 // settings["stride"])
    context, horizon = sequences[:batch_size, : settings["context"]], settings["horizon"]
    ours, ours_first, ours_steady = timed_calls(
        lambda: rollout.predict_rollout(model, context, horizon), settings["repeats"]
    )
    official, official_first, official_steady = timed_calls(
        lambda: rollout.official_rollout(model, context, horizon), settings["official_repeats"]
    )
    frame_flops = sum(flops.conv_flops_per_frame(model).values())
    keras.backend.clear_session()
    ours_median, official_median = statistics.median(ours_steady), statistics.median(official_steady)
    official_frames, ours_frames = (batch_size * frames for frames in frames_run(settings))
    return {
        "batch_size": batch_size,
        "ours_first_s": ours_first,
        "ours_steady_s": ours_median,
        "ours_steady_all_s": ours_steady,
        "official_first_s": official_first,
        "official_steady_s": official_median,
        "official_steady_all_s": official_steady,
        "speedup_first": official_first / ours_first,
        "speedup_steady": official_median / ours_median,
        "max_abs_difference": float(np.max(np.abs(ours - official))),
        "conv_flops_per_frame": frame_flops,
        "ours_steady_gflops": ours_frames * frame_flops / ours_median / 1e9,
        "official_steady_gflops": official_frames * frame_flops / official_median / 1e9,
    }


def report(results: list[dict]) -> str:
    header = [
        "batch",
        "ours first s",
        "ours steady s",
        "official first s",
        "official steady s",
        "speed-up first",
        "speed-up steady",
        "max |diff|",
        "ours GFLOP/s",
        "official GFLOP/s",
    ]
    rows = [
        [
            entry["batch_size"],
            entry["ours_first_s"],
            entry["ours_steady_s"],
            entry["official_first_s"],
            entry["official_steady_s"],
            entry["speedup_first"],
            entry["speedup_steady"],
            f"{entry['max_abs_difference']:.2e}",
            entry["ours_steady_gflops"],
            entry["official_steady_gflops"],
        ]
        for entry in results
    ]
    met = all(
        entry["speedup_steady"] >= TARGET_SPEEDUP and entry["max_abs_difference"] <= TARGET_MAX_DIFFERENCE
        for entry in results
    )
    verdict = "met" if met else "NOT met"
    return (
        f"{common.table(header, rows)}\n\n"
        f"Target (steady speed-up >= {TARGET_SPEEDUP:g}x and max |diff| <= {TARGET_MAX_DIFFERENCE:g}): {verdict}"
    )


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args = common.argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    settings = QUICK if args.quick else FULL
    sequences = common.moving_mnist(
        max(settings["batch_sizes"]),
        seed=synthetic.HELD_OUT_SEED,
        split="test",
        num_frames=settings["context"] + settings["horizon"],
        stride=settings["stride"],
    )
    print(common.describe_machine(common.machine_info()), flush=True)
    warm_up_runtime()
    results = []
    for batch_size in settings["batch_sizes"]:
        print(f"rolling out batch {batch_size} ...", flush=True)
        results.append(measure(batch_size, sequences, settings))
    print(
        f"\n{settings['horizon']}-frame rollout from {settings['context']} context frames, official network "
        f"({64 // settings['stride']}x{64 // settings['stride']}); steady = median of the later calls"
    )
    print(report(results))
    official_steps, ours_steps = frames_run(settings)
    print(
        f"Frames run through the network: official {official_steps}, ours {ours_steps} "
        f"(ratio {official_steps / ours_steps:.3g}: the speed-up of compute-bound work with equal per-frame cost)"
    )
    ceiling = flops.peak(common.cpu_info())
    print(
        "GFLOP/s: forward convolution FLOPs of the frames each path runs (benchmarks.flops counts) per steady "
        f"second; {flops.describe_peak(ceiling)}"
    )
    common.finish(NAME, args, argv, {**settings, "peak": ceiling}, results)
    return results


if __name__ == "__main__":
    main()
