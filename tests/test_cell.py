"""The from-scratch ConvLSTM step equals keras.layers.ConvLSTM2D with the same weights."""

import keras
import numpy as np
import pytest

from keras_convlstm import cell


def _layer(filters: int, kernel: int, activation: str, seed: int) -> keras.layers.ConvLSTM2D:
    keras.utils.set_random_seed(seed)
    layer = keras.layers.ConvLSTM2D(
        filters,
        kernel,
        padding="same",
        activation=activation,
        return_sequences=True,
        bias_initializer=keras.initializers.RandomNormal(seed=seed),
    )
    layer.build((None, None, 12, 10, 3))
    return layer


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_run_layer_equals_keras_over_a_whole_sequence(activation, kernel):
    layer = _layer(4, kernel, activation, seed=kernel)
    frames = np.random.default_rng(kernel).random((2, 7, 12, 10, 3), dtype=np.float32)
    expected = keras.ops.convert_to_numpy(layer(frames))
    ours = keras.ops.convert_to_numpy(cell.run_layer(layer, frames))
    assert ours.shape == expected.shape == (2, 7, 12, 10, 4)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_convlstm_step_matches_the_equations_written_with_numpy():
    rng = np.random.default_rng(0)
    filters = 2
    frame = rng.random((1, 4, 4, 1), dtype=np.float32)
    hidden = rng.random((1, 4, 4, filters), dtype=np.float32)
    cell_state = rng.random((1, 4, 4, filters), dtype=np.float32)
    # 1x1 kernels: each convolution is a per-pixel matrix product, easy to write with numpy.
    kernel = rng.normal(size=(1, 1, 1, 4 * filters)).astype(np.float32)
    recurrent = rng.normal(size=(1, 1, filters, 4 * filters)).astype(np.float32)
    bias = rng.normal(size=(4 * filters,)).astype(np.float32)
    h, c = cell.convlstm_step(frame, hidden, cell_state, kernel, recurrent, bias)

    gates = frame @ kernel[0, 0] + hidden @ recurrent[0, 0] + bias
    i, f, g, o = np.split(gates, 4, axis=-1)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c_expected = sigmoid(f) * cell_state + sigmoid(i) * np.tanh(g)
    h_expected = sigmoid(o) * np.tanh(c_expected)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c), c_expected, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h), h_expected, atol=1e-6)


def test_layer_step_refuses_layers_it_cannot_reproduce():
    layer = keras.layers.ConvLSTM2D(2, 3, padding="valid")
    layer.build((None, None, 8, 8, 1))
    assert not cell.steppable(layer)
    with pytest.raises(ValueError, match="padding='same'"):
        cell.layer_step(layer, np.zeros((1, 8, 8, 1)), np.zeros((1, 6, 6, 2)), np.zeros((1, 6, 6, 2)))
