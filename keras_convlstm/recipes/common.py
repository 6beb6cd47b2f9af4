"""What every recipe shares: its settings chosen and checked, numbers rounded for a summary, ``summary.json``.

A recipe's settings are a frozen dataclass with one ``QUICK`` and one ``FULL`` instance; :func:`choose` picks
one and applies the caller's overrides. A recipe's ``run`` ends with :func:`finish`, which writes the summary
every recipe shares the head of: ``{"recipe", "quick", "seed", ..., "seconds"}``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from keras_convlstm import evaluation
from keras_convlstm.checks import check_integer
from keras_convlstm.files import write_json

Settings = TypeVar("Settings")


def choose(quick_settings: Settings, full_settings: Settings, quick: bool, **overrides: Any) -> Settings:
    """``quick_settings`` or ``full_settings``, with every override that is not None applied.

    None stands for "the chosen setting", so a command line or a notebook can pass all its knobs unconditionally.
    """
    chosen = quick_settings if quick else full_settings
    return dataclasses.replace(chosen, **{name: value for name, value in overrides.items() if value is not None})


def check_settings(settings: object, positive_integers: tuple[str, ...]) -> None:
    """Turns list fields of a frozen settings dataclass into tuples and checks its positive-integer fields.

    Called from the settings' ``__post_init__``, so ``dataclasses.replace`` is checked too.

    Raises:
        ValueError: naming the field, the value and the settings class.
    """
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, list):
            object.__setattr__(settings, field.name, tuple(value))
    for name in positive_integers:
        try:
            check_integer(getattr(settings, name), name)
        except ValueError as error:
            raise ValueError(f"{error} ({type(settings).__name__})") from None


def recipe_folder(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a ``Path``, created with its parents if missing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def summary_number(value: float, digits: int = 6) -> float | None:
    """``value`` rounded for a summary; None for an undefined (nan) or infinite value, which JSON lacks."""
    return round(float(value), digits) if math.isfinite(value) else None


def summary_means(table: evaluation.MetricTable, names: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """``{system: {metric: mean over the horizon}}`` for the chosen metrics, rounded for a summary."""
    return {system: {name: summary_number(values[name]) for name in names} for system, values in table.means().items()}


def finish(out_dir: str | os.PathLike, recipe: str, quick: bool, seed: int, body: dict, started: float) -> dict:
    """Writes ``out_dir/summary.json`` and returns the summary.

    Args:
        out_dir: the recipe's folder.
        recipe: the recipe's registered name.
        quick: whether the quick settings were chosen.
        seed: the recipe's seed.
        body: the recipe's own summary (settings, scores, files), JSON-serialisable.
        started: ``time.perf_counter()`` when the recipe began; the summary records the seconds since.

    Returns:
        ``{"recipe": recipe, "quick": quick, "seed": seed, **body, "seconds": ...}``.
    """
    summary = {"recipe": recipe, "quick": quick, "seed": seed, **body}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json(Path(out_dir) / "summary.json", summary)
    return summary
