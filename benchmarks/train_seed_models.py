"""Trains the seed systems' networks at their full sizes, for shipping; the same command resumes an interrupted run.

Usage (the commands behind the seed systems' models in ``list_pretrained()``, BENCHMARKS.md sections (n), (o) and (p)):

    nice -n 19 python -m benchmarks.train_seed_models noisy-squares --preset noisy-squares-causal \
        --out-dir training-in-progress/noisy-squares --precision auto
    nice -n 19 python -m benchmarks.train_seed_models moving-square --max-steps 30000 \
        --out-dir training-in-progress/moving-square
    nice -n 19 python -m benchmarks.train_seed_models shi2015 --filters 64 64 --precision auto \
        --out-dir training-in-progress/shi2015

Each trains through its recipe's own data and training functions:

- ``noisy-squares`` (:mod:`keras_convlstm.recipes.noisy_squares`): 1,200 movies generated with seed 0, the first
  1,000 split 950 / 50, batch 10, Adadelta at learning rate 1.0 for up to 300 epochs at a constant rate; run
  folder ``<out-dir>/runs/<preset>/``. ``--init-from`` starts from another run's weights (for example to go on
  with ``--train-frames 22``, every length the 7 + 16 frame rollout reads) with BatchNormalization statistics
  re-estimated on 200 of its training movies (:func:`keras_convlstm.batch_norm.recalibrate_batch_norm`);
  ``benchmarks.ship_pretrained --recalibrate-on 200`` does the same to the best model before shipping it.
- ``moving-square`` (:mod:`keras_convlstm.recipes.moving_square`): the demo's 64x64 canvas, 8 fresh sequences per
  step, Adam 1e-3, until an epoch's mean MSE is below 0.001 (the demo's own rule) or ``--max-steps`` (the demo
  allows 100); run folder ``<out-dir>/run/``.
- ``shi2015`` (:mod:`keras_convlstm.recipes.shi2015`): the encoder-forecaster (or ``--preset shi2015``) on the
  recipe's full data (10,000 fresh two-digit sequences an epoch, 2,000 validation sequences, batch 16, RMSProp 1e-3,
  up to 100 epochs, early stopping); ``--filters`` makes it smaller; run folder ``<out-dir>/runs/<preset>/``.
"""

from __future__ import annotations

import argparse

import keras

from keras_convlstm.batch_norm import recalibrate_batch_norm
from keras_convlstm.recipes import moving_square, noisy_squares, shi2015

# Training movies whose inputs give the BatchNormalization statistics (200 x 22 frames x 40 x 40 positions).
CALIBRATION_MOVIES = 200


def train_noisy_squares(args: argparse.Namespace) -> None:
    settings = noisy_squares.choose_settings(
        False, epochs=args.epochs, precision=args.precision, num_train=args.num_train, train_frames=args.train_frames
    )
    movies = noisy_squares.build_data(settings, seed=0)
    model = noisy_squares.build_model(args.preset, settings, seed=0)
    if args.init_from:
        model.set_weights(keras.saving.load_model(args.init_from).get_weights())
        # So that val_loss measures the weights from the first epoch on.
        recalibrate_batch_norm(model, movies.train[0][:CALIBRATION_MOVIES])
    print(f"{args.preset}: {model.count_params():,} parameters, {model.config.precision} compute", flush=True)
    noisy_squares.train(model, movies, settings, args.out_dir, seed=0, verbose=2)


def train_moving_square(args: argparse.Namespace) -> None:
    settings = moving_square.choose_settings(False, max_steps=args.max_steps)
    batches, _ = moving_square.build_data(settings, seed=0)
    model = moving_square.build_model(settings, seed=0)
    print(f"moving-square: {model.count_params():,} parameters, up to {settings.max_steps} steps", flush=True)
    moving_square.train(model, batches, settings, args.out_dir, seed=0, verbose=2)


def train_shi2015(args: argparse.Namespace) -> None:
    settings = shi2015.choose_settings(
        False, filters=tuple(args.filters) if args.filters else None, precision=args.precision, epochs=args.epochs
    )
    sequences = shi2015.build_data(settings, seed=0)
    model = shi2015.build_model(args.preset, settings, seed=0)
    print(f"{args.preset}: {model.count_params():,} parameters, {model.config.precision} compute", flush=True)
    shi2015.train(model, sequences, settings, args.out_dir, seed=0, verbose=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    systems = parser.add_subparsers(dest="system", required=True)
    p = systems.add_parser("noisy-squares")
    p.add_argument("--preset", choices=noisy_squares.PRESETS, default="noisy-squares-causal")
    p.add_argument("--out-dir", default="training-in-progress/noisy-squares")
    p.add_argument("--epochs", type=int, default=noisy_squares.FULL.epochs)
    p.add_argument("--precision", default="auto", help="float32, bfloat16 or auto (bfloat16 where native)")
    p.add_argument("--num-train", type=int, default=noisy_squares.FULL.num_train)
    p.add_argument("--train-frames", type=int, default=noisy_squares.FULL.train_frames)
    p.add_argument("--init-from", default=None, help="a .keras file whose weights start the run (fine-tuning)")
    p.set_defaults(run=train_noisy_squares)
    p = systems.add_parser("moving-square")
    p.add_argument("--out-dir", default="training-in-progress/moving-square")
    p.add_argument("--max-steps", type=int, default=30_000)
    p.set_defaults(run=train_moving_square)
    p = systems.add_parser("shi2015")
    p.add_argument("--preset", choices=shi2015.PRESETS, default="shi2015-encoder-forecaster")
    p.add_argument("--out-dir", default="training-in-progress/shi2015")
    p.add_argument("--filters", type=int, nargs="+", default=None, help="ConvLSTM2D filters per layer (5x5 kernels)")
    p.add_argument("--epochs", type=int, default=shi2015.FULL.epochs)
    p.add_argument("--precision", default="auto", help="float32, bfloat16 or auto (bfloat16 where native)")
    p.set_defaults(run=train_shi2015)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
