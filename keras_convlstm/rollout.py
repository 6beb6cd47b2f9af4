"""Autoregressive rollout: predict future frames by feeding each prediction back as the next input.

The official example predicts frame ``t + 1`` by running ``model.predict`` on the whole sequence seen so far and
keeping the last output frame, so a rollout of ``horizon`` frames re-reads the context ``horizon`` times (quadratic
cost) and retraces the predict function for every new sequence length. :func:`predict_rollout` gives the same frames
in linear time: it walks the model layer by layer, advances every ConvLSTM2D cell one frame at a time, and keeps
only the few past frames that a temporal convolution needs. The step is written with Keras layers and
``keras.ops``; :func:`compile_loop` compiles the loop over it the way each backend allows, traced once per input
signature, never per step or per horizon.

:func:`official_rollout` keeps the official loop as the reference the fast path is tested and benchmarked against.
:func:`predict_one_step` is the one-step-ahead prediction from ground-truth inputs (teacher forcing), which is
what the official GIF section really displayed.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence

import keras
import numpy as np

from keras_convlstm.cell import layer_step, steppable
from keras_convlstm.checks import check_integer
from keras_convlstm.frames import as_float, to_float_frames, validate_frames
from keras_convlstm.layers import CausalConv3D
from keras_convlstm.models import check_input

_STEPPERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _OneTracePerModel(logging.Filter):
    """Drops TensorFlow's retracing warning about the rollout's own functions.

    Every model gets its own compiled step and loop, traced once per input signature; TensorFlow keys its count of
    traces on the Python code, so rolling out a sixth model in one process reads to it as one function retraced
    again and again, and it warns.
    """

    OWN_FUNCTIONS = ("compile_loop.<locals>.whole_loop", "FrameStepper._step_body")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "tf.function retracing" not in message or not any(name in message for name in self.OWN_FUNCTIONS)


def compile_step(function: Callable, variables: Sequence[keras.Variable]) -> Callable:
    """Compiles ``function`` for the active Keras backend.

    TensorFlow: ``tf.function`` (variables are read live from the graph). JAX: ``jax.jit`` of a stateless
    version that receives the current values of ``variables`` as an argument at every call, so the compiled step
    always sees the latest weights instead of the values frozen at trace time. PyTorch and NumPy: left eager.
    Compiled, the Python body runs once per new input signature (a trace), never once per call.

    Args:
        function: ``function(*tensors)`` built from Keras layers and ``keras.ops``.
        variables: every Keras variable that ``function`` reads (for example ``model.variables``).

    Returns:
        A function with the same arguments and results.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        _quiet_own_retracing(tf.get_logger())
        # The Python loops in ``function`` are unrolled at trace time, so AutoGraph has nothing to convert.
        return tf.function(function, reduce_retracing=True, autograph=False)
    if backend == "jax":
        import jax

        variables = list(variables)

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return function(*args)

        jitted = jax.jit(stateless)
        return lambda *args: jitted([variable.value for variable in variables], *args)
    return function


def _quiet_own_retracing(logger: logging.Logger) -> None:
    """Installs :class:`_OneTracePerModel` on TensorFlow's logger, once."""
    if not any(isinstance(existing, _OneTracePerModel) for existing in logger.filters):
        logger.addFilter(_OneTracePerModel())


def compile_loop(step: Callable, initial_state: Callable, variables: Sequence[keras.Variable]) -> Callable:
    """The rollout loop ``roll(frames, extra_steps)``, compiled the way the active Keras backend allows.

    ``roll`` reads every frame of ``frames`` ``(batch, time, height, width, channels)``, then feeds back
    ``extra_steps`` predictions, and returns every prediction as a float32 NumPy array
    ``(batch, time + extra_steps, height, width, channels)``.

    - TensorFlow: the whole loop is one graph (``tf.while_loop`` with the number of steps as a tensor), traced
      once per input signature for any horizon. Calling a compiled step from Python once per frame instead costs
      about 2 ms a call there (see BENCHMARKS.md, "Backends").
    - JAX: XLA compiles fixed output shapes only, so a compiled whole loop would be traced again for every
      horizon; the step is compiled once by :func:`compile_step` and called from Python once per frame.
    - PyTorch: the eager step in a Python loop.

    Args:
        step: ``step(frame, state) -> (prediction, state)`` for one frame ``(batch, height, width, channels)``,
            written with Keras layers and ``keras.ops``.
        initial_state: ``initial_state(batch_size)``, the state before the first frame.
        variables: every Keras variable that ``step`` reads.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        def whole_loop(frames, extra_steps):
            time_steps = tf.shape(frames)[1]
            outputs = tf.TensorArray(tf.float32, size=time_steps + extra_steps)

            def read(t, prediction, outputs, *state):
                prediction, state = step(frames[:, t], list(state))
                return (t + 1, prediction, outputs.write(t, prediction), *state)

            def feed_back(t, prediction, outputs, *state):
                prediction, state = step(prediction, list(state))
                return (t + 1, prediction, outputs.write(t, prediction), *state)

            first_prediction, state = step(frames[:, 0], initial_state(tf.shape(frames)[0]))
            loop = (tf.constant(1), first_prediction, outputs.write(0, first_prediction), *state)
            loop = tf.while_loop(lambda t, *_: t < time_steps, read, loop)
            loop = tf.while_loop(lambda t, *_: t < time_steps + extra_steps, feed_back, loop)
            return tf.transpose(loop[2].stack(), [1, 0, 2, 3, 4])

        graph = tf.function(whole_loop, reduce_retracing=True, autograph=False)
        return lambda frames, extra_steps: graph(tf.constant(frames, tf.float32), tf.constant(extra_steps)).numpy()

    compiled_step = compile_step(step, variables)

    def python_loop(frames, extra_steps):
        frames = keras.ops.convert_to_tensor(frames, "float32")
        time_steps = frames.shape[1]
        state = initial_state(frames.shape[0])
        outputs = []
        for t in range(time_steps + extra_steps):
            prediction, state = compiled_step(frames[:, t] if t < time_steps else outputs[-1], state)
            outputs.append(prediction)
        return np.stack([keras.ops.convert_to_numpy(output) for output in outputs], axis=1)

    return python_loop


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
    Works on every Keras backend: the step is written with Keras layers and ``keras.ops``; :meth:`step` is compiled
    by :func:`compile_step` and :meth:`roll` by :func:`compile_loop`.

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
        self._compiled_step = compile_step(self._step_body, model.variables)
        self._compiled_roll = compile_loop(self._step_body, self.initial_state, model.variables)

    def initial_state(self, batch_size: int) -> list:
        """Zero states: ``(h, c)`` per ConvLSTM2D and a frame history per temporal convolution."""
        state = []
        for layer in self.layers:
            dtype = layer.compute_dtype
            if isinstance(layer, keras.layers.ConvLSTM2D):
                shape = (batch_size, *layer.output.shape[-3:])
                state += [keras.ops.zeros(shape, dtype), keras.ops.zeros(shape, dtype)]
            elif (window := _temporal_window(layer)) is not None:
                history, _ = window
                state.append(keras.ops.zeros((batch_size, history, *layer.input.shape[-3:]), dtype))
        return state

    def _step_body(self, frame, state: list, training: bool = False) -> tuple:
        """One frame through every layer, in Keras ops: traced by the compiled step and loop, unrolled by unroll."""
        x = keras.ops.expand_dims(frame, 1)  # (batch, 1, height, width, channels)
        new_state = []
        position = 0
        for layer in self.layers:
            if isinstance(layer, keras.layers.ConvLSTM2D):
                h, c = state[position], state[position + 1]
                position += 2
                if steppable(layer):
                    h, c = layer_step(layer, x[:, 0], h, c)
                else:
                    h, (h, c) = layer.cell(keras.ops.cast(x[:, 0], layer.compute_dtype), [h, c], training=training)
                new_state += [h, c]
                x = keras.ops.expand_dims(h, 1) if layer.return_sequences else h
            elif (window := _temporal_window(layer)) is not None:
                history, future = window
                frames = state[position]
                position += 1
                frames = keras.ops.concatenate([frames[:, 1:], keras.ops.cast(x, frames.dtype)], axis=1)
                new_state.append(frames)
                if future:
                    frames = keras.ops.concatenate([frames, keras.ops.zeros_like(frames[:, :future])], axis=1)
                x = layer(frames, training=training)[:, history - 1 : history]
            else:
                x = layer(x, training=training)
        prediction = x[:, 0] if len(x.shape) == 5 else x
        return keras.ops.cast(prediction, "float32"), new_state

    def unroll(self, frames, feed_back, *, training: bool = False):
        """Differentiable pass over ``frames`` in which chosen inputs are replaced by the model's own predictions.

        Written with Keras layers and ``keras.ops`` only, so it runs inside any backend's compiled train step.

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
        frames = keras.ops.convert_to_tensor(frames, "float32")
        if len(frames.shape) != 5 or frames.shape[1] is None:
            raise ValueError(
                "unroll needs frames (batch, time, height, width, channels) with a fixed number of frames, got "
                f"shape {tuple(frames.shape)}"
            )
        feed_back = keras.ops.convert_to_tensor(feed_back, "bool")
        state = self.initial_state(keras.ops.shape(frames)[0])
        prediction, state = self._step_body(frames[:, 0], state, training)
        outputs = [prediction]
        for t in range(1, frames.shape[1]):
            own = keras.ops.reshape(feed_back[:, t], (-1, 1, 1, 1))
            prediction, state = self._step_body(keras.ops.where(own, prediction, frames[:, t]), state, training)
            outputs.append(prediction)
        return keras.ops.stack(outputs, axis=1)

    def roll(self, frames, extra_steps: int) -> np.ndarray:
        """Reads ``frames`` ``(batch, time, height, width, channels)``, then feeds back ``extra_steps`` predictions.

        The loop is compiled by :func:`compile_loop`. Returns every step's prediction as a float32 array
        ``(batch, time + extra_steps, height, width, channels)``: output ``t`` predicts frame ``t + 1``.
        """
        return self._compiled_roll(frames, extra_steps)

    def step(self, frame, state: list) -> tuple:
        """Reads one frame ``(batch, height, width, channels)``; returns the next-frame prediction and state."""
        return self._compiled_step(frame, state)


def frame_stepper(model: keras.Model) -> FrameStepper:
    """The model's :class:`FrameStepper`, built once and kept while the model lives."""
    stepper = _STEPPERS.get(model)
    if stepper is None:
        stepper = _STEPPERS[model] = FrameStepper(model)
    return stepper


def _batches(frames: np.ndarray, batch_size: int | None):
    """Checked ``frames`` in float32 batches of ``batch_size`` sequences (all at once when None)."""
    size = len(frames) if batch_size is None else check_integer(batch_size, "batch_size")
    for start in range(0, len(frames), size):
        yield as_float(frames[start : start + size])


def _roll_horizon(stepper: FrameStepper, frames: np.ndarray, horizon: int) -> np.ndarray:
    """Reads the true ``frames``, then feeds back ``horizon - 1`` predictions; returns every step's output."""
    return stepper.roll(frames, horizon - 1)


def predict_rollout(
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
    context = validate_frames(context, name="context", min_frames=1)
    check_input(model, context, check_time=_model_kind(model) == "encoder_forecaster")
    horizon = check_integer(horizon, "horizon")
    kind = _model_kind(model)
    if kind == "encoder_forecaster":
        output_frames = model.config.output_frames
        if horizon > output_frames:
            raise ValueError(f"this encoder-forecaster emits {output_frames} frames at once; got horizon={horizon}")
        outputs = [
            keras.ops.convert_to_numpy(model(batch, training=False))[:, :horizon]
            for batch in _batches(context, batch_size)
        ]
        return np.concatenate(outputs).astype(np.float32)
    if kind not in ("seq2seq", "many_to_one"):
        raise ValueError(f"a {kind!r} model does not predict frames; expected a frame-prediction model")
    stepper = frame_stepper(model)
    outputs = [_roll_horizon(stepper, batch, horizon)[:, -horizon:] for batch in _batches(context, batch_size)]
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
    frames = to_float_frames(context, name="context")
    check_input(model, frames, check_time=False)
    horizon = check_integer(horizon, "horizon")
    start = frames.shape[1]
    for _ in range(horizon):
        output = model.predict(frames, verbose=0)
        new_frame = output[:, -1] if output.ndim == 5 else output
        frames = np.concatenate([frames, new_frame[:, None].astype(np.float32)], axis=1)
    return frames[:, start:]


def predict_one_step(model: keras.Model, sequence: np.ndarray, *, batch_size: int | None = 32) -> np.ndarray:
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
    sequence = validate_frames(sequence, name="sequence", min_frames=1)
    check_input(model, sequence, check_time=False)
    kind = _model_kind(model)
    if kind not in ("seq2seq", "many_to_one"):
        raise ValueError(f"one-step-ahead prediction needs a frame-by-frame model, got a {kind!r} model")
    stepper = frame_stepper(model)
    return np.concatenate([_roll_horizon(stepper, batch, 1) for batch in _batches(sequence, batch_size)])


# The names of the first release, kept for one more: ``predict_frames`` did not say it was the rollout, nor
# ``predict_next_frames`` that it reads the true frames.
predict_frames = predict_rollout
"""Former name of :func:`predict_rollout`, kept as an alias until the next release."""
predict_next_frames = predict_one_step
"""Former name of :func:`predict_one_step`, kept as an alias until the next release."""
