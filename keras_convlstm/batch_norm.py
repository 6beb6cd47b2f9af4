"""Re-estimating BatchNormalization's moving statistics after training ("precise BatchNorm").

During training a ``BatchNormalization`` layer normalises with the statistics of each batch and keeps an
exponential moving average of them for inference: ``moving = momentum * moving + (1 - momentum) * batch``,
starting from mean 0 and variance 1, with ``momentum = 0.99`` in Keras. After ``n`` steps the initial variance
still weighs ``0.99 ** n`` (0.022 after 380 steps). Where a layer's true variance is far below 1 (the first
ConvLSTM layer of the noisy-squares network: about 3e-4), that remainder dominates for many epochs and the model
predicts far worse in inference than in training, although its weights are good. :func:`recalibrate_batch_norm`
replaces the moving statistics by the exact statistics of the given inputs, the approach Wu and Johnson call
precise BatchNorm ("Rethinking 'Batch' in BatchNorm", 2021). The weights are not touched.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_convlstm.checks import check_integer


def recalibrate_batch_norm(model: keras.Model, inputs: np.ndarray, batch_size: int = 16) -> list[str]:
    """Sets every BatchNormalization layer's moving mean and variance to the statistics of ``inputs``.

    The layers are taken in order; each one's input is computed in inference mode with the layers before it
    already recalibrated, so that the model in inference mode on ``inputs`` normalises exactly as training mode
    would on all of ``inputs`` at once. Statistics are accumulated in float64 over batches of ``batch_size``.

    Args:
        model: a built functional Keras model (every package preset is one).
        inputs: what the model reads, ``(batch, time, height, width, channels)`` for the frame models; training
            inputs, or any sample of the inputs it will see.
        batch_size: inputs per forward pass (memory only; the result does not depend on it beyond rounding).

    Returns:
        The names of the layers recalibrated (empty if the model has no BatchNormalization layer).

    Raises:
        ValueError: ``inputs`` is empty, or a BatchNormalization layer normalises another axis than the last.
    """
    batch_size = check_integer(batch_size, "batch_size")
    if len(inputs) == 0:
        raise ValueError("expected at least one input to estimate the statistics from, got none")
    done = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            raise ValueError(
                f"layer {layer.name!r} normalises axis {layer.axis}; only the channel axis (-1) is supported"
            )
        before = keras.Model(model.input, layer.input)
        count, total, squares = 0, 0.0, 0.0
        for start in range(0, len(inputs), batch_size):
            values = keras.ops.convert_to_numpy(keras.ops.cast(before(inputs[start : start + batch_size]), "float32"))
            values = values.reshape(-1, values.shape[-1]).astype(np.float64)
            count += len(values)
            total = total + values.sum(axis=0)
            squares = squares + (values**2).sum(axis=0)
        mean = total / count
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign(np.maximum(squares / count - mean**2, 0.0).astype("float32"))
        done.append(layer.name)
    return done
