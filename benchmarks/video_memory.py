"""Peak memory of training on a folder of videos whose decoded clips are several times that peak.

A folder of colour ``.mp4`` videos (``bouncing_balls.write_bouncing_balls``, 64x64) is written to a temporary
folder. A fresh Python process then does what ``train --data FOLDER --colour`` does: ``clips.load_video_clips``
decodes the folder into its uint8 cache (clips of ``clip_frames`` frames starting at every frame, ``stride`` 1,
so the cache holds each frame ``clip_frames`` times), and a small colour ``cpu-fast`` model trains on batches
streamed from the memory-mapped cache (``VideoClipSet.datasets``) for a fixed number of steps, the batches drawn
from the whole cache in shuffled order. The process reports its peak resident memory (``VmHWM`` of
/proc/self/status, which starts afresh at ``exec``; see ``benchmarks.loading_memory`` for why ``ru_maxrss`` of a
child is not used), its file-backed resident memory at the end (``RssFile``: shared libraries and pages of
the map, which the kernel may drop and read again), and the cache size ``clips * clip_frames * 64 * 64 * 3`` bytes.

Usage (from the repository root)::

    python -m benchmarks.video_memory [--quick] [--tmp-dir DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

NAME = "video_memory"
FULL = {"videos": 70, "video_frames": 160, "clip_frames": 80, "steps": 30, "batch_size": 2, "val_fraction": 0.02}
QUICK = {"videos": 4, "video_frames": 30, "clip_frames": 10, "steps": 3, "batch_size": 2, "val_fraction": 0.25}
FRAME_SIZE = 64
CHANNELS = 3
FILTERS = (16, 16)
MIN_RATIO = 4  # the decoded clips must be at least this many times the peak
GB = 1e9


def _proc_bytes(field: str) -> int:
    """A field of /proc/self/status in kilobytes ("VmHWM", "RssFile", ...), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} line in /proc/self/status")


def worker(folder: Path, settings: dict) -> None:
    """Decodes ``folder`` and trains on it in this (fresh) process; prints its measurements as one JSON line."""
    import keras

    from keras_convlstm import clips, models, training

    after_imports = _proc_bytes("VmRSS")
    started = time.perf_counter()
    clip_set = clips.load_video_clips(
        folder,
        settings["clip_frames"],
        stride=1,
        frame_size=FRAME_SIZE,
        channels=CHANNELS,
        patch_size=4,
        cache_dir=folder.parent / "cache",
        verbose=False,
    )
    decode_seconds = time.perf_counter() - started
    peak_after_decoding = _proc_bytes("VmHWM")
    train, validation = clip_set.datasets(settings["batch_size"], settings["val_fraction"], seed=0)
    keras.utils.set_random_seed(0)
    model = models.build_model(
        "cpu-fast", channels=CHANNELS, image_size=FRAME_SIZE, filters=FILTERS, precision="float32"
    )
    started = time.perf_counter()
    history = training.train(
        model,
        train,
        validation[: settings["batch_size"]],
        epochs=1,
        steps_per_epoch=settings["steps"],
        out_dir=folder.parent / "run",
        verbose=0,
    )
    record = {
        "cache_bytes": clip_set.clips.nbytes,
        "cache_shape": list(clip_set.clips.shape),
        "training_clips": len(clip_set.split(settings["val_fraction"], seed=0)[0]),
        "decode_seconds": decode_seconds,
        "train_seconds": time.perf_counter() - started,
        "final_loss": history.history["loss"][-1],
        "rss_after_imports_bytes": after_imports,
        "peak_rss_after_decoding_bytes": peak_after_decoding,
        "peak_rss_bytes": _proc_bytes("VmHWM"),
        "rss_file_at_end_bytes": _proc_bytes("RssFile"),
        "rss_anon_at_end_bytes": _proc_bytes("RssAnon"),
    }
    print(json.dumps(record))


def write_folder(folder: Path, settings: dict) -> int:
    """Writes the videos; returns the bytes of .mp4 written."""
    from keras_convlstm import bouncing_balls

    paths = bouncing_balls.write_bouncing_balls(folder, settings["videos"], settings["video_frames"], FRAME_SIZE)
    return sum(path.stat().st_size for path in paths)


def measure(folder: Path, quick: bool) -> dict:
    """Runs :func:`worker` in a fresh Python process and returns its record."""
    return common.run_worker("video_memory", str(folder), *(["--quick"] if quick else []))


def report(results: dict) -> str:
    ratio = results["cache_bytes"] / results["peak_rss_bytes"]
    rows = [
        ["decoded clips (cache, uint8)", results["cache_bytes"] / GB, str(tuple(results["cache_shape"]))],
        [".mp4 files", results["mp4_bytes"] / GB, ""],
        ["RSS after imports", results["rss_after_imports_bytes"] / GB, ""],
        ["peak RSS after decoding", results["peak_rss_after_decoding_bytes"] / GB, ""],
        ["peak RSS (decoding + training)", results["peak_rss_bytes"] / GB, ""],
        ["RSS at end: file-backed", results["rss_file_at_end_bytes"] / GB, "libraries and pages of the map"],
        ["RSS at end: anonymous", results["rss_anon_at_end_bytes"] / GB, ""],
    ]
    lines = [common.table(["what", "GB", "note"], rows)]
    lines.append(
        f"decoding: {results['decode_seconds']:.0f} s; training: {results['train_seconds']:.0f} s "
        f"(final loss {results['final_loss']:.4f})"
    )
    verdict = "met" if ratio >= MIN_RATIO else "NOT met"
    lines.append(f"decoded clips / peak RSS: {ratio:.2f} (target >= {MIN_RATIO}: {verdict})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where to write the temporary folder")
    parser.add_argument("--worker", type=Path, default=None, help="internal: decode and train on this folder")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.worker is not None:
        worker(args.worker, settings)
        return None
    print(common.describe_machine(common.machine_info()), flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="ball_videos_") as folder:
        folder = Path(folder)
        print(f"writing {settings['videos']} videos of {settings['video_frames']} frames to {folder} ...", flush=True)
        started = time.perf_counter()
        mp4_bytes = write_folder(folder / "videos", settings)
        print(f"written in {time.perf_counter() - started:.0f} s; decoding and training in a fresh process ...")
        results = {"mp4_bytes": mp4_bytes, **measure(folder / "videos", args.quick)}
    print(report(results))
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
