"""Owns the command line (`python -m keras_convlstm` or `keras-convlstm`): data, train, predict, evaluate, demo, recipe.

Arguments are parsed and checked here. Files named on the command line that cannot be read raise a
:class:`CommandError`; :func:`main` reports it, a failed download and bad values in one line, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

# TensorFlow logs harmless C++ errors on CPU (no CUDA driver; a grappler remapper note for causal Conv3D).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_convlstm import data, files, synthetic  # noqa: E402
from keras_convlstm.checks import validate_frames  # noqa: E402
from keras_convlstm.distribute import data_parallel, replica_count  # noqa: E402
from keras_convlstm.evaluation import evaluate  # noqa: E402
from keras_convlstm.losses import LOSSES  # noqa: E402
from keras_convlstm.models import build_model, check_input, list_presets  # noqa: E402
from keras_convlstm.precision import AUTO, PRECISIONS, resolve_precision  # noqa: E402
from keras_convlstm.pretrained import list_pretrained, load_pretrained, pretrained_info  # noqa: E402
from keras_convlstm.recipes import RECIPES  # noqa: E402
from keras_convlstm.rollout import predict_frames  # noqa: E402
from keras_convlstm.training import ScheduledSampling, TimeLimit, train  # noqa: E402
from keras_convlstm.viz import plot_frames, plot_truth_vs_prediction, save_gif, save_side_by_side_gif  # noqa: E402

GENERATED = "generated"
# The shipped model with the lowest held-out MSE (README's table: within 0.2 % of cpu-quality-rollout-moving-mnist,
# with a higher SSIM); the other two trade MSE for SSIM in opposite directions.
DEMO_PRETRAINED = "cpu-deep-rollout-moving-mnist"


class CommandError(Exception):
    """An error the command line reports in one line, without a traceback."""


class OneLineErrorParser(argparse.ArgumentParser):
    """Reports bad arguments in one line (and exit status 2), like every other error of the command line."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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


def load_model_argument(path: str | os.PathLike) -> keras.Model:
    """Loads the ``.keras`` model named on the command line; a missing or corrupt file raises :class:`CommandError`."""
    path = Path(path)
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
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"input file not found: {path} (expected a .npy file of sequences)")
    problem = data.npy_file_problem(path)
    if problem is not None:
        raise CommandError(f"{problem} (expected a .npy file of sequences written by `data` or np.save)")
    sequences = np.load(path, mmap_mode="r", allow_pickle=False)
    validate_frames(sequences, name=str(path))
    return sequences


def _sequences_from(source: str, num_sequences: int, seed: int, split: str) -> np.ndarray:
    if source == GENERATED:
        return synthetic.generate_moving_mnist_split(num_sequences, seed=seed, split=split)
    if source == "official":
        return data.load_moving_mnist(num_sequences=num_sequences)
    return load_sequences_argument(source)[:num_sequences]


def _write_rollout(png: Path, gif: Path, context: np.ndarray, truth: np.ndarray | None, prediction: np.ndarray) -> None:
    first = context.shape[1] + 1
    if truth is not None:
        plot_truth_vs_prediction(truth[0], prediction[0], first_frame_number=first, path=png)
        save_side_by_side_gif(data.to_float_frames(truth[:1])[0], prediction[0], gif)
    else:
        plot_frames(prediction[0], title=f"Predicted frames {first}..", path=png)
        save_gif(prediction[0], gif)


def cmd_data(args: argparse.Namespace) -> None:
    out = files.check_file_path(args.out)
    if args.source == "official":
        path = data.download_moving_mnist(args.cache_dir, args.url, verbose=True)
        sequences = data.load_moving_mnist(path, num_sequences=args.num_sequences)
    else:
        sequences = synthetic.generate_moving_mnist_split(args.num_sequences, seed=args.seed, split=args.digits)
    files.save_npy(out, sequences)
    print(f"wrote {out}: {sequences.dtype} {sequences.shape}")


def _run_settings(args: argparse.Namespace) -> dict:
    keys = ("preset", "precision", "data", "num_sequences", "val_fraction", "batch_size", "seed")
    keys += ("epochs", "steps_per_epoch", "max_minutes", "devices", "multi_worker", "sync_batchnorm")
    keys += ("filters", "kernel_sizes", "learning_rate", "loss", "init_from", "scheduled_sampling", "context")
    settings = {key: getattr(args, key) for key in keys}
    # What "auto" chose here; a run resumed on another machine must compute in the same precision.
    settings["compute_precision"] = resolve_precision(args.precision)
    return settings


def _initial_weights(source: str) -> list[np.ndarray]:
    """Weights of a shipped pretrained model (by name) or of a ``.keras`` file."""
    if source in list_pretrained():
        return load_pretrained(source).get_weights()
    return load_model_argument(source).get_weights()


def _scheduled_sampling(args: argparse.Namespace) -> ScheduledSampling | None:
    if args.scheduled_sampling is None:
        return None
    start, end = args.scheduled_sampling
    try:
        return ScheduledSampling(context=args.context, start_step=start, ramp_end_step=end, seed=args.seed)
    except ValueError as error:
        raise CommandError(f"--scheduled-sampling {start} {end}: {error}") from error


def cmd_train(args: argparse.Namespace) -> None:
    schedule = _scheduled_sampling(args)
    out_dir = files.check_folder_path(args.out_dir)
    settings_path = out_dir / "run.json"
    interrupted = (out_dir / "backup").exists()
    if interrupted and not args.resume:
        raise CommandError(
            f"{out_dir} holds an interrupted run: pass --resume to continue it, or choose another --out-dir"
        )
    if args.resume:
        if not interrupted:
            raise CommandError(f"nothing to resume in {out_dir}: no backup/ folder from an interrupted run")
        try:
            saved = json.loads(settings_path.read_text())
        except (OSError, ValueError) as error:
            raise CommandError(
                f"{settings_path} cannot be read ({type(error).__name__}): it records the settings of the "
                "interrupted run; without it the run cannot be resumed, choose another --out-dir"
            ) from error
        if saved != _run_settings(args):
            raise CommandError(f"--resume needs the settings of the interrupted run, saved in {settings_path}")

    # Devices are set up before the first model exists: TensorFlow fixes them then.
    distribution = None
    if args.devices > 1 or args.multi_worker:
        distribution = data_parallel(args.devices, multi_worker=args.multi_worker)
        print(f"data parallel over {replica_count(distribution)} replicas (global batch {args.batch_size})")
    keras.utils.set_random_seed(args.seed)
    names = ("filters", "kernel_sizes", "learning_rate", "loss")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    model = build_model(args.preset, precision=args.precision, **overrides)
    if args.init_from is not None:
        weights = _initial_weights(args.init_from)
        if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
            raise CommandError(f"--init-from {args.init_from}: its weights do not fit the {args.preset!r} preset")
        model.set_weights(weights)
    if args.data == GENERATED:
        train_set = data.GeneratedMovingMNIST(args.num_sequences, args.batch_size, seed=args.seed)
        val_sequences = synthetic.generate_moving_mnist_split(
            max(args.batch_size, args.num_sequences // 10), seed=args.seed + 1, split="train"
        )
    else:
        sequences = _sequences_from(args.data, args.num_sequences, args.seed, "train")
        train_idx, val_idx = data.split_indices(len(sequences), args.val_fraction, seed=args.seed)
        train_set = data.SequenceDataset(sequences, args.batch_size, indices=train_idx, seed=args.seed)
        val_sequences = sequences[val_idx]  # split_indices returns sorted indices
    check_input(model, val_sequences, check_time=False)
    # Written once the settings have built a model and read their data, so bad input leaves no run folder.
    out_dir.mkdir(parents=True, exist_ok=True)
    files.write_json(settings_path, _run_settings(args))
    callbacks = [TimeLimit(args.max_minutes * 60)] if args.max_minutes else []
    history = train(
        model,
        train_set,
        val_sequences,
        epochs=args.epochs,
        batch_size=args.batch_size,
        out_dir=out_dir,
        seed=args.seed,
        steps_per_epoch=args.steps_per_epoch,
        callbacks=callbacks,
        scheduled_sampling=schedule,
        distribution=distribution,
        synchronized_batchnorm=args.sync_batchnorm,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    losses = history.history.get("loss", [])
    if not all(math.isfinite(value) for value in losses):
        best = out_dir / "best.keras"
        kept = f"{best} holds the best model before it" if best.exists() else "no checkpoint was written"
        raise CommandError(
            f"training diverged: the loss became {losses[-1]} in epoch {history.epoch[-1] + 1}; {kept}. "
            "Try a lower --learning-rate."
        )
    final = out_dir / "model.keras"
    with files.atomic_path(final) as temporary:
        model.save(temporary)
    print(f"wrote {final} (best checkpoint: {out_dir / 'best.keras'}, history: {out_dir / 'history.csv'})")


def cmd_predict(args: argparse.Namespace) -> None:
    out_dir = files.check_folder_path(args.out_dir)
    sequences = load_sequences_argument(args.input)
    model = load_model_argument(args.model)
    if sequences.shape[1] < args.context:
        raise CommandError(f"{args.input} has {sequences.shape[1]} frames; --context {args.context} needs more")
    context = sequences[:, : args.context]
    available = sequences.shape[1] - args.context
    truth = sequences[:, args.context : args.context + args.horizon] if available >= args.horizon else None
    prediction = predict_frames(model, context, args.horizon)
    if not np.all(np.isfinite(prediction)):
        raise CommandError(f"{args.model} predicted NaN or infinite frames; nothing was written to {out_dir}")
    with files.atomic_paths() as stage:  # the three files change together or not at all
        files.save_npy(stage(out_dir / "predictions.npy"), prediction)
        _write_rollout(stage(out_dir / "rollout.png"), stage(out_dir / "rollout.gif"), context, truth, prediction)
    print(f"wrote {out_dir / 'predictions.npy'} {prediction.shape}, rollout.png and rollout.gif")


def cmd_evaluate(args: argparse.Namespace) -> None:
    if args.json:
        files.check_file_path(args.json)
    model = load_model_argument(args.model)
    sequences = _sequences_from(args.data, args.num_sequences, args.seed, "test")
    table = evaluate(model, sequences, args.context, args.horizon, batch_size=args.batch_size)
    print(table.to_text())
    if args.json:
        table.to_json(args.json)
        print(f"wrote {args.json}")


def _demo_model(args: argparse.Namespace, train_set: keras.utils.PyDataset, out_dir: Path) -> keras.Model:
    if not args.train and DEMO_PRETRAINED in list_pretrained():
        print(f"using the shipped pretrained model {DEMO_PRETRAINED!r} (pass --train to train one instead)")
        for name in list_pretrained():
            means = pretrained_info(name)["held_out"]["means"]["model"]
            print(f"  {name}: held-out MSE {means['mse']:.1f}, SSIM {means['ssim']:.3f}")
        # float32: the table is then the same on every backend and CPU (bfloat16 rounds differently on each).
        return load_pretrained(DEMO_PRETRAINED, precision="float32")
    keras.utils.set_random_seed(args.seed)
    model = build_model("cpu-fast")
    print(f"training cpu-fast ({model.count_params():,} parameters) for up to {args.minutes:g} minutes")
    train(
        model,
        train_set,
        epochs=1000,
        out_dir=out_dir / "run",
        seed=args.seed,
        patience=1000,
        lr_patience=1000,
        callbacks=[TimeLimit(args.minutes * 60)],
        verbose=2,
    )
    return model


def cmd_demo(args: argparse.Namespace) -> None:
    out_dir = files.check_folder_path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # The official file when it is cached (its first 1,000 sequences, split 900 / 100), else generated data.
    source = data.choose_source("auto")
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
    table = evaluate(model, held_out)
    table.to_json(out_dir / "metrics.json")
    context, truth = held_out[:, :10], held_out[:, 10:20]
    _write_rollout(
        out_dir / "rollout.png", out_dir / "rollout.gif", context, truth, predict_frames(model, context[:1], 10)
    )
    print(table.to_text())
    print(
        f"wrote frames.png, sequence.gif, rollout.png, rollout.gif, metrics.json and model.keras to {out_dir} "
        f"in {time.perf_counter() - started:.0f} s"
    )


def cmd_recipe(args: argparse.Namespace) -> None:
    summary = RECIPES[args.name](out_dir=Path(args.out_dir), quick=args.quick, seed=args.seed)
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
        default="train",
        help="which offline digits generated sequences use (test: held-out digits)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--url", default=data.OFFICIAL_URL)
    p.add_argument("--cache-dir", default=None, help="default: ~/.keras/datasets")
    p.add_argument("--out", required=True, help="output .npy: uint8 (sequences, 20, 64, 64, 1)")
    p.set_defaults(run=cmd_data)

    p = commands.add_parser("train", help="train a preset; rerun with --resume after an interruption")
    p.add_argument("--preset", default="keras-example-causal", choices=list_presets())
    p.add_argument(
        "--precision",
        default=AUTO,
        choices=[AUTO, *PRECISIONS],
        help="compute precision; auto: bfloat16 where the CPU or GPU computes it natively, float16 on older GPUs, "
        "float32 elsewhere",
    )
    p.add_argument(
        "--data",
        default=GENERATED,
        help="'generated' (fresh Moving MNIST every epoch), 'official', or a .npy of sequences",
    )
    p.add_argument("--num-sequences", type=positive_int, default=1000, help="sequences used (per epoch if generated)")
    p.add_argument("--val-fraction", type=float, default=0.1)
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
        "--loss", default=None, choices=["binary_crossentropy", "mse", *LOSSES], help="default: the preset's"
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/train")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out-dir")
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
    p.add_argument("--input", required=True, help=".npy sequences (batch, time, height, width, channels)")
    p.add_argument("--context", type=positive_int, default=10)
    p.add_argument("--horizon", type=positive_int, default=10)
    p.add_argument("--out-dir", default="outputs/predict")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("evaluate", help="score a rollout beside the copy-last-frame and blank baselines")
    p.add_argument("--model", required=True, help=".keras model")
    p.add_argument(
        "--data",
        default=GENERATED,
        help="'generated' (held-out digits, fixed seed), 'official', or a .npy of sequences",
    )
    p.add_argument("--num-sequences", type=positive_int, default=1000)
    p.add_argument("--context", type=positive_int, default=10)
    p.add_argument("--horizon", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--seed", type=int, default=synthetic.HELD_OUT_SEED)
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("recipe", help="run one of the other reproduced systems end to end")
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("--out-dir", default="outputs/recipe")
    p.add_argument("--quick", action="store_true", help="small settings that finish in about a minute on a CPU")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_recipe)

    p = commands.add_parser(
        "demo", help="score the best shipped model (--train: train cpu-fast), roll out 10 frames, write pictures"
    )
    p.add_argument("--out-dir", default="outputs")
    p.add_argument("--train", action="store_true", help="train cpu-fast even when a pretrained model is shipped")
    p.add_argument("--minutes", type=positive_float, default=3.0, help="training budget when training")
    p.add_argument("--sequences-per-epoch", type=positive_int, default=96)
    p.add_argument("--eval-sequences", type=positive_int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 on success, 2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (CommandError, data.DownloadError, ValueError, TypeError, OSError) as error:
        print(f"keras-convlstm {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
