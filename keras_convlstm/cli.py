"""Owns the command line (`python -m keras_convlstm` or `keras-convlstm`): data, train, predict, evaluate, demo, recipe.

Arguments are parsed and checked here. Files named on the command line that cannot be read raise a
:class:`CommandError`; :func:`main` reports it, bad values, a failed download or write, a Keras backend that cannot
load, Ctrl-C and SIGTERM in one line, without a traceback. Each command imports the modules that load Keras when it
runs.
"""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
from tqdm.auto import tqdm

from keras_convlstm import files, run_folder, synthetic
from keras_convlstm.frames import to_float_frames, validate_frames

if TYPE_CHECKING:
    import keras

    from keras_convlstm.scheduled_sampling import ScheduledSampling
    from keras_convlstm.training import InterruptLatch

# TensorFlow logs harmless C++ errors on CPU (no CUDA driver; a grappler remapper note for causal Conv3D). Set before
# Keras loads: each command imports the modules that need Keras when it runs, so that `--help` and bad arguments
# are answered at once, on any backend (and `data` makes generated sequences without Keras).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GENERATED = "generated"
DEFAULT_SEQUENCES = 1000  # generated or official sequences used when --num-sequences is not given
DEFAULT_CLIP_FRAMES = 20  # frames of a training clip cut from videos
DEFAULT_FRAME_SIZE = 64  # side of the frames read from videos
# The shipped model the demo loads: README's table of the shipped models says why.
DEMO_PRETRAINED = "cpu-deep-rollout-moving-mnist"


class CommandError(Exception):
    """An error the command line reports in one line, without a traceback."""


# Any number written with a minus sign, and those argparse itself reads as a value ("-1", "-0.5", not "-1e-3").
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)
ARGPARSE_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
# The largest seed keras.utils.set_random_seed accepts (it seeds NumPy's legacy generator too).
MAX_SEED = 2**32 - 1
# Frames of the rollout drawn in rollout.png: matplotlib refuses figures over 2**16 pixels.
PICTURE_FRAMES = 20
# Frames of the rollout in rollout.gif (100 s at 200 ms a frame): GIF stores a frame's display time in 16 bits of
# 10 ms, which the identical frames Pillow merges into one would overflow after 3,276 frames.
GIF_FRAMES = 500
# Sequences rolled out together by `predict` (between two updates of its progress bar).
PREDICT_BATCH = 32
# A progress bar appears only for work that lasts longer than this many seconds.
PROGRESS_DELAY_S = 2.0
# Errors of a write that a full or read-only disk causes; Keras's saving code reports them without the file's name.
WRITE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS)


class OneLineErrorParser(argparse.ArgumentParser):
    """Reports bad arguments in one line (and exit status 2), like every other error of the command line."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def attach_negative_numbers(argv: Sequence[str]) -> list[str]:
    """``--option -1e-3`` written as ``--option=-1e-3``, which argparse reads as the option's value.

    The option's own check then refuses the number and says why ("expected a finite number > 0, got -1e-3"),
    instead of argparse's "expected one argument". Only numbers that argparse would take for an option are
    attached: "-1" stays a word of its own, so that ``--scheduled-sampling -1 5`` keeps its two values.
    """
    joined: list[str] = []
    for word in argv:
        previous = joined[-1] if joined else ""
        misread = NEGATIVE_NUMBER.match(word) and not ARGPARSE_NEGATIVE_NUMBER.match(word)
        if misread and previous.startswith("--") and "=" not in previous:
            joined[-1] = f"{previous}={word}"
        else:
            joined.append(word)
    return joined


def positive_int(text: str) -> int:
    """An argument that must be a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argument that must be a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """An argument that must be a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (both excluded), got {text!r}")
    return value


def random_seed(text: str) -> int:
    """An argument that must be a whole number from 0 to 2**32 - 1, the seeds Keras and NumPy accept."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_SEED} (2**32 - 1), got {text!r}")
    return value


class LazyChoices(Sequence):
    """The choices of an argument, read from a module of the package each time argparse checks or lists them.

    They live in modules that load Keras, which building the parser must not: an argument with these choices
    has a ``metavar`` (argparse would otherwise list them in its usage line at once) and shows them in its help
    with ``%(choices)s``, which is read only when that help is printed.
    """

    def __init__(self, module: str, read: Callable[[object], Sequence[str]]):
        self.module = module
        self.read = read

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.read(importlib.import_module(f"keras_convlstm.{self.module}")))

    def __getitem__(self, index):
        return self.names[index]

    def __len__(self) -> int:
        return len(self.names)


PRESET_CHOICES = LazyChoices("models", lambda models: models.list_presets())
PRECISION_CHOICES = LazyChoices("precision", lambda precision: [precision.AUTO, *precision.PRECISIONS])
LOSS_CHOICES = LazyChoices("losses", lambda losses: ["binary_crossentropy", "mse", *losses.LOSSES])
RECIPE_CHOICES = LazyChoices("recipes", lambda recipes: sorted(recipes.RECIPES))


def load_model_argument(path: str | os.PathLike) -> keras.Model:
    """Loads the ``.keras`` model named on the command line; a missing or corrupt file raises :class:`CommandError`."""
    import keras

    import keras_convlstm.models  # noqa: F401 - its import registers the package's models, layers and losses

    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{path} is a folder (expected a .keras file written by `train`)")
    if not path.is_file():
        raise CommandError(f"model file not found: {path} (expected a .keras file written by `train`)")
    if not zipfile.is_zipfile(path):
        raise CommandError(
            f"could not load {path}: it is not a .keras archive ({path.stat().st_size:,} bytes, empty or "
            "truncated?); expected a .keras file written by `train`"
        )
    try:
        with warnings.catch_warnings():
            # An untrained model is saved before its optimizer is built; predict and evaluate do not need it.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged archive
        raise CommandError(
            f"could not load {path}: expected a .keras model saved by Keras 3 ({type(error).__name__}: {error})"
        ) from error


def load_sequences_argument(path: str | os.PathLike) -> np.ndarray:
    """Loads the ``.npy`` sequences ``(batch, time, height, width, channels)`` named on the command line.

    A missing file, or one that is not a complete ``.npy`` file of frames, raises :class:`CommandError`.
    """
    from keras_convlstm.official_file import npy_file_problem

    path = Path(path)
    if not path.is_file():
        raise CommandError(f"input file not found: {path} (expected a .npy file of sequences)")
    problem = npy_file_problem(path)
    if problem is not None:
        raise CommandError(f"{problem} (expected a .npy file of sequences written by `data` or np.save)")
    sequences = np.load(path, mmap_mode="r", allow_pickle=False)
    validate_frames(sequences, name=str(path))
    return sequences


def _sequences_from(source: str, num_sequences: int | None, seed: int, split: str) -> np.ndarray:
    """Up to ``num_sequences`` sequences of a source (None: every sequence of a file, else the default count)."""
    if source == GENERATED:
        return synthetic.generate_moving_mnist_split(num_sequences or DEFAULT_SEQUENCES, seed=seed, split=split)
    if source == "official":
        from keras_convlstm.official_file import load_moving_mnist

        path = download_official(None, None, cache_option="KERAS_HOME=FOLDER", offline_option="--data generated")
        return load_moving_mnist(path, num_sequences=num_sequences or DEFAULT_SEQUENCES)
    if not Path(source).exists():
        expected = f"expected {GENERATED!r}, 'official', a .npy file of sequences or a video"
        raise CommandError(f"--data {source}: no such file or folder; {expected}")
    return load_sequences_argument(source)[:num_sequences]


def is_video_source(source: str) -> bool:
    """True for videos to cut into clips (a video file, a folder, a .npy of one video), not sequences or a name."""
    path = Path(source)
    if source in (GENERATED, "official") or not path.exists():
        return False
    if path.is_dir() or path.suffix.lower() != ".npy":
        return True
    from keras_convlstm.official_file import npy_file_problem

    if npy_file_problem(path) is not None:
        return False  # load_sequences_argument says what is wrong with it
    shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    return len(shape) == 3 or (len(shape) == 4 and shape[-1] in (1, 3, 4))  # (time, height, width[, channels])


def frame_size_argument(sizes: list[int], patch_size: int) -> int | tuple[int, int]:
    """``--frame-size SIDE`` or ``--frame-size HEIGHT WIDTH``, checked against the preset's ``patch_size``."""
    if len(sizes) > 2:
        raise CommandError(f"--frame-size takes one side or a height and a width, got {len(sizes)} numbers")
    if any(side % patch_size for side in sizes):
        raise CommandError(
            f"--frame-size {' '.join(map(str, sizes))}: the preset reads frames in {patch_size}x{patch_size} "
            f"patches; expected sides divisible by {patch_size}"
        )
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def video_options(args: argparse.Namespace, videos: bool) -> None:
    """Refuses options that ``--data`` would ignore, then fills in the video options' defaults.

    Video options (clips, frame size, colour) do not apply to sequences, which keep their own frames; and
    ``--num-sequences`` does not apply to videos, which are cut into every clip they hold.
    """
    options = {"--clip-frames": "clip_frames", "--clip-stride": "clip_stride", "--frame-size": "frame_size"}
    options["--colour/--grey"] = "channels"
    given = [option for option, name in options.items() if getattr(args, name) is not None]
    if given and not videos:
        raise CommandError(
            f"{', '.join(given)}: only for videos, but --data {args.data} holds sequences, used at their own "
            "frame size and channels"
        )
    if videos and args.num_sequences is not None:
        raise CommandError(
            f"--num-sequences {args.num_sequences}: --data {args.data} is video, cut into every clip it holds; "
            "choose the clips with --clip-frames and --clip-stride"
        )
    args.clip_frames = args.clip_frames or DEFAULT_CLIP_FRAMES
    args.frame_size = args.frame_size or [DEFAULT_FRAME_SIZE]
    args.channels = args.channels or 1


def download_official(cache_dir: str | None, url: str | None, *, cache_option: str, offline_option: str) -> Path:
    """The official Moving MNIST file, downloaded once into the cache; a failure raises :class:`CommandError`.

    Its message says what to do on the command line: ``cache_option`` names where else the file can go (when
    the cache folder cannot be written), ``offline_option`` how to use generated sequences instead.
    """
    from keras_convlstm import official_file

    directory = Path(cache_dir) if cache_dir is not None else files.default_cache_dir()
    try:
        return official_file.download_moving_mnist(directory, url or official_file.OFFICIAL_URL, verbose=True)
    except official_file.DownloadError as error:
        cause = error.__cause__
        if isinstance(cause, OSError) and cause.filename is not None:  # the cache folder, not the network
            raise CommandError(
                f"cannot save the official Moving MNIST file in {directory} ({cause.strerror or cause}): "
                f"use {cache_option} with a folder you can write, or {offline_option} (made here, offline)"
            ) from error
        raise CommandError(f"{error} On the command line: {offline_option} works offline.") from error


def _write_rollout(png: Path, gif: Path, context: np.ndarray, truth: np.ndarray | None, prediction: np.ndarray) -> None:
    """The first sequence's rollout: its first :data:`PICTURE_FRAMES` frames in ``png``; in ``gif`` its context
    frames, then its first ``GIF_FRAMES`` predicted frames, each numbered and marked "context" or "future"."""
    from keras_convlstm.animation import save_gif, save_side_by_side_gif
    from keras_convlstm.viz import plot_frames, plot_truth_vs_prediction

    given = context.shape[1]
    first = given + 1
    seen = to_float_frames(context[:1])[0]
    predicted = np.concatenate([seen, prediction[0, :GIF_FRAMES]])
    if truth is not None:
        shown = slice(0, PICTURE_FRAMES)
        plot_truth_vs_prediction(truth[0, shown], prediction[0, shown], first_frame_number=first, path=png)
        actual = np.concatenate([seen, to_float_frames(truth[:1, :GIF_FRAMES])[0]])
        save_side_by_side_gif(actual, predicted, gif, context_frames=given)
    else:
        plot_frames(prediction[0, :PICTURE_FRAMES], title=f"Predicted frames {first}..", path=png)
        save_gif(predicted, gif, context_frames=given)


def cmd_data(args: argparse.Namespace) -> None:
    ignored = {"official": ("--digits", "--seed"), GENERATED: ("--url", "--cache-dir")}[args.source]
    given = [option for option in ignored if getattr(args, option[2:].replace("-", "_")) is not None]
    if given:
        raise CommandError(f"{', '.join(given)}: not used with --source {args.source}")
    out = files.check_file_path(args.out)
    if args.source == "official":
        from keras_convlstm.official_file import load_moving_mnist

        path = download_official(
            args.cache_dir, args.url, cache_option="--cache-dir FOLDER", offline_option="--source generated"
        )
        sequences = load_moving_mnist(path, num_sequences=args.num_sequences)
    else:
        size = args.num_sequences * 20 * 64 * 64  # uint8 (sequences, 20, 64, 64, 1), held whole, then written
        work = f"--num-sequences {args.num_sequences:,}"
        check_room(size, size, out.parent, work, "choose a smaller --num-sequences")
        seed, digits = args.seed or 0, args.digits or "train"
        sequences = synthetic.generate_moving_mnist_split(args.num_sequences, seed=seed, split=digits)
    files.save_npy(out, sequences)
    print(f"wrote {out}: {sequences.dtype} {sequences.shape}")


def _run_settings(args: argparse.Namespace, num_sequences: int) -> dict:
    """The command line's settings for ``run.json``, beside those ``train`` records (epochs, batch size, seed, ...).

    Files are recorded by content (:func:`run_folder.fingerprint`), so a resumed run must read the same data.
    """
    from keras_convlstm.precision import resolve_precision
    from keras_convlstm.pretrained import list_pretrained

    keys = ("preset", "precision", "val_fraction", "max_minutes", "devices", "multi_worker")
    keys += ("filters", "kernel_sizes", "learning_rate", "loss")
    settings = {key: getattr(args, key) for key in keys}
    # What "auto" chose here; a run resumed on another machine must compute in the same precision.
    settings["compute_precision"] = resolve_precision(args.precision)
    if is_video_source(args.data):
        from keras_convlstm.clips import source_fingerprint

        settings["data"] = source_fingerprint(args.data)
        settings.update({key: getattr(args, key) for key in ("clip_frames", "clip_stride", "frame_size", "channels")})
    else:
        settings["data"] = args.data if args.data in (GENERATED, "official") else run_folder.fingerprint(args.data)
    settings["num_sequences"] = num_sequences
    pretrained_or_none = args.init_from is None or args.init_from in list_pretrained()
    settings["init_from"] = args.init_from if pretrained_or_none else run_folder.fingerprint(args.init_from)
    return settings


def _initial_weights(source: str) -> list[np.ndarray]:
    """Weights of a shipped pretrained model (by name) or of a ``.keras`` file."""
    from keras_convlstm.pretrained import list_pretrained, load_pretrained

    if source in list_pretrained():
        return load_pretrained(source).get_weights()
    if not Path(source).exists():
        raise CommandError(
            f"--init-from {source}: no such file, nor a shipped model; expected a .keras file or one of "
            f"{', '.join(list_pretrained())}"
        )
    return load_model_argument(source).get_weights()


def _scheduled_sampling(args: argparse.Namespace) -> ScheduledSampling | None:
    from keras_convlstm.scheduled_sampling import ScheduledSampling

    if args.scheduled_sampling is None:
        return None
    start, end = args.scheduled_sampling
    try:
        return ScheduledSampling(context=args.context, start_step=start, ramp_end_step=end, seed=args.seed)
    except ValueError as error:
        raise CommandError(f"--scheduled-sampling {start} {end}: {error}") from error


def cmd_train(args: argparse.Namespace) -> None:
    import keras

    from keras_convlstm import data
    from keras_convlstm.distribute import data_parallel, replica_count
    from keras_convlstm.models import build_model, check_input, get_preset
    from keras_convlstm.training import TimeLimit, train

    videos = is_video_source(args.data)
    video_options(args, videos)
    if args.sync_batchnorm and args.devices == 1 and not args.multi_worker:
        raise CommandError("--sync-batchnorm: only with several devices (--devices N or --multi-worker), got one")
    schedule = _scheduled_sampling(args)
    existing_run = "resume" if args.resume else "overwrite" if args.overwrite else "refuse"
    # Held until model.keras is written: a second writer is refused, a run already there is refused unless
    # --resume or --overwrite; nothing is written (nor deleted) before every check below has passed.
    with run_folder.claim(args.out_dir, existing_run) as run:
        # Devices are set up before the first model exists: TensorFlow fixes them then.
        distribution = None
        if args.devices > 1 or args.multi_worker:
            distribution = data_parallel(args.devices, multi_worker=args.multi_worker)
            print(f"data parallel over {replica_count(distribution)} replicas (global batch {args.batch_size})")
        keras.utils.set_random_seed(args.seed)
        names = ("filters", "kernel_sizes", "learning_rate", "loss")
        overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
        if videos:
            patch_size = get_preset(args.preset).patch_size
            overrides.update(image_size=frame_size_argument(args.frame_size, patch_size), channels=args.channels)
        model = build_model(args.preset, precision=args.precision, **overrides)
        if args.init_from is not None:
            weights = _initial_weights(args.init_from)
            if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
                raise CommandError(f"--init-from {args.init_from}: its weights do not fit the {args.preset!r} preset")
            model.set_weights(weights)
        if args.data == GENERATED:  # fresh sequences every epoch; validation drawn from the held-out digits
            num_sequences = args.num_sequences or DEFAULT_SEQUENCES
            mnist = data.load_or_generate_moving_mnist(
                GENERATED,
                num_sequences,
                num_validation=max(args.batch_size, num_sequences // 10),
                batch_size=args.batch_size,
                seed=args.seed,
                verbose=False,
            )
            train_set, val_sequences = mnist.train, mnist.validation
        elif videos:  # decoded once into a cache of clips, split by video
            from keras_convlstm.clips import load_video_clips

            clip_set = load_video_clips(
                args.data,
                args.clip_frames,
                stride=args.clip_stride,
                frame_size=model.config.image_size,
                channels=args.channels,
                patch_size=model.config.patch_size,
            )
            num_sequences = len(clip_set)
            train_set, val_sequences = clip_set.datasets(args.batch_size, args.val_fraction, args.seed)
        else:
            sequences = _sequences_from(args.data, args.num_sequences, args.seed, "train")
            num_sequences = len(sequences)
            if args.num_sequences is not None and num_sequences < args.num_sequences:
                raise CommandError(f"--num-sequences {args.num_sequences}: {args.data} holds {num_sequences}")
            train_idx, val_idx = data.split_indices(num_sequences, args.val_fraction, seed=args.seed)
            if args.batch_size > len(train_idx):  # Keras would quietly train on smaller batches
                raise CommandError(
                    f"--batch-size {args.batch_size} is more than the {len(train_idx)} training sequences of "
                    f"{args.data} (--val-fraction {args.val_fraction} kept {len(val_idx)} apart)"
                )
            train_set = data.SequenceDataset(sequences, args.batch_size, indices=train_idx, seed=args.seed)
            val_sequences = sequences[val_idx]  # split_indices returns sorted indices
        check_input(model, val_sequences, check_time=False)
        latch = _interrupt_latch()
        with latch.installed():
            history = train(
                model,
                train_set,
                val_sequences,
                epochs=args.epochs,
                batch_size=args.batch_size,
                out_dir=run,
                settings=_run_settings(args, num_sequences),
                seed=args.seed,
                steps_per_epoch=args.steps_per_epoch,
                callbacks=[latch, *([TimeLimit(args.max_minutes * 60)] if args.max_minutes else [])],
                scheduled_sampling=schedule,
                distribution=distribution,
                synchronized_batchnorm=args.sync_batchnorm,
                verbose=1 if sys.stdout.isatty() else 2,
            )
        losses = history.history.get("loss", [])
        if not all(math.isfinite(value) for value in losses):
            best = run.path / "best.keras"
            kept = f"{best} holds the best model before it" if best.exists() else "no checkpoint was written"
            raise CommandError(
                f"training diverged: the loss became {losses[-1]} in epoch {history.epoch[-1] + 1}; {kept}. "
                "Try a lower --learning-rate."
            )
        final = run.path / "model.keras"
        with files.atomic_path(final) as temporary:
            model.save(temporary)
    print(f"wrote {final} (best checkpoint: {run.path / 'best.keras'}, history: {run.path / 'history.csv'})")


def predict_needs(shape: Sequence[int], context: int, horizon: int, *, with_truth: bool) -> tuple[int, int]:
    """Upper estimates of the memory and the disk space that ``predict`` needs, in bytes.

    Args:
        shape: the input sequences' shape ``(batch, time, height, width, channels)``.
        context: frames read from each sequence.
        horizon: frames predicted for each sequence.
        with_truth: the GIF shows the true frames beside the predicted ones.

    Memory: the predicted frames (float32), the rollout of one batch of :data:`PREDICT_BATCH` sequences and two
    copies of it, and the GIF's RGB frames with what Pillow holds while encoding them (three times as much).
    Disk: ``predictions.npy``, the GIF (a byte per pixel, a 256-colour palette per frame) and the PNG.
    """
    batch, _, height, width, channels = shape
    frame = height * width * channels * 4
    predicted = batch * horizon * frame
    rollout = 3 * min(batch, PREDICT_BATCH) * (context + horizon) * frame
    gif_frames = min(horizon, GIF_FRAMES)
    gif_pixels = gif_frames * (height + 16) * (2 * width + 4 if with_truth else width)  # 16: the label band
    png = 2 * PICTURE_FRAMES * 200 * 440 * 4  # a 2 x 20-frame figure of 2 x 2.2 inches per frame, RGBA at 100 dpi
    memory = predicted + rollout + 4 * 3 * gif_pixels + png
    disk = predicted + gif_pixels + gif_frames * 1024 + png
    return memory, disk


def check_room(memory: int, disk: int, out_dir: Path, work: str, advice: str) -> None:
    """Refuses ``work`` before it starts when it needs more memory than is available or more disk than is free."""
    available = psutil.virtual_memory().available
    free = shutil.disk_usage(next(folder for folder in (out_dir, *out_dir.parents) if folder.exists())).free
    if memory > available or disk > free:
        size = functools.partial(tqdm.format_sizeof, suffix="B")
        raise CommandError(
            f"{work} needs about {size(memory)} of memory ({size(available)} available) and writes about "
            f"{size(disk)} into {out_dir} ({size(free)} free there): {advice}"
        )


def cmd_predict(args: argparse.Namespace) -> None:
    from keras_convlstm.rollout import predict_rollout

    out_dir = files.check_folder_path(args.out_dir)
    model = None
    if is_video_source(args.input):  # one video, read at the model's frame size and channels
        from keras_convlstm.clips import read_frames

        model = load_model_argument(args.model)
        height, width, channels = model.input_shape[2:]
        sequences = read_frames(args.input, (height, width), channels)[np.newaxis]
    else:
        sequences = load_sequences_argument(args.input)
    if sequences.shape[1] < args.context:
        raise CommandError(f"{args.input} has {sequences.shape[1]} frames; --context {args.context} needs more")
    with_truth = sequences.shape[1] - args.context >= args.horizon
    memory, disk = predict_needs(sequences.shape, args.context, args.horizon, with_truth=with_truth)
    work = f"--horizon {args.horizon} on {len(sequences):,} sequence{'s' if len(sequences) > 1 else ''}"
    check_room(memory, disk, out_dir, work, "choose a smaller --horizon, or fewer sequences in --input")
    if model is None:
        model = load_model_argument(args.model)
    context = sequences[:, : args.context]
    truth = sequences[:, args.context : args.context + args.horizon] if with_truth else None
    prediction = np.empty((len(context), args.horizon, *context.shape[2:]), np.float32)
    progress = tqdm(
        total=prediction.shape[0] * args.horizon, desc="predicting", unit="frame", leave=False, delay=PROGRESS_DELAY_S
    )
    with progress:
        for start in range(0, len(context), PREDICT_BATCH):
            batch = context[start : start + PREDICT_BATCH]
            prediction[start : start + len(batch)] = predict_rollout(model, batch, args.horizon, batch_size=None)
            progress.update(len(batch) * args.horizon)
    if not np.all(np.isfinite(prediction)):
        raise CommandError(f"{args.model} predicted NaN or infinite frames; nothing was written to {out_dir}")
    if prediction.min() < 0 or prediction.max() > 1:  # a model of another kind: its frames would be misread
        raise CommandError(
            f"{args.model} predicted values outside [0, 1] (min {prediction.min():g}, max {prediction.max():g}); "
            f"expected frames in [0, 1] from a model written by `train`; nothing was written to {out_dir}"
        )
    with files.atomic_paths() as stage:  # the three files change together or not at all
        files.save_npy(stage(out_dir / "predictions.npy"), prediction)
        _write_rollout(stage(out_dir / "rollout.png"), stage(out_dir / "rollout.gif"), context, truth, prediction)
    png, gif = (f" (its first {n} frames)" if args.horizon > n else "" for n in (PICTURE_FRAMES, GIF_FRAMES))
    print(f"wrote {out_dir / 'predictions.npy'} {prediction.shape}, rollout.png{png} and rollout.gif{gif}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from keras_convlstm.evaluation import evaluate

    if args.json is not None:
        files.check_file_path(args.json)
    model = load_model_argument(args.model)
    if is_video_source(args.data):  # held-out videos, cut into clips of context + horizon frames at the model's size
        from keras_convlstm.clips import load_video_clips

        height, width, channels = model.input_shape[2:]
        clip_frames = args.context + args.horizon
        sequences = load_video_clips(args.data, clip_frames, frame_size=(height, width), channels=channels).clips
        held = f"{len(sequences)} clips of {clip_frames} frames"
        sequences = sequences[: args.num_sequences]
    else:
        sequences = _sequences_from(args.data, args.num_sequences, args.seed, "test")
        held = f"{len(sequences)} sequences"
    if args.num_sequences is not None and len(sequences) < args.num_sequences:
        raise CommandError(f"--num-sequences {args.num_sequences}: {args.data} holds {held}")
    every = args.num_sequences is None and args.data not in (GENERATED, "official")
    print(f"scoring {len(sequences)} sequences of {args.data}" + (" (all it holds)" if every else ""))
    table = evaluate(model, sequences, args.context, args.horizon, batch_size=args.batch_size)
    print(table.to_text())
    if args.json:
        table.to_json(args.json)
        print(f"wrote {args.json}")


def _demo_model(args: argparse.Namespace, train_set: keras.utils.PyDataset, out_dir: Path) -> keras.Model:
    import keras

    from keras_convlstm.models import build_model
    from keras_convlstm.pretrained import list_pretrained, load_pretrained, pretrained_info
    from keras_convlstm.training import TimeLimit, train

    if not args.train and DEMO_PRETRAINED in list_pretrained():
        print(f"using the shipped pretrained model {DEMO_PRETRAINED!r} (pass --train to train one instead)")
        for name in list_pretrained("moving-mnist"):
            means = pretrained_info(name)["held_out"]["means"]["model"]
            print(f"  {name}: held-out MSE {means['mse']:.1f}, SSIM {means['ssim']:.3f}")
        # float32: the table is then the same on every backend and CPU (bfloat16 rounds differently on each).
        return load_pretrained(DEMO_PRETRAINED, precision="float32")
    keras.utils.set_random_seed(args.seed)
    model = build_model("cpu-fast")
    print(f"training cpu-fast ({model.count_params():,} parameters) for up to {args.minutes:g} minutes")
    latch = _interrupt_latch()
    with latch.installed():
        train(
            model,
            train_set,
            epochs=1000,
            out_dir=out_dir / "run",
            seed=args.seed,
            patience=1000,
            lr_patience=1000,
            callbacks=[latch, TimeLimit(args.minutes * 60)],
            verbose=2,
        )
    return model


def cmd_demo(args: argparse.Namespace) -> None:
    from keras_convlstm import data, official_file
    from keras_convlstm.animation import save_gif
    from keras_convlstm.evaluation import evaluate
    from keras_convlstm.viz import plot_frames

    out_dir = files.check_folder_path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # The official file when it is cached (its first 1,000 sequences, split 900 / 100), else generated data.
    source = official_file.choose_source("auto")
    num_sequences = 1000 if source == "official" else args.sequences_per_epoch
    mnist = data.load_or_generate_moving_mnist(
        source, num_sequences, num_validation=args.eval_sequences, batch_size=8, seed=args.seed, verbose=False
    )
    train_set, held_out = mnist.train, mnist.validation
    print(f"data: {mnist.source}, {len(held_out)} held-out sequences")
    plot_frames(held_out[0], title="A held-out Moving MNIST sequence", path=out_dir / "frames.png")
    save_gif(held_out[0], out_dir / "sequence.gif")

    model = _demo_model(args, train_set, out_dir)
    with files.atomic_path(out_dir / "model.keras") as temporary:
        model.save(temporary)
    table, predictions = evaluate(model, held_out, return_predictions=True)
    table.to_json(out_dir / "metrics.json")
    context, truth = held_out[:, :10], held_out[:, 10:20]
    _write_rollout(out_dir / "rollout.png", out_dir / "rollout.gif", context, truth, predictions["model"][:1])
    print(table.to_text())
    print(
        f"wrote frames.png, sequence.gif, rollout.png, rollout.gif, metrics.json and model.keras to {out_dir} "
        f"in {time.perf_counter() - started:.0f} s"
    )


def cmd_recipe(args: argparse.Namespace) -> None:
    from keras_convlstm.recipes import RECIPES

    summary = RECIPES[args.name](out_dir=files.check_folder_path(args.out_dir), quick=args.quick, seed=args.seed)
    print(json.dumps(summary, indent=2, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="keras-convlstm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)

    p = commands.add_parser("data", help="download the official file or generate Moving MNIST; save as .npy")
    p.add_argument("--source", choices=["official", GENERATED], default=GENERATED)
    p.add_argument("--num-sequences", type=positive_int, default=1000)
    p.add_argument(
        "--digits",
        choices=["train", "test", "all"],
        default=None,
        help="generated: which offline digits the sequences use (test: held-out digits; default train)",
    )
    p.add_argument("--seed", type=random_seed, default=None, help="generated: the seed (default 0)")
    p.add_argument(
        "--url", default=None, help="official: where from (default keras_convlstm.official_file.OFFICIAL_URL)"
    )
    p.add_argument("--cache-dir", default=None, help="official: default ~/.keras/datasets ($KERAS_HOME/datasets)")
    p.add_argument("--out", required=True, help="output .npy: uint8 (sequences, 20, 64, 64, 1)")
    p.set_defaults(run=cmd_data)

    p = commands.add_parser("train", help="train a preset into a run folder; rerun with --resume after an interruption")
    p.add_argument(
        "--preset", default="keras-example-causal", choices=PRESET_CHOICES, metavar="NAME", help="%(choices)s"
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        metavar="NAME",
        help="compute precision, %(choices)s; auto: bfloat16 where the CPU or GPU computes it natively, float16 on "
        "older GPUs, float32 elsewhere",
    )
    p.add_argument(
        "--data",
        default=GENERATED,
        help="'generated' (fresh Moving MNIST every epoch), 'official', a .npy of sequences, or your videos: a "
        "video file (.mp4, .avi, .mov, .gif), a folder of numbered PNG/JPEG frames, or a folder of such videos",
    )
    p.add_argument(
        "--clip-frames",
        type=positive_int,
        default=None,
        help=f"videos: frames per training clip (default {DEFAULT_CLIP_FRAMES})",
    )
    p.add_argument(
        "--clip-stride",
        type=positive_int,
        default=None,
        help="videos: frames between the starts of two clips (default: --clip-frames, no overlap)",
    )
    p.add_argument(
        "--frame-size",
        type=positive_int,
        nargs="+",
        default=None,
        help=f"videos: SIDE or HEIGHT WIDTH (default {DEFAULT_FRAME_SIZE})",
    )
    colour = p.add_mutually_exclusive_group()
    colour.add_argument("--colour", dest="channels", action="store_const", const=3, help="videos: RGB frames")
    colour.add_argument("--grey", dest="channels", action="store_const", const=1, help="videos: grey frames (default)")
    p.add_argument(
        "--num-sequences",
        type=positive_int,
        default=None,
        help=f"sequences used (per epoch if generated); default: every sequence of a file, else {DEFAULT_SEQUENCES}",
    )
    p.add_argument("--val-fraction", type=fraction, default=0.1)
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--batch-size", type=positive_int, default=5)
    p.add_argument("--steps-per-epoch", type=positive_int, default=None)
    p.add_argument("--max-minutes", type=positive_float, default=None, help="stop training after this many minutes")
    p.add_argument(
        "--filters",
        type=positive_int,
        nargs="+",
        default=None,
        help="filters of each ConvLSTM2D layer (default: the preset's)",
    )
    p.add_argument(
        "--kernel-sizes",
        type=positive_int,
        nargs="+",
        default=None,
        help="one kernel size per layer (default: the preset's)",
    )
    p.add_argument("--learning-rate", type=positive_float, default=None, help="default: the preset's")
    p.add_argument(
        "--loss", default=None, choices=LOSS_CHOICES, metavar="NAME", help="%(choices)s; default: the preset's"
    )
    p.add_argument("--init-from", default=None, help="start from these weights: a pretrained name or a .keras file")
    p.add_argument(
        "--scheduled-sampling",
        type=int,
        nargs=2,
        metavar=("START", "END"),
        default=None,
        help="train on the model's own predictions after --context frames, with a probability rising from 0 at "
        "optimizer step START to 1 at END (default: teacher forcing)",
    )
    p.add_argument(
        "--context", type=positive_int, default=10, help="true frames read before scheduled sampling feeds back"
    )
    p.add_argument("--seed", type=random_seed, default=0)
    p.add_argument(
        "--out-dir",
        default="runs/train",
        help="the run folder; one that holds a run is refused unless --resume or --overwrite",
    )
    existing = p.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in --out-dir, with its settings"
    )
    existing.add_argument(
        "--overwrite", action="store_true", help="delete the run in --out-dir (its outputs only), then start afresh"
    )
    p.add_argument(
        "--devices",
        type=positive_int,
        default=1,
        help="data parallel over N local devices: the GPUs when there are N, else N logical CPU devices "
        "(which run the same path without a speed-up); --batch-size is the global batch",
    )
    p.add_argument(
        "--multi-worker", action="store_true", help="data parallel over the machines of TF_CONFIG (TensorFlow)"
    )
    p.add_argument(
        "--sync-batchnorm",
        action="store_true",
        help="with several devices, all-reduce BatchNormalization statistics (TensorFlow); default: per device",
    )
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("predict", help="roll a model out from the first frames of each input sequence")
    p.add_argument("--model", required=True, help=".keras model")
    p.add_argument(
        "--input",
        required=True,
        help=".npy sequences (batch, time, height, width, channels), or one video (a video file or a folder of "
        "frames), read at the model's frame size and channels",
    )
    p.add_argument("--context", type=positive_int, default=10)
    p.add_argument("--horizon", type=positive_int, default=10)
    p.add_argument("--out-dir", default="outputs/predict")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("evaluate", help="score a rollout beside the copy-last-frame and blank baselines")
    p.add_argument("--model", required=True, help=".keras model")
    p.add_argument(
        "--data",
        default=GENERATED,
        help="'generated' (held-out digits, fixed seed), 'official', a .npy of sequences, or held-out videos (a "
        "video file or folder, cut into clips of --context + --horizon frames at the model's frame size)",
    )
    p.add_argument(
        "--num-sequences",
        type=positive_int,
        default=None,
        help=f"sequences scored (at most what a file holds); default: every sequence of a file, else "
        f"{DEFAULT_SEQUENCES}",
    )
    p.add_argument("--context", type=positive_int, default=10)
    p.add_argument("--horizon", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--seed", type=random_seed, default=synthetic.HELD_OUT_SEED)
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("recipe", help="run one of the other reproduced systems end to end")
    p.add_argument("name", choices=RECIPE_CHOICES, metavar="NAME", help="%(choices)s")
    p.add_argument("--out-dir", default="outputs/recipe")
    p.add_argument("--quick", action="store_true", help="small settings that finish in about a minute on a CPU")
    p.add_argument("--seed", type=random_seed, default=0)
    p.set_defaults(run=cmd_recipe)

    p = commands.add_parser(
        "demo", help="score the best shipped model (--train: train cpu-fast), roll out 10 frames, write pictures"
    )
    p.add_argument("--out-dir", default="outputs")
    p.add_argument("--train", action="store_true", help="train cpu-fast even when a pretrained model is shipped")
    p.add_argument("--minutes", type=positive_float, default=3.0, help="training budget when training")
    p.add_argument("--sequences-per-epoch", type=positive_int, default=96)
    p.add_argument("--eval-sequences", type=positive_int, default=200)
    p.add_argument("--seed", type=random_seed, default=0)
    p.set_defaults(run=cmd_demo)
    return parser


def _resume_command(args: argparse.Namespace, argv: Sequence[str]) -> str | None:
    """The command that continues an interrupted ``train`` run from its last finished epoch, or None."""
    if args.command != "train" or not (Path(args.out_dir) / "backup").is_dir():
        return None
    command = [word for word in argv if word not in ("--resume", "--overwrite")] + ["--resume"]
    if not any(word == "--out-dir" or word.startswith("--out-dir=") for word in argv):
        command += ["--out-dir", args.out_dir]
    return f"keras-convlstm {shlex.join(command)}"


def _interruption(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """What Ctrl-C leaves behind, in one line; for ``train``, the command that continues the run."""
    resume = _resume_command(args, argv)
    if resume is not None:
        return f"interrupted; continue from its last finished epoch with: {resume}"
    if args.command == "train":
        return f"interrupted before its first epoch ended: nothing in {args.out_dir} to resume, run it again"
    return "interrupted; every file is written whole or not at all, so none is left half written"


def _error_line(error: Exception, args: argparse.Namespace, argv: Sequence[str]) -> str:
    """The error in one line; a failed write that names no file gets the command's output and what to do next."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    unnamed = isinstance(error, OSError) and error.filename is None and not isinstance(error, files.WriteError)
    output = next((getattr(args, name) for name in ("out_dir", "out", "json") if getattr(args, name, None)), None)
    if unnamed and error.errno in WRITE_ERRNOS and output is not None:
        message = f"could not write into {output} ({error.strerror})"
        resume = _resume_command(args, argv)
        if resume is not None:
            message += f"; then continue from the last finished epoch with: {resume}"
    return message


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's stop), which the command line handles like Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _interrupt_latch() -> InterruptLatch:
    """Ctrl-C and SIGTERM for a command that trains: they stop it even where Python's first raise was swallowed."""
    from keras_convlstm.training import InterruptLatch

    return InterruptLatch({signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated})


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 on success, 2 on bad input, 130 after Ctrl-C, 143 after
    SIGTERM).

    Every error a user or the machine can cause (a bad value, a missing file, a full disk, a Keras backend that
    cannot load, Ctrl-C) is reported in one line, without a traceback.
    """
    argv = attach_negative_numbers(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except ImportError as error:  # a choice read from a module that loads Keras, whose backend cannot load
        print(f"keras-convlstm: error: {error}", file=sys.stderr)
        return 2
    handles_signals = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handles_signals else None
    try:
        args.run(args)
    except KeyboardInterrupt as interruption:
        print(f"keras-convlstm {args.command}: {_interruption(args, argv)}", file=sys.stderr)
        return 143 if isinstance(interruption, Terminated) else 130
    except (CommandError, ImportError, ValueError, TypeError, OSError) as error:
        print(f"keras-convlstm {args.command}: error: {_error_line(error, args, argv)}", file=sys.stderr)
        return 2
    finally:
        if handles_signals:
            signal.signal(signal.SIGTERM, previous)
    return 0
