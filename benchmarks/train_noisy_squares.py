"""Trains one noisy-squares network at the Keras 2 example's full settings, for shipping; rerun it to resume.

Usage (the command behind ``noisy-squares-causal`` in ``list_pretrained()``, BENCHMARKS.md section (l)):

    nice -n 19 python -m benchmarks.train_noisy_squares --preset noisy-squares-causal \
        --out-dir training-in-progress/noisy-squares --precision auto

The recipe's own data and training (:mod:`keras_convlstm.recipes.noisy_squares`): 1,200 movies generated with
seed 0, the first 1,000 split 950 / 50, batch 10, Adadelta at learning rate 1.0 for up to 300 epochs at a constant
rate. The run folder is ``<out-dir>/runs/<preset>/``; the same command after an interruption resumes it exactly.
"""

from __future__ import annotations

import argparse

from keras_convlstm.recipes import noisy_squares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=noisy_squares.PRESETS, default="noisy-squares-causal")
    parser.add_argument("--out-dir", default="training-in-progress/noisy-squares")
    parser.add_argument("--epochs", type=int, default=noisy_squares.FULL.epochs)
    parser.add_argument("--precision", default="auto", help="float32, bfloat16 or auto (bfloat16 where native)")
    parser.add_argument("--num-train", type=int, default=noisy_squares.FULL.num_train)
    args = parser.parse_args()

    settings = noisy_squares.choose_settings(
        False, epochs=args.epochs, precision=args.precision, num_train=args.num_train
    )
    movies = noisy_squares.build_data(settings, seed=0)
    model = noisy_squares.build_model(args.preset, settings, seed=0)
    print(f"{args.preset}: {model.count_params():,} parameters, {model.config.precision} compute", flush=True)
    noisy_squares.train(model, movies, settings, args.out_dir, seed=0, verbose=2)


if __name__ == "__main__":
    main()
