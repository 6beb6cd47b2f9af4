"""The differentiable SSIM against the evaluation metric and scikit-image, and the BCE + SSIM loss."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from harness import tiny_model
from skimage.metrics import structural_similarity

from keras_convlstm import metrics
from keras_convlstm.losses import BCEPlusSSIM, get_loss, ssim


def frames(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = (rng.random(shape) > 0.8).astype(np.float32)
    prediction = np.clip(truth * 0.7 + rng.random(shape) * 0.3, 0, 1).astype(np.float32)
    return prediction, truth


@pytest.mark.backends
@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_equals_the_evaluation_metric_frame_by_frame(channels):
    prediction, truth = frames(0, (3, 4, 16, 20, channels))
    values = keras.ops.convert_to_numpy(ssim(prediction, truth))
    assert values.shape == (3, 4) and values.dtype == np.float32
    for b in range(3):
        np.testing.assert_allclose(values[b], metrics.ssim(prediction[b : b + 1], truth[b : b + 1]), atol=1e-6)


@pytest.mark.backends
def test_ssim_equals_scikit_image_and_is_one_for_identical_frames():
    prediction, truth = frames(1, (1, 2, 24, 24, 1))
    for t in range(2):
        expected = structural_similarity(prediction[0, t, ..., 0], truth[0, t, ..., 0], data_range=1.0)
        assert float(ssim(prediction, truth)[0, t]) == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ssim(truth, truth)), 1.0, atol=1e-6)


@pytest.mark.backends
def test_loss_is_cross_entropy_plus_weighted_ssim_gap():
    prediction, truth = frames(2, (2, 3, 16, 16, 1))
    prediction = np.clip(prediction, 0.01, 0.99)
    bce = -(truth * np.log(prediction) + (1 - truth) * np.log(1 - prediction)).mean(axis=(2, 3, 4))
    gap = 1 - np.stack([metrics.ssim(prediction[b : b + 1], truth[b : b + 1]) for b in range(2)])
    for weight in (0.0, 0.5, 2.0):
        value = float(BCEPlusSSIM(ssim_weight=weight)(truth, prediction))
        assert value == pytest.approx((bce + weight * gap).mean(), rel=1e-5)
    plain = keras.losses.BinaryCrossentropy()(truth, prediction)
    assert float(BCEPlusSSIM(ssim_weight=0.0)(truth, prediction)) == pytest.approx(float(plain), rel=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the gradient is taken with tf.GradientTape")
def test_ssim_gradient_pushes_a_haze_on_black_towards_black():
    import tensorflow as tf

    truth = np.zeros((1, 1, 16, 16, 1), np.float32)
    truth[..., 4:10, 4:10, :] = 1.0
    haze = tf.Variable(np.where(truth > 0, 1.0, 0.02).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = 1.0 - ssim(haze, truth)
    gradient = tape.gradient(loss, haze).numpy()
    assert np.isfinite(gradient).all()
    assert (gradient[truth == 0] > 0).all()  # lowering the grey on black raises the SSIM


def test_bad_weight_and_name_lookup():
    with pytest.raises(ValueError, match="ssim_weight must be >= 0"):
        BCEPlusSSIM(ssim_weight=-1.0)
    assert isinstance(get_loss("bce_ssim"), BCEPlusSSIM)
    assert get_loss("mse") == "mse"


def test_model_with_the_loss_reloads_in_a_fresh_process(tmp_path):
    """The saved model brings its BCE + SSIM loss and weight back, and evaluates to the same value.

    16x16 frames (cpu-fast's 4x4 patches make 4x4 grids; SSIM's 7x7 window still fits) and eager steps:
    tracing would cost more than these two sequences.
    """
    model = tiny_model("cpu-fast", filters=(4,), kernel_sizes=(3,), loss="bce_ssim")
    model.run_eagerly = True
    sequences = np.random.default_rng(3).random((2, 4, 16, 16, 1)).astype(np.float32)
    model.fit(sequences[:, :-1], sequences[:, 1:], epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    expected = model.evaluate(sequences[:, :-1], sequences[:, 1:], verbose=0)
    np.save(tmp_path / "sequences.npy", sequences)
    script = (
        "import sys, numpy as np, keras, keras_convlstm\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "model.run_eagerly = True\n"
        "x = np.load(sys.argv[2])\n"
        "print(type(model.loss).__name__, model.loss.ssim_weight, model.evaluate(x[:, :-1], x[:, 1:], verbose=0))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "sequences.npy")],
        capture_output=True,
        text=True,
        check=True,
    )
    name, weight, value = result.stdout.split()[-3:]
    assert (name, float(weight)) == ("BCEPlusSSIM", 0.5)
    assert float(value) == pytest.approx(expected, rel=1e-5)
