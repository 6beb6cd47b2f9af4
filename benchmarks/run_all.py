"""Runs every benchmark in sequence, each in its own process, and says where the results went.

Usage (from the repository root; ``make bench`` runs it without options)::

    python benchmarks/run_all.py [--quick] [--only NAME ...]

The full settings take a long time on a small CPU (the training benchmarks run for minutes each and
time_to_quality for 30 minutes of training); ``--quick`` checks that every script works in a few minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
BENCHMARKS = (
    "train_throughput",
    "precision_isa",
    "rollout_speed",
    "generation_speed",
    "loading_memory",
    "flops",
    "step_profile",
    "replicas",
    "time_to_quality",
    "backends",
    "conv_products",
    "video_memory",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: check that every script works")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), help="benchmarks to run")
    args = parser.parse_args(argv)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    outcomes = []
    results = REPOSITORY / "benchmarks" / "results" / ("quick" if args.quick else "")
    for name in args.only:
        out = (results / f"{name}.json").relative_to(REPOSITORY)
        command = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if args.quick else []), "--out", str(out)]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        finished = subprocess.run(command, cwd=REPOSITORY, env=environment, check=False)
        outcomes.append((name, finished.returncode, time.perf_counter() - started, out))
    print("\n=== summary")
    for name, code, seconds, out in outcomes:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{name:<18} {status:<18} {seconds:7.1f} s  {out}")
    return int(any(code != 0 for _, code, _, _ in outcomes))


if __name__ == "__main__":
    sys.exit(main())
