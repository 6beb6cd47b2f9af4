"""Held-out rollout quality against training wall-clock, beside the copy-last-frame and blank baselines.

A model (``cpu-fast`` by default) trains with ``model.fit`` on fresh Moving MNIST batches
(``data.GeneratedMovingMNIST``, train digits) for ``--minutes`` of wall-clock. Before training and then every
``--eval-every`` minutes the clock is paused and ``evaluation.evaluate`` rolls the model out 10 frames from
10 context frames on a fixed held-out set: ``--eval-sequences`` sequences generated from a fixed seed with
the held-out test digits (``mnist_digits.load_mnist_digits(split="test")``). Reported per point: training
seconds, sequences seen, the latest training loss, and the mean over the 10 predicted frames of the MSE
(summed over the 64x64 pixels of a frame, on [0, 1]) and the SSIM, with the same numbers for copy-last-frame
and blank frames. The curve is written as JSON and drawn as a PNG beside it.

``--models cpu-fast keras-example`` adds the official network (same data, same budget). Evaluating it is slow
on a CPU (its rollout costs ~6 GFLOP per frame and sequence): lower ``--eval-sequences`` for it.

Usage (from the repository root)::

    python -m benchmarks.time_to_quality [--quick] [--minutes 30] [--eval-every 5] [--eval-sequences 1000]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
from matplotlib.figure import Figure

from benchmarks import common
from keras_convlstm import data, evaluation, models, synthetic, training

NAME = "time_to_quality"
FULL = {"minutes": 30.0, "eval_every": 5.0, "eval_sequences": 1000}
QUICK = {"minutes": 0.25, "eval_every": 0.125, "eval_sequences": 10}
CONTEXT = 10
HORIZON = 10
BASELINES = ("copy-last-frame", "blank")


class _StepCounter(keras.callbacks.Callback):
    """Counts training steps across ``fit`` calls."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1


def score(model: keras.Model, heldout) -> tuple[dict[str, dict[str, float]], float]:
    """Mean MSE and SSIM over the predicted frames for the model and the baselines, and the seconds it took."""
    started = time.perf_counter()
    means = evaluation.evaluate(model, heldout, CONTEXT, HORIZON).means()
    scores = {system: {"mse": values["mse"], "ssim": values["ssim"]} for system, values in means.items()}
    return scores, time.perf_counter() - started


def train_and_track(preset: str, heldout, settings: dict, batch_size: int, seed: int) -> dict:
    """Trains ``preset`` for the budget, scoring it on ``heldout`` at the start and after every interval."""
    keras.utils.set_random_seed(seed)
    model = models.build_model(preset)
    dataset = data.GeneratedMovingMNIST(sequences_per_epoch=batch_size * 1_000_000, batch_size=batch_size, seed=seed)
    counter = _StepCounter()
    budget, interval = settings["minutes"] * 60, settings["eval_every"] * 60
    scores, eval_seconds = score(model, heldout)
    points = [{"train_s": 0.0, "sequences_seen": 0, "loss": None, "eval_s": eval_seconds, **scores["model"]}]
    baselines = {name: scores[name] for name in BASELINES}
    trained, chunk = 0.0, 0
    while trained < budget:
        # A new epoch per interval: every interval trains on sequences never seen before.
        dataset.set_epoch(chunk)
        started = time.perf_counter()
        history = model.fit(
            dataset, epochs=1, callbacks=[training.TimeLimit(min(interval, budget - trained)), counter], verbose=0
        )
        trained += time.perf_counter() - started
        chunk += 1
        scores, eval_seconds = score(model, heldout)
        point = {
            "train_s": trained,
            "sequences_seen": counter.steps * batch_size,
            "loss": float(history.history["loss"][-1]),
            "eval_s": eval_seconds,
            **scores["model"],
        }
        points.append(point)
        print(
            f"  {preset}: {trained / 60:.1f} min, {point['sequences_seen']} sequences, loss {point['loss']:.4f}, "
            f"MSE {point['mse']:.1f}, SSIM {point['ssim']:.3f}",
            flush=True,
        )
    keras.backend.clear_session()
    return {"preset": preset, "batch_size": batch_size, "points": points, "baselines": baselines}


def plot(curves: dict[str, dict], path: Path) -> None:
    """MSE and SSIM against training minutes, the baselines as horizontal lines."""
    figure = Figure(figsize=(11, 4))
    axes = figure.subplots(1, 2)
    for metric, axis in zip(("mse", "ssim"), axes, strict=True):
        for preset, curve in curves.items():
            minutes = [point["train_s"] / 60 for point in curve["points"]]
            axis.plot(minutes, [point[metric] for point in curve["points"]], marker="o", label=preset)
        baselines = next(iter(curves.values()))["baselines"]
        for (name, values), style in zip(baselines.items(), ("--", ":"), strict=True):
            axis.axhline(values[metric], color="grey", linestyle=style, label=name)
        axis.set_xlabel("training wall-clock (minutes)")
        axis.set_ylabel("MSE per frame (sum over pixels)" if metric == "mse" else "SSIM")
        axis.set_title(f"held-out {metric.upper()}, {HORIZON} frames from {CONTEXT}")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=None, help="training wall-clock per model (default 30)")
    parser.add_argument("--eval-every", type=float, default=None, help="minutes of training between evaluations")
    parser.add_argument("--eval-sequences", type=int, default=None, help="held-out sequences (default 1000)")
    parser.add_argument("--models", nargs="+", default=["cpu-fast"], help="presets to train (seq2seq models)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per training batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model initialisation and the data")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    settings = {
        "minutes": args.minutes if args.minutes is not None else defaults["minutes"],
        "eval_every": args.eval_every if args.eval_every is not None else defaults["eval_every"],
        "eval_sequences": args.eval_sequences if args.eval_sequences is not None else defaults["eval_sequences"],
        "models": args.models,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "heldout_seed": synthetic.HELD_OUT_SEED,
    }
    print(common.describe_machine(common.machine_info()), flush=True)
    heldout = common.moving_mnist(settings["eval_sequences"], seed=synthetic.HELD_OUT_SEED, split="test")
    curves = {}
    for preset in args.models:
        print(f"training {preset} for {settings['minutes']:g} min ...", flush=True)
        curves[preset] = train_and_track(preset, heldout, settings, args.batch_size, args.seed)
    rows = []
    for preset, curve in curves.items():
        first, last = curve["points"][0], curve["points"][-1]
        rows.append([f"{preset}, untrained", 0.0, 0, first["mse"], first["ssim"]])
        rows.append([preset, last["train_s"] / 60, last["sequences_seen"], last["mse"], last["ssim"]])
    for name, values in next(iter(curves.values()))["baselines"].items():
        rows.append([name, "", "", values["mse"], values["ssim"]])
    print(f"\nheld-out: {settings['eval_sequences']} sequences from the test digits, {HORIZON} frames from {CONTEXT}")
    print(common.table(["system", "train minutes", "sequences seen", "MSE", "SSIM"], rows))
    path = common.finish(NAME, args, argv, settings, curves)
    plot(curves, path.with_suffix(".png"))
    print(f"Curve drawn in {path.with_suffix('.png')}")
    return curves


if __name__ == "__main__":
    main()
