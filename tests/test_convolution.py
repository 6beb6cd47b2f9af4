"""``convolution.same_conv`` is ``keras.ops.conv`` with 'same' padding; on JAX's CPU backend, for frames of at
least ``MATMUL_GRADIENT_PIXELS`` pixels, its kernel gradient comes from matrix products and equals XLA's own, and
for smaller bfloat16 frames on a CPU with bfloat16 instructions its output and input gradient do."""

import keras
import numpy as np
import pytest
from harness import cpu_multiplies_bfloat16, record_calls

from keras_convlstm import convolution

ONLY_JAX = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the matrix-product gradient is JAX's alone")


def _xla_same_conv(inputs, kernel):
    import jax

    return jax.lax.conv_general_dilated(inputs, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _xla_kernel_gradient(inputs: np.ndarray, output_gradient: np.ndarray, kernel_shape: tuple) -> np.ndarray:
    """XLA's own gradient of a 'same' convolution with respect to its kernel (``jax.vjp``)."""
    import jax

    _, vjp = jax.vjp(lambda kernel: _xla_same_conv(inputs, kernel), np.zeros(kernel_shape, inputs.dtype))
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


def _conv_and_gradients(conv, inputs, kernel, weights):
    """``conv(inputs, kernel)`` and the gradients of ``sum(conv * weights)`` with respect to inputs and kernel."""
    import jax

    def loss(x, k):
        return (conv(x, k).astype("float32") * weights).sum()

    return [np.asarray(value, np.float32) for value in (conv(inputs, kernel), *jax.grad(loss, (0, 1))(inputs, kernel))]


@pytest.mark.parametrize("kernel_size", [(1, 1), (3, 3), (5, 5), (2, 4), (4, 3)])
def test_same_conv_as_products_equals_xla_forward_and_backward(kernel_size):
    """Output, input gradient and kernel gradient equal XLA's float32 convolution, for odd, even and rectangular
    kernels on rectangular frames."""
    pytest.importorskip("jax")
    rng = np.random.default_rng(4)
    inputs = rng.standard_normal((2, 9, 7, 3)).astype(np.float32)
    kernel = rng.standard_normal((*kernel_size, 3, 5)).astype(np.float32)
    weights = rng.standard_normal((2, 9, 7, 5)).astype(np.float32)
    ours = _conv_and_gradients(convolution.same_conv_as_products, inputs, kernel, weights)
    reference = _conv_and_gradients(_xla_same_conv, inputs, kernel, weights)
    for value, expected in zip(ours, reference, strict=True):
        assert value.shape == expected.shape
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-4)


def test_same_conv_as_products_of_bfloat16_equals_xla_to_bfloat16_rounding():
    """bfloat16 in and out, float32 sums: within one bfloat16 step (2**-7 relative) of XLA's bfloat16 results."""
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(5)
    inputs = jnp.asarray(rng.standard_normal((4, 16, 16, 8)), jnp.bfloat16)
    kernel = jnp.asarray(rng.standard_normal((5, 5, 8, 16)) * 0.1, jnp.bfloat16)
    weights = rng.standard_normal((4, 16, 16, 16)).astype(np.float32)
    assert convolution.same_conv_as_products(inputs, kernel).dtype == jnp.bfloat16
    ours = _conv_and_gradients(convolution.same_conv_as_products, inputs, kernel, weights)
    reference = _conv_and_gradients(_xla_same_conv, inputs, kernel, weights)
    for value, expected in zip(ours, reference, strict=True):
        np.testing.assert_allclose(value, expected, rtol=2**-7, atol=2**-7 * np.abs(expected).max())


@pytest.mark.backends
@pytest.mark.parametrize(
    ("flags", "shape", "dtype", "expected"),
    [
        ({"avx512_bf16"}, (16, 16, 16, 48), "bfloat16", True),
        ({"amx_bf16", "amx_tile"}, (2, 8, 31, 3), "bfloat16", True),
        ({"avx512_bf16"}, (16, 32, 32, 48), "bfloat16", False),
        ({"avx512_bf16"}, (16, 16, 16, 48), "float32", False),
        ({"avx2", "fma"}, (16, 16, 16, 48), "bfloat16", False),
        (None, (16, 16, 16, 48), "bfloat16", False),
        ({"avx512_bf16"}, (16, None, 16, 48), "bfloat16", False),
    ],
    ids=["16x16 bf16", "8x31 bf16 AMX", "32x32", "float32", "no bf16 instructions", "flags unknown", "height unknown"],
)
def test_matmul_forward_serves_small_bfloat16_frames_on_cpus_that_multiply_bfloat16(
    monkeypatch, flags, shape, dtype, expected
):
    from keras_convlstm import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    on_jax = keras.backend.backend() == "jax"
    assert convolution.matmul_forward(shape, dtype) == (expected and on_jax)


@pytest.mark.backends
def test_same_conv_takes_the_products_where_matmul_forward_holds(monkeypatch):
    """On a CPU that multiplies bfloat16, same_conv of small bfloat16 frames calls same_conv_as_products (JAX
    only), and its result equals keras.ops.conv's to one bfloat16 step."""
    cpu_multiplies_bfloat16(monkeypatch)
    calls = record_calls(monkeypatch, convolution, "same_conv_as_products")
    rng = np.random.default_rng(6)
    inputs = keras.ops.cast(rng.standard_normal((2, 8, 8, 3)), "bfloat16")
    kernel = keras.ops.cast(rng.standard_normal((3, 3, 3, 4)), "bfloat16")
    ours = keras.ops.convert_to_numpy(keras.ops.cast(convolution.same_conv(inputs, kernel), "float32"))
    assert calls == ([(2, 8, 8, 3)] if keras.backend.backend() == "jax" else [])
    expected = keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.conv(inputs, kernel, padding="same"), "float32"))
    np.testing.assert_allclose(ours, expected, rtol=2**-7, atol=2**-7 * np.abs(expected).max())


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
