"""Training: resumption after a kill, NaN handling, checkpoints and stopping rules."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_convlstm.models import ConvLSTMModel, build_model
from keras_convlstm.rollout import FrameStepper
from keras_convlstm.training import (
    LossThresholdStop,
    ScheduledSampling,
    ScheduledSamplingModel,
    TimeLimit,
    train,
)

REPO = Path(__file__).resolve().parents[1]

# One training run, as a user would write it; prints a line after each finished (and backed-up) epoch.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from keras_convlstm.models import build_model
    from keras_convlstm.training import train

    out_dir, weights_file = sys.argv[1], sys.argv[2]

    class Announce(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print(f"finished epoch {epoch + 1}", flush=True)

    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, size=(12, 5, 16, 16, 1), dtype=np.uint8)
    keras.utils.set_random_seed(3)
    model = build_model("keras-example-causal", image_size=16, filters=(4, 4, 4))
    train(model, sequences[:9], sequences[9:], epochs=5, batch_size=3, out_dir=out_dir, seed=3,
          callbacks=[Announce()], verbose=0)
    np.savez(weights_file, *model.get_weights(), iterations=int(model.optimizer.iterations.numpy()))
    """
)


def run_training(script: Path, out_dir: Path, weights: Path, kill_after_epoch: int | None = None) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, str(script), str(out_dir), str(weights)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines = []
    with process.stdout:
        for line in process.stdout:
            lines.append(line.strip())
            if kill_after_epoch is not None and line.strip() == f"finished epoch {kill_after_epoch}":
                process.send_signal(signal.SIGKILL)
                break
    process.wait(timeout=300)
    if kill_after_epoch is None:
        assert process.returncode == 0, lines
    else:
        assert process.returncode == -signal.SIGKILL
    return lines


def read_history(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_killed_run_resumes_and_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "train_once.py"
    script.write_text(TRAIN_SCRIPT)

    straight = run_training(script, tmp_path / "straight", tmp_path / "straight.npz")
    assert straight[-1] == "finished epoch 5"

    run_training(script, tmp_path / "resumed", tmp_path / "unused.npz", kill_after_epoch=2)
    assert (tmp_path / "resumed" / "backup").is_dir()
    resumed = run_training(script, tmp_path / "resumed", tmp_path / "resumed.npz")
    assert resumed == ["finished epoch 3", "finished epoch 4", "finished epoch 5"]
    assert not (tmp_path / "resumed" / "backup").exists()

    expected = np.load(tmp_path / "straight.npz")
    got = np.load(tmp_path / "resumed.npz")
    assert int(got["iterations"]) == int(expected["iterations"]) == 5 * 3
    for name in expected.files:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    epochs = [int(row["epoch"]) for row in read_history(tmp_path / "resumed" / "history.csv")]
    assert epochs == [0, 1, 2, 3, 4]


class NaNAfterFirstEpoch(keras.utils.PyDataset):
    """Shifted-frame batches of random sequences that turn to NaN from the second epoch on."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.frames = rng.random((4, 4, 16, 16, 1), dtype=np.float32)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 2

    def __getitem__(self, index):
        batch = self.frames[index * 2 : index * 2 + 2].copy()
        if self.epoch >= 1:
            batch[:, :, 3, 3] = np.nan
        return batch[:, :-1], batch[:, 1:]


def tiny_model():
    keras.utils.set_random_seed(0)
    return build_model("keras-example-causal", image_size=16, filters=(4, 4, 4))


def test_nan_in_data_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny_model()
    history = train(model, NaNAfterFirstEpoch(), epochs=6, out_dir=tmp_path, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isnan(history.history["loss"][-1])
    restored = keras.saving.load_model(tmp_path / "best.keras")
    assert all(np.isfinite(w).all() for w in restored.get_weights())
    record = json.loads((tmp_path / "best.json").read_text())
    assert record["epoch"] == 1
    assert record["value"] == pytest.approx(history.history["loss"][0])
    frames = np.random.default_rng(1).random((1, 3, 16, 16, 1), dtype=np.float32)
    assert np.isfinite(restored.predict(frames, verbose=0)).all()


def test_best_checkpoint_and_history_files(tmp_path):
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, size=(8, 4, 16, 16, 1), dtype=np.uint8)
    model = tiny_model()
    history = train(model, sequences[:6], sequences[6:], epochs=3, batch_size=2, out_dir=tmp_path, verbose=0)
    rows = read_history(tmp_path / "history.csv")
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    val_losses = history.history["val_loss"]
    np.testing.assert_allclose([float(row["val_loss"]) for row in rows], val_losses, rtol=1e-6)
    record = json.loads((tmp_path / "best.json").read_text())
    assert record["epoch"] == int(np.argmin(val_losses)) + 1
    assert record["value"] == pytest.approx(min(val_losses))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best.keras", "history.csv"]


def test_pairs_of_arrays_and_loss_threshold_stop(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.random((6, 3, 16, 16, 1), dtype=np.float32)
    model = tiny_model()
    stop = LossThresholdStop(threshold=100.0)
    history = train(model, (inputs, inputs), epochs=5, batch_size=3, out_dir=tmp_path, callbacks=[stop], verbose=0)
    assert len(history.history["loss"]) == 1
    assert stop.stopped_epoch == 0


def test_time_limit_stops_after_the_epoch_that_passes_it(tmp_path):
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, size=(4, 3, 16, 16, 1), dtype=np.uint8)
    history = train(
        tiny_model(), sequences, epochs=50, batch_size=2, out_dir=tmp_path, callbacks=[TimeLimit(1e-3)], verbose=0
    )
    assert len(history.history["loss"]) == 1


def test_bad_arguments(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train(model, np.zeros((2, 3, 16, 16, 1), np.uint8), epochs=0, out_dir=tmp_path)
    with pytest.raises(TypeError, match="expected a keras.utils.PyDataset"):
        train(model, [1, 2, 3], out_dir=tmp_path)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        LossThresholdStop(0)


def to_numpy(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


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


def small_seq2seq() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model("cpu-fast", image_size=16, precision="float32")


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


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Raises at the end of epoch ``epoch``, after BackupAndRestore saved it: a run that dies there."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.backends
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the interrupted fit leaves history.csv open, as a kill would
def test_resumed_scheduled_sampling_run_draws_what_the_straight_run_drew(tmp_path):
    sequences = np.random.default_rng(0).integers(0, 256, size=(4, 5, 16, 16, 1), dtype=np.uint8)
    schedule = ScheduledSampling(context=1, start_step=0, ramp_end_step=3, seed=7)
    settings = dict(epochs=2, batch_size=2, scheduled_sampling=schedule, verbose=0)
    straight = small_seq2seq()
    train(straight, sequences, out_dir=tmp_path / "straight", **settings)
    with pytest.raises(KeyboardInterrupt):
        train(small_seq2seq(), sequences, out_dir=tmp_path / "resumed", callbacks=[InterruptAfterEpoch(0)], **settings)
    resumed = small_seq2seq()
    train(resumed, sequences, out_dir=tmp_path / "resumed", **settings)
    assert int(resumed.optimizer.iterations) == 4
    for got, expected in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_scheduled_sampling_is_checked(tmp_path):
    with pytest.raises(ValueError, match="start_step <= ramp_end_step"):
        ScheduledSampling(start_step=5, ramp_end_step=2)
    with pytest.raises(ValueError, match="context must be an integer >= 1"):
        ScheduledSampling(context=0)
    sequences = np.zeros((2, 3, 16, 16, 1), np.uint8)
    keras.utils.set_random_seed(0)
    many_to_one = build_model("moving-square", image_size=16)
    with pytest.raises(ValueError, match="sequence-to-sequence"):
        train(many_to_one, sequences, out_dir=tmp_path, scheduled_sampling=ScheduledSampling())
    with pytest.raises(TypeError, match="must be a ScheduledSampling"):
        train(tiny_model(), sequences, out_dir=tmp_path, scheduled_sampling=0.5)


class KilledBeforeBackup(Exception):
    """Stands for a kill between an epoch's outputs and its backup."""


def _small_run(out_dir, **kwargs):
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, size=(8, 4, 16, 16, 1), dtype=np.uint8)
    keras.utils.set_random_seed(2)
    model = build_model("keras-example-causal", image_size=16, filters=(2, 2, 2))
    settings = {"epochs": 3, "batch_size": 3, "seed": 2, "verbose": 0, **kwargs}
    train(model, sequences[:6], sequences[6:], out_dir=out_dir, **settings)
    return model


def _killed_before_backup(out_dir, monkeypatch, epoch: int) -> None:
    """Runs :func:`_small_run` and stops it after the outputs of ``epoch`` (0-based), before its backup."""
    original = keras.callbacks.BackupAndRestore.on_epoch_end

    def die(self, index, logs=None):
        if index == epoch:
            raise KilledBeforeBackup
        original(self, index, logs)

    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", die)
        with pytest.raises(KilledBeforeBackup):
            _small_run(out_dir)


def _assert_same_training(run_dir, model, straight_dir, straight_model) -> None:
    rows, straight_rows = read_history(run_dir / "history.csv"), read_history(straight_dir / "history.csv")
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]  # each epoch once, none twice
    assert [row["loss"] for row in rows] == [row["loss"] for row in straight_rows]
    for got, expected in zip(model.get_weights(), straight_model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_kill_between_an_epochs_outputs_and_its_backup_repeats_the_epoch(tmp_path, monkeypatch):
    straight = _small_run(tmp_path / "straight")
    _killed_before_backup(tmp_path / "resumed", monkeypatch, epoch=1)
    # The epoch's outputs were written before the backup: its history row exists, the backup says 1 epoch.
    assert [row["epoch"] for row in read_history(tmp_path / "resumed" / "history.csv")] == ["0", "1"]
    resumed = _small_run(tmp_path / "resumed")
    _assert_same_training(tmp_path / "resumed", resumed, tmp_path / "straight", straight)
    assert json.loads((tmp_path / "resumed" / "best.json").read_text()) == json.loads(
        (tmp_path / "straight" / "best.json").read_text()
    )


@pytest.mark.parametrize("damage", ["latest", "both"])
def test_a_damaged_backup_falls_back_or_is_set_aside_without_duplicate_rows(tmp_path, monkeypatch, damage):
    straight = _small_run(tmp_path / "straight")
    _killed_before_backup(tmp_path / "run", monkeypatch, epoch=2)
    backup = tmp_path / "run" / "backup"
    # A write cut short by a full disk or a size limit: the file holds only its first bytes.
    damaged = [backup / "latest.weights.h5"] + ([backup / "latest.weights.h5.bkp"] if damage == "both" else [])
    for path in damaged:
        path.write_bytes(path.read_bytes()[:100])

    resumed = _small_run(tmp_path / "run", verbose=2)

    if damage == "latest":  # resumed from the copy of epoch 1: epochs 2 and 3 rerun, same result
        assert not list(tmp_path.glob("run/backup.damaged-*"))
        _assert_same_training(tmp_path / "run", resumed, tmp_path / "straight", straight)
    else:  # nothing readable: set aside and trained again from the first epoch
        assert [p.name for p in (tmp_path / "run").glob("backup.damaged-*")] == ["backup.damaged-1"]
        assert [row["epoch"] for row in read_history(tmp_path / "run" / "history.csv")] == ["0", "1", "2"]
    assert not backup.exists()


def test_resuming_with_other_settings_is_refused_and_the_same_settings_resume(tmp_path, monkeypatch):
    _killed_before_backup(tmp_path / "run", monkeypatch, epoch=1)
    with pytest.raises(ValueError, match=r"other settings \(batch_size 3 -> 2, train_batches 2 -> 3\)"):
        _small_run(tmp_path / "run", batch_size=2)
    with pytest.raises(ValueError, match=r"other settings \(epochs 3 -> 4\)"):
        _small_run(tmp_path / "run", epochs=4)
    _small_run(tmp_path / "run")
    assert [row["epoch"] for row in read_history(tmp_path / "run" / "history.csv")] == ["0", "1", "2"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.json", "best.keras", "history.csv"]
