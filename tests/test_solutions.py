"""Exercise solutions: every ``notebooks/solutions/*.py`` runs, each exercise checking its own answer.

A solutions file belongs to the notebook of the same name. Each exercise is a function ``exercise_N()`` that
computes its answer and asserts it; the names listed in the file's ``SLOW`` set take minutes (training) and are
left to the reader.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTION_FILES = sorted((NOTEBOOK_DIR / "solutions").glob("*.py"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exercises():
    for path in SOLUTION_FILES:
        module = _load(path)
        slow = getattr(module, "SLOW", set())
        for name in sorted(name for name in vars(module) if name.startswith("exercise_")):
            marks = [pytest.mark.skip(reason="listed in SLOW: takes minutes")] if name in slow else []
            yield pytest.param(path, name, marks=marks, id=f"{path.stem}::{name}")


def test_every_notebook_has_its_solutions_and_every_solution_its_notebook():
    notebooks = {path.stem for path in NOTEBOOK_DIR.glob("*.ipynb")}
    solutions = {path.stem for path in SOLUTION_FILES}
    assert solutions == notebooks


@pytest.mark.parametrize(("path", "name"), list(_exercises()))
def test_exercise_solution_runs_and_checks_its_answer(path, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    getattr(_load(path), name)()
