"""Precise BatchNorm: re-estimated statistics make inference normalise as training does on the same inputs."""

import keras
import numpy as np
import pytest
from harness import tiny_model

from keras_convlstm.batch_norm import recalibrate_batch_norm


def test_after_recalibration_inference_equals_training_mode_on_the_calibration_inputs():
    model = tiny_model("noisy-squares-causal", filters=(4, 4), kernel_sizes=(3, 3), precision="float32")
    inputs = np.random.default_rng(0).random((6, 5, *model.input_shape[2:]), dtype=np.float32)
    weights = [weight.copy() for weight in model.get_weights()]
    before = keras.ops.convert_to_numpy(model(inputs, training=False))
    # batch_size 4 does not divide 6: the statistics are pooled over uneven batches.
    assert recalibrate_batch_norm(model, inputs, batch_size=4) == ["batch_norm_1", "batch_norm_2"]
    after = keras.ops.convert_to_numpy(model(inputs, training=False))
    training = keras.ops.convert_to_numpy(model(inputs, training=True))  # batch statistics of all 6 at once
    np.testing.assert_allclose(after, training, atol=1e-5)
    assert np.abs(before - training).max() > 0.1  # the initial statistics (mean 0, variance 1) were far off
    # Only the moving statistics changed: the trainable weights are untouched.
    for variable, old in zip(model.weights, weights, strict=True):
        if "moving" not in variable.path:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), old)


def test_the_first_layers_statistics_are_the_mean_and_variance_of_its_input():
    model = tiny_model("noisy-squares-causal", filters=(3,), kernel_sizes=(3,), precision="float32")
    inputs = np.random.default_rng(1).random((5, 4, *model.input_shape[2:]), dtype=np.float32)
    recalibrate_batch_norm(model, inputs, batch_size=2)
    layer = model.get_layer("batch_norm_1")
    reference = keras.ops.convert_to_numpy(keras.Model(model.input, layer.input)(inputs)).reshape(-1, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), reference.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), reference.var(axis=0), rtol=1e-4)


def test_a_model_without_batch_norm_is_left_as_it_is_and_empty_inputs_are_refused():
    model = tiny_model("cpu-fast", filters=(4,), kernel_sizes=(3,), precision="float32")
    inputs = np.zeros((2, 3, *model.input_shape[2:]), dtype=np.float32)
    assert recalibrate_batch_norm(model, inputs) == []
    with pytest.raises(ValueError, match="at least one input"):
        recalibrate_batch_norm(model, inputs[:0])
