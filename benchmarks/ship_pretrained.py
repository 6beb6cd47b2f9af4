"""Packages a trained model as a shipped pretrained model, with its held-out metrics and how it was trained.

Usage (after the training command recorded in BENCHMARKS.md):

    python -m benchmarks.ship_pretrained runs/pretrained/best.keras --name cpu-quality-moving-mnist \
        --preset cpu-quality --command "python -m keras_convlstm train ..."

The weights go into a freshly built model of the trained model's config, or of ``--preset`` when given (no optimizer
state, so the file stays small), saved under ``keras_convlstm/assets/pretrained/<name>.keras``; ``<name>.json``
beside it records the command, the training history (one row per epoch of the run's ``history.csv``, as numbers)
and the metrics on the fixed held-out set: 1,000 Moving
MNIST sequences generated with seed 10,000 from the held-out test digits, 10 frames in and 10 predicted
autoregressively, beside the copy-last-frame and blank baselines; for frame-by-frame models also the same frames
predicted one step ahead from the true frames and from the whole true sequence in one call (``evaluate_views``).
``check`` holds the model's mean MSE in float32 on 16 sequences generated the same way (seed 10,000, held-out
digits), which the tests recompute; ``machine`` the CPU, its speed flags and the software. ``--data noisy-squares``
scores a noisy-squares network instead on movies generated with seed 10,000 (7 noisy frames given, 16 clean ones
predicted autoregressively, :func:`keras_convlstm.recipes.noisy_squares.held_out_movies`), ``--data moving-square`` a
moving-square network on the recipe's held-out squares (seed 10,000), ``--data shi2015`` an encoder-forecaster on
the Shi et al. recipe's two-digit test set, with every score on two and three digits in ``shi2015_scores`` (the
cross-entropy per sequence of the paper's Table 1 included); ``data`` in the record says which. With
``--recalibrate-on MOVIES`` (noisy squares) the BatchNormalization statistics are first re-estimated on that many
training movies of ``--train-frames`` frames (:func:`keras_convlstm.batch_norm.recalibrate_batch_norm`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
from pathlib import Path

import keras
import numpy as np

from benchmarks.common import machine_info
from keras_convlstm.backups import BACKUP_METADATA, completed_epochs
from keras_convlstm.batch_norm import recalibrate_batch_norm
from keras_convlstm.evaluation import MetricTable, evaluate, evaluate_views
from keras_convlstm.files import atomic_paths
from keras_convlstm.models import build_model
from keras_convlstm.recipes import moving_square, noisy_squares, shi2015
from keras_convlstm.synthetic import HELD_OUT_SEED, generate_moving_mnist_split

ASSETS = Path(__file__).resolve().parents[1] / "keras_convlstm" / "assets" / "pretrained"
CHECK_SEQUENCES = 16
CHECK_PRECISION = "float32"
# What Keras's CSVLogger writes for a value it did not log.
MISSING_VALUES = ("", "NA")


def read_history(history_csv: Path) -> list[dict[str, float]]:
    """The rows of a run's ``history.csv`` as numbers: ``epoch`` (counted from 0) an int, the logs floats.

    Values the log left empty are left out of their row; a run without ``history.csv`` has no history (``[]``).
    """
    if not history_csv.exists():
        return []
    with open(history_csv, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [
        {
            key: int(value) if key == "epoch" else float(value)
            for key, value in row.items()
            if value not in MISSING_VALUES
        }
        for row in rows
    ]


DATA = ("moving-mnist", "moving-square", "noisy-squares", "shi2015")
DESCRIPTIONS = {
    "moving-mnist": "{count} generated Moving MNIST sequences, seed 10000, held-out test digits; 10 context frames, "
    "10 predicted autoregressively",
    "noisy-squares": "{count} generated noisy-squares movies, seed 10000; 7 noisy frames given, 16 clean frames "
    "predicted autoregressively",
    "moving-square": "{count} generated moving squares on a 64x64 canvas, seed 10000; frame 10 predicted from "
    "frames 1-9",
    "shi2015": "{count} generated two-digit Moving MNIST sequences of the Shi et al. recipe's test set (seed 10000, "
    "held-out test digits); 10 context frames, 10 predicted",
}


def finished_epochs(run_dir: Path, history: list[dict[str, float]]) -> int:
    """Epochs the run in ``run_dir`` finished: its backup's count where there is one, else the history's length."""
    backup_dir = run_dir / "backup"
    return completed_epochs(backup_dir) if (backup_dir / BACKUP_METADATA).exists() else len(history)


def score(model: keras.Model, data: str, count: int) -> MetricTable:
    """The model beside copy-last-frame and blank on the first ``count`` held-out sequences of ``data``.

    ``data`` is one of :data:`DATA`: Moving MNIST rolled out 10 frames from 10, noisy squares rolled out 16 from 7
    (:func:`~keras_convlstm.recipes.noisy_squares.held_out_movies`), moving squares' frame 10 from frames 1-9 (the
    recipe's held-out squares), Shi et al.'s two-digit test set (:func:`shi2015_result`); all generated with seed
    10,000.
    """
    if data == "moving-mnist":
        return evaluate(model, generate_moving_mnist_split(count, seed=HELD_OUT_SEED, split="test"))
    if data == "noisy-squares":
        context, truth = noisy_squares.held_out_movies(noisy_squares.FULL, count)
        return noisy_squares.evaluate(noisy_squares.predict({"model": model}, context, noisy_squares.FULL), truth)
    if data == "moving-square":
        settings = dataclasses.replace(moving_square.FULL, held_out_sequences=count)
        return moving_square.evaluate(model, moving_square.build_data(settings)[1])
    if data == "shi2015":
        return shi2015_result(model, count).table
    raise ValueError(f"expected data in {DATA}, got {data!r}")


def shi2015_result(model: keras.Model, count: int, num_digits: int = 2) -> shi2015.Shi2015Result:
    """The model on the first ``count`` sequences of the Shi et al. recipe's test set with ``num_digits`` digits."""
    settings = dataclasses.replace(shi2015.FULL, test_sequences=count)
    return shi2015.evaluate({"model": model}, shi2015.test_sequences(settings, num_digits), settings)


def rollout_table(views: MetricTable) -> MetricTable:
    """The rollout row of :func:`~keras_convlstm.evaluation.evaluate_views` named "model", beside both baselines.

    That is the table :func:`score` computes for Moving MNIST: the same frames, rolled out the same way.
    """
    systems = {"model": "rollout", "copy-last-frame": "copy-last-frame", "blank": "blank"}
    return MetricTable({name: views.metrics[view] for name, view in systems.items()}, threshold=views.threshold)


def check_mse(model: keras.Model, data: str) -> float:
    """The record's ``check``, which the tests recompute: the model's mean MSE on :data:`CHECK_SEQUENCES` sequences.

    Computed in float32 (:data:`CHECK_PRECISION`) whatever the model's own precision: bfloat16 rounds differently on
    CPUs with and without AMX, and a rollout carries that difference from frame to frame.
    """
    float32_model = build_model(model.config, precision=CHECK_PRECISION)
    float32_model.set_weights(model.get_weights())
    return float(score(float32_model, data, CHECK_SEQUENCES).means()["model"]["mse"])


def held_out_entry(table: MetricTable, description: str) -> dict:
    """A table's means and per-step MSE and SSIM, with what was scored."""
    return {
        "description": description,
        "means": table.means(),
        "mse_per_step": {system: np.asarray(values["mse"]).tolist() for system, values in table.metrics.items()},
        "ssim_per_step": {system: np.asarray(values["ssim"]).tolist() for system, values in table.metrics.items()},
        "table": table.to_dict(),  # every metric, for MetricTable.from_dict
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="trained .keras file (e.g. best.keras of a training run)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--preset", default=None, help="architecture of the weights (default: their own)")
    parser.add_argument("--command", required=True, help="the command that trained it")
    parser.add_argument("--data", choices=DATA, default="moving-mnist", help="what it was trained on")
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument(
        "--recalibrate-on",
        type=int,
        default=0,
        metavar="MOVIES",
        help="noisy squares: first re-estimate the BatchNormalization statistics on this many training movies",
    )
    parser.add_argument("--train-frames", type=int, default=noisy_squares.FULL.train_frames)
    args = parser.parse_args()
    if args.recalibrate_on and args.data != "noisy-squares":
        parser.error("--recalibrate-on reads the noisy-squares training movies; use it with --data noisy-squares")

    trained = keras.saving.load_model(args.model)
    model = build_model(trained.config) if args.preset is None else build_model(args.preset, loss=trained.config.loss)
    model.set_weights(trained.get_weights())
    recalibrated = None
    if args.recalibrate_on:
        settings = dataclasses.replace(noisy_squares.FULL, train_frames=args.train_frames)
        inputs = noisy_squares.build_data(settings, seed=0).train[0][: args.recalibrate_on]
        recalibrated = {
            "layers": recalibrate_batch_norm(model, inputs),
            "inputs": f"the first {len(inputs)} training movies (seed 0), frames 1-{args.train_frames}",
        }
    views, shi2015_scores = None, None
    if args.data == "shi2015":  # Table 1's convention on two digits, and the paper's out-of-domain test on three
        results = {digits: shi2015_result(model, args.held_out, digits) for digits in shi2015.TEST_DIGITS}
        shi2015_scores = {f"{digits}_digits": result.scores for digits, result in results.items()}
        table = results[2].table
    elif args.data == "moving-mnist" and model.config.kind == "seq2seq":
        views = evaluate_views(model, generate_moving_mnist_split(args.held_out, seed=HELD_OUT_SEED, split="test"))
        print(views.to_text())
        table = rollout_table(views)  # the views' rollout is what score would compute: roll out once
    else:
        table = score(model, args.data, args.held_out)
    print(table.to_text())

    run_dir = Path(args.model).parent
    history = read_history(run_dir / "history.csv")
    epochs_completed = finished_epochs(run_dir, history)
    record = {
        "name": args.name,
        "preset": model.config.name,
        "filters": list(model.config.filters),
        "kernel_sizes": list(model.config.kernel_sizes),
        "parameters": model.count_params(),
        "command": args.command,
        "epochs_completed": epochs_completed,
        # Epochs the run finished whose rows its history.csv lacks (counted from 0), in the order they ran.
        "history_missing_epochs": sorted(set(range(epochs_completed)) - {row["epoch"] for row in history}),
        "final_epoch": history[-1] if history else None,
        "best_checkpoint": json.loads((run_dir / "best.json").read_text())
        if (run_dir / "best.json").exists()
        else None,
        "history": history,
        # BatchNormalization statistics re-estimated after training (keras_convlstm.batch_norm), or None.
        "batch_norm_recalibrated": recalibrated,
        "data": args.data,
        "held_out": held_out_entry(table, DESCRIPTIONS[args.data].format(count=args.held_out)),
        # The same frames predicted one step ahead from true frames and from the whole true sequence in one call.
        "views": None if views is None else {"means": views.means(), **views.to_dict()},
        # Shi et al.'s recipe: every score (cross-entropy per sequence included) on two and on three digits.
        "shi2015_scores": shi2015_scores,
        "check": {"sequences": CHECK_SEQUENCES, "precision": CHECK_PRECISION, "model_mse": check_mse(model, args.data)},
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
    }
    ASSETS.mkdir(parents=True, exist_ok=True)
    with atomic_paths() as stage:  # both files or neither
        model.save(stage(ASSETS / f"{args.name}.keras"))
        stage(ASSETS / f"{args.name}.json").write_text(json.dumps(record, indent=2, default=float, allow_nan=True))
    size = (ASSETS / f"{args.name}.keras").stat().st_size
    print(f"wrote {ASSETS / args.name}.keras ({size / 1e6:.1f} MB) and .json")


if __name__ == "__main__":
    main()
