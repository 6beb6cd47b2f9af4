"""The linear-time rollout gives the official loop's frames, for every frame-prediction network, on every backend."""

import keras
import numpy as np
import pytest
from harness import frame_presets, random_inputs, small_seq2seq, tiny_model, to_numpy

from keras_convlstm import rollout
from keras_convlstm.rollout import FrameStepper, official_rollout, predict_one_step, predict_rollout


def count_traces(monkeypatch, model: keras.Model):
    """Counts how often the step's Python body runs (once per trace when compiled), by wrapping the cell step that
    it calls once per ConvLSTM2D layer; returns a function that gives the count so far."""
    calls = []
    layer_step = rollout.layer_step
    monkeypatch.setattr(rollout, "layer_step", lambda *args: calls.append(1) or layer_step(*args))
    layers = sum(isinstance(layer, keras.layers.ConvLSTM2D) for layer in model.layers)
    return lambda: len(calls) / layers


def no_feed_back(batch: int, time: int) -> np.ndarray:
    return np.zeros((batch, time), bool)


@pytest.mark.backends
@pytest.mark.parametrize("preset", frame_presets(distinct=True))
def test_rollout_equals_official_loop(preset):
    model = tiny_model(preset, precision="float32")
    context = random_inputs(model, batch=3, time=4)
    fast = predict_rollout(model, context, horizon=3)
    reference = official_rollout(model, context, horizon=3)
    assert fast.shape == reference.shape == (3, 3, *model.config.frame_shape)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, reference, atol=1e-5, rtol=0)


@pytest.mark.half_precision
def test_bfloat16_rollout_stays_close_to_official_loop():
    model = tiny_model("cpu-fast", precision="bfloat16")
    context = random_inputs(model, batch=2, time=4)
    fast = predict_rollout(model, context, horizon=3)
    np.testing.assert_allclose(fast, official_rollout(model, context, horizon=3), atol=2e-3, rtol=0)


def test_rollout_batches_are_independent():
    model = tiny_model("keras-example-causal")
    context = random_inputs(model, batch=5, time=3)
    together = predict_rollout(model, context, horizon=2, batch_size=None)
    in_pairs = predict_rollout(model, context, horizon=2, batch_size=2)
    np.testing.assert_allclose(together, in_pairs, atol=1e-6)


def test_uint8_context_equals_scaled_float_context():
    model = tiny_model("keras-example-causal")
    context = (random_inputs(model, batch=2, time=3) * 255).astype(np.uint8)
    from_uint8 = predict_rollout(model, context, horizon=2)
    from_float = predict_rollout(model, context.astype(np.float32) / 255, horizon=2)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)


@pytest.mark.backends
@pytest.mark.skipif(keras.backend.backend() == "torch", reason="the PyTorch step runs eagerly: nothing is traced")
def test_step_is_traced_once_for_any_horizon(monkeypatch):
    model = tiny_model("keras-example")
    traces = count_traces(monkeypatch, model)
    stepper = FrameStepper(model)
    context = random_inputs(model, batch=2, time=3)
    state = stepper.initial_state(2)
    for t in range(3):
        prediction, state = stepper.step(context[:, t], state)
    for _ in range(12):
        prediction, state = stepper.step(prediction, state)
    assert traces() == 1


@pytest.mark.backends
@pytest.mark.skipif(keras.backend.backend() == "torch", reason="the PyTorch step runs eagerly: nothing is traced")
def test_rollout_is_not_retraced_for_new_horizons(monkeypatch):
    model = tiny_model("keras-example-causal")
    traces = count_traces(monkeypatch, model)
    stepper = FrameStepper(model)
    context = random_inputs(model, batch=2, time=3)
    first = stepper.roll(context, 2)
    # TensorFlow's one graph holds the step three times (first frame, reading loop, feed-back loop); JAX jits it once.
    assert traces() == (3 if keras.backend.backend() == "tensorflow" else 1)
    longer = stepper.roll(context, 6)
    assert traces() == (3 if keras.backend.backend() == "tensorflow" else 1)
    assert longer.shape == (2, 3 + 6, *model.config.frame_shape)
    np.testing.assert_allclose(longer[:, : 3 + 2], first, atol=1e-6)


def test_one_step_prediction_is_last_output_of_each_prefix():
    model = tiny_model("keras-example")
    sequence = random_inputs(model, batch=2, time=5)
    one_step = predict_one_step(model, sequence)
    assert one_step.shape == sequence.shape
    for t in range(5):
        last_output = model.predict(sequence[:, : t + 1], verbose=0)[:, -1]
        np.testing.assert_allclose(one_step[:, t], last_output, atol=1e-5)
    # The full-sequence output at t also reads frame t + 1 (the leak), so it differs from the prefix output.
    full = model.predict(sequence, verbose=0)
    assert np.abs(full[:, :-1] - one_step[:, :-1]).max() > 1e-4


def test_first_rollout_frame_is_the_one_step_prediction_of_the_context():
    model = tiny_model("shi2015")
    context = random_inputs(model, batch=2, time=4)
    np.testing.assert_allclose(
        predict_rollout(model, context, 1)[:, 0], predict_one_step(model, context)[:, -1], atol=1e-6
    )


@pytest.mark.parametrize("preset", ["keras-example-causal", "cpu-fast", "shi2015"])
def test_unroll_without_feed_back_is_the_teacher_forced_model_output(preset):
    model = tiny_model(preset, precision="float32")
    frames = random_inputs(model, batch=2, time=5)
    unrolled = FrameStepper(model).unroll(frames, no_feed_back(2, 5))
    np.testing.assert_allclose(to_numpy(unrolled), model.predict(frames, verbose=0), atol=1e-5, rtol=0)


def test_unroll_in_training_mode_normalises_each_frame_with_its_own_batch_statistics():
    plain = tiny_model("cpu-fast", precision="float32")  # no BatchNormalization: training mode changes nothing
    frames = random_inputs(plain, batch=2, time=5)
    unrolled = FrameStepper(plain).unroll(frames, no_feed_back(2, 5), training=True)
    np.testing.assert_allclose(to_numpy(unrolled), to_numpy(plain(frames, training=True)), atol=1e-5, rtol=0)
    normed = tiny_model("keras-example-causal", image_size=16)
    whole = to_numpy(normed(frames, training=True))  # statistics over (batch, time, height, width)
    frame_by_frame = to_numpy(FrameStepper(normed).unroll(frames, no_feed_back(2, 5), training=True))
    np.testing.assert_allclose(frame_by_frame[:, :1], to_numpy(normed(frames[:, :1], training=True)), atol=1e-5)
    assert np.abs(frame_by_frame - whole).max() > 1e-3


@pytest.mark.backends
def test_unroll_feeding_back_after_the_context_is_the_rollout():
    model = tiny_model("cpu-fast", precision="float32")
    frames = random_inputs(model, batch=3, time=7)
    feed_back = np.broadcast_to(np.arange(7) >= 4, (3, 7))
    unrolled = to_numpy(FrameStepper(model).unroll(frames, feed_back))
    rollout = predict_rollout(model, frames[:, :4], horizon=4)
    np.testing.assert_allclose(unrolled[:, 3:], rollout, atol=1e-5, rtol=0)
    np.testing.assert_allclose(unrolled[:, :3], model.predict(frames[:, :4], verbose=0)[:, :3], atol=1e-5, rtol=0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the gradients are taken with tf.GradientTape")
def test_unroll_mixes_sequences_independently_and_passes_gradients_through_feed_back():
    import tensorflow as tf

    model = tiny_model("cpu-fast", precision="float32")
    frames = tf.constant(random_inputs(model, batch=2, time=4))
    feed_back = tf.constant([[False, True, True, True], [False, False, False, False]])
    stepper = FrameStepper(model)
    with tf.GradientTape() as tape:
        mixed = stepper.unroll(frames, feed_back, training=True)
        loss = tf.reduce_sum(mixed[0, -1])
    gradients = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in gradients)
    first_frame_only = frames.numpy().copy()
    first_frame_only[0, 1:] = 0.5  # sequence 0 reads only its first true frame
    again = stepper.unroll(first_frame_only, feed_back).numpy()
    np.testing.assert_allclose(again, mixed.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(mixed[1].numpy(), model.predict(frames, verbose=0)[1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="fixed number of frames"):
        stepper.unroll(frames[:, 0], feed_back)


def test_encoder_forecaster_emits_its_frames_directly():
    model = tiny_model("shi2015-encoder-forecaster", filters=(4, 4), kernel_sizes=(3, 3), output_frames=4)
    context = random_inputs(model, batch=2, time=3)
    expected = model.predict(context, verbose=0)
    np.testing.assert_allclose(predict_rollout(model, context, horizon=4), expected, atol=1e-6)
    np.testing.assert_allclose(predict_rollout(model, context, horizon=2), expected[:, :2], atol=1e-6)
    with pytest.raises(ValueError, match="emits 4 frames"):
        predict_rollout(model, context, horizon=5)


def test_bad_arguments_are_explained():
    model = tiny_model("keras-example-causal")
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        predict_rollout(model, random_inputs(model, 1, 2), horizon=0)
    with pytest.raises(ValueError, match=r"\(batch, time, height, width, channels\)"):
        predict_rollout(model, np.zeros((2, 16, 16, 1), np.float32))
    classifier = tiny_model("classifier", image_size=(8, 8), input_frames=3)
    with pytest.raises(ValueError, match="does not predict frames"):
        predict_rollout(classifier, np.zeros((1, 3, 8, 8, 1), np.float32))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's retracing warning")
def test_rolling_out_many_models_does_not_warn_of_retracing_but_other_functions_still_do():
    import logging

    import tensorflow as tf

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = tf.get_logger()
    logger.addHandler(handler)
    try:
        frames = np.random.default_rng(0).random((2, 6, 16, 16, 1)).astype("float32")
        for seed in range(8):  # each model traces its own step and loop, twice for two input lengths
            model = small_seq2seq(seed)
            predict_one_step(model, frames)
            predict_rollout(model, frames[:, :3], 3)
        assert not [message for message in messages if "retracing" in message]

        def foreign(x):
            return x + 1

        for size in range(1, 9):  # a new function per call: TensorFlow's own warning must still come through
            tf.function(foreign)(tf.zeros((size,)))
        assert [message for message in messages if "retracing" in message and "foreign" in message]
    finally:
        logger.removeHandler(handler)
