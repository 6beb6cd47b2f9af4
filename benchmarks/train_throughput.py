"""Training throughput of the official network in float32 and bfloat16, and of the cpu-fast preset.

Every system trains with ``model.fit`` on the same generated 20-frame Moving MNIST sequences (inputs frames
0..18, targets 1..19, float32 in [0, 1]); the first steps (tracing) are excluded from the timing. The official
network in float32 is the keras.io example's configuration; ``precision="bfloat16"`` is the same network, same
seed, same batches under the mixed_bfloat16 policy. After the same steps both are scored on held-out sequences
(generated from the held-out test digits) with their training loss, binary cross-entropy, to check that
bfloat16 does not learn worse.

Usage (from the repository root)::

    python -m benchmarks.train_throughput [--quick]
"""

from __future__ import annotations

import sys

import keras

from benchmarks import common
from keras_convlstm import data, synthetic

NAME = "train_throughput"
FULL = {
    "stride": 1,
    "num_frames": 20,
    "official_batch_size": 5,
    "official_warmup_steps": 2,
    "official_timed_steps": 12,
    "fast_batch_size": 16,
    "fast_warmup_steps": 3,
    "fast_timed_steps": 20,
    "heldout_sequences": 20,
    "seed": 0,
}
QUICK = {
    "stride": 4,
    "num_frames": 6,
    "official_batch_size": 2,
    "official_warmup_steps": 1,
    "official_timed_steps": 2,
    "fast_batch_size": 4,
    "fast_warmup_steps": 1,
    "fast_timed_steps": 2,
    "heldout_sequences": 2,
    "seed": 0,
}
# (label, preset, overrides, which batch settings)
SYSTEMS = (
    ("official network, float32 (official)", "keras-example", {}, "official"),
    ("official network, bfloat16", "keras-example", {"precision": "bfloat16"}, "official"),
    ("cpu-fast", "cpu-fast", {}, "fast"),
)


def measure(preset: str, overrides: dict, settings: dict, group: str, train, heldout) -> dict:
    """Builds ``preset`` from the seed, times ``model.fit`` and scores the held-out BCE after those steps."""
    batch_size = settings[f"{group}_batch_size"]
    warmup = settings[f"{group}_warmup_steps"]
    count = batch_size * (warmup + settings[f"{group}_timed_steps"])
    model, timing = common.timed_training(
        preset,
        train[0][:count],
        train[1][:count],
        batch_size=batch_size,
        warmup_steps=warmup,
        seed=settings["seed"],
        image_size=64 // settings["stride"],
        **overrides,
    )
    heldout_bce = float(model.evaluate(heldout[0], heldout[1], batch_size=batch_size, verbose=0))
    keras.backend.clear_session()
    return {
        "preset": preset,
        "precision": model.config.precision,
        "batch_size": batch_size,
        "warmup_steps": warmup,
        "trained_steps": warmup + timing["timed_steps"],
        "heldout_bce": heldout_bce,
        **timing,
    }


def report(results: dict) -> str:
    """The results table and the ratios."""
    rows = [
        [
            label,
            entry["precision"],
            entry["batch_size"],
            entry["sequences_per_s"],
            entry["seconds_per_step"],
            entry["first_step_s"],
            entry["trained_steps"],
            entry["heldout_bce"],
        ]
        for label, entry in results["systems"].items()
    ]
    header = ["system", "precision", "batch", "seq/s", "s/step", "first step s", "steps", "held-out BCE"]
    ratios = results["ratios"]
    return "\n".join(
        [
            common.table(header, rows),
            "",
            f"bfloat16 / float32 throughput (official network): {ratios['bf16_over_fp32']:.3g}x",
            f"cpu-fast / official float32 throughput:            {ratios['cpu_fast_over_official_fp32']:.3g}x",
            f"held-out BCE, bfloat16 minus float32 after the same steps: {ratios['heldout_bce_bf16_minus_fp32']:+.4g} "
            f"({ratios['heldout_bce_bf16_relative']:+.3%} of float32)",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = common.argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    settings = QUICK if args.quick else FULL
    common_frames = {"num_frames": settings["num_frames"], "stride": settings["stride"]}
    largest = max(
        settings[f"{group}_batch_size"] * (settings[f"{group}_warmup_steps"] + settings[f"{group}_timed_steps"])
        for group in ("official", "fast")
    )
    train = data.create_shifted_frames(common.moving_mnist(largest, seed=1, **common_frames))
    heldout = data.create_shifted_frames(
        common.moving_mnist(settings["heldout_sequences"], seed=synthetic.HELD_OUT_SEED, split="test", **common_frames)
    )
    print(common.describe_machine(common.machine_info()), flush=True)
    systems = {}
    for label, preset, overrides, group in SYSTEMS:
        print(f"training {label} ...", flush=True)
        systems[label] = measure(preset, overrides, settings, group, train, heldout)
    fp32, bf16, fast = (systems[label] for label, *_ in SYSTEMS)
    results = {
        "systems": systems,
        "ratios": {
            "bf16_over_fp32": bf16["sequences_per_s"] / fp32["sequences_per_s"],
            "cpu_fast_over_official_fp32": fast["sequences_per_s"] / fp32["sequences_per_s"],
            "heldout_bce_bf16_minus_fp32": bf16["heldout_bce"] - fp32["heldout_bce"],
            "heldout_bce_bf16_relative": (bf16["heldout_bce"] - fp32["heldout_bce"]) / fp32["heldout_bce"],
        },
    }
    print()
    print(report(results))
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
