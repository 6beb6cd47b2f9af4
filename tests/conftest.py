"""Shared test set-up: quiet TensorFlow, no network, a private Keras home, the Keras backend in the header."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

# ONEDNN_MAX_CPU_ISA limits under which oneDNN has no bfloat16 or float16 convolution: TensorFlow then fails such
# models (a real AVX2-only CPU emulates them instead). The limit makes a newer CPU time the suite like an AVX2 one.
NO_HALF_PRECISION_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI")


def pytest_collection_modifyitems(config, items):
    """Skips tests marked ``half_precision`` when oneDNN is limited below the instructions of those kernels."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if limit not in NO_HALF_PRECISION_ISAS:
        return
    skip = pytest.mark.skip(reason=f"oneDNN has no bfloat16 or float16 convolution under ONEDNN_MAX_CPU_ISA={limit}")
    for item in items:
        if item.get_closest_marker("half_precision") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def private_keras_home(tmp_path_factory, monkeypatch):
    """Points KERAS_HOME at an empty folder so no test reads or writes the user's ~/.keras cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))


@pytest.fixture
def fake_hardware(monkeypatch):
    """Makes ``precision="auto"`` see the given CPU flags and GPU instead of this machine's.

    Call it as ``fake_hardware(cpu_flags={"avx2"}, gpu_compute_capability=None)``.
    """
    from keras_convlstm import precision

    def fake(cpu_flags=None, gpu_compute_capability=None):
        monkeypatch.setattr(precision, "cpu_flags", lambda: None if cpu_flags is None else frozenset(cpu_flags))
        monkeypatch.setattr(precision, "gpu_compute_capability", lambda: gpu_compute_capability)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)

    return fake


def pytest_report_header(config) -> str:
    import keras

    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> dict:
    """A small Moving MNIST file in the official layout (time, sequence, height, width): its frames, path, bytes
    and md5."""
    import hashlib

    import numpy as np

    frames = np.random.default_rng(0).integers(0, 256, size=(20, 6, 64, 64), dtype=np.uint8)
    path = tmp_path_factory.mktemp("small") / "small.npy"
    np.save(path, frames)
    content = path.read_bytes()
    return {"frames": frames, "path": path, "content": content, "md5": hashlib.md5(content).hexdigest()}


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    """An empty Keras dataset cache, ``$KERAS_HOME/datasets``, where the official file is looked up."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cache = tmp_path / "datasets"
    cache.mkdir()
    return cache


@pytest.fixture
def accept_small_file_as_official(monkeypatch, small_file):
    """Call it to make the default checks expect ``small_file``'s size and md5 instead of the 819 MB official
    file's."""
    from keras_convlstm import official_file

    def accept():
        for function in (official_file.find_cached_moving_mnist, official_file.download_moving_mnist):
            monkeypatch.setitem(function.__kwdefaults__, "md5", small_file["md5"])
            monkeypatch.setitem(function.__kwdefaults__, "num_bytes", len(small_file["content"]))

    return accept
