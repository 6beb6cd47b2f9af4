"""End-to-end recipes for the systems reproduced beside the official example, and their registry.

Each recipe is one module holding its quick and full settings (frozen dataclasses ``QUICK`` and ``FULL``) and its
steps as public functions (``choose_settings``, ``build_data``, ``build_model``, ``train``, ``evaluate``,
``write_pictures``, ``summarize``), which a notebook can call one by one; its ``run`` chains them, writes pictures
and ``summary.json`` into ``out_dir`` and returns the summary (JSON-serialisable). ``quick=True`` picks settings
that finish in well under a minute on a 2-core CPU; their numbers are quick-mode numbers, not reproductions of the
originals. :mod:`keras_convlstm.recipes.common` holds what the recipes share.

- ``moving-square`` (:mod:`~keras_convlstm.recipes.moving_square`): the PyTorch many-to-one demo, one white
  square, frames 1-9 -> 10.
- ``noisy-squares`` (:mod:`~keras_convlstm.recipes.noisy_squares`): the Keras 2 example, with its 'same' Conv3D
  and the causal fix, rolled out 16 frames from 7.
- ``shi2015`` (:mod:`~keras_convlstm.recipes.shi2015`): Shi et al. 2015 on Moving MNIST 10 -> 10, the seq2seq
  stack and the encoder-forecaster, scored in the paper's Table 1 convention beside its numbers, plus 3-digit
  sequences.
- ``actions`` (:mod:`~keras_convlstm.recipes.actions`): video classification of a digit's direction of motion,
  through a video folder written as GIFs, a person-wise split and the ``classifier`` preset.

:data:`RECIPES` maps each name to its ``run``: ``RECIPES[name](out_dir=..., quick=..., seed=...)`` is what
``python -m keras_convlstm recipe NAME [--quick]`` runs. A new recipe is registered here, and only here.
"""

from __future__ import annotations

from collections.abc import Callable

from keras_convlstm.recipes import actions, common, moving_square, noisy_squares, shi2015

RECIPES: dict[str, Callable[..., dict]] = {
    moving_square.NAME: moving_square.run,
    noisy_squares.NAME: noisy_squares.run,
    shi2015.NAME: shi2015.run,
    actions.NAME: actions.run,
}

__all__ = ["RECIPES", "actions", "common", "moving_square", "noisy_squares", "shi2015"]
