"""Custom Keras layers for ConvLSTM video models.

- :class:`SpaceToDepth` and :class:`DepthToSpace` cut each frame into ``p x p`` patches stacked on the channel
  axis and back again (Shi et al. 2015 feed 64x64x1 Moving MNIST frames to their ConvLSTMs as 16x16x16 tensors).
- :class:`CausalConv3D` is a ``Conv3D`` whose output at time ``t`` reads only frames up to ``t``. The official
  example ends with ``Conv3D(padding="same")``, which also reads frame ``t + 1``: the very frame that output ``t``
  is trained to predict.
- :class:`ConvLSTM2D` is Keras's ``ConvLSTM2D`` (same weights, settings and outputs) whose JAX training step
  unrolls the loop over frames, which XLA:CPU differentiates many times faster than ``lax.scan``, and on XLA:CPU
  computes each step as one convolution, partly as matrix products (large frames, and small bfloat16 frames on a
  CPU with bfloat16 instructions); its PyTorch training step also runs one convolution a frame instead of eight.
- :class:`Conv3D` is Keras's ``Conv3D`` whose JAX training step on a CPU computes it as matrix products, many
  times faster there for the few output channels of the package's output layers; :class:`CausalConv3D` is one.

All five layers work on any number of frames, so a model built with them accepts sequences of any length.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_convlstm.cell import run_layer, steppable
from keras_convlstm.checks import check_integer, check_size
from keras_convlstm.convolution import (
    matmul_forward,
    matmul_kernel_gradient,
    products_apply,
    same_padding,
    valid_conv_as_products,
)

_PACKAGE = "keras_convlstm"
# Longest sequence a JAX training step of ConvLSTM2D runs frame by frame; longer ones keep Keras's lax.scan.
# Compiling the unrolled step takes time in proportion to the number of frames (BENCHMARKS.md, "Backends").
MAX_UNROLLED_FRAMES = 32


def _check_rank(input_shape: tuple, layer_name: str) -> None:
    if len(input_shape) not in (4, 5):
        raise ValueError(
            f"{layer_name} expected frames of shape (batch, time, height, width, channels) or "
            f"(batch, height, width, channels), got shape {tuple(input_shape)}"
        )
    if any(size is None for size in input_shape[-3:]):
        raise ValueError(f"{layer_name} needs known height, width and channels, got shape {tuple(input_shape)}")


class _PatchLayer(keras.layers.Layer):
    """Shared argument handling of the two patch layers."""

    def __init__(self, patch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = check_integer(patch_size, "patch_size")

    def get_config(self) -> dict:
        config = super().get_config()
        config["patch_size"] = self.patch_size
        return config


def _per_frame(operation, inputs, patch_size: int):
    """Applies ``operation(frames, patch_size)``, a 4-D ``keras.ops`` op, to every frame of 4-D or 5-D frames."""
    if patch_size == 1:  # the identity; the keras.ops patch ops need a block size of at least 2
        return inputs
    if len(inputs.shape) == 4:
        return operation(inputs, patch_size)
    outputs = operation(ops.reshape(inputs, (-1, *inputs.shape[2:])), patch_size)
    return ops.reshape(outputs, (-1, ops.shape(inputs)[1], *outputs.shape[1:]))  # the time size may be dynamic


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpaceToDepth(_PatchLayer):
    """Cuts every frame into ``patch_size x patch_size`` patches stacked on the channel axis.

    Each time step is transformed on its own by ``keras.ops.space_to_depth``. The channel order inside a patch
    position is ``(patch row, patch column, channel)``, the convention of ``tf.nn.space_to_depth``.

    Args:
        patch_size: side of the square patches, a positive integer that divides height and width.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, time, height, width, channels)`` (``time`` may be None) or ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, time, height / p, width / p, channels * p * p)`` (or without ``time``), ``p = patch_size``.

    Example:
        >>> import numpy as np
        >>> tuple(SpaceToDepth(4)(np.zeros((2, 20, 64, 64, 1), "float32")).shape)
        (2, 20, 16, 16, 16)
    """

    def build(self, input_shape: tuple) -> None:
        _check_rank(input_shape, "SpaceToDepth")
        height, width = input_shape[-3], input_shape[-2]
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"SpaceToDepth: frame height and width must be divisible by patch_size={p}, "
                f"got {height}x{width} frames (input shape {tuple(input_shape)})"
            )
        self.built = True

    def call(self, inputs):
        return _per_frame(ops.space_to_depth, inputs, self.patch_size)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        height, width, channels = input_shape[-3:]
        p = self.patch_size
        return (*input_shape[:-3], height // p, width // p, channels * p * p)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DepthToSpace(_PatchLayer):
    """Inverse of :class:`SpaceToDepth`: unstacks channel patches back into ``patch_size x patch_size`` pixels.

    Each time step is transformed on its own by ``keras.ops.depth_to_space``.

    Args:
        patch_size: side of the square patches, a positive integer; ``patch_size ** 2`` must divide the channels.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, time, height, width, channels)`` (``time`` may be None) or ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, time, height * p, width * p, channels / (p * p))`` (or without ``time``), ``p = patch_size``.

    Example:
        >>> import numpy as np
        >>> tuple(DepthToSpace(4)(np.zeros((2, 20, 16, 16, 16), "float32")).shape)
        (2, 20, 64, 64, 1)
    """

    def build(self, input_shape: tuple) -> None:
        _check_rank(input_shape, "DepthToSpace")
        channels = input_shape[-1]
        p = self.patch_size
        if channels % (p * p):
            raise ValueError(
                f"DepthToSpace: the number of channels must be divisible by patch_size**2={p * p}, "
                f"got {channels} channels (input shape {tuple(input_shape)})"
            )
        self.built = True

    def call(self, inputs):
        return _per_frame(ops.depth_to_space, inputs, self.patch_size)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        height, width, channels = input_shape[-3:]
        p = self.patch_size
        return (*input_shape[:-3], height * p, width * p, channels // (p * p))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Conv3D(keras.layers.Conv3D):
    """Keras's ``Conv3D`` whose JAX training step on a CPU computes it as matrix products: same arguments, weights
    and outputs.

    A training call on JAX's CPU backend with unit strides and dilation, one group and few output channels
    (:func:`keras_convlstm.convolution.products_apply`) pads 'same' inputs itself and runs
    :func:`keras_convlstm.convolution.valid_conv_as_products`, equal to Keras's convolution to float rounding and
    many times faster on XLA:CPU for the package's output layers. Every other call is Keras's own. The class keeps
    Keras's name, so a ``.keras`` file stores its weights at the same paths.

    Input shape:
        ``(batch, time, height, width, channels)``.

    Output shape:
        ``(batch, time', height', width', filters)``, as Keras's ``Conv3D``.
    """

    def call(self, inputs, training=None):
        if not (training and self._as_products(inputs.shape)):
            return super().call(inputs)
        if self.padding == "same":
            inputs = ops.pad(inputs, [(0, 0), *map(same_padding, self.kernel_size), (0, 0)])
        outputs = valid_conv_as_products(inputs, ops.cast(self.kernel, self.compute_dtype))
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)

    def _as_products(self, input_shape: tuple) -> bool:
        plain = self.groups == 1 and self.data_format == "channels_last"
        unit = set(self.strides) == {1} and set(self.dilation_rate) == {1}
        return plain and unit and products_apply(input_shape, self.kernel.shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalConv3D(Conv3D):
    """A ``Conv3D`` whose output at time ``t`` depends only on the input frames ``t - k_t + 1 .. t``.

    The input is padded with ``k_t - 1`` zero frames before the first frame and none after it, and padded
    'same' in height and width; a valid convolution then keeps the number of frames and the frame size.
    The weights are those of the ``Conv3D(filters, kernel_size, padding="same")`` it replaces, so the parameter
    count is identical; only the time alignment differs (stride 1, no dilation).

    Args:
        filters: number of output channels, a positive integer.
        kernel_size: ``(time, height, width)`` kernel sizes, or one integer for all three.
        activation: activation applied to the output (None: linear).
        use_bias: whether to add a bias per filter.
        kernel_initializer: initializer of the kernel ``(k_t, k_h, k_w, in_channels, filters)``.
        bias_initializer: initializer of the bias ``(filters,)``.
        kernel_regularizer: optional regularizer of the kernel.
        bias_regularizer: optional regularizer of the bias.
        activity_regularizer: optional regularizer of the output.
        kernel_constraint: optional constraint on the kernel.
        bias_constraint: optional constraint on the bias.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, time, height, width, channels)``; ``time`` may be None.

    Output shape:
        ``(batch, time, height, width, filters)``.

    Example:
        >>> import numpy as np
        >>> frames = np.zeros((2, 19, 64, 64, 64), "float32")
        >>> tuple(CausalConv3D(1, (3, 3, 3), activation="sigmoid")(frames).shape)
        (2, 19, 64, 64, 1)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int, int] = (3, 3, 3),
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        check_integer(filters, "filters")
        sizes = check_size(kernel_size, "kernel_size", axes=("time", "height", "width"))
        super().__init__(
            filters=filters,
            kernel_size=sizes,
            padding="valid",
            data_format="channels_last",
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )

    def _padding(self) -> list[tuple[int, int]]:
        time_kernel, height_kernel, width_kernel = self.kernel_size
        spatial = [same_padding(k) for k in (height_kernel, width_kernel)]
        return [(0, 0), (time_kernel - 1, 0), *spatial, (0, 0)]

    def call(self, inputs, training=None):
        return super().call(ops.pad(inputs, self._padding()), training=training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 5:
            raise ValueError(
                f"CausalConv3D expected inputs of shape (batch, time, height, width, channels), "
                f"got shape {tuple(input_shape)}"
            )
        return (*input_shape[:-1], self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        for fixed in ("strides", "padding", "data_format", "dilation_rate", "groups"):
            config.pop(fixed)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvLSTM2D(keras.layers.ConvLSTM2D):
    """Keras's ``ConvLSTM2D`` with a faster training step on JAX and PyTorch: same arguments, weights and outputs.

    XLA:CPU runs the backward pass of ``lax.scan`` far slower than that of the same loop unrolled, so a JAX
    training call over at most :data:`MAX_UNROLLED_FRAMES` frames unrolls it. Where
    :func:`keras_convlstm.convolution.same_conv` computes part of its work as matrix products (JAX's CPU backend:
    the kernel gradient on frames of at least 32 x 32 = 1,024 pixels, the output and input gradient on smaller
    bfloat16 frames on a CPU with bfloat16 instructions), and the layer has no mask, dropout, ``go_backwards``
    or ``stateful`` and is steppable (:func:`keras_convlstm.cell.steppable`: 'same' padding, unit strides and
    dilation), the unrolled loop is :func:`keras_convlstm.cell.run_layer`: one convolution a frame instead of
    Keras's eight, with those products; elsewhere it is Keras's own cell. A PyTorch training call of such a
    layer always runs :func:`keras_convlstm.cell.run_layer` (PyTorch runs every operation as it comes, and one
    convolution a frame costs less than eight). The outputs equal Keras's to float rounding. Every other call
    (inference, TensorFlow, longer sequences on JAX) is Keras's own. The class keeps Keras's name, so a
    ``.keras`` file stores its weights at the same paths.

    Example:
        >>> import numpy as np
        >>> layer = ConvLSTM2D(8, 3, padding="same", return_sequences=True)
        >>> tuple(layer(np.zeros((2, 5, 16, 16, 1), "float32")).shape)
        (2, 5, 16, 16, 8)
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if training and mask is None and self._steps_fused(sequences.shape):
            return run_layer(self, sequences, initial_state)
        frames = sequences.shape[1]
        if not training or keras.backend.backend() != "jax" or frames is None or frames > MAX_UNROLLED_FRAMES:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        # Keras's RNN reads ``unroll`` while JAX traces this call, which happens once per input shape.
        unroll, self.unroll = self.unroll, True
        try:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        finally:
            self.unroll = unroll

    def _steps_fused(self, input_shape: tuple) -> bool:
        """Whether a training call without a mask runs :func:`keras_convlstm.cell.run_layer` on inputs of that
        shape: on PyTorch always, on JAX over at most :data:`MAX_UNROLLED_FRAMES` frames where
        :func:`keras_convlstm.convolution.same_conv`'s matrix products apply (both need a known number of frames)."""
        frames = input_shape[1]
        plain = not (self.cell.dropout or self.cell.recurrent_dropout or self.go_backwards or self.stateful)
        if not (plain and steppable(self) and frames is not None):
            return False
        if keras.backend.backend() == "torch":
            return True
        frame_shape = (input_shape[0], *input_shape[2:])
        products = matmul_kernel_gradient(frame_shape) or matmul_forward(frame_shape, self.compute_dtype)
        return products and frames <= MAX_UNROLLED_FRAMES  # the products are JAX's alone
