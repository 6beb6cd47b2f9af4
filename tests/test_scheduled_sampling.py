"""Scheduled sampling: the schedule, the wrapper model's seeded draws, and training on the rollout with ``train``."""

import keras
import numpy as np
import pytest
from harness import CopyFolderAfterEpoch, EpochLog, small_seq2seq, tiny_model, to_numpy

from keras_convlstm.models import ConvLSTMModel
from keras_convlstm.rollout import FrameStepper
from keras_convlstm.scheduled_sampling import ScheduledSampling, ScheduledSamplingModel
from keras_convlstm.training import train


@pytest.mark.backends
def test_scheduled_sampling_probability_ramps_and_draws_are_seeded():
    schedule = ScheduledSampling(context=2, start_step=10, ramp_end_step=30, seed=3)
    probabilities = [float(schedule.probability(step)) for step in (0, 10, 20, 25, 30, 100)]
    assert probabilities == pytest.approx([0.0, 0.0, 0.5, 0.75, 1.0, 1.0])
    assert float(ScheduledSampling(start_step=5, ramp_end_step=5).probability(4)) == 0.0
    assert float(ScheduledSampling(start_step=5, ramp_end_step=5).probability(5)) == 1.0
    mask = to_numpy(schedule.feed_back_mask(4000, 6, step=20))
    assert mask.shape == (4000, 6) and mask.dtype == bool
    assert not mask[:, :2].any()
    assert mask[:, 2:].mean() == pytest.approx(0.5, abs=0.02)
    np.testing.assert_array_equal(mask, to_numpy(schedule.feed_back_mask(4000, 6, step=20)))
    assert (mask != to_numpy(schedule.feed_back_mask(4000, 6, step=20, seed=4))).any()
    validation = to_numpy(schedule.feed_back_mask(3, 6, step=None))
    np.testing.assert_array_equal(validation, np.broadcast_to(np.arange(6) >= 2, (3, 6)))


@pytest.mark.backends
def test_scheduled_sampling_trains_on_the_rollout_and_validates_it(tmp_path):
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, size=(8, 6, 16, 16, 1), dtype=np.uint8)
    model = small_seq2seq()
    before = [weight.copy() for weight in model.get_weights()]
    schedule = ScheduledSampling(context=3, start_step=0, ramp_end_step=0)
    history = train(
        model,
        sequences[:6],
        sequences[6:],
        epochs=1,
        batch_size=3,
        out_dir=tmp_path,
        scheduled_sampling=schedule,
        verbose=0,
    )
    assert int(model.optimizer.iterations) == 2  # the wrapper trained this model's weights
    assert all(np.abs(new - old).max() > 0 for new, old in zip(model.get_weights(), before, strict=True))
    frames = sequences[6:].astype(np.float32) / 255.0
    feed_back = np.broadcast_to(np.arange(5) >= 3, (2, 5))
    rolled = to_numpy(FrameStepper(model).unroll(frames[:, :-1], feed_back))
    expected = to_numpy(keras.losses.binary_crossentropy(frames[:, 1:], rolled))
    assert history.history["val_loss"][-1] == pytest.approx(float(np.mean(expected)), rel=1e-4)
    teacher_forced = model.predict(frames[:, :-1], verbose=0)  # the model itself still reads true frames
    assert np.abs(teacher_forced - rolled)[:, 3:].max() > 1e-4
    np.testing.assert_allclose(teacher_forced[:, :3], rolled[:, :3], atol=1e-5)
    best = keras.saving.load_model(tmp_path / "best.keras")  # the checkpoint is the plain frame model
    assert type(best) is ConvLSTMModel


def test_scheduled_sampling_draws_follow_a_step_counter_saved_with_the_weights(tmp_path):
    schedule = ScheduledSampling(context=1, start_step=0, ramp_end_step=4, seed=5)
    frames = np.random.default_rng(0).random((8, 4, 16, 16, 1), dtype=np.float32)
    wrapper = ScheduledSamplingModel(small_seq2seq(), schedule)
    outputs = []
    for step in range(3):
        assert int(wrapper.training_step) == step
        outputs.append(to_numpy(wrapper(frames, training=True)))
    np.testing.assert_allclose(outputs[0], to_numpy(wrapper.frame_model(frames)), atol=1e-5)  # p = 0 at step 0
    assert np.abs(outputs[2] - outputs[0]).max() > 1e-4  # p = 0.5 at step 2: some frames fed back
    wrapper.save_weights(tmp_path / "checkpoint.weights.h5")
    next_output = to_numpy(wrapper(frames, training=True))
    restored = ScheduledSamplingModel(small_seq2seq(), schedule)
    restored.load_weights(tmp_path / "checkpoint.weights.h5")
    assert int(restored.training_step) == 3
    np.testing.assert_array_equal(to_numpy(restored(frames, training=True)), next_output)
    fresh = ScheduledSamplingModel(small_seq2seq(), schedule)
    assert np.abs(to_numpy(fresh(frames, training=True)) - next_output).max() > 1e-4


@pytest.mark.backends
def test_resumed_scheduled_sampling_run_draws_what_the_straight_run_drew(tmp_path):
    """A run resumed after its first epoch draws the feed-back masks of the second epoch as the straight run did."""
    sequences = np.random.default_rng(0).integers(0, 256, size=(4, 5, 16, 16, 1), dtype=np.uint8)
    schedule = ScheduledSampling(context=1, start_step=0, ramp_end_step=3, seed=7)
    settings = dict(epochs=2, batch_size=2, scheduled_sampling=schedule, verbose=0)
    straight = small_seq2seq()
    interrupted = CopyFolderAfterEpoch(0, tmp_path / "straight", tmp_path / "resumed")
    train(straight, sequences, out_dir=tmp_path / "straight", callbacks=[interrupted], **settings)
    assert (tmp_path / "resumed" / "backup").is_dir()
    resumed = small_seq2seq()
    log = EpochLog()
    train(resumed, sequences, out_dir=tmp_path / "resumed", callbacks=[log], **settings)
    assert log.finished == [2]
    assert int(resumed.optimizer.iterations) == 4
    for got, expected in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_scheduled_sampling_is_checked(tmp_path):
    with pytest.raises(ValueError, match="start_step <= ramp_end_step"):
        ScheduledSampling(start_step=5, ramp_end_step=2)
    with pytest.raises(ValueError, match="context must be an integer >= 1"):
        ScheduledSampling(context=0)
    sequences = np.zeros((2, 3, 16, 16, 1), np.uint8)
    many_to_one = tiny_model("moving-square", image_size=16)
    with pytest.raises(ValueError, match="sequence-to-sequence"):
        train(many_to_one, sequences, out_dir=tmp_path, scheduled_sampling=ScheduledSampling())
    with pytest.raises(TypeError, match="must be a ScheduledSampling"):
        train(small_seq2seq(), sequences, out_dir=tmp_path, scheduled_sampling=0.5)
