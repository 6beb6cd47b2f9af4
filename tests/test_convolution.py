"""``convolution.same_conv`` is ``keras.ops.conv`` with 'same' padding; on JAX's CPU backend, for frames of at
least ``MATMUL_GRADIENT_PIXELS`` pixels, its kernel gradient comes from matrix products and equals XLA's own."""

import keras
import numpy as np
import pytest

from keras_convlstm import convolution

ONLY_JAX = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the matrix-product gradient is JAX's alone")


def _xla_kernel_gradient(inputs: np.ndarray, output_gradient: np.ndarray, kernel_shape: tuple) -> np.ndarray:
    """XLA's own gradient of a 'same' convolution with respect to its kernel (``jax.vjp``)."""
    import jax

    def conv(kernel):
        return jax.lax.conv_general_dilated(inputs, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    _, vjp = jax.vjp(conv, np.zeros(kernel_shape, inputs.dtype))
    return np.asarray(vjp(output_gradient)[0])


@pytest.mark.parametrize("kernel_size", [(1, 1), (3, 3), (5, 5), (2, 4), (4, 3)])
def test_kernel_gradient_equals_xlas_for_odd_and_even_kernels(kernel_size):
    pytest.importorskip("jax")
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((2, 9, 7, 3)).astype(np.float32)
    output_gradient = rng.standard_normal((2, 9, 7, 5)).astype(np.float32)
    ours = np.asarray(convolution.kernel_gradient(inputs, output_gradient, kernel_size))
    assert ours.shape == (*kernel_size, 3, 5) and ours.dtype == np.float32
    reference = _xla_kernel_gradient(inputs, output_gradient, (*kernel_size, 3, 5))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_kernel_gradient_of_bfloat16_inputs_accumulates_in_float32():
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(1)
    inputs = jnp.asarray(rng.random((4, 32, 32, 8)), jnp.bfloat16)
    output_gradient = jnp.asarray(rng.random((4, 32, 32, 16)), jnp.bfloat16)
    ours = np.asarray(convolution.kernel_gradient(inputs, output_gradient, (3, 3)))
    assert ours.dtype == np.float32
    # The exact sums of the bfloat16 products: 4 * 32 * 32 = 4,096 positive terms each.
    exact = _xla_kernel_gradient(np.asarray(inputs, np.float64), np.asarray(output_gradient, np.float64), (3, 3, 8, 16))
    np.testing.assert_allclose(ours, exact, rtol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("size", [16, 32])
def test_same_conv_equals_keras_conv_with_the_same_gradients(size):
    """Outputs are keras.ops.conv's exactly; on JAX the 32x32 frames take the matrix-product kernel gradient."""
    rng = np.random.default_rng(2)
    inputs = rng.standard_normal((2, size, size, 3)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 3, 8)).astype(np.float32)
    weights = rng.standard_normal((2, size, size, 8)).astype(np.float32)
    ours = keras.ops.convert_to_numpy(convolution.same_conv(inputs, kernel))
    np.testing.assert_array_equal(ours, keras.ops.convert_to_numpy(keras.ops.conv(inputs, kernel, padding="same")))
    if keras.backend.backend() != "jax":
        assert not convolution.matmul_kernel_gradient(inputs.shape)
        return
    import jax

    assert convolution.matmul_kernel_gradient(inputs.shape) == (size == 32)

    def gradients(conv):
        return jax.grad(lambda x, k: (conv(x, k) * weights).sum(), argnums=(0, 1))(inputs, kernel)

    for ours, reference in zip(
        gradients(convolution.same_conv), gradients(lambda x, k: keras.ops.conv(x, k, padding="same")), strict=True
    ):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), rtol=1e-5, atol=1e-4)


def _xla_valid_conv(inputs, kernel):
    import jax

    spatial = "DHW"[-(inputs.ndim - 2) :]
    numbers = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    return jax.lax.conv_general_dilated(inputs, kernel, (1,) * (inputs.ndim - 2), "VALID", dimension_numbers=numbers)


@pytest.mark.parametrize(
    ("input_shape", "window", "filters"),
    [((2, 6, 9, 7, 5), (3, 3, 3), 1), ((2, 6, 9, 7, 5), (2, 3, 1), 4), ((3, 11, 8, 3), (3, 2), 2)],
    ids=["3-D, one filter", "3-D, even and unit extents", "2-D"],
)
def test_valid_conv_as_products_equals_xla_forward_and_backward(input_shape, window, filters):
    jax = pytest.importorskip("jax")
    rng = np.random.default_rng(3)
    inputs = rng.standard_normal(input_shape).astype(np.float32)
    kernel = rng.standard_normal((*window, input_shape[-1], filters)).astype(np.float32)
    ours = convolution.valid_conv_as_products(inputs, kernel)
    reference = _xla_valid_conv(inputs, kernel)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), rtol=1e-5, atol=1e-5)
    weights = rng.standard_normal(reference.shape).astype(np.float32)
    gradients = [
        jax.grad(lambda x, k, conv=conv: (conv(x, k) * weights).sum(), argnums=(0, 1))(inputs, kernel)
        for conv in (convolution.valid_conv_as_products, _xla_valid_conv)
    ]
    for ours, reference in zip(*gradients, strict=True):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), rtol=1e-5, atol=1e-4)


@pytest.mark.backends
def test_products_serve_few_output_channels_on_jax_only():
    on_jax = keras.backend.backend() == "jax"
    assert convolution.products_apply((2, 19, 64, 64, 64), (3, 3, 3, 64, 1)) == on_jax
    assert convolution.products_apply((2, 19, 16, 16, 32), (3, 3, 3, 32, 16)) == on_jax
    # 27 taps x 64 filters = 1,728 columns: more than MAX_PRODUCT_COLUMNS.
    assert not convolution.products_apply((2, 19, 16, 16, 32), (3, 3, 3, 32, 64))
