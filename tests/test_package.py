"""The package's layout: no import cycle, no private name used across modules, every public module listed, a root
that loads its modules on first use (and Keras only for the modules that need it)."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import keras_convlstm

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keras_convlstm", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(package: str) -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((ROOT / package).rglob("*.py"))}


MODULES = {name: path for package in PACKAGES for name, path in _sources(package).items()}


def _imports(tree: ast.Module) -> list[tuple[str, str | None, str]]:
    """Every import of this project's modules, at any depth: ``(module, imported name or None, bound alias)``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    found.append((alias.name, None, alias.asname or alias.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in PACKAGES:
                found += [(node.module, alias.name, alias.asname or alias.name) for alias in node.names]
    return found


def _target(module: str, name: str | None) -> str:
    """The module an import reads: ``from package import submodule`` reads the submodule, not the package."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module


def _graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (the package's ``__init__``, which loads any, left out)."""
    graph = {}
    for name, path in _sources(package).items():
        if name == package:
            continue
        targets = {_target(module, imported) for module, imported, _ in _imports(ast.parse(path.read_text()))}
        graph[name] = {target for target in targets if target != package and target.startswith(f"{package}.")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for neighbour in sorted(graph.get(node, ())):
            if state.get(neighbour) == "open":
                return [*path[path.index(neighbour) :], neighbour]
            if neighbour not in state and (cycle := visit(neighbour, [*path, neighbour])):
                return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_the_import_graph_has_no_cycle(package):
    graph = _graph(package)
    assert graph, f"no modules found in {package}"
    assert _cycle(graph) is None


def _private_uses(module_name: str, path: Path) -> list[str]:
    """``module._name`` and ``from module import _name`` where ``module`` is another module of this project."""
    tree = ast.parse(path.read_text())
    uses = []
    aliases = {}  # name bound in this file -> the project module it stands for
    for module, imported, alias in _imports(tree):
        target = _target(module, imported)
        if target != module_name and imported is not None and target == module:  # a name from a module
            if imported.startswith("_") and not imported.startswith("__"):
                uses.append(f"from {module} import {imported}")
        elif target != module_name:
            aliases[alias] = target
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = ast.unparse(node.value)
            if owner in aliases:
                uses.append(f"{owner}.{node.attr}")
    return uses


def test_the_private_name_finder_finds_both_forms(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from keras_convlstm import data\nfrom keras_convlstm.files import _temporary_prefix\ndata._md5\n"
    )
    assert _private_uses("example", source) == ["from keras_convlstm.files import _temporary_prefix", "data._md5"]


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_no_module_uses_another_modules_private_names(module_name):
    assert _private_uses(module_name, MODULES[module_name]) == []


PUBLIC_MODULES = sorted(
    path.stem
    for path in (ROOT / "keras_convlstm").iterdir()
    if (path.suffix == ".py" and not path.stem.startswith("_")) or (path / "__init__.py").is_file()
)


def test_every_public_module_is_in_the_package_api_and_the_readme_table():
    assert {"data", "evaluation", "checks", "videos"} <= set(PUBLIC_MODULES)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    for name in PUBLIC_MODULES:
        if name != "cli":  # the command line is not imported by the package (it sets TensorFlow's log level)
            assert name in keras_convlstm.__all__ and hasattr(keras_convlstm, name), name
        assert any(f"`{name}`" in line.split("|")[1] for line in table), name


def run_python(script: str, **env: str) -> subprocess.CompletedProcess:
    """Runs ``script`` in a fresh interpreter with this repository importable; fails the test on an error."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_light_modules_load_no_keras_backend():
    run_python(
        """
        import sys
        import keras_convlstm.checks, keras_convlstm.files, keras_convlstm.synthetic, keras_convlstm.cli
        assert not {"keras", "tensorflow", "jax", "torch"} & set(sys.modules), sorted(sys.modules)
        """
    )


def test_the_root_loads_each_public_name_from_its_module_on_first_use():
    from keras_convlstm import models, rollout

    assert set(keras_convlstm.__all__) <= set(dir(keras_convlstm))
    assert keras_convlstm.build_model is models.build_model and keras_convlstm.ModelConfig is models.ModelConfig
    assert keras_convlstm.predict_rollout is rollout.predict_rollout and keras_convlstm.rollout is rollout
    # The names of the first release stay, as aliases, until the next.
    assert keras_convlstm.predict_frames is rollout.predict_rollout
    assert keras_convlstm.predict_next_frames is rollout.predict_one_step
    with pytest.raises(AttributeError, match="module 'keras_convlstm' has no attribute 'build_modle'"):
        keras_convlstm.build_modle  # noqa: B018


def test_a_package_model_loads_with_plain_keras_once_the_package_is_imported(tmp_path):
    import keras
    import numpy as np

    from keras_convlstm.models import build_model

    model = build_model("cpu-fast", image_size=16, filters=(4,), kernel_sizes=(3,), precision="float32")
    model.save(tmp_path / "model.keras")
    frames = np.random.default_rng(0).random((1, 3, 16, 16, 1), dtype=np.float32)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "expected.npy", keras.ops.convert_to_numpy(model(frames)))
    for imports in ("import keras_convlstm\nimport keras", "import keras\nimport keras_convlstm"):
        result = run_python(
            imports
            + f"""
import numpy as np
model = keras.saving.load_model({str(tmp_path / "model.keras")!r})
frames = np.load({str(tmp_path / "frames.npy")!r})
outputs = keras.ops.convert_to_numpy(model(frames))
np.testing.assert_allclose(outputs, np.load({str(tmp_path / "expected.npy")!r}), atol=1e-6)
print(type(model).__name__)
"""
        )
        assert result.stdout == "ConvLSTMModel\n", result.stderr
