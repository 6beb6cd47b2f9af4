"""Autoregressive rollout: predict future frames by feeding each prediction back as the next input.

The official example predicts frame ``t + 1`` by running ``model.predict`` on the whole sequence seen so far and
keeping the last output frame, so a rollout of ``horizon`` frames re-reads the context ``horizon`` times (quadratic
cost) and retraces the predict function for every new sequence length. :func:`predict_frames` gives the same frames
in linear time: it walks the model layer by layer, advances every ConvLSTM2D cell one frame at a time, and keeps
only the few past frames that a temporal convolution needs. One compiled graph, a loop over that step, runs the
whole rollout; it is traced once per input signature, never per step or per horizon.

:func:`official_rollout` keeps the official loop as the reference the fast path is tested and benchmarked against.
:func:`predict_next_frames` is the one-step-ahead prediction from ground-truth inputs (teacher forcing), which is
what the official GIF section really displayed.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_convlstm.cell import layer_step, steppable
from keras_convlstm.data import to_float_frames, validate_frames
from keras_convlstm.layers import CausalConv3D
from keras_convlstm.models import check_input

_STEPPERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _model_kind(model: keras.Model) -> str:
    config = getattr(model, "config", None)
    return getattr(config, "kind", "seq2seq")


def _temporal_window(layer: keras.layers.Layer) -> tuple[int, int] | None:
    """Returns ``(history, future_padding)`` for a convolution that mixes time steps, else None.

    ``history`` is how many input frames up to and including ``t`` the output at ``t`` reads; ``future_padding``
    is how many frames after ``t`` it reads, which during a rollout are always the zero padding of a 'same'
    convolution (the frames do not exist yet). That zero padding is the official model's data leak at work.
    """
    if not isinstance(layer, keras.layers.Conv3D):
        return None
    time_kernel = layer.kernel_size[0]
    if time_kernel == 1:
        return None
    if isinstance(layer, CausalConv3D):
        return time_kernel, 0
    if layer.padding != "same":
        raise ValueError(
            f"layer {layer.name!r}: a Conv3D with padding={layer.padding!r} changes the number of frames; "
            "expected padding='same' or a CausalConv3D for an autoregressive rollout"
        )
    before = (time_kernel - 1) // 2
    after = time_kernel - 1 - before
    return before + 1, after


class FrameStepper:
    """Advances a sequence-to-sequence model one frame at a time, carrying every layer's state.

    The model's layers must form one chain of ConvLSTM2D layers, temporal convolutions (Conv3D with 'same'
    padding or CausalConv3D) and frame-wise layers (BatchNormalization, SpaceToDepth, TimeDistributed, ...).

    Args:
        model: a built Keras model, for example from ``build_model``.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self.layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        for layer in self.layers:
            if isinstance(layer, keras.layers.ConvLSTM2D) and (layer.go_backwards or layer.stateful):
                raise ValueError(f"layer {layer.name!r}: go_backwards and stateful ConvLSTM2D cannot be stepped")
            if isinstance(layer, keras.layers.Conv3D):
                _temporal_window(layer)  # validates the padding
        self.trace_count = 0
        # The loop over layers is plain Python unrolled at trace time, so AutoGraph has nothing to convert.
        self._step = tf.function(self._step_eager, reduce_retracing=True, autograph=False)
        self._roll = tf.function(self._roll_eager, reduce_retracing=True, autograph=False)

    def initial_state(self, batch_size: int | tf.Tensor) -> list[tf.Tensor]:
        """Zero states: ``(h, c)`` per ConvLSTM2D and a frame history per temporal convolution."""
        state = []
        for layer in self.layers:
            dtype = layer.compute_dtype
            if isinstance(layer, keras.layers.ConvLSTM2D):
                shape = (batch_size, *layer.output.shape[-3:])
                state += [tf.zeros(shape, dtype), tf.zeros(shape, dtype)]
            elif (window := _temporal_window(layer)) is not None:
                history, _ = window
                state.append(tf.zeros((batch_size, history, *layer.input.shape[-3:]), dtype))
        return state

    def _step_eager(
        self, frame: tf.Tensor, state: list[tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        self.trace_count += 1  # Python side effect: runs once per trace, never per compiled call.
        x = frame[:, None]  # (batch, 1, height, width, channels)
        new_state = []
        position = 0
        for layer in self.layers:
            if isinstance(layer, keras.layers.ConvLSTM2D):
                h, c = state[position], state[position + 1]
                position += 2
                if steppable(layer):
                    h, c = layer_step(layer, x[:, 0], h, c)
                else:
                    h, (h, c) = layer.cell(tf.cast(x[:, 0], layer.compute_dtype), [h, c], training=training)
                new_state += [h, c]
                x = h[:, None] if layer.return_sequences else h
            elif (window := _temporal_window(layer)) is not None:
                history, future = window
                frames = state[position]
                position += 1
                frames = tf.concat([frames[:, 1:], tf.cast(x, frames.dtype)], axis=1)
                new_state.append(frames)
                if future:
                    frames = tf.concat([frames, tf.zeros_like(frames[:, :future])], axis=1)
                x = layer(frames, training=training)[:, history - 1 : history]
            else:
                x = layer(x, training=training)
        prediction = x[:, 0] if x.shape.rank == 5 else x
        return tf.cast(prediction, tf.float32), new_state

    def _roll_eager(self, frames: tf.Tensor, extra_steps: tf.Tensor) -> tf.Tensor:
        time_steps = tf.shape(frames)[1]
        state = self.initial_state(tf.shape(frames)[0])
        outputs = tf.TensorArray(tf.float32, size=time_steps + extra_steps)

        def read(t, prediction, outputs, *state):
            prediction, state = self._step_eager(frames[:, t], list(state))
            return (t + 1, prediction, outputs.write(t, prediction), *state)

        def feed_back(t, prediction, outputs, *state):
            prediction, state = self._step_eager(prediction, list(state))
            return (t + 1, prediction, outputs.write(t, prediction), *state)

        first_prediction, state = self._step_eager(frames[:, 0], state)
        outputs = outputs.write(0, first_prediction)
        loop = (tf.constant(1), first_prediction, outputs, *state)
        loop = tf.while_loop(lambda t, *_: t < time_steps, read, loop)
        loop = tf.while_loop(lambda t, *_: t < time_steps + extra_steps, feed_back, loop)
        return tf.transpose(loop[2].stack(), [1, 0, 2, 3, 4])

    def unroll(self, frames: tf.Tensor, feed_back: tf.Tensor, *, training: bool = False) -> tf.Tensor:
        """Differentiable pass over ``frames`` in which chosen inputs are replaced by the model's own predictions.

        Args:
            frames: true inputs ``(batch, time, height, width, channels)``; ``time`` must be static.
            feed_back: ``(batch, time)`` booleans; where true, step ``t`` reads the prediction made at step
                ``t - 1`` instead of ``frames[:, t]`` (ignored at ``t = 0``). All false is teacher forcing.
            training: the ``training`` flag passed to the layers. In training mode a BatchNormalization layer
                normalises each frame with the statistics of that frame's batch and updates its moving averages
                once per frame, where ``model(frames, training=True)`` pools all frames: a fed-back frame does
                not exist before its step. Models without BatchNormalization give the same outputs either way.

        Returns:
            float32 ``(batch, time, height, width, channels)``: output ``t`` predicts frame ``t + 1``.
        """
        frames = tf.convert_to_tensor(frames, tf.float32)
        if frames.shape.rank != 5 or frames.shape[1] is None:
            raise ValueError(
                "unroll needs frames (batch, time, height, width, channels) with a fixed number of frames, got "
                f"shape {frames.shape}"
            )
        state = self.initial_state(tf.shape(frames)[0])
        prediction, state = self._step_eager(frames[:, 0], state, training)
        outputs = [prediction]
        for t in range(1, frames.shape[1]):
            own = tf.reshape(feed_back[:, t], (-1, 1, 1, 1))
            prediction, state = self._step_eager(tf.where(own, prediction, frames[:, t]), state, training)
            outputs.append(prediction)
        return tf.stack(outputs, axis=1)

    def roll(self, frames: tf.Tensor, extra_steps: int) -> tf.Tensor:
        """Reads ``frames`` ``(batch, time, height, width, channels)``, then feeds back ``extra_steps`` predictions.

        One compiled graph runs the whole loop. Returns every step's prediction,
        ``(batch, time + extra_steps, height, width, channels)``: output ``t`` predicts frame ``t + 1``.
        """
        return self._roll(frames, tf.constant(extra_steps, tf.int32))

    def step(self, frame: tf.Tensor, state: list[tf.Tensor]) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Reads one frame ``(batch, height, width, channels)``; returns the next-frame prediction and state."""
        return self._step(frame, state)


def frame_stepper(model: keras.Model) -> FrameStepper:
    """The model's :class:`FrameStepper`, built once and kept while the model lives."""
    stepper = _STEPPERS.get(model)
    if stepper is None:
        stepper = _STEPPERS[model] = FrameStepper(model)
    return stepper


def _batches(frames: np.ndarray, batch_size: int | None):
    size = len(frames) if batch_size is None else batch_size
    if size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    for start in range(0, len(frames), size):
        yield to_float_frames(frames[start : start + size])


def _roll(stepper: FrameStepper, frames: np.ndarray, horizon: int) -> np.ndarray:
    """Reads the true ``frames``, then feeds back ``horizon - 1`` predictions; returns every step's output."""
    return stepper.roll(tf.constant(frames), horizon - 1).numpy()


def predict_frames(
    model: keras.Model, context: np.ndarray, horizon: int = 10, *, batch_size: int | None = 32
) -> np.ndarray:
    """Continues each context sequence by ``horizon`` frames, feeding every prediction back as input.

    Gives the same frames as :func:`official_rollout` (to float rounding) in O(context + horizon) time.
    An encoder-forecaster model emits its frames directly from the context.

    Args:
        model: a sequence-to-sequence, many-to-one or encoder-forecaster model.
        context: frames ``(batch, time, height, width, channels)``, uint8 or float in [0, 1].
        horizon: number of frames to predict.
        batch_size: sequences processed together (None: all at once).

    Returns:
        float32 ``(batch, horizon, height, width, channels)`` in [0, 1] (the model's output range).
    """
    validate_frames(context, name="context", min_frames=1)
    check_input(model, context, check_time=_model_kind(model) == "encoder_forecaster")
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    kind = _model_kind(model)
    if kind == "encoder_forecaster":
        output_frames = model.config.output_frames
        if horizon > output_frames:
            raise ValueError(f"this encoder-forecaster emits {output_frames} frames at once; got horizon={horizon}")
        outputs = [np.asarray(model(batch, training=False))[:, :horizon] for batch in _batches(context, batch_size)]
        return np.concatenate(outputs).astype(np.float32)
    if kind not in ("seq2seq", "many_to_one"):
        raise ValueError(f"a {kind!r} model does not predict frames; expected a frame-prediction model")
    stepper = frame_stepper(model)
    outputs = [_roll(stepper, batch, horizon)[:, -horizon:] for batch in _batches(context, batch_size)]
    return np.concatenate(outputs)


def official_rollout(model: keras.Model, context: np.ndarray, horizon: int = 10) -> np.ndarray:
    """The official example's rollout loop, kept as a reference: quadratic in the number of frames.

    For each new frame it runs ``model.predict`` on the whole sequence so far and appends the last output frame.

    Args:
        model: a sequence-to-sequence or many-to-one model.
        context: frames ``(batch, time, height, width, channels)``, uint8 or float in [0, 1].
        horizon: number of frames to predict.

    Returns:
        float32 ``(batch, horizon, height, width, channels)``.
    """
    validate_frames(context, name="context", min_frames=1)
    check_input(model, context, check_time=False)
    frames = to_float_frames(context)
    start = frames.shape[1]
    for _ in range(horizon):
        output = model.predict(frames, verbose=0)
        new_frame = output[:, -1] if output.ndim == 5 else output
        frames = np.concatenate([frames, new_frame[:, None].astype(np.float32)], axis=1)
    return frames[:, start:]


def predict_next_frames(model: keras.Model, sequence: np.ndarray, *, batch_size: int | None = 32) -> np.ndarray:
    """One-step-ahead predictions from ground-truth inputs (teacher forcing), not a rollout.

    Output ``t`` is the prediction of frame ``t + 1`` after reading the true frames ``0..t``: each prediction
    sees the real past, so it looks far better than a rollout of the same length. This is what the official
    example's GIF section showed. Every output reads only frames up to ``t``, exactly like the last output of
    ``model.predict`` on the prefix ``0..t``, so the official model's leak cannot show here.

    Args:
        model: a sequence-to-sequence or many-to-one model.
        sequence: true frames ``(batch, time, height, width, channels)``, uint8 or float in [0, 1].
        batch_size: sequences processed together (None: all at once).

    Returns:
        float32 ``(batch, time, height, width, channels)``: predictions of frames ``1..time``.
    """
    validate_frames(sequence, name="sequence", min_frames=1)
    check_input(model, sequence, check_time=False)
    kind = _model_kind(model)
    if kind not in ("seq2seq", "many_to_one"):
        raise ValueError(f"one-step-ahead prediction needs a frame-by-frame model, got a {kind!r} model")
    stepper = frame_stepper(model)
    return np.concatenate([_roll(stepper, batch, 1) for batch in _batches(sequence, batch_size)])
