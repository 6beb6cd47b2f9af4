"""What every benchmark shares: the machine description, result files, tables, test sequences and fit timing."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_convlstm import files, models, synthetic
from keras_convlstm.evaluation import format_table, format_value
from keras_convlstm.precision import cpu_flags, cpu_info, onednn_max_cpu_isa, resolve_precision

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPOSITORY / "benchmarks" / "results"
SHARED_MACHINE_NOTE = "Figures depend on the machine and on what else runs on it (see the load average)."
# The CPU flags that decide float32 and bfloat16 speed, recorded beside every figure.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


# ---------------------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------------------


def _installed_version(package: str) -> str | None:
    """The installed version of ``package``, read without importing it (None when it is not installed)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, object]:
    """CPU model and speed flags, oneDNN limit, core count, library versions, date and load average, as JSON data."""
    cpu = cpu_info()
    flags = cpu_flags()
    return {
        "cpu_model": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_vendor": cpu.get("vendor_id", "unknown"),
        "cpu_family": cpu.get("cpu family", "unknown"),
        "cpu_mhz": float(cpu["cpu MHz"]) if "cpu MHz" in cpu else None,
        "cpu_flags": None if flags is None else [flag for flag in SPEED_FLAGS if flag in flags],
        "onednn_max_cpu_isa": onednn_max_cpu_isa(),
        "auto_precision": resolve_precision("auto"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": _installed_version("tensorflow"),
        "jax": _installed_version("jax"),
        "torch": _installed_version("torch"),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_1_5_15_min": [round(value, 2) for value in os.getloadavg()],
    }


def describe_machine(info: dict[str, object]) -> str:
    """Three lines naming the machine, its speed flags and the software, for the head of a report."""
    return (
        f"Machine: {info['cpu_model']} ({info['cpu_vendor']}, family {info['cpu_family']}, "
        f"{info['cpu_mhz']} MHz), {info['cores']} cores, load average {info['load_average_1_5_15_min']}\n"
        f"CPU flags: {' '.join(info['cpu_flags'] or ['unknown'])}; ONEDNN_MAX_CPU_ISA={info['onednn_max_cpu_isa']}; "
        f"precision 'auto' = {info['auto_precision']}\n"
        f"Software: Python {info['python']}, NumPy {info['numpy']}, TensorFlow {info['tensorflow']}, "
        f"JAX {info['jax']}, Keras {info['keras']} on {info['keras_backend']}; {info['date']}"
    )


# ---------------------------------------------------------------------------------------------------------
# Command line, reports and result files
# ---------------------------------------------------------------------------------------------------------


def argument_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every benchmark has: ``--quick`` and ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny settings (< 1 minute) to check the script works")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON path (default benchmarks/results/<name>.json, or results/quick/ with --quick)",
    )
    return parser


def table(header: list[str], rows: list[list[object]]) -> str:
    """A plain-text table; floats are printed with four significant digits (no exponent above 1000)."""

    def cell(value: object) -> str:
        return format_value(value) if isinstance(value, float) else str(value)

    return format_table(header, [[cell(value) for value in row] for row in rows])


def result_path(name: str, quick: bool, out: Path | None) -> Path:
    """Where a benchmark writes its JSON: ``out`` if given, else the results folder (quick/ for quick runs)."""
    if out is not None:
        return out
    return (RESULTS_DIR / "quick" if quick else RESULTS_DIR) / f"{name}.json"


def _plain(value: object) -> object:
    """Converts numpy scalars and arrays to JSON types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_results(name: str, path: Path, *, quick: bool, command: str, settings: dict, results: object) -> Path:
    """Writes ``{benchmark, command, quick, machine, settings, results}`` as JSON to ``path``, atomically: a run
    stopped while writing leaves the earlier file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "command": command,
        "quick": quick,
        "machine": machine_info(),
        "settings": settings,
        "results": results,
    }
    return files.write_text(path, json.dumps(payload, indent=2, default=_plain) + "\n")


def finish(name: str, args: argparse.Namespace, argv: list[str], settings: dict, results: object) -> Path:
    """Saves a benchmark's results where ``--quick`` / ``--out`` say, and prints the path."""
    path = save_results(
        name,
        result_path(name, args.quick, args.out),
        quick=args.quick,
        command=" ".join([f"python -m benchmarks.{name}", *argv]),
        settings=settings,
        results=results,
    )
    print(f"\nResults written to {path}")
    return path


# ---------------------------------------------------------------------------------------------------------
# Data and model timing
# ---------------------------------------------------------------------------------------------------------


def moving_mnist(count: int, *, seed: int, split: str = "train", num_frames: int = 20, stride: int = 1) -> np.ndarray:
    """:func:`keras_convlstm.synthetic.generate_moving_mnist_split`, then every ``stride``-th pixel.

    ``stride > 1`` gives smaller frames for quick runs, with the same motion. Held-out sets use ``split="test"``
    and ``seed=synthetic.HELD_OUT_SEED``.

    Returns:
        uint8 ``(count, num_frames, 64 / stride, 64 / stride, 1)``.
    """
    frames = synthetic.generate_moving_mnist_split(count, seed=seed, split=split, num_frames=num_frames)
    return np.ascontiguousarray(frames[:, :, ::stride, ::stride])


class _StepClock(keras.callbacks.Callback):
    """Records the wall-clock time at the start of ``fit`` and at the end of every training step."""

    def __init__(self):
        super().__init__()
        self.started = 0.0
        self.step_ends: list[float] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step_ends.append(time.perf_counter())


def time_fit(
    model: keras.Model, inputs: np.ndarray, targets: np.ndarray, *, batch_size: int, warmup_steps: int
) -> dict[str, float]:
    """Runs one epoch of ``model.fit`` over ``(inputs, targets)`` and times the steps after the warm-up.

    The first ``warmup_steps`` steps (tracing, first-call allocations) are excluded from the throughput.

    Returns:
        ``first_step_s`` (from the start of fit to the end of step 1), ``timed_steps``, ``timed_s``,
        ``seconds_per_step`` and ``sequences_per_s`` over the timed steps, and the final training ``loss``.
    """
    steps = len(inputs) // batch_size
    if warmup_steps < 1 or steps <= warmup_steps or len(inputs) % batch_size:
        raise ValueError(
            f"expected a whole number of batches of {batch_size} and more than warmup_steps={warmup_steps} "
            f"steps, got {len(inputs)} sequences"
        )
    clock = _StepClock()
    history = model.fit(inputs, targets, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    timed_steps = steps - warmup_steps
    timed_s = clock.step_ends[-1] - clock.step_ends[warmup_steps - 1]
    return {
        "first_step_s": clock.step_ends[0] - clock.started,
        "timed_steps": timed_steps,
        "timed_s": timed_s,
        "seconds_per_step": timed_s / timed_steps,
        "sequences_per_s": timed_steps * batch_size / timed_s,
        "loss": float(history.history["loss"][-1]),
    }


def timed_training(
    preset: str,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    warmup_steps: int,
    seed: int,
    **overrides,
) -> tuple[keras.Model, dict[str, float]]:
    """Builds ``preset`` (with ``overrides``) from ``seed`` and times one :func:`time_fit` epoch on it.

    Returns:
        The trained model and the timing record of :func:`time_fit`.
    """
    keras.utils.set_random_seed(seed)
    model = models.build_model(preset, **overrides)
    return model, time_fit(model, inputs, targets, batch_size=batch_size, warmup_steps=warmup_steps)


def run_worker(module: str, *arguments: str) -> dict:
    """Runs ``python -m benchmarks.<module> --worker ARGUMENTS`` in a fresh process (for a clean peak memory).

    Returns:
        The JSON record the worker printed on its last line.

    Raises:
        RuntimeError: the worker failed; the message ends with its standard error.
    """
    command = [sys.executable, "-m", f"benchmarks.{module}", "--worker", *arguments]
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"the {module} worker failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])
