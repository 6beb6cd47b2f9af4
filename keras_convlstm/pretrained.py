"""Pretrained models shipped inside the package, each with the command that reproduces it and its metrics.

The shipped models were trained in bfloat16; :func:`load_pretrained` rebuilds them in the precision that suits the
machine (``"auto"``, see :mod:`keras_convlstm.precision`), so a CPU without bfloat16 instructions predicts in
float32 at full speed.
"""

from __future__ import annotations

import json
import warnings
from importlib import resources

import keras

from keras_convlstm.models import build_model
from keras_convlstm.precision import AUTO, resolve_precision

_FOLDER = "pretrained"


def _assets():
    return resources.files("keras_convlstm") / "assets" / _FOLDER


def list_pretrained(data: str | None = None) -> list[str]:
    """Names of the shipped pretrained models (empty when none is shipped).

    Args:
        data: only the models trained on these data, as their records say (``pretrained_info(name)["data"]``):
            ``"moving-mnist"`` (the models whose held-out scores are comparable with each other),
            ``"noisy-squares"`` or ``"moving-square"``; None: every model.
    """
    folder = _assets()
    if not folder.is_dir():
        return []
    names = sorted(entry.name.removesuffix(".keras") for entry in folder.iterdir() if entry.name.endswith(".keras"))
    return [name for name in names if data is None or pretrained_info(name)["data"] == data]


def pretrained_info(name: str) -> dict:
    """The record shipped beside a pretrained model: how it was trained (command, time) and its held-out metrics.

    ``"history"``, where the training log was kept, lists one dict per epoch (``epoch`` counted from 0, ``loss``,
    ``val_loss``, ``learning_rate``), for :func:`keras_convlstm.viz.plot_history`.
    """
    _check_name(name)
    return json.loads((_assets() / f"{name}.json").read_text())


def load_pretrained(name: str, precision: str = AUTO) -> keras.Model:
    """Loads a shipped pretrained model by name (see :func:`list_pretrained`), compiled and ready to predict.

    A model stored in another precision is rebuilt from its config under ``precision`` and given the stored
    weights (always float32), so its frames equal the stored model's within the rounding of the coarser precision.

    Args:
        name: the model's name, for example ``"cpu-quality-moving-mnist"``.
        precision: ``"auto"`` (what this machine computes fastest), ``"float32"``, ``"bfloat16"`` or
            ``"float16"``.

    Returns:
        The Keras model; its preset is ``model.config``, and ``model.config.precision`` the precision it computes in.
    """
    _check_name(name)
    wanted = resolve_precision(precision)
    with resources.as_file(_assets() / f"{name}.keras") as path, warnings.catch_warnings():
        # Shipped files carry no optimizer state on purpose (it would double their size); Keras warns about that.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        stored = keras.saving.load_model(path, safe_mode=True)
    if stored.config.precision == wanted:
        return stored
    model = build_model(stored.config, precision=wanted)
    model.set_weights(stored.get_weights())
    return model


def _check_name(name: str) -> None:
    available = list_pretrained()
    if name not in available:
        raise ValueError(f"unknown pretrained model {name!r}; available: {available or 'none shipped'}")
