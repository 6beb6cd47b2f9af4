"""Files cross backends: a ``.keras`` saved on TensorFlow loads on JAX and back, predicting the same frames.

Each backend runs in a fresh process (``KERAS_BACKEND`` is read once, at ``import keras``). Outside TensorFlow
the process cannot import TensorFlow at all, as on a machine that lacks it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# Builds and trains one step (or loads, with safe_mode) a model, then writes its outputs and a 3-frame rollout.
SCRIPT = """
import json, sys
if sys.argv[4] != "tensorflow":
    sys.modules["tensorflow"] = None  # any import of TensorFlow fails from here on
import keras, numpy as np
from keras_convlstm import pretrained
from keras_convlstm.models import build_model
from keras_convlstm.rollout import predict_frames

source, frames_file, out_file = sys.argv[1:4]
frames = np.load(frames_file)
if source.endswith(".keras"):
    model = keras.saving.load_model(source, safe_mode=True)
elif source.startswith("pretrained:"):
    model = pretrained.load_pretrained(source.split(":", 1)[1])
else:
    keras.utils.set_random_seed(0)
    model = build_model(**json.loads(source))
    model.fit(frames[:, :-1], frames[:, 1:], epochs=1, verbose=0)
    model.save(out_file.replace(".npz", ".keras"))
outputs = keras.ops.convert_to_numpy(model(frames, training=False))
np.savez(out_file, outputs=outputs, rollout=predict_frames(model, frames, 3), backend=keras.backend.backend())
"""


def run(backend: str, source: str, frames_file: Path, out_file: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, source, str(frames_file), str(out_file), backend],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out_file)
    assert str(saved["backend"]) == backend
    return {name: saved[name] for name in ("outputs", "rollout")}


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
    original = run(saved_on, json.dumps(MODELS[name]), tmp_path / "frames.npy", tmp_path / "saved.npz")
    reloaded = run(loaded_on, str(tmp_path / "saved.keras"), tmp_path / "frames.npy", tmp_path / "loaded.npz")
    assert reloaded["rollout"].shape == (2, 3, 16, 16, 1)
    for key in ("outputs", "rollout"):
        np.testing.assert_allclose(reloaded[key], original[key], atol=1e-5, rtol=0, err_msg=key)


@pytest.mark.slow
def test_the_shipped_demo_model_rolls_out_on_jax_as_on_tensorflow(tmp_path):
    from keras_convlstm.cli import DEMO_PRETRAINED
    from keras_convlstm.synthetic import HELD_OUT_SEED, generate_moving_mnist_split

    frames = generate_moving_mnist_split(2, seed=HELD_OUT_SEED, split="test")[:, :10].astype(np.float32) / 255
    np.save(tmp_path / "frames.npy", frames)
    source = f"pretrained:{DEMO_PRETRAINED}"
    on_tensorflow = run("tensorflow", source, tmp_path / "frames.npy", tmp_path / "tensorflow.npz")
    on_jax = run("jax", source, tmp_path / "frames.npy", tmp_path / "jax.npz")
    # A bfloat16 model: both backends round to bfloat16 inside the cells, not always at the same places, so a
    # few pixels differ by up to about 0.02 (measured) while the frames agree on average to 2e-4.
    for key in ("outputs", "rollout"):
        difference = np.abs(on_jax[key] - on_tensorflow[key])
        assert difference.max() < 0.05 and difference.mean() < 1e-3, (key, difference.max(), difference.mean())
