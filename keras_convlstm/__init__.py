"""keras_convlstm: next-frame video prediction with Convolutional LSTMs in Keras 3.

Data (the official Moving MNIST file and generators), models (the keras.io example, its causal fix, Shi et al.
2015 and smaller presets), an exact linear-time rollout, metrics with their conventions, training, evaluation
against baselines, and pictures. Public modules, one concern each, loaded on first use (``import keras_convlstm``
and ``import keras_convlstm.checks`` load no Keras backend; ``keras_convlstm.build_model`` loads what it needs):

- data: ``official_file`` (the official Moving MNIST file: download, verification, loading), ``data`` (splits,
  shifted frames, datasets), ``mnist_digits`` (where MNIST digits come from), ``synthetic`` (generated movies),
  ``bouncing_balls`` (colour balls under gravity, written as .mp4 files), ``clips`` (next-frame clips from your
  own videos), ``videos`` (labelled video folders), ``frames`` (checks and dtype conversion of frames),
  ``checks`` (argument checks), ``files`` (cache folder, atomic writes);
- models: ``cell``, ``convolution`` (the ConvLSTM step's convolution, with a kernel gradient that XLA:CPU
  computes fast), ``layers``, ``models``, ``causality`` (does an output read its own target?), ``losses``,
  ``precision``, ``pretrained``;
- running them: ``rollout``, ``training``, ``scheduled_sampling`` (training on the model's own predictions),
  ``run_folder`` (a run's settings record, lock and resume policy), ``batch_norm`` (BatchNormalization statistics
  re-estimated after training), ``backups`` (reading and repairing an
  interrupted run's backup), ``distribute``, ``metrics``, ``evaluation``, ``viz`` (matplotlib figures),
  ``animation`` (GIFs and videos shown in notebooks), ``diagrams`` (architecture diagrams), ``colab``,
  ``recipes``, and ``cli`` (the command line, ``python -m keras_convlstm``).

Keras itself is loaded by whatever first imports it, through this package's hook: quietly when
``TF_CPP_MIN_LOG_LEVEL=3`` (TensorFlow's native libraries log at load time, before that setting applies), with an
``ImportError`` in one line naming the installed backends when ``KERAS_BACKEND`` names one that cannot load, and
followed by ``keras_convlstm.models``, whose import registers the package's models, layers and losses with Keras
(so that ``keras.saving.load_model`` reads the package's ``.keras`` files once ``keras_convlstm`` is imported).
"""

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"

_MODULES = (
    "animation",
    "backups",
    "batch_norm",
    "bouncing_balls",
    "causality",
    "cell",
    "checks",
    "clips",
    "colab",
    "convolution",
    "data",
    "diagrams",
    "distribute",
    "evaluation",
    "files",
    "frames",
    "layers",
    "losses",
    "metrics",
    "mnist_digits",
    "models",
    "official_file",
    "precision",
    "pretrained",
    "recipes",
    "rollout",
    "run_folder",
    "scheduled_sampling",
    "synthetic",
    "training",
    "videos",
    "viz",
)
# Public names of the package's root -> the module that defines them.
_NAMES = {
    "check_causal": "causality",
    "create_shifted_frames": "data",
    "download_moving_mnist": "official_file",
    "load_moving_mnist": "official_file",
    "load_or_generate_moving_mnist": "data",
    "split_dataset": "data",
    "evaluate": "evaluation",
    "load_mnist_digits": "mnist_digits",
    "ModelConfig": "models",
    "build_model": "models",
    "get_preset": "models",
    "list_presets": "models",
    "resolve_precision": "precision",
    "list_pretrained": "pretrained",
    "load_pretrained": "pretrained",
    "official_rollout": "rollout",
    "predict_rollout": "rollout",
    "predict_one_step": "rollout",
    "predict_frames": "rollout",  # former name of predict_rollout, until the next release
    "predict_next_frames": "rollout",  # former name of predict_one_step, until the next release
    "ScheduledSampling": "scheduled_sampling",
    "generate_moving_mnist": "synthetic",
    "train": "training",
}

__all__ = sorted([*_MODULES, *_NAMES])

# The Keras backends the package supports (pyproject.toml's extras); named in the error for one that cannot load.
_BACKENDS = ("tensorflow", "jax", "torch")


def __getattr__(name: str):
    """Imports a public module, or the module of a public name, the first time it is asked for (PEP 562)."""
    if name in _MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


@contextlib.contextmanager
def _quiet_native_start_up():
    """Sends file descriptor 2 to /dev/null while Keras loads its backend, when ``TF_CPP_MIN_LOG_LEVEL=3``.

    TensorFlow's native libraries log at load time (absl, oneDNN, CUDA probing) before that setting applies;
    a user who asked for level 3 asked for silence. Python's own messages are unaffected once loading ends.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _backend_problem(error: BaseException) -> str:
    """One line: the backend Keras could not load, why, and the supported backends installed here."""
    requested = os.environ.get("KERAS_BACKEND")
    which = f"the backend KERAS_BACKEND={requested!r}" if requested else "its backend (set in keras.json)"
    reason = (str(error).strip().splitlines() or [""])[0]
    installed = ", ".join(name for name in _BACKENDS if importlib.util.find_spec(name) is not None) or "none"
    return (
        f"Keras cannot load {which}: {type(error).__name__}: {reason}; installed backends: {installed} "
        "(set KERAS_BACKEND to one of them)"
    )


class _AfterImport(importlib.abc.Loader):
    """A module's own loader, followed by ``after(loader, module)``, which runs it."""

    def __init__(self, loader: importlib.abc.Loader, after):
        self.loader = loader
        self.after = after

    def __getattr__(self, name: str):  # get_code (for ``python -m``), get_source, get_resource_reader, ...
        if name == "loader":  # not set yet (a copy): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        self.after(self.loader, module)


class _KerasHook(importlib.abc.MetaPathFinder):
    """Wraps the first import of ``keras`` (see the module docstring) and of the package's modules, until
    ``keras_convlstm.models`` has registered the package's classes; then leaves ``sys.meta_path``."""

    def find_spec(self, name, path=None, target=None):
        if name == "keras":
            after = _load_keras
        elif name.startswith(f"{__name__}."):
            after = _load_package_module
        else:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    spec.loader = _AfterImport(spec.loader, after)
                    return spec
        return None


def _load_keras(loader: importlib.abc.Loader, module) -> None:
    try:
        with _quiet_native_start_up():
            loader.exec_module(module)
    except (ImportError, ValueError) as error:  # Keras raises ValueError for a backend name it does not know
        raise ImportError(_backend_problem(error)) from error
    _register_classes()


def _load_package_module(loader: importlib.abc.Loader, module) -> None:
    loader.exec_module(module)
    if module.__name__ == f"{__name__}.models":  # its import registered the package's classes
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_HOOK)
    elif "keras" in sys.modules:
        _register_classes()


def _register_classes() -> None:
    """Imports ``keras_convlstm.models`` (and through it the layers and losses): each registers with Keras."""
    # When a package module imported Keras first (``import keras_convlstm.layers``), ``models`` cannot load until
    # that module has finished loading (it needs its classes): it is tried again after each module of the package.
    if f"{__name__}.models" not in sys.modules:  # else loaded, or loading and about to register
        with contextlib.suppress(ImportError):
            importlib.import_module(f"{__name__}.models")


_HOOK = _KerasHook()
if "keras" in sys.modules:
    _register_classes()
else:
    sys.meta_path.insert(0, _HOOK)
