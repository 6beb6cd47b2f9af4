"""Training throughput in float32 and bfloat16 with and without the CPU's AVX-512 and bfloat16 instructions.

oneDNN, the CPU kernel library of TensorFlow, can be told to use fewer instructions than the CPU has
(``ONEDNN_MAX_CPU_ISA``). It reads the variable once, so each limit runs in its own child process:

- ``default``: every instruction the CPU has (on the recorded machine AVX-512 with AVX512_BF16 and AMX);
- ``AVX512_CORE``: AVX-512 without its bfloat16 extension and AMX: bfloat16 products are emulated;
- ``AVX2``: the instructions of an AVX2-only CPU (a laptop, an AMD Zen 3, the Intel CPUs of free notebook runtimes).

In each child, cpu-fast and the official network (``keras-example``) train with ``model.fit`` in float32 and in
bfloat16 on the same generated 20-frame Moving MNIST sequences (:func:`benchmarks.common.timed_training`; the first
steps, which trace the graph, are not timed), a 2048^3 ``tf.matmul`` gives the raw rate of both precisions, and the
child records what ``precision="auto"`` chooses under its limit. A precision that oneDNN cannot run under a limit
is recorded with its error. The limit takes effect when bfloat16 slows down (or fails) and float32 slows down
from AVX-512 to AVX2.

Usage (from the repository root)::

    nice -n 19 python -m benchmarks.precision_isa [--quick] [--limits default AVX512_CORE AVX2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from benchmarks import common, flops
from keras_convlstm import data

NAME = "precision_isa"
REPOSITORY = Path(__file__).resolve().parent.parent
# (label, ONEDNN_MAX_CPU_ISA value or None for the default)
LIMITS = (("default", None), ("AVX512_CORE", "AVX512_CORE"), ("AVX2", "AVX2"))
PRECISIONS = ("float32", "bfloat16")
ABORTED = {"error": "the process aborted"}
FULL = {
    "stride": 1,
    "num_frames": 20,
    "matmul_size": 2048,
    "matmul_repeats": 3,
    # preset: (batch size, warm-up steps, timed steps); the official network trains at about 0.5 sequences/s.
    "systems": {"cpu-fast": (16, 1, 3), "keras-example": (2, 1, 2)},
    "seed": 0,
}
QUICK = {
    "stride": 4,
    "num_frames": 6,
    "matmul_size": 128,
    "matmul_repeats": 1,
    "systems": {"cpu-fast": (2, 1, 1)},
    "seed": 0,
}


def measure_limit(settings: dict, out: Path) -> None:
    """Measures under the oneDNN limit of this process; rewrites ``out`` after every figure.

    Each system's training comes first, then the float32 and the bfloat16 matmul: oneDNN aborts the whole process
    (a C++ exception) when it has no bfloat16 matmul under the limit, and the figures already written survive.
    """
    # Every figure starts as ABORTED, so one that kills the process is recorded as such.
    record = {
        "machine": common.machine_info(),
        "systems": {f"{preset}, {precision}": ABORTED for preset in settings["systems"] for precision in PRECISIONS},
        "matmul": {precision: ABORTED for precision in PRECISIONS},
    }
    out.write_text(json.dumps(record))
    frames = {"num_frames": settings["num_frames"], "stride": settings["stride"]}
    largest = max(batch * (warmup + timed) for batch, warmup, timed in settings["systems"].values())
    inputs, targets = data.create_shifted_frames(common.moving_mnist(largest, seed=1, **frames))
    for preset, (batch_size, warmup, timed) in settings["systems"].items():
        count = batch_size * (warmup + timed)
        for precision in PRECISIONS:
            print(f"  {preset}, {precision} ...", flush=True)
            try:
                _, timing = common.timed_training(
                    preset,
                    inputs[:count],
                    targets[:count],
                    batch_size=batch_size,
                    warmup_steps=warmup,
                    seed=settings["seed"],
                    image_size=64 // settings["stride"],
                    precision=precision,
                )
                entry = {"batch_size": batch_size, **timing}
            except tf.errors.OpError as error:
                entry = {"batch_size": batch_size, "error": error.message.strip().splitlines()[0]}
            record["systems"][f"{preset}, {precision}"] = entry
            out.write_text(json.dumps(record))
            keras.backend.clear_session()
    for precision, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
        gflops = flops.matmul_gflops(settings["matmul_size"], settings["matmul_repeats"], dtype)
        record["matmul"][precision] = {"size": settings["matmul_size"], "gflops": gflops}
        out.write_text(json.dumps(record))


def run_child(limit: str | None, quick: bool) -> dict:
    """Runs :func:`measure_limit` in a fresh process with ``ONEDNN_MAX_CPU_ISA=limit`` (unset for None).

    A figure that aborted the process is recorded with oneDNN's message (the last line the process printed).
    """
    environment = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = environment.get("TF_CPP_MIN_LOG_LEVEL", "3")
    if limit is not None:
        environment["ONEDNN_MAX_CPU_ISA"] = limit
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "limit.json"
        command = [sys.executable, "-m", f"benchmarks.{NAME}", "--child-out", str(out), *(["--quick"] if quick else [])]
        finished = subprocess.run(command, cwd=REPOSITORY, env=environment, stderr=subprocess.PIPE, text=True)
        record = json.loads(out.read_text())
    if finished.returncode != 0:
        lines = [line.strip() for line in finished.stderr.splitlines() if "what()" in line] or ["(no message)"]
        for figures in (record["systems"], record["matmul"]):
            for name, entry in figures.items():
                if entry == ABORTED:
                    figures[name] = {"error": f"{ABORTED['error']} (exit {finished.returncode}): {lines[-1]}"}
    return record


def ratios(limits: dict) -> dict:
    """bfloat16 / float32 throughput per limit and system, and each limit's throughput / the default's."""
    result = {}
    for label, record in limits.items():
        for preset in dict.fromkeys(name.split(",")[0] for name in record["systems"]):
            fp32 = record["systems"][f"{preset}, float32"].get("sequences_per_s")
            bf16 = record["systems"][f"{preset}, bfloat16"].get("sequences_per_s")
            result[f"{label}: {preset} bfloat16 / float32"] = bf16 / fp32 if bf16 and fp32 else None
            for precision in PRECISIONS:
                mine = record["systems"][f"{preset}, {precision}"].get("sequences_per_s")
                if label != "default" and "default" in limits:
                    default = limits["default"]["systems"][f"{preset}, {precision}"].get("sequences_per_s")
                    result[f"{label}: {preset} {precision} / default"] = mine / default if mine and default else None
    return result


def report(results: dict) -> str:
    """One row per limit, system and precision, with the CPU flags and the limit beside every figure."""
    rows = []
    for label, record in results["limits"].items():
        machine = record["machine"]
        flags = " ".join(machine["cpu_flags"] or ["unknown"])
        for system, entry in record["systems"].items():
            speed = entry.get("sequences_per_s", "failed")
            step = entry.get("seconds_per_step", entry.get("error", "")[:60])
            rows.append([label, flags, machine["auto_precision"], system, entry.get("batch_size", ""), speed, step])
        for precision, entry in record["matmul"].items():
            rate = entry["gflops"] if "gflops" in entry else entry["error"][:60]
            rows.append([label, flags, machine["auto_precision"], f"matmul, {precision}", "", "", rate])
    header = ["ONEDNN_MAX_CPU_ISA", "CPU flags", "auto", "system", "batch", "seq/s", "s/step (matmul: GFLOP/s)"]
    lines = [common.table(header, rows), ""]
    lines += [f"{name}: {'failed' if value is None else f'{value:.3g}x'}" for name, value in results["ratios"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--limits",
        nargs="+",
        choices=[label for label, _ in LIMITS],
        default=[label for label, _ in LIMITS],
        help="the oneDNN limits to measure (default: all)",
    )
    # Internal: the parent asks a child for the figures of its limit, written as JSON to this path.
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.child_out is not None:
        measure_limit(settings, args.child_out)
        return None
    print(common.describe_machine(common.machine_info()), flush=True)
    limits = {}
    for label, limit in LIMITS:
        if label not in args.limits:
            continue
        print(f"ONEDNN_MAX_CPU_ISA={limit or '(unset)'} in a child process ...", flush=True)
        limits[label] = run_child(limit, args.quick)
    results = {"limits": limits, "ratios": ratios(limits)}
    print()
    print(report(results))
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
