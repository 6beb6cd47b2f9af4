"""Evaluation: a model's autoregressive rollout scored beside the copy-last-frame and blank-frame baselines."""

from __future__ import annotations

import keras
import numpy as np

from keras_convlstm.data import to_float_frames, validate_frames
from keras_convlstm.metrics import MetricTable, blank_frames, copy_last_frame
from keras_convlstm.rollout import predict_frames


def evaluate(
    model: keras.Model,
    sequences: np.ndarray,
    context: int = 10,
    horizon: int = 10,
    *,
    batch_size: int = 32,
    threshold: float = 0.5,
) -> MetricTable:
    """Rolls ``model`` out from the first ``context`` frames and scores the next ``horizon`` frames.

    The baselines see the same context: "copy-last-frame" repeats its last frame, "blank" predicts zeros.

    Args:
        model: a frame-prediction model.
        sequences: held-out sequences ``(batch, time, height, width, channels)`` with
            ``time >= context + horizon``, uint8 or float in [0, 1].
        context: frames given to the model.
        horizon: frames predicted and scored.
        batch_size: sequences per rollout batch.
        threshold: binarisation threshold of CSI, FAR and POD.

    Returns:
        A :class:`~keras_convlstm.metrics.MetricTable` with per-step metrics of "model", "copy-last-frame" and
        "blank".
    """
    validate_frames(sequences, name="sequences", min_frames=context + horizon)
    if context < 1 or horizon < 1:
        raise ValueError(f"context and horizon must be >= 1, got context={context}, horizon={horizon}")
    given = sequences[:, :context]
    truth = to_float_frames(sequences[:, context : context + horizon])
    predictions = {
        "model": predict_frames(model, given, horizon, batch_size=batch_size),
        "copy-last-frame": copy_last_frame(to_float_frames(given), horizon),
        "blank": blank_frames(given, horizon),
    }
    return MetricTable.from_predictions(predictions, truth, threshold=threshold)
