"""Training losses beyond Keras's own: binary cross-entropy plus a structural-similarity term.

A model trained on its own rollouts with a per-pixel loss (binary cross-entropy, MSE) learns to hedge: where a
digit may be, it predicts a faint grey. That is optimal for the per-pixel loss but ruins SSIM, whose luminance
term over a black window falls to a half for a prediction of 0.01. :class:`BCEPlusSSIM` adds ``1 - SSIM`` to the
cross-entropy, so the training objective also pays for the haze.

:func:`ssim` is the differentiable twin of :func:`keras_convlstm.metrics.ssim` (7x7 uniform window, data range 1,
sample covariance, windows inside the frame only), written with ``keras.ops`` so it runs on every backend: the loss
scores what the evaluation reports.
"""

from __future__ import annotations

import keras

from keras_convlstm.metrics import SSIM_K1, SSIM_K2, SSIM_WINDOW

DEFAULT_SSIM_WEIGHT = 0.5


def ssim(prediction, truth):
    """SSIM of each frame, differentiable.

    Args:
        prediction: ``(batch, time, height, width, channels)`` float in [0, 1]; height and width at least 7.
        truth: same shape.

    Returns:
        float32 ``(batch, time)``: each frame's SSIM, averaged over its windows and channels.
    """
    prediction = keras.ops.convert_to_tensor(prediction, "float32")
    truth = keras.ops.convert_to_tensor(truth, "float32")
    batch, time = keras.ops.shape(prediction)[0], keras.ops.shape(prediction)[1]
    height, width, channels = prediction.shape[2:]
    # Both stacks in one tensor of frames, prediction channels first: (batch * time, height, width, 2 * channels).
    images = keras.ops.reshape(keras.ops.concatenate([prediction, truth], axis=-1), (-1, height, width, 2 * channels))

    def window_means(values):
        return keras.ops.average_pool(values, SSIM_WINDOW, strides=1, padding="valid")

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
    return keras.ops.reshape(keras.ops.mean(ssim_map, axis=(1, 2, 3)), (batch, time))


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

    def call(self, y_true, y_pred):
        """Per-frame loss ``(batch, time)`` of ``(batch, time, height, width, channels)`` frames."""
        y_true = keras.ops.cast(y_true, "float32")
        y_pred = keras.ops.cast(y_pred, "float32")
        bce = keras.losses.binary_crossentropy(y_true, y_pred)  # mean over channels: (batch, time, h, w)
        return keras.ops.mean(bce, axis=(2, 3)) + self.ssim_weight * (1.0 - ssim(y_pred, y_true))

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
