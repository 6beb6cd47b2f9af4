"""Files cross backends: a ``.keras`` saved on TensorFlow loads on JAX and back, predicting the same frames.

The other backend runs in a fresh process (``KERAS_BACKEND`` is read once, at ``import keras``), the test's own
backend in the test process. Outside TensorFlow the fresh process cannot import TensorFlow at all, as on a machine
that lacks it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import backend_probe
import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(backend_probe.__file__)


Job = tuple[str, Path, Path]  # (source, frames file, output file) of backend_probe.predict


def run(backend: str, jobs: list[Job]) -> list[dict]:
    """Runs ``backend_probe.predict`` on ``backend`` for each job: in this process if it already runs that backend
    (a fresh process gives the same frames: the model is built, seeded or loaded anew), else in one fresh process."""
    if backend == keras.backend.backend():
        for source, frames_file, out_file in jobs:
            backend_probe.predict(source, str(frames_file), str(out_file))
    else:
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, str(PROBE), backend, *(str(part) for job in jobs for part in job)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    results = []
    for _, _, out_file in jobs:
        saved = np.load(out_file)
        assert str(saved["backend"]) == backend
        results.append({name: saved[name] for name in ("outputs", "rollout") if name in saved})
    return results


# Tiny models that keep every saved layer kind: patches, causal and 'same' Conv3D, BatchNormalization.
MODELS = {
    "cpu-fast": {"preset": "cpu-fast", "image_size": 16, "precision": "float32"},
    "keras-example": {"preset": "keras-example", "image_size": 16, "filters": [4, 4, 4]},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, saved_on, loaded_on", [("keras-example", "tensorflow", "jax"), ("cpu-fast", "jax", "tensorflow")]
)
def test_a_file_saved_on_one_backend_predicts_the_same_frames_on_another(tmp_path, name, saved_on, loaded_on):
    frames = np.random.default_rng(0).random((2, 4, 16, 16, 1), dtype=np.float32)
    np.save(tmp_path / "frames.npy", frames)
    (original,) = run(saved_on, [(json.dumps(MODELS[name]), tmp_path / "frames.npy", tmp_path / "saved.npz")])
    (reloaded,) = run(loaded_on, [(str(tmp_path / "saved.keras"), tmp_path / "frames.npy", tmp_path / "loaded.npz")])
    assert reloaded["rollout"].shape == (2, 3, 16, 16, 1)
    for key in ("outputs", "rollout"):
        np.testing.assert_allclose(reloaded[key], original[key], atol=1e-5, rtol=0, err_msg=key)


def _shipped_frames(data: str) -> np.ndarray:
    """Two held-out inputs of the data a shipped model was trained on (its record's ``data``), float32 in [0, 1]."""
    from keras_convlstm.recipes import noisy_squares
    from keras_convlstm.synthetic import HELD_OUT_SEED, generate_moving_mnist_split, generate_moving_squares

    if data == "noisy-squares":
        return noisy_squares.held_out_movies(noisy_squares.FULL, 2)[0]
    if data == "moving-square":
        return generate_moving_squares(2, num_frames=9, image_size=64, seed=HELD_OUT_SEED)
    return generate_moving_mnist_split(2, seed=HELD_OUT_SEED, split="test")[:, :10].astype(np.float32) / 255


@pytest.mark.slow
def test_every_shipped_model_predicts_on_jax_as_on_tensorflow(tmp_path):
    """Each shipped model loads in one fresh JAX process and predicts the frames TensorFlow does from its inputs."""
    from keras_convlstm import pretrained

    jobs = {}
    for name in pretrained.list_pretrained():
        np.save(tmp_path / f"{name}.npy", _shipped_frames(pretrained.pretrained_info(name)["data"]))
        jobs[name] = [
            (f"pretrained:{name}", tmp_path / f"{name}.npy", tmp_path / f"{name}-{backend}.npz")
            for backend in ("tensorflow", "jax")
        ]
    on_tensorflow = run("tensorflow", [both[0] for both in jobs.values()])
    on_jax = run("jax", [both[1] for both in jobs.values()])
    # In float32 the two backends differ only in the order of the convolutions' sums: at most 8e-6 measured.
    for name, tensorflow_frames, jax_frames in zip(jobs, on_tensorflow, on_jax, strict=True):
        assert set(jax_frames) == set(tensorflow_frames) == {"outputs"}
        np.testing.assert_allclose(jax_frames["outputs"], tensorflow_frames["outputs"], atol=1e-4, rtol=0, err_msg=name)
