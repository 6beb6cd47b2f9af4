"""Convolutions that XLA:CPU computes slowly, written as matrix products for JAX's CPU backend.

XLA:CPU differentiates a convolution with respect to its kernel as a second convolution whose window is the whole
frame. On frames of 64x64 pixels that takes 2 to 3 times as long as one matrix product per kernel position (a
``(pixels, in_channels)`` slice of the padded input times the ``(pixels, out_channels)`` output gradient), and
5 times as long as TensorFlow's oneDNN; on 16x16 frames XLA's own is the faster (BENCHMARKS.md, "Backends").
XLA:CPU also computes bfloat16 convolutions in float32, while it multiplies bfloat16 matrices with the CPU's
bfloat16 instructions: on small bfloat16 frames a convolution written as products of shifted windows takes about
half of XLA's time, and its input gradient a third.

:func:`same_conv` is ``keras.ops.conv`` with 'same' padding. On JAX's CPU backend it computes the kernel gradient
with those products on frames of at least :data:`MATMUL_GRADIENT_PIXELS` pixels (:func:`matmul_kernel_gradient`),
and the output and input gradient on smaller bfloat16 frames on a CPU with bfloat16 instructions
(:func:`matmul_forward`); everything else is XLA's own.

With few output channels, as in the package's output layers, XLA:CPU is slow in every direction;
:func:`valid_conv_as_products` computes such a convolution, and its gradients, as matrix products only.
"""

from __future__ import annotations

import functools
import itertools
import math

import keras

from keras_convlstm import precision

# Smallest frame (height x width) whose kernel gradient same_conv computes as matrix products on JAX's CPU backend;
# bfloat16 frames below it get their output and input gradient as matrix products instead.
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
        ``(batch, height, width, out_channels)``, the same numbers as ``keras.ops.conv`` (to float rounding where
        :func:`matmul_forward` holds); on JAX's CPU backend with ``height * width >= MATMUL_GRADIENT_PIXELS``, a
        kernel gradient from :func:`kernel_gradient` (equal to XLA's to float rounding).
    """
    if matmul_forward(inputs.shape, inputs.dtype):
        return same_conv_as_products(inputs, kernel)
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


def matmul_forward(input_shape: tuple, dtype) -> bool:
    """Whether :func:`same_conv` computes the output and input gradient of inputs of this shape and dtype as
    matrix products of shifted windows.

    ``input_shape`` is ``(batch, height, width, channels)``; true on JAX's CPU backend, on a CPU with bfloat16
    instructions (:data:`keras_convlstm.precision.BF16_CPU_FLAGS`), for bfloat16 inputs whose ``height * width``
    is known and below :data:`MATMUL_GRADIENT_PIXELS`.
    """
    if keras.backend.backend() != "jax" or keras.backend.standardize_dtype(dtype) != "bfloat16":
        return False
    import jax

    height, width = input_shape[1:3]
    if None in (height, width) or height * width >= MATMUL_GRADIENT_PIXELS or jax.default_backend() != "cpu":
        return False
    flags = precision.cpu_flags()
    return flags is not None and not flags.isdisjoint(precision.BF16_CPU_FLAGS)


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


def _with_gradients(compute, gradients):
    """``compute(inputs, kernel)`` as a ``jax.custom_vjp`` whose backward pass is ``gradients(inputs, kernel,
    output_gradient)``, returning the input and kernel gradients."""
    import jax

    function = jax.custom_vjp(compute)
    function.defvjp(
        lambda inputs, kernel: (compute(inputs, kernel), (inputs, kernel)),
        lambda residuals, output_gradient: gradients(*residuals, output_gradient),
    )
    return function


def _xla_same_conv(inputs, kernel):
    """XLA's own 'same' convolution with unit strides, what ``keras.ops.conv`` runs on JAX."""
    import jax

    return jax.lax.conv_general_dilated(inputs, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _xla_gradient(inputs, kernel, output_gradient, argument: int):
    """XLA's gradient of :func:`_xla_same_conv` with respect to its input (``argument`` 0) or kernel (1) alone."""
    import jax

    def conv(value):
        return _xla_same_conv(value, kernel) if argument == 0 else _xla_same_conv(inputs, value)

    _, vjp = jax.vjp(conv, (inputs, kernel)[argument])
    return vjp(output_gradient)[0]


def _matmul_kernel_gradients(inputs, kernel, output_gradient):
    gradient = kernel_gradient(inputs, output_gradient, kernel.shape[:2]).astype(kernel.dtype)
    return _xla_gradient(inputs, kernel, output_gradient, 0), gradient


@functools.cache
def _conv_with_matmul_kernel_gradient():
    """XLA's 'same' convolution as a ``jax.custom_vjp`` whose kernel gradient is :func:`kernel_gradient`."""
    return _with_gradients(_xla_same_conv, _matmul_kernel_gradients)


def _padded_bits(inputs, padding: list[tuple[int, int]]):
    """``inputs`` padded with zeros, viewed as unsigned integers of the same width.

    XLA:CPU moves bfloat16 arrays element by element through float32, several times slower than integers of the
    same size; slicing and concatenating the bits gives the same numbers.
    """
    import jax
    import jax.numpy as jnp

    bits = jax.lax.bitcast_convert_type(inputs, jnp.dtype(f"uint{8 * inputs.dtype.itemsize}"))
    return jnp.pad(bits, padding)


def _as_matrix(bits, dtype):
    """The ``(pixels, channels)`` matrix of a window of :func:`_padded_bits`, back in ``dtype``.

    The optimization barrier keeps the copy out of the matrix product's fusion (a ``cpu-fast`` JAX training step
    took 0.75-0.78 s with it, 0.79 s without; BENCHMARKS.md, "Backends").
    """
    import jax

    return jax.lax.optimization_barrier(jax.lax.bitcast_convert_type(bits.reshape(-1, bits.shape[-1]), dtype))


def _row_products(inputs, kernel):
    """A 'same' convolution as ``kh`` matrix products: for each kernel row, the ``kw`` windows of the padded input
    shifted along the width, side by side, times that row's kernels; summed in float32.

    Args:
        inputs: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``, of the inputs' dtype.

    Returns:
        ``(batch, height, width, out_channels)`` in the inputs' dtype.
    """
    import jax.numpy as jnp

    kh, kw, channels, filters = kernel.shape
    batch, height, width, _ = inputs.shape
    padded = _padded_bits(inputs, [(0, 0), same_padding(kh), same_padding(kw), (0, 0)])
    total = 0
    for row in range(kh):
        windows = jnp.concatenate([padded[:, row : row + height, col : col + width] for col in range(kw)], axis=-1)
        row_kernel = kernel[row].reshape(kw * channels, filters)
        total = total + jnp.dot(_as_matrix(windows, inputs.dtype), row_kernel, preferred_element_type=jnp.float32)
    return total.reshape(batch, height, width, filters).astype(inputs.dtype)


def _tap_input_gradient(output_gradient, kernel):
    """The gradient of a 'same' convolution with respect to its input, one matrix product per kernel position:
    the output gradient shifted to that position times the position's kernel, transposed; summed in float32.

    Args:
        output_gradient: ``(batch, height, width, out_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``, of the output gradient's dtype.

    Returns:
        ``(batch, height, width, in_channels)`` in the output gradient's dtype.
    """
    import jax.numpy as jnp

    kh, kw, channels, _ = kernel.shape
    batch, height, width, _ = output_gradient.shape
    # The input pixel at p received kernel[t] * input[p] in output p - t + (kh - 1) // 2: pad the other way round.
    padding = [(0, 0), same_padding(kh)[::-1], same_padding(kw)[::-1], (0, 0)]
    padded = _padded_bits(output_gradient, padding)
    # Every tap's kernel transposed in one copy: a transposed operand would slow each product down.
    taps = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    total = 0
    for row, col in itertools.product(range(kh), range(kw)):
        window = _as_matrix(padded[:, row : row + height, col : col + width], output_gradient.dtype)
        total = total + jnp.dot(window, taps[row, col], preferred_element_type=jnp.float32)
    return total.reshape(batch, height, width, channels).astype(output_gradient.dtype)


def same_conv_as_products(inputs, kernel):
    """A 'same' convolution with unit strides whose output and input gradient are matrix products (JAX).

    The output is one product per kernel row (the input's windows shifted along the width, side by side, times
    that row's kernels), the input gradient one product per kernel position, both accumulated in float32; the
    kernel gradient is XLA's. On bfloat16 frames of 16x16 pixels (batch 16) the output took 0.47-0.55 and the
    input gradient 0.33-0.39 of XLA's time on an AMX CPU (BENCHMARKS.md, "Backends"); in float32 XLA's own are
    faster, and so is its forward pass on 64x64 bfloat16 frames.

    Args:
        inputs: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``, of the inputs' dtype.

    Returns:
        ``(batch, height, width, out_channels)`` in the inputs' dtype, equal to ``keras.ops.conv(inputs, kernel,
        padding="same")`` to float rounding, as are its gradients.
    """
    return _conv_with_matmul_forward()(inputs, kernel)


def _matmul_forward_gradients(inputs, kernel, output_gradient):
    return _tap_input_gradient(output_gradient, kernel), _xla_gradient(inputs, kernel, output_gradient, 1)


@functools.cache
def _conv_with_matmul_forward():
    return _with_gradients(_row_products, _matmul_forward_gradients)


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


def _valid_products(inputs, kernel):
    """:func:`valid_conv_as_products`'s forward pass: every pixel times all taps, then the shifted slices summed."""
    window, filters = kernel.shape[:-2], kernel.shape[-1]
    products = (inputs @ _all_taps(kernel)).reshape(*inputs.shape[:-1], math.prod(window), filters)
    sizes = [size - extent + 1 for size, extent in zip(inputs.shape[1:-1], window, strict=True)]
    total = 0
    for tap, offset in enumerate(itertools.product(*(range(extent) for extent in window))):
        corner = tuple(slice(start, start + size) for start, size in zip(offset, sizes, strict=True))
        total = total + products[(slice(None), *corner, tap)]
    return total


def _valid_products_gradients(inputs, kernel, output_gradient):
    """:func:`valid_conv_as_products`'s input and kernel gradients: two products with the shifted output gradient."""
    import jax.numpy as jnp

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
    gradient = inputs.reshape(-1, channels).T @ columns
    gradient = gradient.reshape(channels, len(shifted), -1).transpose(1, 0, 2).reshape(kernel.shape)
    return (columns @ _all_taps(kernel).T).reshape(inputs.shape), gradient


@functools.cache
def _conv_as_products():
    return _with_gradients(_valid_products, _valid_products_gradients)
