"""Convolutions that XLA:CPU computes slowly, written as matrix products for JAX's CPU backend.

XLA:CPU differentiates a convolution with respect to its kernel as a second convolution whose window is the whole
frame. On frames of 64x64 pixels that takes 2 to 3 times as long as one matrix product per kernel position (a
``(pixels, in_channels)`` slice of the padded input times the ``(pixels, out_channels)`` output gradient), and
5 times as long as TensorFlow's oneDNN; on 16x16 frames XLA's own is the faster (BENCHMARKS.md, "Backends").
:func:`same_conv` is ``keras.ops.conv`` with 'same' padding, and on JAX's CPU backend with frames of at least
:data:`MATMUL_GRADIENT_PIXELS` pixels it computes the kernel gradient with those products. Its output and its input
gradient are always XLA's own.

With few output channels, as in the package's output layers, XLA:CPU is slow in every direction;
:func:`valid_conv_as_products` computes such a convolution, and its gradients, as matrix products only.
"""

from __future__ import annotations

import functools
import itertools
import math

import keras

# Smallest frame (height x width) whose kernel gradient same_conv computes as matrix products on JAX's CPU backend.
MATMUL_GRADIENT_PIXELS = 32 * 32
# Most kernel taps times output channels that valid_conv_as_products serves (the product has that many columns).
MAX_PRODUCT_COLUMNS = 1024


def same_padding(kernel_size: int) -> tuple[int, int]:
    """Zeros before and after one axis for a 'same' convolution with unit strides, split as TensorFlow and XLA
    split them: the extra one of an even kernel goes after."""
    return (kernel_size - 1) // 2, kernel_size // 2


def same_conv(inputs, kernel):
    """A 2-D convolution with 'same' padding and unit strides: ``keras.ops.conv(inputs, kernel, padding="same")``.

    Args:
        inputs: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``.

    Returns:
        ``(batch, height, width, out_channels)``, the same numbers as ``keras.ops.conv``; on JAX's CPU backend
        with ``height * width >= MATMUL_GRADIENT_PIXELS``, a kernel gradient from :func:`kernel_gradient` (equal
        to XLA's to float rounding).
    """
    if matmul_kernel_gradient(inputs.shape):
        return _conv_with_matmul_kernel_gradient()(inputs, kernel)
    return keras.ops.conv(inputs, kernel, padding="same")


def matmul_kernel_gradient(input_shape: tuple) -> bool:
    """Whether :func:`same_conv` computes the kernel gradient of inputs of ``input_shape`` as matrix products.

    ``input_shape`` is ``(batch, height, width, channels)``; true on JAX's CPU backend when ``height * width``
    is known and at least :data:`MATMUL_GRADIENT_PIXELS`.
    """
    if keras.backend.backend() != "jax":
        return False
    import jax

    height, width = input_shape[1:3]
    return jax.default_backend() == "cpu" and None not in (height, width) and height * width >= MATMUL_GRADIENT_PIXELS


def kernel_gradient(inputs, output_gradient, kernel_size: tuple[int, int]):
    """The gradient of a 'same' convolution with respect to its kernel, one matrix product per kernel position (JAX).

    Args:
        inputs: the convolution's input, ``(batch, height, width, in_channels)``.
        output_gradient: the gradient of its output, ``(batch, height, width, out_channels)``.
        kernel_size: ``(kh, kw)``.

    Returns:
        ``(kh, kw, in_channels, out_channels)`` float32, accumulated in float32 whatever the inputs' dtype.
    """
    import jax
    import jax.numpy as jnp

    kh, kw = kernel_size
    _, height, width, channels = inputs.shape
    padded = jnp.pad(inputs, ((0, 0), same_padding(kh), same_padding(kw), (0, 0)))
    gradient = output_gradient.reshape(-1, output_gradient.shape[-1])
    rows = []
    for row in range(kh):
        products = []
        for col in range(kw):
            window = padded[:, row : row + height, col : col + width, :].reshape(-1, channels)
            products.append(
                jax.lax.dot_general(window, gradient, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
            )
        rows.append(jnp.stack(products))
    return jnp.stack(rows)


@functools.cache
def _conv_with_matmul_kernel_gradient():
    """``keras.ops.conv`` ('same') as a ``jax.custom_vjp`` whose kernel gradient is :func:`kernel_gradient`."""
    import jax

    @jax.custom_vjp
    def conv(inputs, kernel):
        return keras.ops.conv(inputs, kernel, padding="same")

    def forward(inputs, kernel):
        return conv(inputs, kernel), (inputs, kernel)

    def backward(residuals, output_gradient):
        inputs, kernel = residuals
        _, input_vjp = jax.vjp(lambda frames: keras.ops.conv(frames, kernel, padding="same"), inputs)
        (input_gradient,) = input_vjp(output_gradient)
        return input_gradient, kernel_gradient(inputs, output_gradient, kernel.shape[:2]).astype(kernel.dtype)

    conv.defvjp(forward, backward)
    return conv


def products_apply(inputs_shape: tuple, kernel_shape: tuple) -> bool:
    """Whether :func:`valid_conv_as_products` serves a convolution of these shapes: JAX's CPU backend, at most
    :data:`MAX_PRODUCT_COLUMNS` kernel taps times output channels (the output layers' few filters)."""
    if keras.backend.backend() != "jax" or None in inputs_shape[1:]:
        return False
    import jax

    taps = math.prod(kernel_shape[:-2])
    return jax.default_backend() == "cpu" and taps * kernel_shape[-1] <= MAX_PRODUCT_COLUMNS


def valid_conv_as_products(inputs, kernel):
    """A 'valid' convolution with unit strides computed as matrix products, forward and backward (JAX).

    The forward pass multiplies every input pixel by every kernel tap at once (``(pixels, in_channels)`` times
    ``(in_channels, taps * out_channels)``) and sums the shifted slices of that product; the gradients are two
    products with the output gradient shifted once per tap. For a 3x3x3 convolution of 64 channels to one, as the
    official network ends, XLA:CPU's own forward and backward pass took 23 times as long (BENCHMARKS.md,
    "Backends").

    Args:
        inputs: ``(batch, *spatial, in_channels)``, for example ``(batch, time, height, width, channels)``.
        kernel: ``(*window, in_channels, out_channels)``.

    Returns:
        ``(batch, *(spatial - window + 1), out_channels)``, equal to XLA's convolution to float rounding.
    """
    return _conv_as_products()(inputs, kernel)


def _all_taps(kernel):
    """``(*window, in, out)`` -> ``(in, taps * out)``: every tap's kernel side by side."""
    *window, channels, filters = kernel.shape
    taps = math.prod(window)
    return kernel.reshape(taps, channels, filters).transpose(1, 0, 2).reshape(channels, taps * filters)


@functools.cache
def _conv_as_products():
    import jax
    import jax.numpy as jnp

    def forward_only(inputs, kernel):
        window, filters = kernel.shape[:-2], kernel.shape[-1]
        products = (inputs @ _all_taps(kernel)).reshape(*inputs.shape[:-1], math.prod(window), filters)
        sizes = [size - extent + 1 for size, extent in zip(inputs.shape[1:-1], window, strict=True)]
        total = 0
        for tap, offset in enumerate(itertools.product(*(range(extent) for extent in window))):
            corner = tuple(slice(start, start + size) for start, size in zip(offset, sizes, strict=True))
            total = total + products[(slice(None), *corner, tap)]
        return total

    @jax.custom_vjp
    def conv(inputs, kernel):
        return forward_only(inputs, kernel)

    def forward(inputs, kernel):
        return forward_only(inputs, kernel), (inputs, kernel)

    def backward(residuals, output_gradient):
        inputs, kernel = residuals
        window, channels = kernel.shape[:-2], kernel.shape[-2]
        # Column block ``tap`` holds the output gradient of the output pixel that reads each input pixel at ``tap``.
        shifted = [
            jnp.pad(
                output_gradient,
                [(0, 0), *((start, extent - 1 - start) for start, extent in zip(offset, window, strict=True)), (0, 0)],
            )
            for offset in itertools.product(*(range(extent) for extent in window))
        ]
        columns = jnp.stack(shifted, axis=-2).reshape(-1, len(shifted) * kernel.shape[-1])
        kernel_gradient = inputs.reshape(-1, channels).T @ columns
        kernel_gradient = kernel_gradient.reshape(channels, len(shifted), -1).transpose(1, 0, 2).reshape(kernel.shape)
        return (columns @ _all_taps(kernel).T).reshape(inputs.shape), kernel_gradient

    conv.defvjp(forward, backward)
    return conv
