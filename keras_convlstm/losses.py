"""Training losses beyond Keras's own: binary cross-entropy plus a structural-similarity term.

A model trained on its own rollouts with a per-pixel loss (binary cross-entropy, MSE) learns to hedge: where a
digit may be, it predicts a faint grey. That is optimal for the per-pixel loss but ruins SSIM, whose luminance
term over a black window falls to a half for a prediction of 0.01. :class:`BCEPlusSSIM` adds ``1 - SSIM`` to the
cross-entropy, so the training objective also pays for the haze.

:func:`ssim` is the differentiable TensorFlow twin of :func:`keras_convlstm.metrics.ssim` (7x7 uniform window,
data range 1, sample covariance, windows inside the frame only), so the loss scores what the evaluation reports.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_convlstm.metrics import SSIM_K1, SSIM_K2, SSIM_WINDOW

DEFAULT_SSIM_WEIGHT = 0.5


def ssim(prediction: tf.Tensor, truth: tf.Tensor) -> tf.Tensor:
    """SSIM of each frame, differentiable.

    Args:
        prediction: ``(batch, time, height, width, channels)`` float in [0, 1]; height and width at least 7.
        truth: same shape.

    Returns:
        float32 ``(batch, time)``: each frame's SSIM, averaged over its windows and channels.
    """
    prediction = tf.convert_to_tensor(prediction, tf.float32)
    truth = tf.convert_to_tensor(truth, tf.float32)
    shape = tf.shape(prediction)
    channels = prediction.shape[-1]
    # Both stacks in one tensor of frames, prediction channels first: (batch * time, height, width, 2 * channels).
    images = tf.reshape(tf.concat([prediction, truth], axis=-1), tf.concat([[-1], shape[2:4], [2 * channels]], 0))

    def window_means(values: tf.Tensor) -> tf.Tensor:
        return tf.nn.avg_pool2d(values, SSIM_WINDOW, strides=1, padding="VALID")

    means = window_means(images)
    mean_p, mean_t = means[..., :channels], means[..., channels:]
    squares = window_means(images * images)
    products = window_means(images[..., :channels] * images[..., channels:])
    count = SSIM_WINDOW * SSIM_WINDOW
    norm = count / (count - 1)
    var_p = norm * (squares[..., :channels] - mean_p * mean_p)
    var_t = norm * (squares[..., channels:] - mean_t * mean_t)
    cov = norm * (products - mean_p * mean_t)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mean_p * mean_t + c1) * (2 * cov + c2)) / ((mean_p**2 + mean_t**2 + c1) * (var_p + var_t + c2))
    return tf.reshape(tf.reduce_mean(ssim_map, axis=[1, 2, 3]), shape[:2])


@keras.saving.register_keras_serializable(package="keras_convlstm")
class BCEPlusSSIM(keras.losses.Loss):
    """Binary cross-entropy per pixel plus ``ssim_weight * (1 - SSIM)`` per frame, for frames in [0, 1].

    Args:
        ssim_weight: weight of the ``1 - SSIM`` term (0: plain binary cross-entropy).
        name: loss name.
    """

    def __init__(self, ssim_weight: float = DEFAULT_SSIM_WEIGHT, name: str = "bce_ssim", **kwargs):
        super().__init__(name=name, **kwargs)
        if not ssim_weight >= 0:
            raise ValueError(f"ssim_weight must be >= 0, got {ssim_weight!r}")
        self.ssim_weight = float(ssim_weight)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        """Per-frame loss ``(batch, time)`` of ``(batch, time, height, width, channels)`` frames."""
        y_true = tf.cast(y_true, tf.float32)
        y_pred = tf.cast(y_pred, tf.float32)
        bce = keras.losses.binary_crossentropy(y_true, y_pred)  # mean over channels: (batch, time, h, w)
        return tf.reduce_mean(bce, axis=[2, 3]) + self.ssim_weight * (1.0 - ssim(y_pred, y_true))

    def get_config(self) -> dict:
        return {**super().get_config(), "ssim_weight": self.ssim_weight}


# Loss names a ModelConfig may give besides Keras's own.
LOSSES = {"bce_ssim": BCEPlusSSIM}


def get_loss(name: str) -> str | keras.losses.Loss:
    """The loss object for ``name`` from :data:`LOSSES`, or ``name`` itself once Keras knows it.

    Raises:
        ValueError: neither a name of :data:`LOSSES` nor a Keras loss name (checked now, not at training).
    """
    if name in LOSSES:
        return LOSSES[name]()
    try:
        keras.losses.get(name)
    except (ValueError, TypeError):
        raise ValueError(
            f"unknown loss {name!r}: expected a Keras loss name such as 'binary_crossentropy' or 'mse', or one of "
            f"{sorted(LOSSES)}"
        ) from None
    return name
