"""Notebooks: static checks of every notebooks/*.ipynb, and an end-to-end run of each with nbclient.

The static checks keep the stored notebooks clean (no outputs), runnable in Colab (badge and install cell of the
same branch, from the repository URL in pyproject.toml, keeping Colab's own packages; an optional Google Drive
folder), configurable
(one papermill ``parameters`` cell of literals, each with a comment giving the full setting), independent of
each other, rendered into ``docs/`` with their outputs, and keep the logic in the package (no top-level
``def``/``class`` that shadows a ``keras_convlstm`` name).

The execution tests run each notebook with its quick defaults, shortened where it trains (``TEST_PARAMETERS``), in
its own temporary folder (so no notebook can read a file another one wrote), with an empty ``KERAS_HOME`` (no
official file is found, nothing is downloaded) and the offline MNIST digits, as ``make docs`` does
(docs/render.py).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import nbformat
import numpy as np
import pytest
from IPython.core.inputtransformer2 import TransformerManager

import keras_convlstm

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
DOCS_DIR = ROOT / "docs"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REPOSITORY_URL = PROJECT["urls"]["Repository"]
RELEASE_TAG = f"v{PROJECT['version']}"
# The branch that the Colab badges open; the install cells install the package from the same ref.
NOTEBOOK_REF = "main"
COLAB_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_URL = (
    f"https://colab.research.google.com/github/{REPOSITORY_URL.removeprefix('https://github.com/')}"
    f"/blob/{NOTEBOOK_REF}/notebooks/{{name}}"
)
PIP_REQUIREMENT = f'"keras_convlstm @ git+{REPOSITORY_URL}@{NOTEBOOK_REF}"'
HEADER_FIELDS = ("Author:", "Date created:", "Last modified:", "Description:", "Accelerator:")
MAX_DESCRIPTION_CHARS = 100
# Lines each notebook must print with its quick defaults (other notebooks are only run).
EXPECTED_OUTPUTS = {
    "01_moving_mnist_data.ipynb": [
        "Data source: generated",
        "sequences (sequence, time, height, width, channels): (100, 20, 64, 64, 1) uint8",
        "shared indices: 0",
        "x shape: (5, 19, 64, 64, 1) float32",
        "y[:, t] == x[:, t + 1] for every t: True",
        "batch 0 again is identical: True",
    ],
    "02_convlstm_model_and_training.ipynb": [
        "5x5 kernels: a pixel of X_0 reaches [2, 4, 6] px in H_0..H_2",
        "from-scratch step equals ConvLSTM2D within 1e-5: True",
        "746,689 parameters, 746,433 trainable",
        "keras.io code and build_model('keras-example'): same parameters True, same outputs True",
        "one step of conv_lstm_1: h (2, 64, 64, 64), c (2, 64, 64, 64)",
        "output 2 (target: frame 3) moves in keras-example: True",
        "output 2 moves in keras-example-causal: False",
        "plain-Keras causal model and build_model('keras-example-causal'): same parameters True, same outputs True",
        "validation sequences: (16, 20, 64, 64, 1) uint8",
        "same config: True",
    ],
    "03_rollout_and_evaluation.ipynb": [
        "held-out means on 1,000 sequences",
        "test sequences: (16, 20, 64, 64, 1) uint8",
        "prediction: (16, 10, 64, 64, 1) float32",
        "one-step-ahead predictions: (3, 20, 64, 64, 1)",
        "copy-last-frame",
    ],
    "04_beyond_the_example.ipynb": [
        "beats copy-last-frame: True",
        "people in both train and test: []",
    ],
    "05_your_own_videos.ipynb": [
        "clips (clip, time, height, width, channels): (50, 20, 32, 32, 3) uint8",
        "videos on both sides: []",
        "test clips: (8, 20, 32, 32, 3) | forecast: (8, 10, 32, 32, 3) float32",
        "$ python -m keras_convlstm evaluate --model",
        "predict: exit status 0",
        "predict wrote: ['predictions.npy', 'rollout.gif', 'rollout.png'] | forecast (1, 10, 32, 32, 3)",
    ],
}
# Shorter training than the rendered pages (docs/render.py's QUICK_PARAMETERS): a page shows what its quick run
# learns, this test that every cell runs and prints what it should. What the recipes learn in their quick runs is
# checked in test_recipes.py; notebook 04's moving square keeps its steps, since it prints that it beats
# copy-last-frame.
TEST_PARAMETERS = {
    "02_convlstm_model_and_training.ipynb": {"TRAIN_SECONDS": 10},
    "04_beyond_the_example.ipynb": {
        "SHI_SEQUENCES_PER_EPOCH": 8,
        "SHI_EPOCHS": 1,
        "SHI_TEST_SEQUENCES": 4,
        "ACTION_PEOPLE": 4,
        "ACTION_EPOCHS": 1,
    },
    "05_your_own_videos.ipynb": {"TRAIN_SECONDS": 5},
}
KERNEL_CHECK_MARKER = "KERNEL_CHECK "
# Markdown images and links of a rendered page: ![alt](path) and [text](path).
PAGE_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
PAGE_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _load_render():
    """docs/render.py, which executes and renders the notebooks (``make docs``), as a module."""
    spec = importlib.util.spec_from_file_location("render", DOCS_DIR / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_render()


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _parameter_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", [])]


def _parameters(notebook: nbformat.NotebookNode) -> dict[str, object]:
    """The literal values of the parameters cell."""
    tree = ast.parse(render.parameter_cell(notebook).source)
    return {statement.targets[0].id: ast.literal_eval(statement.value) for statement in tree.body}


def _python_source(cell: nbformat.NotebookNode) -> str:
    """The cell as plain Python: IPython magics (``%pip ...``) become ``get_ipython()`` calls."""
    return TransformerManager().transform_cell(cell.source)


def _public_package_names() -> set[str]:
    """Public attributes of keras_convlstm and of every module in it (``__main__`` would run the CLI)."""
    names = {name for name in dir(keras_convlstm) if not name.startswith("_")}
    for module_info in pkgutil.iter_modules(keras_convlstm.__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"keras_convlstm.{module_info.name}")
        names |= {name for name in dir(module) if not name.startswith("_")}
    return names


def _read(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return notebook


notebook_params = pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])


def test_expected_notebooks_exist():
    names = {path.name for path in NOTEBOOKS}
    missing = sorted(set(EXPECTED_OUTPUTS) - names)
    assert not missing, f"expected these notebooks in {NOTEBOOK_DIR}, missing: {missing}"


@notebook_params
def test_header_and_colab_badge(path):
    notebook = _read(path)
    first = notebook.cells[0]
    kind = first.cell_type
    assert kind == "markdown", f"{path.name}: expected a markdown header first, got {kind}"
    assert first.source.startswith("# "), f"{path.name}: the header must start with '# <Title>'"
    for field in HEADER_FIELDS:
        assert field in first.source, f"{path.name}: header field {field!r} missing"
    description = re.search(r"Description:\**\s*(.+?)(?:<br>)?$", first.source, flags=re.MULTILINE)
    assert description, f"{path.name}: could not read the Description line"
    assert len(description.group(1)) < MAX_DESCRIPTION_CHARS, (
        f"{path.name}: the description must be < {MAX_DESCRIPTION_CHARS} characters, "
        f"got {len(description.group(1))}: {description.group(1)!r}"
    )
    badge = f"[![Open In Colab]({COLAB_BADGE_IMAGE})]({COLAB_URL.format(name=path.name)})"
    assert badge in first.source, f"{path.name}: expected the Colab badge {badge}"


@notebook_params
def test_metadata(path):
    notebook = _read(path)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.metadata["language_info"]["name"] == "python"


@notebook_params
def test_stored_without_outputs(path):
    notebook = _read(path)
    for index, cell in enumerate(_code_cells(notebook)):
        assert cell.outputs == [], f"{path.name}: code cell {index} has stored outputs"
        count = cell.execution_count
        assert count is None, f"{path.name}: code cell {index} has execution_count {count}"


@notebook_params
def test_one_parameters_cell_of_commented_literals(path):
    notebook = _read(path)
    cells = _parameter_cells(notebook)
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', got {len(cells)}"
    cell = cells[0]
    assert cell.cell_type == "code"
    tree = ast.parse(cell.source)
    assert tree.body, f"{path.name}: the parameters cell is empty"
    lines = cell.source.splitlines()
    for statement in tree.body:
        code = ast.unparse(statement)
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, (
            f"{path.name}: expected only 'NAME = value' lines in the parameters cell, got {code!r}"
        )
        ast.literal_eval(statement.value)  # papermill can only override literals
        line = lines[statement.lineno - 1]
        assert "#" in line, f"{path.name}: parameter line without a comment giving the full setting: {line!r}"
    # An override of a name the cell no longer defines would be dropped without a word (render.inject_parameters).
    unknown = set(TEST_PARAMETERS.get(path.name, {})) - set(_parameters(notebook))
    assert not unknown, f"{path.name}: TEST_PARAMETERS names parameters the notebook does not define: {unknown}"


@notebook_params
def test_install_cell(path):
    notebook = _read(path)
    install_cells = [
        cell
        for cell in _code_cells(notebook)
        if "%pip install" in cell.source and 'find_spec("keras_convlstm")' in cell.source
    ]
    assert len(install_cells) == 1, (
        f"{path.name}: expected one code cell running %pip install if find_spec('keras_convlstm') is None, "
        f"got {len(install_cells)}"
    )
    source = install_cells[0].source
    expected = f"%pip install -q {PIP_REQUIREMENT}"
    assert expected in source, f"{path.name}: the install cell must run {expected}"
    # Already installed packages that meet the requirements (Colab's TensorFlow, Keras, ipywidgets) stay.
    for option in ("--upgrade", " -U", "--force-reinstall", "--ignore-installed", "--no-deps"):
        assert option not in source, f"{path.name}: the install cell must not pass {option.strip()} to pip"
    assert f"@{RELEASE_TAG}" in source, f"{path.name}: the install cell must say how to pin the release @{RELEASE_TAG}"


def test_requirements_accept_colab_packages_and_newer_pythons():
    """Colab ships ipywidgets 7 and moves to newer Pythons: the requirements accept both, so pip keeps Colab's."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    requirements = {requirement.name: requirement for requirement in map(Requirement, PROJECT["dependencies"])}
    assert requirements["ipywidgets"].specifier.contains("7.7.1"), requirements["ipywidgets"]
    python = SpecifierSet(PROJECT["requires-python"])
    newer = [version for version in ("3.13", "3.14", "3.15") if not python.contains(version)]
    assert not newer, f"requires-python {python} refuses Python {newer}: let TensorFlow's wheels decide"


def test_the_release_tag_names_the_package_version():
    """Badges and install cells name ``v<version>``: the version of pyproject.toml and of the package."""
    assert keras_convlstm.__version__ == PROJECT["version"]
    assert REPOSITORY_URL.startswith("https://github.com/") and REPOSITORY_URL.count("/") == 4
    readme = (ROOT / "README.md").read_text()
    assert f"pip install {PIP_REQUIREMENT}" in readme, f"README must install {PIP_REQUIREMENT}"
    release = f'"keras_convlstm @ git+{REPOSITORY_URL}@{RELEASE_TAG}"'
    assert f"pip install {release}" in readme, f"README must show how to install the release {release}"
    assert "tagged `v<version>`" in readme, "README must say that releases are tagged v<version>"


@notebook_params
def test_google_drive_keeps_the_output_folder_on_request(path):
    """An optional cell moves the notebook's output folder into Google Drive (Colab only), off by default."""
    notebook = _read(path)
    parameters = _parameters(notebook)
    assert parameters.get("USE_GOOGLE_DRIVE") is False, f"{path.name}: expected USE_GOOGLE_DRIVE = False"
    folder = "OUT_DIR" if "OUT_DIR" in parameters else "WORK_DIR"
    call = f"colab.drive_folder({folder}, use_google_drive=USE_GOOGLE_DRIVE)"
    assert any(call in cell.source for cell in _code_cells(notebook)), f"{path.name}: expected a cell calling {call}"


@notebook_params
def test_notebook_reads_no_file_of_another_notebook(path):
    """Each notebook runs alone in a fresh runtime: no code cell names another notebook's folder or file."""
    notebook = _read(path)
    others = [other.stem for other in NOTEBOOKS if other != path]
    for cell in _code_cells(notebook):
        for other in others:
            assert other not in cell.source, f"{path.name}: a code cell refers to {other}"


@notebook_params
def test_no_definition_shadows_the_package(path):
    notebook = _read(path)
    package_names = _public_package_names()
    shadowing = []
    for cell in _code_cells(notebook):
        for statement in ast.parse(_python_source(cell)).body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if statement.name in package_names:
                    shadowing.append(statement.name)
    assert not shadowing, (
        f"{path.name}: top-level definitions {shadowing} shadow keras_convlstm names; call the package"
    )


def _printed_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in _code_cells(notebook):
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
@notebook_params
def test_notebook_runs(path, tmp_path, monkeypatch, record_property):
    notebook = _read(path)
    render.inject_parameters(notebook, {**render.QUICK_PARAMETERS, **TEST_PARAMETERS.get(path.name, {})})
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "import sys, keras_convlstm\n"
            f"print({KERNEL_CHECK_MARKER!r} + sys.executable + ' ' + keras_convlstm.__file__)"
        )
    )
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    shutil.copy(path, work_dir / path.name)
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir()
    # The kernel runs this test's interpreter, where keras_convlstm is installed: JUPYTER_PATH has the highest
    # priority, ahead of any user-level python3 kernel that might point at another Python.
    render.write_kernel_spec(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "2"}

    started = time.perf_counter()
    render.execute(notebook, work_dir, env)
    elapsed = time.perf_counter() - started
    record_property("execution_seconds", round(elapsed, 1))
    print(f"{path.name} executed in {elapsed:.0f} s")

    printed = _printed_text(notebook)
    check = [line for line in printed.splitlines() if line.startswith(KERNEL_CHECK_MARKER)]
    assert check == [f"{KERNEL_CHECK_MARKER}{sys.executable} {keras_convlstm.__file__}"], (
        f"the kernel must run the test interpreter {sys.executable} with this keras_convlstm, got {check}"
    )
    for expected in EXPECTED_OUTPUTS.get(path.name, []):
        assert expected in printed, f"{path.name}: expected the output {expected!r}"
    # Keras writes keras.json into KERAS_HOME on import; datasets/ is where a download would land.
    downloaded = sorted(item.name for item in (keras_home / "datasets").rglob("*") if item.is_file())
    assert downloaded == [], f"{path.name} downloaded into the Keras cache: {downloaded}"


@notebook_params
def test_rendered_page_is_current_and_its_links_exist(path):
    """``make docs`` rendered the notebook into docs/<name>.md: every cell of the notebook is on the page."""
    page_path = DOCS_DIR / f"{path.stem}.md"
    assert page_path.is_file(), f"no rendered page {page_path}: run `make docs`"
    page = page_path.read_text()
    for index, cell in enumerate(_read(path).cells):
        source = render.page_links(cell.source) if cell.cell_type == "markdown" else cell.source
        assert source.strip() in page, f"{page_path.name} is out of date (cell {index}): run `make docs`"
    images = PAGE_IMAGE.findall(page)
    assert any(image.endswith(".png") for image in images), f"{page_path.name} shows no figure"
    for link in PAGE_LINK.findall(page):
        if not re.match(r"^([a-z]+:|#)", link):
            assert (DOCS_DIR / link).exists(), f"{page_path.name} links to {link}, which does not exist"
    readme = (ROOT / "README.md").read_text()
    assert f"(docs/{page_path.name})" in readme, f"README must link the rendered page docs/{page_path.name}"


def _executed_notebook(gif: bytes) -> nbformat.NotebookNode:
    """A notebook as an execution leaves it: a heading, its parameters cell and a code cell that displayed a GIF."""
    import base64

    parameters = nbformat.v4.new_code_cell("SEED = 0", metadata={"tags": ["parameters"]})
    code = nbformat.v4.new_code_cell("display(Image(filename='movie.gif'))")
    code.outputs = [nbformat.v4.new_output("display_data", data={"image/gif": base64.b64encode(gif).decode()})]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A page"), parameters, code])


def test_a_page_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import imageio.v3 as iio

    gifs = [iio.imwrite("<bytes>", np.full((2, 4, 4), value, np.uint8), extension=".gif") for value in (0, 255)]
    source = tmp_path / "notebooks" / "09_page.ipynb"
    render.write_page(_executed_notebook(gifs[0]), source, tmp_path)
    page = (tmp_path / "09_page.md").read_text()
    (image,) = PAGE_IMAGE.findall(page)
    assert image == "09_page_files/09_page_2_0.gif" and (tmp_path / image).read_bytes() == gifs[0]
    assert "notebooks/09_page.ipynb" in page and "# A page" in page

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)  # the page's own write fails after the images are staged
    with pytest.raises(OSError, match="No space left on device"):
        render.write_page(_executed_notebook(gifs[1]), source, tmp_path)
    assert (tmp_path / "09_page.md").read_text() == page and (tmp_path / image).read_bytes() == gifs[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["09_page.md", "09_page_files"]
    monkeypatch.undo()
    render.write_page(_executed_notebook(gifs[1]), source, tmp_path)
    assert (tmp_path / image).read_bytes() == gifs[1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["09_page.md", "09_page_files"]


def test_pages_print_the_default_keras_home_where_the_render_used_a_temporary_one(tmp_path):
    keras_home = tmp_path / "render_x1" / "keras_home"
    code = nbformat.v4.new_code_cell("load()")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"No verified official file in {keras_home}/datasets\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"PosixPath('{keras_home}/models')"}),
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"{keras_home} stays in text"), code])
    render.name_keras_home(notebook, keras_home)
    assert code.outputs[0].text == "No verified official file in ~/.keras/datasets\n"
    assert code.outputs[1].data["text/plain"] == "PosixPath('~/.keras/models')"
    assert notebook.cells[0].source == f"{keras_home} stays in text"  # only what the run printed is renamed
