"""Every example in the package's docstrings runs and prints what it shows (doctest)."""

import doctest
import importlib
import pkgutil

import pytest

import keras_convlstm

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(keras_convlstm.__path__, prefix="keras_convlstm.")
    if info.name != "keras_convlstm.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_as_written(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example may write a file (diagrams.draw_network)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see the output)"


def test_the_examples_are_found():
    """The modules whose docstrings show examples are among those collected above (guards the discovery)."""
    with_examples = [name for name in MODULES if ">>>" in (importlib.import_module(name).__doc__ or "")]
    assert {"keras_convlstm.models", "keras_convlstm.causality", "keras_convlstm.precision"} <= set(with_examples)
