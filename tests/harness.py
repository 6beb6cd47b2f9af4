"""The checks every model and layer test shares, in the manner of keras-hub's TestCase (used by tests).

Tiny presets (:func:`tiny_settings`, :func:`tiny_model`, :func:`small_seq2seq`) keep each preset's layer chain with a
few filters and small frames; :func:`random_inputs` gives frames of a model's input shape. :func:`run_layer_test`
builds and calls a layer, round-trips its config and saves it in a model; :func:`run_model_saving_test` saves a model
as ``.keras`` (:func:`save_model_files`) and reloads it, :func:`run_fresh_process_reload_test` reloads such files in a
new Python process; each compares the outputs with the original's. :class:`EpochLog` and :class:`CopyFolderAfterEpoch`
are the callbacks the training tests watch and interrupt runs with. :func:`record_calls` counts the calls of a module's
function, and :func:`cpu_multiplies_bfloat16` makes the package see a CPU with bfloat16 instructions.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import keras
import numpy as np

from keras_convlstm.models import PRESETS, build_model, get_preset

REPO = Path(__file__).resolve().parents[1]
# What keras.layers.Layer.get_config adds to a layer's own arguments.
BASE_LAYER_CONFIG = {"name", "trainable", "dtype"}


def record_calls(monkeypatch, module, name: str, argument: int = 0) -> list[tuple]:
    """Wraps ``module.name`` for the test: each call still runs it, and appends the shape of its ``argument``-th
    positional argument to the returned list."""
    calls: list[tuple] = []
    function = getattr(module, name)

    def recorded(*args, **kwargs):
        calls.append(tuple(args[argument].shape))
        return function(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return calls


def cpu_multiplies_bfloat16(monkeypatch) -> None:
    """Makes ``keras_convlstm.precision.cpu_flags`` report a CPU with the AMX bfloat16 instructions."""
    from keras_convlstm import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_tile", "amx_bf16"}))


def to_numpy(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


def frame_presets(distinct: bool = False) -> list[str]:
    """The presets that predict frames one input frame at a time (sequence-to-sequence and many-to-one).

    With ``distinct``, only the first of presets whose tiny versions are the same network (cpu-quality is cpu-fast
    with more filters), for tests of what the network computes rather than of the presets.
    """
    names, networks = [], []
    for name, config in PRESETS.items():
        tiny = dataclasses.replace(config, **tiny_settings(name), name="", description="")
        if config.kind in ("seq2seq", "many_to_one") and not (distinct and tiny in networks):
            names.append(name)
            networks.append(tiny)
    return names


def tiny_settings(preset: str, **overrides) -> dict:
    """``build_model`` overrides that shrink ``preset`` to 4 filters per layer and small frames.

    The preset's layers, kernel sizes, output and precision stay; ``overrides`` replace any of these settings.
    """
    config = get_preset(preset)
    settings = {"filters": (4,) * len(config.filters)}
    if config.kind == "classifier":
        settings.update(image_size=(12, 16), input_frames=4)
    else:
        settings["image_size"] = 4 * config.patch_size if config.patch_size > 1 else 6
    if config.kind == "encoder_forecaster":
        settings.update(input_frames=3, output_frames=2)
    return {**settings, **overrides}


def tiny_model(preset: str, seed: int = 0, **overrides) -> keras.Model:
    """``preset`` built with :func:`tiny_settings` and ``overrides``, its weights drawn from ``seed``."""
    keras.utils.set_random_seed(seed)
    return build_model(preset, **tiny_settings(preset, **overrides))


def small_seq2seq(seed: int = 0, **overrides) -> keras.Model:
    """The cheapest sequence-to-sequence model: ``cpu-fast`` (4x4 patches, causal output) with one ConvLSTM2D layer
    of 4 filters (3x3), on 16x16 frames, in float32."""
    settings = {"filters": (4,), "kernel_sizes": (3,), "precision": "float32", **overrides}
    return tiny_model("cpu-fast", seed, **settings)


def random_inputs(model: keras.Model, batch: int = 2, time: int = 5, seed: int = 0) -> np.ndarray:
    """Random float32 frames in [0, 1) of the model's input shape; ``time`` frames unless the model fixes them."""
    config = model.config
    shape = (batch, config.input_frames or time, *config.frame_shape)
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def json_config(serializable) -> dict:
    """The config of a layer or model as a saved file holds it (JSON: tuples read back as lists)."""
    return json.loads(json.dumps(serializable.get_config()))


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict,
    input_shape: tuple[int, ...],
    expected_output_shape: tuple[int, ...],
    *,
    expected_output_dtype: str = "float32",
    expected_trainable_weights: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Builds and calls ``layer_cls(**init_kwargs)`` on random float32 inputs, and checks:

    - the output's shape and dtype (and the number of trainable weights, when given), also on a symbolic input
      with an unknown batch size;
    - the config holds every argument of ``__init__`` and nothing else beside the base layer's;
    - ``from_config`` of the JSON config gives the same config and, with the same weights, the same outputs;
    - a model holding the layer saves as ``.keras``, reloads (safe mode) with a layer of the same class, and gives
      the same outputs.

    Returns:
        The layer's outputs.
    """
    inputs = np.random.default_rng(seed).random(input_shape, dtype=np.float32)
    layer = layer_cls(**init_kwargs)
    outputs = layer(inputs)
    assert tuple(outputs.shape) == tuple(expected_output_shape)
    assert keras.backend.standardize_dtype(outputs.dtype) == expected_output_dtype
    outputs = to_numpy(outputs)
    if expected_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_trainable_weights
    symbolic = keras.Input(input_shape[1:])
    symbolic_output = layer(symbolic)
    assert tuple(symbolic_output.shape) == (None, *expected_output_shape[1:])

    config = json_config(layer)
    arguments = set(inspect.signature(layer_cls.__init__).parameters) - {"self", "args", "kwargs"}
    assert set(config) - BASE_LAYER_CONFIG == arguments
    restored = layer_cls.from_config(config)
    assert json_config(restored) == config
    restored.build(input_shape)
    restored.set_weights(layer.get_weights())
    np.testing.assert_array_equal(to_numpy(restored(inputs)), outputs)

    model = keras.Model(symbolic, symbolic_output)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layer.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
    assert type(reloaded.layers[-1]) is layer_cls
    assert json_config(reloaded.layers[-1]) == config
    np.testing.assert_array_equal(to_numpy(reloaded(inputs)), outputs)
    return outputs


def _same_layers(restored: keras.Model, model: keras.Model) -> bool:
    """The same layer classes with the same names, where a layer named by Keras (``max_pooling2d``, no name given)
    may carry the suffix Keras adds to a second layer of that name in one session (``max_pooling2d_1``)."""
    if [type(layer) for layer in restored.layers] != [type(layer) for layer in model.layers]:
        return False
    for new, old in zip(restored.layers, model.layers, strict=True):
        snake = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", type(old).__name__)).lower()
        named_by_keras = re.fullmatch(rf"{snake}(_\d+)?", old.name) and re.fullmatch(rf"{snake}(_\d+)?", new.name)
        if new.name != old.name and not named_by_keras:
            return False
    return True


def _optimizer_step(model: keras.Model) -> int | None:
    optimizer = getattr(model, "optimizer", None)
    return None if optimizer is None else int(optimizer.iterations)


def save_model_files(model: keras.Model, frames: np.ndarray, folder: Path) -> Path:
    """Saves ``model`` as ``folder/NAME.keras`` beside its input and outputs (``NAME-input.npy``,
    ``NAME-output.npy``) and what it should reload as (``NAME.json``); returns the ``.keras`` path."""
    folder = Path(folder)
    path = folder / f"{model.name}.keras"
    model.save(path)
    np.save(folder / f"{model.name}-input.npy", frames)
    np.save(folder / f"{model.name}-output.npy", to_numpy(model(frames)))
    want = {"class": type(model).__name__, "config": json_config(model), "optimizer_step": _optimizer_step(model)}
    (folder / f"{model.name}.json").write_text(json.dumps(want))
    return path


def run_model_saving_test(model: keras.Model, frames: np.ndarray, folder: Path, *, atol: float = 0.0) -> keras.Model:
    """Checks that ``model`` survives its ``.keras`` file (:func:`save_model_files` into ``folder``): reloaded in
    safe mode, from its JSON config, it is the same class with the same config, layers, weights and outputs on
    ``frames``; a model whose optimizer has stepped also reloads compiled, at the same optimizer step.

    Returns:
        The reloaded model.
    """
    path = save_model_files(model, frames, folder)
    step = _optimizer_step(model)
    # An optimizer that never stepped has no state to restore (Keras warns that it skips it): the model alone is read.
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=bool(step))
    assert type(reloaded) is type(model)
    assert json_config(reloaded) == json_config(model)
    assert _same_layers(reloaded, model), ([layer.name for layer in reloaded.layers], [la.name for la in model.layers])
    assert len(reloaded.weights) == len(model.weights)
    for variable, got, want in zip(model.weights, reloaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want, err_msg=variable.path)
    if step:
        assert _optimizer_step(reloaded) == step
    expected = np.load(path.with_name(f"{model.name}-output.npy"))
    np.testing.assert_allclose(to_numpy(reloaded(frames)), expected, atol=atol, rtol=0)
    return reloaded


# Reloads models save_model_files left in a folder, as a user's new session would: the package imported,
# nothing of it used yet.
_FRESH_RELOAD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import keras
    import numpy as np
    import keras_convlstm

    folder = Path(sys.argv[1])
    for name in sys.argv[3:]:
        want = json.loads((folder / f"{name}.json").read_text())
        model = keras.saving.load_model(folder / f"{name}.keras", safe_mode=True)
        assert type(model).__name__ == want["class"], type(model)
        assert json.loads(json.dumps(model.get_config())) == want["config"], (model.get_config(), want["config"])
        step = None if getattr(model, "optimizer", None) is None else int(model.optimizer.iterations)
        assert step == want["optimizer_step"], (step, want["optimizer_step"])
        frames = np.load(folder / f"{name}-input.npy")
        outputs = keras.ops.convert_to_numpy(model(frames))
        np.testing.assert_allclose(outputs, np.load(folder / f"{name}-output.npy"), atol=float(sys.argv[2]), rtol=0)
        print("reloaded", name)
    """
)


def run_fresh_process_reload_test(folder: Path, names: list[str], *, atol: float = 0.0) -> None:
    """Reloads the models ``names`` that :func:`save_model_files` left in ``folder``, in one fresh Python process,
    and checks each one's class, config, optimizer step and outputs (to ``atol``) there."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_RELOAD, str(folder), str(atol), *names],
        capture_output=True,
        text=True,
        cwd=folder,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:-1] == [f"reloaded {name}" for name in names]


class EpochLog(keras.callbacks.Callback):
    """Records each finished (and backed-up) epoch, counted from 1; also prints it when ``announce`` is set."""

    def __init__(self, announce: bool = False):
        super().__init__()
        self.announce = announce
        self.finished = []

    def on_epoch_end(self, epoch, logs=None):
        self.finished.append(epoch + 1)
        if self.announce:
            print(f"finished epoch {epoch + 1}", flush=True)


class CopyFolderAfterEpoch(keras.callbacks.Callback):
    """Copies ``out_dir`` to ``copy`` at the end of epoch ``epoch`` (0-based), after its backup.

    The copy holds what a run killed at that moment leaves on disk, so one run gives both the uninterrupted
    result and an interrupted run to resume.
    """

    def __init__(self, epoch: int, out_dir: Path, copy: Path):
        super().__init__()
        self.epoch, self.out_dir, self.copy = epoch, out_dir, copy

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            shutil.copytree(self.out_dir, self.copy)
