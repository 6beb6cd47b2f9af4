"""Data-parallel training on this machine: sequences/s on 1 device and on 2 replicas at the same global batch.

The CPU is split into 2 logical devices (``keras_convlstm.distribute.data_parallel(2)``); both share the same
cores, so 2 replicas cannot be faster than 1: the ratio measures what the data-parallel path costs (splitting the
batch, two smaller convolutions instead of one, the gradient all-reduce). Each system trains with ``model.fit``
on the same generated sequences in float32; the first steps (tracing) are excluded from the timing.

Usage (from the repository root)::

    python -m benchmarks.replicas [--quick]
"""

from __future__ import annotations

import contextlib
import sys

import keras

from benchmarks import common
from keras_convlstm import data, distribute
from keras_convlstm.models import build_model

NAME = "replicas"
FULL = {"stride": 1, "num_frames": 20, "seed": 0, "fast": (16, 3, 12), "official": (4, 1, 4)}
QUICK = {"stride": 4, "num_frames": 6, "seed": 0, "fast": (4, 1, 2), "official": (2, 1, 2)}
# (label, preset, settings key holding (global batch, warm-up steps, timed steps))
SYSTEMS = (("cpu-fast", "cpu-fast", "fast"), ("official network", "keras-example", "official"))


def measure(preset: str, distribution, batch: tuple[int, int, int], train, settings: dict) -> dict:
    """Times ``model.fit`` of ``preset`` on one device (``distribution=None``) or on a replica under it."""
    batch_size, warmup, timed = batch
    count = batch_size * (warmup + timed)
    keras.utils.set_random_seed(settings["seed"])
    model = build_model(preset, image_size=64 // settings["stride"], precision="float32")
    if distribution is not None:
        model = distribute.replicate(model, distribution)
    with contextlib.nullcontext() if distribution is None else distribution.scope():
        timing = common.time_fit(model, train[0][:count], train[1][:count], batch_size=batch_size, warmup_steps=warmup)
    keras.backend.clear_session()
    return {"batch_size": batch_size, **timing}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = common.argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    settings = QUICK if args.quick else FULL
    strategy = distribute.data_parallel(2)  # before any model: TensorFlow fixes its devices then
    largest = max(size * (warmup + timed) for size, warmup, timed in (settings["fast"], settings["official"]))
    frames = {"num_frames": settings["num_frames"], "stride": settings["stride"]}
    train = data.create_shifted_frames(common.moving_mnist(largest, seed=1, **frames))
    print(common.describe_machine(common.machine_info()), flush=True)
    systems, rows = {}, []
    for label, preset, key in SYSTEMS:
        for replicas, distribution in ((1, None), (2, strategy)):
            print(f"training {label} on {replicas} replica(s) ...", flush=True)
            entry = measure(preset, distribution, settings[key], train, settings)
            systems[f"{label}, {replicas} replica(s)"] = {"replicas": replicas, **entry}
            rows.append([label, replicas, entry["batch_size"], entry["sequences_per_s"], entry["seconds_per_step"]])
    ratios = {
        label: systems[f"{label}, 2 replica(s)"]["sequences_per_s"]
        / systems[f"{label}, 1 replica(s)"]["sequences_per_s"]
        for label, _, _ in SYSTEMS
    }
    results = {"systems": systems, "two_over_one_replica": ratios}
    print()
    print(common.table(["system", "replicas", "global batch", "seq/s", "s/step"], rows))
    for label, ratio in ratios.items():
        print(f"{label}: 2 replicas / 1 device throughput {ratio:.3g}x")
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
