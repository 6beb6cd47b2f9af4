"""Peak memory of reading the full Moving MNIST file and serving one epoch of batches, ours against official.

A file in the official layout, uint8 ``(20, 10000, 64, 64)`` (819 MB, filled with generated Moving MNIST), is
written in chunks with ``np.lib.format.open_memmap`` to a temporary folder. Each path then runs in its own
fresh Python process, which reports its peak resident memory:

- ours: ``official_file.load_moving_mnist(path, num_sequences=None)`` (a memory map) and one epoch of
  ``data.SequenceDataset`` batches of 5 (float32 shifted frames, converted per batch);
- official: the example's steps applied to the whole file: ``np.load``, ``np.swapaxes(0, 1)``,
  ``np.expand_dims(-1)``, ``/ 255`` (float64, ~6.6 GB), then one epoch of batches of 5 cast to float32.
  (The example also copies its train and validation subsets before dividing, which would add more.)

The peak is ``VmHWM`` of /proc/self/status: the high-water mark of the process's own memory, which starts
afresh at ``exec``. ``resource.getrusage().ru_maxrss`` is recorded too but is not a fair measure here: on
Linux a child's ``ru_maxrss`` starts at the resident size of its parent when it was forked (the parent holds
TensorFlow and the file it just wrote), so it can only show the larger of the two.

Both processes import the same modules (TensorFlow included, as the example does), so the memory after the
imports is reported too. Both sum every input batch; equal sums show that they served the same frames.
The temporary file is deleted at the end.

Usage (from the repository root)::

    python -m benchmarks.loading_memory [--quick] [--tmp-dir DIR]
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from keras_convlstm import data, mnist_digits, official_file, synthetic

NAME = "loading_memory"
FULL = {"num_sequences": 10_000, "batch_size": 5, "chunk": 1000}
QUICK = {"num_sequences": 200, "batch_size": 5, "chunk": 100}
NUM_FRAMES = 20
FRAME_SIZE = 64
TARGET_PEAK_GB = 1.5
GB = 1e9
# Memory the official path needs beyond the file itself: the float64 copy, plus a margin for the rest.
FLOAT64_FACTOR = 8
SAFETY_MARGIN_BYTES = 2 * 10**9


def _proc_bytes(path: str, field: str) -> int:
    """A memory field of a /proc file in kilobytes ("VmHWM" of /proc/self/status, ...), in bytes."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} line in {path}")


def ru_maxrss_bytes() -> int:
    """``ru_maxrss`` of this process (kilobytes on Linux), in bytes; includes the parent's size at fork."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_official_layout(path: Path, num_sequences: int, chunk: int) -> None:
    """Writes generated Moving MNIST as a .npy file of uint8 ``(20, num_sequences, 64, 64)``, chunk by chunk."""
    digits, _ = mnist_digits.load_mnist_digits(split="train", verbose=False)
    frames = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.uint8, shape=(NUM_FRAMES, num_sequences, FRAME_SIZE, FRAME_SIZE)
    )
    for start in range(0, num_sequences, chunk):
        count = min(chunk, num_sequences - start)
        sequences = synthetic.generate_moving_mnist(count, NUM_FRAMES, FRAME_SIZE, seed=start, digits=digits)
        frames[:, start : start + count] = sequences[..., 0].swapaxes(0, 1)
    frames.flush()
    del frames


def run_ours(path: Path, batch_size: int) -> float:
    """Our path: memory-mapped loading and one epoch of streamed float32 batches; returns the sum of inputs."""
    sequences = official_file.load_moving_mnist(path, num_sequences=None)
    dataset = data.SequenceDataset(sequences, batch_size=batch_size, shuffle=True, seed=0)
    total = 0.0
    for index in range(len(dataset)):
        inputs, _ = dataset[index]
        total += float(inputs.sum(dtype=np.float64))
    return total


def run_official(path: Path, batch_size: int) -> float:
    """The official steps on the whole file, then one epoch of float32 batches; returns the sum of inputs."""
    dataset = np.load(path)
    dataset = np.swapaxes(dataset, 0, 1)
    dataset = np.expand_dims(dataset, axis=-1)
    dataset = dataset / 255
    total = 0.0
    for start in range(0, len(dataset), batch_size):
        inputs = dataset[start : start + batch_size, :-1].astype(np.float32)
        total += float(inputs.sum(dtype=np.float64))
    return total


WORKERS = {"ours": run_ours, "official": run_official}


def worker(name: str, path: Path, batch_size: int) -> None:
    """Runs one path in this (fresh) process and prints its measurements as one JSON line."""
    after_imports = _proc_bytes("/proc/self/status", "VmRSS")
    peak_after_imports = _proc_bytes("/proc/self/status", "VmHWM")
    started = time.perf_counter()
    total = WORKERS[name](path, batch_size)
    seconds = time.perf_counter() - started
    record = {
        "rss_after_imports_bytes": after_imports,
        "peak_rss_after_imports_bytes": peak_after_imports,
        "peak_rss_bytes": _proc_bytes("/proc/self/status", "VmHWM"),
        "ru_maxrss_bytes": ru_maxrss_bytes(),
        "seconds": seconds,
        "input_sum": total,
    }
    print(json.dumps(record))


def measure(name: str, path: Path, batch_size: int) -> dict:
    """Runs ``worker(name)`` in a fresh Python process and returns its record."""
    return common.run_worker("loading_memory", name, "--path", str(path), "--batch-size", str(batch_size))


def report(results: dict) -> str:
    rows = []
    for label, key in (("ours (memory map + SequenceDataset)", "ours"), ("official (np.load, / 255)", "official")):
        entry = results.get(key)
        if entry is None:
            rows.append([label, "skipped", "", "", "", ""])
            continue
        rows.append(
            [
                label,
                entry["peak_rss_bytes"] / GB,
                entry["rss_after_imports_bytes"] / GB,
                (entry["peak_rss_bytes"] - entry["rss_after_imports_bytes"]) / GB,
                entry["ru_maxrss_bytes"] / GB,
                entry["seconds"],
            ]
        )
    lines = ["peak RSS: VmHWM of the worker (ru_maxrss also counts the parent's size at fork)"]
    lines.append(
        common.table(
            ["path", "peak RSS GB", "RSS after imports GB", "peak - imports GB", "ru_maxrss GB", "seconds"], rows
        )
    )
    if "official" in results:
        lines.append(f"\npeak RSS official / ours: {results['official_over_ours_peak']:.3g}x")
        lines.append(f"same frames served (equal input sums): {results['same_input_sum']}")
    verdict = "met" if results["ours"]["peak_rss_bytes"] / GB < TARGET_PEAK_GB else "NOT met"
    lines.append(f"Target (ours < {TARGET_PEAK_GB:g} GB peak RSS): {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where to write the temporary file")
    parser.add_argument("--worker", choices=sorted(WORKERS), help="internal: run one path in this process")
    parser.add_argument("--path", type=Path, help="internal: the file a worker reads")
    parser.add_argument("--batch-size", type=int, default=FULL["batch_size"], help="internal: worker batch size")
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.path, args.batch_size)
        return None
    settings = QUICK if args.quick else FULL
    print(common.describe_machine(common.machine_info()), flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="moving_mnist_") as folder:
        path = Path(folder) / "mnist_test_seq.npy"
        print(f"writing {settings['num_sequences']:,} sequences to {path} ...", flush=True)
        write_official_layout(path, settings["num_sequences"], settings["chunk"])
        file_bytes = path.stat().st_size
        results: dict = {"file_bytes": file_bytes}
        print("ours: fresh process ...", flush=True)
        results["ours"] = measure("ours", path, settings["batch_size"])
        needed = file_bytes * (1 + FLOAT64_FACTOR) + SAFETY_MARGIN_BYTES
        available = _proc_bytes("/proc/meminfo", "MemAvailable")
        if available < needed:
            print(f"official path skipped: it needs ~{needed / GB:.1f} GB, {available / GB:.1f} GB available")
        else:
            print("official: fresh process ...", flush=True)
            results["official"] = measure("official", path, settings["batch_size"])
            results["official_over_ours_peak"] = (
                results["official"]["peak_rss_bytes"] / results["ours"]["peak_rss_bytes"]
            )
            ours_sum, official_sum = results["ours"]["input_sum"], results["official"]["input_sum"]
            results["same_input_sum"] = bool(np.isclose(ours_sum, official_sum, rtol=1e-9))
    print(
        f"\nfile: uint8 {(NUM_FRAMES, settings['num_sequences'], FRAME_SIZE, FRAME_SIZE)}, {file_bytes / GB:.3f} GB; "
        f"one epoch of batches of {settings['batch_size']}; temporary file deleted"
    )
    print(report(results))
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
