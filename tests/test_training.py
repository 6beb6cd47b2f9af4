"""Training: resumption after a kill, NaN handling, checkpoints and stopping rules."""

import contextlib
import csv
import hashlib
import json
import os
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pytest
from harness import CopyFolderAfterEpoch, EpochLog, small_seq2seq, tiny_model, to_numpy
from killing import kill_after_line

from keras_convlstm import run_folder
from keras_convlstm.scheduled_sampling import ScheduledSampling
from keras_convlstm.training import InterruptLatch, LossThresholdStop, TimeLimit, train

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
EPOCHS = 3


def eager_model(seed: int = 0) -> keras.Model:
    """The causal official network cut to 2 ConvLSTM2D layers of 4 filters (with its BatchNormalization), 16x16.

    It runs eagerly: tracing the training step would cost more than these few steps, and what the tests check
    (files, stopping, resumption) does not depend on it.
    """
    model = tiny_model("keras-example-causal", seed, image_size=16, filters=(4, 4), kernel_sizes=(3, 3))
    model.run_eagerly = True
    return model


SEQUENCES = np.random.default_rng(0).integers(0, 256, size=(8, 4, 16, 16, 1), dtype=np.uint8)


def small_run(out_dir, **settings) -> tuple[keras.Model, keras.callbacks.History]:
    """Trains :func:`eager_model` for ``EPOCHS`` epochs: 6 sequences in 2 batches, 2 validation sequences.

    Calling it again on the folder of an interrupted run resumes that run; ``settings`` override ``train``'s.
    """
    sequences = SEQUENCES
    model = eager_model(seed=2)
    settings = {"epochs": EPOCHS, "batch_size": 3, "seed": 2, "verbose": 0, **settings}
    history = train(model, sequences[:6], sequences[6:], out_dir=out_dir, **settings)
    return model, history


class Reference(NamedTuple):
    """The uninterrupted :func:`small_run` every fault test compares with, and what a kill left on disk."""

    out_dir: Path
    model: keras.Model
    history: keras.callbacks.History
    killed_before_last_backup: Path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """Runs :func:`small_run` once for the module, copying its folder between the last epoch's outputs and backup.

    The copy holds what a kill at that moment leaves on disk: the last epoch's checkpoint and history row are
    written, its backup is not (the backups of the two epochs before it are).
    """
    folder = tmp_path_factory.mktemp("reference")
    out_dir, killed = folder / "straight", folder / "killed_before_last_backup"
    backup_epoch = keras.callbacks.BackupAndRestore.on_epoch_end

    def copy_then_back_up(callback, epoch, logs=None):
        if epoch == EPOCHS - 1:
            shutil.copytree(out_dir, killed)
        backup_epoch(callback, epoch, logs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", copy_then_back_up)
        model, history = small_run(out_dir)
    return Reference(out_dir, model, history, killed)


def read_history(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def assert_same_training(run_dir: Path, model: keras.Model, reference: Reference) -> None:
    """Each epoch once in the history, with the reference's losses, and the reference's weights, bit for bit."""
    rows, reference_rows = read_history(run_dir / "history.csv"), read_history(reference.out_dir / "history.csv")
    assert [row["epoch"] for row in rows] == [str(epoch) for epoch in range(EPOCHS)]  # none missing, none twice
    assert [row["loss"] for row in rows] == [row["loss"] for row in reference_rows]
    assert int(model.optimizer.iterations) == int(reference.model.optimizer.iterations) == EPOCHS * 2
    for got, expected in zip(model.get_weights(), reference.model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_best_checkpoint_and_history_files(reference):
    rows = read_history(reference.out_dir / "history.csv")
    assert [int(row["epoch"]) for row in rows] == list(range(EPOCHS))
    val_losses = reference.history.history["val_loss"]
    np.testing.assert_allclose([float(row["val_loss"]) for row in rows], val_losses, rtol=1e-6)
    record = json.loads((reference.out_dir / "best.json").read_text())
    assert record["epoch"] == int(np.argmin(val_losses)) + 1
    assert record["value"] == pytest.approx(min(val_losses))
    assert sorted(p.name for p in reference.out_dir.iterdir()) == ["best.json", "best.keras", "history.csv", "run.json"]
    settings = json.loads((reference.out_dir / "run.json").read_text())
    assert settings["epochs"] == EPOCHS and settings["train_batches"] == 2 and settings["val_batches"] == 1
    assert (settings["patience"], settings["lr_patience"]) == (10, 5)
    assert settings["train_data"] == {
        "shape": [6, 4, 16, 16, 1],
        "dtype": "uint8",
        "sha256": hashlib.sha256(SEQUENCES[:6].tobytes()).hexdigest(),
    }


# A run in a fresh process that prints a line after each finished (and backed-up) epoch, to be killed.
KILLABLE_RUN = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from harness import EpochLog
    from test_training import small_run

    small_run(sys.argv[2], callbacks=[EpochLog(announce=True)])
    """
)


@pytest.mark.slow
def test_killed_run_resumes_and_matches_uninterrupted_run(reference, tmp_path):
    """SIGKILL after the backup of epoch 2; the resumed run trains epoch 3 only and ends as the reference did."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", KILLABLE_RUN, str(TESTS), str(tmp_path / "run")]
    assert kill_after_line(command, "finished epoch 2", env) == -signal.SIGKILL
    assert (tmp_path / "run" / "backup").is_dir()

    log = EpochLog()
    resumed, _ = small_run(tmp_path / "run", callbacks=[log])
    assert log.finished == [3]
    assert not (tmp_path / "run" / "backup").exists()
    assert_same_training(tmp_path / "run", resumed, reference)


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


def test_nan_in_data_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model = eager_model()
    history = train(model, NaNAfterFirstEpoch(), epochs=6, out_dir=tmp_path, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isnan(history.history["loss"][-1])
    restored = keras.saving.load_model(tmp_path / "best.keras")
    assert all(np.isfinite(w).all() for w in restored.get_weights())
    record = json.loads((tmp_path / "best.json").read_text())
    assert record["epoch"] == 1
    assert record["value"] == pytest.approx(history.history["loss"][0])
    frames = np.random.default_rng(1).random((1, 3, 16, 16, 1), dtype=np.float32)
    assert np.isfinite(to_numpy(restored(frames))).all()


def test_pairs_of_arrays_and_loss_threshold_stop(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.random((6, 3, 16, 16, 1), dtype=np.float32)
    model = eager_model()
    stop = LossThresholdStop(threshold=100.0)
    history = train(model, (inputs, inputs), epochs=5, batch_size=3, out_dir=tmp_path, callbacks=[stop], verbose=0)
    assert len(history.history["loss"]) == 1
    assert stop.stopped_epoch == 0


def test_time_limit_stops_after_the_epoch_that_passes_it(tmp_path):
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, 256, size=(4, 3, 16, 16, 1), dtype=np.uint8)
    history = train(
        eager_model(), sequences, epochs=50, batch_size=2, out_dir=tmp_path, callbacks=[TimeLimit(1e-3)], verbose=0
    )
    assert len(history.history["loss"]) == 1


class Stopped(KeyboardInterrupt):
    """What the latch of the test below raises for SIGTERM."""


class SwallowSignal(keras.callbacks.Callback):
    """The signal comes in code that loses the exception (a finalizer, a broad ``except``) in epoch 2's first batch.

    ``times`` signals are sent one after the other; ``sent`` counts those after which the code went on.
    """

    def __init__(self, signum: int, times: int = 1):
        super().__init__()
        self.signum = signum
        self.times = times
        self.batches = []
        self.sent = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.batches.append((self.epoch, batch))
        if (self.epoch, batch) == (1, 0):
            try:
                for _ in range(self.times):
                    os.kill(os.getpid(), self.signum)
                    time.sleep(0.2)  # Python runs the handler at its next instruction, at the latest after this
                    self.sent += 1
            except KeyboardInterrupt:
                pass


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Stopped)])
def test_an_interruption_stops_training_at_the_end_of_its_batch_even_where_python_would_lose_it(
    tmp_path, signum, raised
):
    sequences = np.random.default_rng(0).integers(0, 256, size=(4, 3, 16, 16, 1), dtype=np.uint8)
    settings = {"epochs": 3, "batch_size": 2, "verbose": 0}
    # The handler a terminal's Python has (a test run started in the background may have the signal ignored).
    with signal_handler(signum, KeyboardInterrupt):
        before = signal.getsignal(signum)
        swallow = SwallowSignal(signum)  # without the latch the run goes on to its last epoch
        history = train(eager_model(), sequences, out_dir=tmp_path / "plain", callbacks=[swallow], **settings)
        assert len(history.history["loss"]) == 3 and len(swallow.batches) == 6 and swallow.sent == 0
        latch = InterruptLatch({signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Stopped})
        swallow = SwallowSignal(signum)
        with pytest.raises(raised), latch.installed():
            train(eager_model(), sequences, out_dir=tmp_path / "latched", callbacks=[swallow, latch], **settings)
        assert swallow.sent == 1  # the handler raised nothing inside the batch
        assert swallow.batches == [(0, 0), (0, 1), (1, 0)]  # stopped at the end of the batch the signal came in
        assert latch.pending is raised and signal.getsignal(signum) is before
    assert (tmp_path / "latched" / "backup").is_dir()  # epoch 1 is kept for a resumed run


def test_a_second_interruption_raises_at_once_and_one_after_the_last_batch_when_the_block_ends(tmp_path):
    sequences = np.random.default_rng(0).integers(0, 256, size=(4, 3, 16, 16, 1), dtype=np.uint8)
    with signal_handler(signal.SIGTERM, KeyboardInterrupt):
        latch = InterruptLatch({signal.SIGTERM: Stopped})
        swallow = SwallowSignal(signal.SIGTERM, times=2)
        with pytest.raises(Stopped), latch.installed():
            train(eager_model(), sequences, epochs=3, batch_size=2, out_dir=tmp_path, callbacks=[swallow, latch])
        assert swallow.sent == 1 and swallow.batches == [(0, 0), (0, 1), (1, 0)]
        latch = InterruptLatch({signal.SIGTERM: Stopped})
        with pytest.raises(Stopped), latch.installed():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            reached = True
        assert reached


def test_the_latch_handles_signals_only_inside_its_block_and_leaves_an_ignored_one_ignored():
    latch = InterruptLatch({signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Stopped})
    with signal_handler(signal.SIGINT, KeyboardInterrupt), signal_handler(signal.SIGTERM, Stopped):
        before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        with latch.installed():
            assert all(signal.getsignal(signum) is not handler for signum, handler in before.items())
        assert all(signal.getsignal(signum) is handler for signum, handler in before.items())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job
        with latch.installed():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is before[signal.SIGTERM]
    assert latch.pending is None


@contextlib.contextmanager
def signal_handler(signum: int, raised: type[BaseException]):
    """Makes ``signum`` raise ``raised`` inside the block, as Python's own handler does for SIGINT."""

    def handler(*args):
        raise raised

    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


def test_bad_arguments(tmp_path):
    model = eager_model()
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train(model, np.zeros((2, 3, 16, 16, 1), np.uint8), epochs=0, out_dir=tmp_path)
    with pytest.raises(TypeError, match="expected a keras.utils.PyDataset"):
        train(model, [1, 2, 3], out_dir=tmp_path)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        LossThresholdStop(0)


def output_files(folder: Path) -> dict[str, bytes]:
    """The files in a run folder and their bytes, without its lock file (which a claim removes when stale)."""
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file() and path.name != "run.lock"}


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of an interrupted run's folder that a test may resume (the module's copy stays as it is)."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_a_kill_between_an_epochs_outputs_and_its_backup_repeats_the_epoch(reference, tmp_path):
    """Killed after the last epoch's checkpoint and history row, before its backup: resuming repeats that epoch
    once (no second history row) and ends as the reference did."""
    run_dir = copy_of(reference.killed_before_last_backup, tmp_path)
    # The epoch's outputs were written before the backup: its history row exists, the backup says 2 epochs.
    assert [row["epoch"] for row in read_history(run_dir / "history.csv")] == ["0", "1", "2"]
    assert json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"] == EPOCHS - 1
    resumed, _ = small_run(run_dir)
    assert_same_training(run_dir, resumed, reference)
    assert json.loads((run_dir / "best.json").read_text()) == json.loads((reference.out_dir / "best.json").read_text())


@pytest.mark.parametrize("damage", ["latest", "both"])
def test_a_damaged_backup_falls_back_or_is_set_aside_without_duplicate_rows(reference, tmp_path, damage):
    run_dir = copy_of(reference.killed_before_last_backup, tmp_path)
    backup = run_dir / "backup"
    # A write cut short by a full disk or a size limit: the file holds only its first bytes.
    damaged = [backup / "latest.weights.h5"] + ([backup / "latest.weights.h5.bkp"] if damage == "both" else [])
    for path in damaged:
        path.write_bytes(path.read_bytes()[:100])

    resumed, _ = small_run(run_dir, verbose=2)

    if damage == "latest":  # resumed from the copy of epoch 1: epochs 2 and 3 rerun, same result
        assert not list(tmp_path.glob("run/backup.damaged-*"))
        assert_same_training(run_dir, resumed, reference)
    else:  # nothing readable: set aside and trained again from the first epoch, as the reference was
        assert [p.name for p in run_dir.glob("backup.damaged-*")] == ["backup.damaged-1"]
        assert_same_training(run_dir, resumed, reference)
    assert not backup.exists()


def test_resuming_with_other_settings_is_refused_and_the_same_settings_resume(reference, tmp_path):
    run_dir = copy_of(reference.killed_before_last_backup, tmp_path)
    before = output_files(run_dir)
    with pytest.raises(ValueError, match=r"other settings \(batch_size 3 -> 2; train_batches 2 -> 3\)"):
        small_run(run_dir, batch_size=2)
    with pytest.raises(ValueError, match=r"other settings \(epochs 3 -> 4; patience 10 -> 2\)"):
        small_run(run_dir, epochs=4, patience=2)
    other_data = SEQUENCES.copy()
    other_data[0, 0, 0, 0, 0] ^= 1  # one bit of one pixel
    with pytest.raises(ValueError, match=r"train_data uint8 array \(6, 4, 16, 16, 1\) sha256 \w{12} -> uint8 array"):
        train(
            eager_model(seed=2),
            other_data[:6],
            other_data[6:],
            epochs=EPOCHS,
            batch_size=3,
            seed=2,
            out_dir=run_dir,
            verbose=0,
        )
    assert output_files(run_dir) == before
    small_run(run_dir)
    assert [row["epoch"] for row in read_history(run_dir / "history.csv")] == ["0", "1", "2"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.json", "best.keras", "history.csv", "run.json"]


def plateau_run(out_dir: Path, **settings) -> tuple[keras.Model, keras.callbacks.History]:
    """Trains on a plateau: ``cpu-fast`` (no BatchNormalization) at a learning rate of 1e-30 moves no weight.

    ``val_loss`` then stays the same from epoch to epoch: EarlyStopping (patience 2) stops after the third epoch,
    and ReduceLROnPlateau (patience 1) lowers the learning rate tenfold after the second and the third.
    """
    model = small_seq2seq(learning_rate=1e-30)
    settings = {"epochs": 8, "batch_size": 3, "seed": 2, "patience": 2, "lr_patience": 1, "verbose": 0, **settings}
    history = train(model, SEQUENCES[:6], SEQUENCES[6:], out_dir=out_dir, **settings)
    return model, history


def test_a_run_resumed_on_a_plateau_stops_and_lowers_the_learning_rate_when_the_straight_run_did(tmp_path):
    """Interrupted after epoch 2 (EarlyStopping has waited one epoch, the rate was just lowered): the resumed run
    trains epoch 3 only, stops there and ends as the straight run did, instead of starting its counters again."""
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight, _ = plateau_run(straight_dir, callbacks=[CopyFolderAfterEpoch(1, straight_dir, resumed_dir)])
    rows = read_history(straight_dir / "history.csv")
    assert len(rows) == 3 and len({row["val_loss"] for row in rows}) == 1
    # Each row logs the rate its epoch trained with; the plateau lowers it at the end of epochs 2 and 3.
    np.testing.assert_allclose([float(row["learning_rate"]) for row in rows], [1e-30, 1e-30, 1e-31], rtol=1e-6)
    assert float(straight.optimizer.learning_rate) == pytest.approx(1e-32, rel=1e-6)
    assert (resumed_dir / "backup").is_dir()

    log = EpochLog()
    resumed, _ = plateau_run(resumed_dir, callbacks=[log])
    assert log.finished == [3]
    assert read_history(resumed_dir / "history.csv") == rows
    assert int(resumed.optimizer.iterations) == int(straight.optimizer.iterations) == 6
    assert float(resumed.optimizer.learning_rate) == float(straight.optimizer.learning_rate)
    for got, expected in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_settings_the_data_cannot_honour_are_refused_before_any_file_is_written(tmp_path):
    model = small_seq2seq()
    settings = {"epochs": 1, "batch_size": 3, "verbose": 0}
    with pytest.raises(ValueError, match=r"steps_per_epoch=3 is more than the 2 batches of the training data"):
        train(model, SEQUENCES[:6], steps_per_epoch=3, out_dir=tmp_path / "steps", **settings)
    # 4-frame sequences give 3 input frames: a context of 3 would never feed one back (pure teacher forcing).
    with pytest.raises(ValueError, match=r"the training inputs have 3 frames .*: nothing would be fed back"):
        train(
            model, SEQUENCES[:6], scheduled_sampling=ScheduledSampling(context=3), out_dir=tmp_path / "ss", **settings
        )
    with pytest.raises(ValueError, match=r"the validation inputs have 2 frames"):
        train(
            model,
            SEQUENCES[:6],
            SEQUENCES[6:, :3],
            scheduled_sampling=ScheduledSampling(context=2),
            out_dir=tmp_path / "val",
            **settings,
        )
    assert list(tmp_path.iterdir()) == []
    assert int(model.optimizer.iterations) == 0


def test_train_replaces_a_finished_run_refuses_it_on_request_and_waits_for_no_second_writer(reference, tmp_path):
    run_dir = Path(shutil.copytree(reference.out_dir, tmp_path / "run"))
    (run_dir / "notes.txt").write_text("the user's")
    before = output_files(run_dir)
    with pytest.raises(FileExistsError, match=r"holds a finished run \(run.json, best.keras, best.json, history.csv\)"):
        small_run(run_dir, existing_run="refuse")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        small_run(run_dir, existing_run="resume")
    holder = run_folder.claim(run_dir, "auto")
    with holder:  # as another writer would: the lock is per open file, so this process counts as one too
        with pytest.raises(BlockingIOError, match=rf"{run_dir} is in use: process {os.getpid()} is writing to it"):
            small_run(run_dir)
    assert output_files(run_dir) == before

    small_run(run_dir, epochs=1)  # the default, "auto": a finished run is replaced
    assert json.loads((run_dir / "run.json").read_text())["epochs"] == 1
    assert [row["epoch"] for row in read_history(run_dir / "history.csv")] == ["0"]
    assert json.loads((run_dir / "best.json").read_text())["epoch"] == 1
    assert (run_dir / "notes.txt").read_text() == "the user's"
