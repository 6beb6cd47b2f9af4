"""The README's code runs as written: the library example (on fewer sequences and epochs) and the example recipe."""

import importlib
import json
import re
from pathlib import Path

import pytest

from keras_convlstm import cli, recipes

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_library_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    smaller = {"generate_moving_mnist(1000": "generate_moving_mnist(20", "epochs=5": "epochs=1"}
    out_dirs = {'"runs/cpu-fast"': repr(str(tmp_path)), '"runs/cpu-fast-ss"': repr(str(tmp_path / "ss"))}
    for original, replacement in {**smaller, **out_dirs}.items():
        assert original in code, f"README example no longer contains {original!r}"
        code = code.replace(original, replacement)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["future"].shape == (2, 10, 64, 64, 1)
    assert namespace["x"].shape == (2, 19, 64, 64, 1)
    assert sorted(namespace["table"].systems) == ["blank", "copy-last-frame", "model"]
    assert (tmp_path / "best.keras").is_file() and (tmp_path / "ss" / "best.keras").is_file()


@pytest.mark.slow
def test_the_contributing_example_recipe_runs_once_registered(tmp_path, monkeypatch):
    """The README's example recipe, saved as a module and registered as it says, runs with ``recipe NAME --quick``."""
    section = README.read_text().split("## Contributing", 1)[1]
    code = re.search(r'```python\n(""".*?)```', section, re.S).group(1)
    (tmp_path / "squares_rollout.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("squares_rollout")
    monkeypatch.setitem(recipes.RECIPES, module.NAME, module.run)
    out_dir = tmp_path / "out"
    assert cli.main(["recipe", "squares-rollout", "--quick", "--seed", "1", "--out-dir", str(out_dir)]) == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert (summary["recipe"], summary["quick"], summary["seed"]) == ("squares-rollout", True, 1)
    assert summary["settings"] == {"num_sequences": 64, "epochs": 2, "image_size": 32}
    scores = summary["held_out"]
    assert set(scores) == {"model", "copy-last-frame", "blank"}
    assert all(0 <= scores[system]["ssim"] <= 1 and scores[system]["mse"] >= 0 for system in scores)
    assert (out_dir / "run" / "best.keras").is_file()
