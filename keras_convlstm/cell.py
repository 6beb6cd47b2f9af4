r"""What one ConvLSTM cell computes, written out with ``keras.ops``: one time step, as Keras's ``ConvLSTM2D`` does it.

Shi et al. (2015) replace the matrix products of an LSTM by convolutions, so every gate and state keeps the
image's layout ``(height, width, channels)``. For an input frame :math:`X_t`, hidden state :math:`H_{t-1}` and
cell state :math:`C_{t-1}` (``*`` a 2-D convolution, :math:`\circ` the element-wise product):

.. math::

    i_t &= \sigma(W_{xi} * X_t + W_{hi} * H_{t-1} + b_i)              && \text{input gate}\\
    f_t &= \sigma(W_{xf} * X_t + W_{hf} * H_{t-1} + b_f)              && \text{forget gate}\\
    g_t &= \phi(W_{xc} * X_t + W_{hc} * H_{t-1} + b_c)                && \text{candidate}\\
    C_t &= f_t \circ C_{t-1} + i_t \circ g_t                          && \text{cell state}\\
    o_t &= \sigma(W_{xo} * X_t + W_{ho} * H_{t-1} + b_o)              && \text{output gate}\\
    H_t &= o_t \circ \phi(C_t)                                        && \text{hidden state}

:math:`\sigma` is ``recurrent_activation`` (sigmoid) and :math:`\phi` is ``activation`` (tanh by default; the
keras.io example uses relu). The paper's cell also has peephole terms (:math:`W_{ci} \circ C_{t-1}` in
:math:`i_t` and :math:`f_t`, :math:`W_{co} \circ C_t` in :math:`o_t`); Keras's ``ConvLSTM2D`` has none, and neither
has this function.

Keras stores the four input kernels side by side in ``cell.kernel`` ``(kh, kw, in_channels, 4 * filters)`` and the
four recurrent kernels in ``cell.recurrent_kernel`` ``(kh, kw, filters, 4 * filters)``, in the order i, f, c, o.
With 'same' padding and unit strides both convolutions see the same pixels, so :func:`convlstm_step` runs all
eight as one convolution of the concatenation ``[X_t, H_{t-1}]`` (:func:`keras_convlstm.convolution.same_conv`,
which is ``keras.ops.conv`` with 'same' padding); the rollout, and a PyTorch or JAX training step of
:class:`keras_convlstm.layers.ConvLSTM2D`, use it for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keras_convlstm.convolution import same_conv

Activation = Callable[[object], object]


def convlstm_step(
    frame,
    hidden,
    cell_state,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
):
    """Advances a ConvLSTM cell by one frame ('same' padding, unit strides, no peepholes).

    Args:
        frame: input :math:`X_t`, ``(batch, height, width, in_channels)``.
        hidden: :math:`H_{t-1}`, ``(batch, height, width, filters)``.
        cell_state: :math:`C_{t-1}`, ``(batch, height, width, filters)``.
        kernel: input kernels ``(kh, kw, in_channels, 4 * filters)``, gates in the order i, f, c, o.
        recurrent_kernel: state kernels ``(kh, kw, filters, 4 * filters)``, same order.
        bias: ``(4 * filters,)`` or None.
        activation: :math:`\\phi`, applied to the candidate and to the cell state before the output gate.
        recurrent_activation: :math:`\\sigma`, the gates' squashing function.

    Returns:
        ``(hidden, cell_state)``: :math:`H_t` and :math:`C_t`, each ``(batch, height, width, filters)``.

    Example:
        >>> layer = keras.layers.ConvLSTM2D(8, 3, padding="same")
        >>> _ = layer(keras.ops.zeros((1, 2, 16, 16, 1)))
        >>> h = c = keras.ops.zeros((1, 16, 16, 8))
        >>> h, c = convlstm_step(keras.ops.ones((1, 16, 16, 1)), h, c, layer.cell.kernel,
        ...                      layer.cell.recurrent_kernel, layer.cell.bias)
    """
    activation = keras.activations.get(activation)
    recurrent_activation = keras.activations.get(recurrent_activation)
    stacked_kernel = keras.ops.concatenate([kernel, recurrent_kernel], axis=2)
    gates = same_conv(keras.ops.concatenate([frame, hidden], axis=-1), stacked_kernel)
    if bias is not None:
        gates = gates + bias
    input_gate, forget_gate, candidate, output_gate = keras.ops.split(gates, 4, axis=-1)
    cell_state = recurrent_activation(forget_gate) * cell_state + recurrent_activation(input_gate) * activation(
        candidate
    )
    hidden = recurrent_activation(output_gate) * activation(cell_state)
    return hidden, cell_state


def steppable(layer: keras.layers.ConvLSTM2D) -> bool:
    """Whether :func:`layer_step` computes exactly what ``layer`` does: 'same' padding, unit strides, no dilation."""
    cell = layer.cell
    return (
        cell.padding == "same"
        and tuple(cell.strides) == (1, 1)
        and tuple(cell.dilation_rate) == (1, 1)
        and cell.data_format == "channels_last"
    )


def layer_step(layer: keras.layers.ConvLSTM2D, frame, hidden, cell_state):
    """One step of a built ``ConvLSTM2D`` layer with its own weights, activations and compute dtype.

    Args:
        layer: a built ``keras.layers.ConvLSTM2D`` for which :func:`steppable` is true.
        frame: ``(batch, height, width, in_channels)``.
        hidden, cell_state: ``(batch, height, width, filters)`` in the layer's compute dtype.

    Returns:
        ``(hidden, cell_state)`` after reading ``frame``.
    """
    if not steppable(layer):
        raise ValueError(
            f"layer {layer.name!r}: layer_step needs padding='same', strides 1, dilation 1 and channels_last"
        )
    cell = layer.cell
    dtype = layer.compute_dtype
    bias = keras.ops.cast(cell.bias, dtype) if cell.use_bias else None
    return convlstm_step(
        keras.ops.cast(frame, dtype),
        hidden,
        cell_state,
        keras.ops.cast(cell.kernel, dtype),
        keras.ops.cast(cell.recurrent_kernel, dtype),
        bias,
        activation=cell.activation,
        recurrent_activation=cell.recurrent_activation,
    )


def run_layer(layer: keras.layers.ConvLSTM2D, frames, initial_state=None):
    """Runs ``layer`` over a whole sequence with :func:`layer_step`, one frame at a time.

    Args:
        layer: a built, steppable ``ConvLSTM2D``.
        frames: ``(batch, time, height, width, in_channels)``.
        initial_state: ``[hidden, cell_state]``, each ``(batch, height, width, filters)``; zeros when None.

    Returns:
        What ``layer(frames, initial_state=initial_state)`` returns: every hidden state ``(batch, time, height,
        width, filters)`` with ``return_sequences=True``, else the last; followed by the last hidden and cell
        states with ``return_state=True``.
    """
    if initial_state is None:
        # 'Same' padding and unit strides keep the frame's height and width.
        state_shape = (keras.ops.shape(frames)[0], *frames.shape[2:4], layer.filters)
        initial_state = [keras.ops.zeros(state_shape, layer.compute_dtype)] * 2
    hidden, cell_state = (keras.ops.cast(state, layer.compute_dtype) for state in initial_state)
    outputs = []
    for t in range(frames.shape[1]):
        hidden, cell_state = layer_step(layer, frames[:, t], hidden, cell_state)
        outputs.append(hidden)
    output = keras.ops.stack(outputs, axis=1) if layer.return_sequences else hidden
    return (output, hidden, cell_state) if layer.return_state else output
