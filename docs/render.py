"""Renders every notebook, executed with its quick parameters, into a markdown page with its figures: ``make docs``.

For each ``notebooks/<name>.ipynb`` this writes ``docs/<name>.md`` and the images it shows into
``docs/<name>_files/``: matplotlib figures as PNG, and every GIF (the ``animation.show_videos`` players and GIF files
displayed with ``IPython.display.Image``) as a ``.gif`` file embedded with ``![...](...)``, so the animations
play on GitHub. The stored notebooks are not modified.

Each notebook runs in its own kernel (this interpreter), in an empty temporary folder, with an empty
``KERAS_HOME`` (no official file is found: generated data, nothing downloaded) and the offline MNIST digits,
the same conditions as ``tests/test_notebooks.py``. Shipped pretrained models are used where a notebook loads
them by default. Standard-error output (progress bars, TensorFlow logs) is left out of the pages.

Usage: ``python docs/render.py [notebook ...]`` (default: every notebook).
"""

from __future__ import annotations

import argparse
import ast
import base64
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import MarkdownExporter

from keras_convlstm.files import atomic_path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
DOCS_DIR = ROOT / "docs"
# What the pages print for the render's temporary KERAS_HOME: Keras's default home, as a reader's run prints it.
DEFAULT_KERAS_HOME = "~/.keras"
# Overrides injected after the parameters cell (papermill style) when the notebook defines the name: only
# local data, whatever the network allows.
QUICK_PARAMETERS = {"DATA_SOURCE": "auto", "DIGIT_SOURCE": "offline"}
CELL_TIMEOUT_S = 300
# How long a finished cell's printed output may take to arrive. nbclient's default (4 s) skips output that comes
# later, silently, as it can on busy cores; here a late message waits this long, and past it the run fails.
OUTPUT_TIMEOUT_S = 60
INJECTED_TAG = "injected-parameters"
# A markdown link or image target: [text](target) or ![alt](target).
LINK = re.compile(r"(\]\()([^)\s]+)(\))")
# One GIF cell of animation.show_videos' HTML view: '<td ...>label<br><img src="data:image/gif;base64,..." ...></td>'.
HTML_GIF = re.compile(r'<td[^>]*>(.*?)<br><img src="data:image/gif;base64,([A-Za-z0-9+/=]+)"', re.DOTALL)


def parameter_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook's one code cell tagged ``parameters``."""
    cells = [cell for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', got {len(cells)}")
    return cells[0]


def parameter_names(notebook: nbformat.NotebookNode) -> set[str]:
    """The names the notebook's parameters cell assigns."""
    return {statement.targets[0].id for statement in ast.parse(parameter_cell(notebook).source).body}


def inject_parameters(notebook: nbformat.NotebookNode, overrides: dict) -> None:
    """Inserts ``NAME = value`` overrides right after the parameters cell, for the names that cell defines."""
    cell = parameter_cell(notebook)
    defined = parameter_names(notebook)
    lines = [f"{name} = {value!r}" for name, value in overrides.items() if name in defined]
    if lines:
        injected = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
        notebook.cells.insert(notebook.cells.index(cell) + 1, injected)


def write_kernel_spec(folder: Path) -> None:
    """Writes a ``python3`` kernel spec for this interpreter under ``folder``; put ``folder`` on ``JUPYTER_PATH``."""
    spec_dir = folder / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (keras_convlstm)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def execute(notebook: nbformat.NotebookNode, work_dir: Path, env: dict[str, str]) -> None:
    """Runs every cell in a fresh ``python3`` kernel whose working directory is ``work_dir``."""
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        iopub_timeout=OUTPUT_TIMEOUT_S,
        raise_on_iopub_timeout=True,
        startup_timeout=120,
        resources={"metadata": {"path": str(work_dir)}},
    )
    client.execute(env=env)


def _gif_markdown(label: str, path: str) -> str:
    return f"![{label}]({path})"


def gifs_to_files(notebook: nbformat.NotebookNode, stem: str) -> dict[str, bytes]:
    """Replaces every GIF output with markdown that embeds a file; returns ``{relative path: GIF bytes}``.

    Handles ``image/gif`` outputs and the HTML tables of ``animation.show_videos`` (one markdown table row per row of
    videos, the labels as header). Widget state is dropped: GitHub cannot render it.
    """
    files = {}
    for cell_index, cell in enumerate(notebook.cells):
        for output_index, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            prefix = f"{stem}_files/{stem}_{cell_index}_{output_index}"
            if "image/gif" in data:
                path = f"{prefix}.gif"
                files[path] = base64.b64decode(data["image/gif"])
                output.data = {"text/markdown": _gif_markdown("animation", path)}
            elif "data:image/gif;base64," in data.get("text/html", ""):
                rows = []
                for row_index, row in enumerate(re.findall(r"<tr>(.*?)</tr>", data["text/html"], re.DOTALL)):
                    cells = []
                    for column, (label, encoded) in enumerate(HTML_GIF.findall(row)):
                        path = f"{prefix}_{row_index}_{column}.gif"
                        files[path] = base64.b64decode(encoded)
                        cells.append((html.unescape(label), path))
                    rows.append(cells)
                header = "| " + " | ".join(label for label, _ in rows[0]) + " |"
                rule = "|" + "---|" * len(rows[0])
                body = ["| " + " | ".join(_gif_markdown(label, path) for label, path in row) + " |" for row in rows]
                output.data = {"text/markdown": "\n".join([header, rule, *body])}
    return files


def page_links(markdown: str) -> str:
    """Rewrites the links of a notebook's markdown for its page in docs/.

    A link to another notebook (``02_x.ipynb``) points to that notebook's page (``02_x.md``); any other relative
    link (``solutions/03_x.py``) points back into ``../notebooks/``. Absolute URLs and anchors are kept.
    """

    def target(match: re.Match) -> str:
        link = match.group(2)
        if re.match(r"^([a-z]+:|#|/)", link):
            return match.group(0)
        if link.endswith(".ipynb") and "/" not in link:
            link = link.removesuffix(".ipynb") + ".md"
        else:
            link = f"../notebooks/{link}"
        return f"{match.group(1)}{link}{match.group(3)}"

    return LINK.sub(target, markdown)


def clean_outputs(notebook: nbformat.NotebookNode) -> None:
    """Drops standard-error streams and the injected parameters cell (the page shows the notebook as stored), and
    points the links of markdown cells to where they lead from docs/ (:func:`page_links`)."""
    notebook.cells = [cell for cell in notebook.cells if INJECTED_TAG not in cell.get("metadata", {}).get("tags", [])]
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = page_links(cell.source)
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.outputs if not (out.output_type == "stream" and out.name == "stderr")]


def name_keras_home(notebook: nbformat.NotebookNode, keras_home: Path) -> None:
    """Writes ``~/.keras``, Keras's default home, where text outputs print the render's temporary ``keras_home``.

    A page then reads as a reader's own run would, and does not change with every render's random folder name.
    """
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.output_type == "stream":
                output.text = output.text.replace(str(keras_home), DEFAULT_KERAS_HOME)
            elif "text/plain" in output.get("data", {}):
                output.data["text/plain"] = output.data["text/plain"].replace(str(keras_home), DEFAULT_KERAS_HOME)


def write_page(notebook: nbformat.NotebookNode, path: Path, docs_dir: Path = DOCS_DIR) -> None:
    """Writes the executed ``notebook`` (read from ``path``) as ``docs_dir/<stem>.md`` and ``docs_dir/<stem>_files/``.

    The images go to a staging folder first; only when all are written does it replace the old folder, just before
    the page is renamed into place (``files.atomic_path``). A write that fails leaves the earlier page and images.
    """
    clean_outputs(notebook)
    stem = path.stem
    gifs = gifs_to_files(notebook, stem)
    body, resources = MarkdownExporter().from_notebook_node(
        notebook, resources={"output_files_dir": f"{stem}_files", "unique_key": stem}
    )
    digits = " and the offline MNIST digits" if "DIGIT_SOURCE" in parameter_names(notebook) else ""
    note = (
        f"<!-- Rendered from notebooks/{path.name} by `make docs` (docs/render.py): edit the notebook. -->\n"
        f"*Rendered from [`notebooks/{path.name}`](../notebooks/{path.name}), executed with its quick parameters"
        f"{digits}. Run it yourself from its Colab badge.*\n\n"
    )
    files_dir = docs_dir / f"{stem}_files"
    staging, retired = docs_dir / f".{stem}_files.new", docs_dir / f".{stem}_files.old"
    for leftover in (staging, retired):  # of an earlier render that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        for name, content in {**resources.get("outputs", {}), **gifs}.items():
            (staging / Path(name).relative_to(files_dir.name)).write_bytes(content)
        with atomic_path(docs_dir / f"{stem}.md") as page:
            page.write_text(note + body.strip() + "\n", encoding="utf-8")
            if files_dir.exists():
                files_dir.rename(retired)
            staging.rename(files_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def render(path: Path, docs_dir: Path = DOCS_DIR) -> float:
    """Executes one notebook and writes ``docs_dir/<stem>.md`` and ``docs_dir/<stem>_files/``; returns seconds."""
    notebook = nbformat.read(path, as_version=4)
    inject_parameters(notebook, QUICK_PARAMETERS)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="render_") as temporary:
        temporary = Path(temporary)
        write_kernel_spec(temporary / "jupyter")
        (temporary / "work").mkdir()
        (temporary / "keras_home").mkdir()
        env = {
            **os.environ,
            "JUPYTER_PATH": str(temporary / "jupyter"),
            "KERAS_HOME": str(temporary / "keras_home"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        execute(notebook, temporary / "work", env)
        name_keras_home(notebook, temporary / "keras_home")
    seconds = time.perf_counter() - started
    write_page(notebook, path, docs_dir)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    total = 0.0
    for path in paths:
        seconds = render(path.resolve())
        total += seconds
        print(f"docs/{path.stem}.md: executed in {seconds:.0f} s")
    print(f"{len(paths)} notebooks rendered into {DOCS_DIR} in {total:.0f} s of execution")
    return 0


if __name__ == "__main__":
    sys.exit(main())
