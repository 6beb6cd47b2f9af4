"""The README's library example runs as written, on fewer sequences and epochs."""

import re
from pathlib import Path

import pytest

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
