"""Shared test set-up: quiet TensorFlow, no network, a private Keras home, the Keras backend in the header."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def private_keras_home(tmp_path_factory, monkeypatch):
    """Points KERAS_HOME at an empty folder so no test reads or writes the user's ~/.keras cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))


def pytest_report_header(config) -> str:
    import keras

    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"
