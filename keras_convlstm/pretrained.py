"""Pretrained models shipped inside the package, each with the command that reproduces it and its metrics."""

from __future__ import annotations

import json
import warnings
from importlib import resources

import keras

_FOLDER = "pretrained"


def _assets():
    return resources.files("keras_convlstm") / "assets" / _FOLDER


def list_pretrained() -> list[str]:
    """Names of the shipped pretrained models (empty when none is shipped)."""
    folder = _assets()
    if not folder.is_dir():
        return []
    return sorted(entry.name.removesuffix(".keras") for entry in folder.iterdir() if entry.name.endswith(".keras"))


def pretrained_info(name: str) -> dict:
    """The record shipped beside a pretrained model: how it was trained (command, time) and its held-out metrics."""
    _check_name(name)
    return json.loads((_assets() / f"{name}.json").read_text())


def load_pretrained(name: str) -> keras.Model:
    """Loads a shipped pretrained model by name (see :func:`list_pretrained`), compiled and ready to predict.

    Args:
        name: the model's name, for example ``"cpu-quality-moving-mnist"``.

    Returns:
        The Keras model; its preset is ``model.config``.
    """
    _check_name(name)
    with resources.as_file(_assets() / f"{name}.keras") as path, warnings.catch_warnings():
        # Shipped files carry no optimizer state on purpose (it would double their size); Keras warns about that.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return keras.saving.load_model(path, safe_mode=True)


def _check_name(name: str) -> None:
    available = list_pretrained()
    if name not in available:
        raise ValueError(f"unknown pretrained model {name!r}; available: {available or 'none shipped'}")
