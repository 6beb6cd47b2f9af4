"""Backups: a backup Keras wrote is read as it is, a damaged one falls back to its previous copy or is set aside.

How ``train`` resumes from a repaired backup (no history row twice, the straight run's weights) is checked in
test_training.py.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_convlstm.backups import BACKUP_METADATA, BACKUP_WEIGHTS, backup_problem, completed_epochs, usable_backup


class StopAtEpoch(keras.callbacks.Callback):
    """Raises at the start of epoch ``epoch`` (0-based), as a kill would stop the run there."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError(f"stopped at epoch {epoch}")


@pytest.fixture(scope="module")
def keras_backup(tmp_path_factory) -> Path:
    """The ``backup/`` folder that Keras's ``BackupAndRestore(double_checkpoint=True)`` leaves after 2 epochs."""
    backup_dir = tmp_path_factory.mktemp("run") / "backup"
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    inputs = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    backup = keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True)
    with pytest.raises(RuntimeError, match="stopped at epoch 2"):
        model.fit(inputs, inputs[:, :1], epochs=5, callbacks=[backup, StopAtEpoch(2)], verbose=0)
    return backup_dir


@pytest.fixture
def backup_dir(keras_backup, tmp_path) -> Path:
    """A copy of :func:`keras_backup` in a run folder of its own, that a test may damage."""
    copy = tmp_path / "backup"
    copy.mkdir()
    for path in keras_backup.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


def cut_short(path: Path) -> None:
    """Keeps only the first bytes of ``path``, as a write stopped by a full disk or a size limit does."""
    path.write_bytes(path.read_bytes()[:100])


def test_a_whole_backup_is_used_as_keras_wrote_it(backup_dir, capsys):
    files = {path.name: path.read_bytes() for path in backup_dir.iterdir()}
    assert {BACKUP_WEIGHTS, BACKUP_METADATA, f"{BACKUP_WEIGHTS}.bkp", f"{BACKUP_METADATA}.bkp"} <= set(files)
    assert backup_problem(backup_dir / BACKUP_WEIGHTS, backup_dir / BACKUP_METADATA) is None
    assert usable_backup(backup_dir, verbose=True)
    assert completed_epochs(backup_dir) == 2
    assert {path.name: path.read_bytes() for path in backup_dir.iterdir()} == files
    assert capsys.readouterr().out == ""


def test_damaged_latest_files_fall_back_to_the_copy_before_them(backup_dir, capsys):
    previous_weights = (backup_dir / f"{BACKUP_WEIGHTS}.bkp").read_bytes()
    cut_short(backup_dir / BACKUP_WEIGHTS)
    assert backup_problem(backup_dir / BACKUP_WEIGHTS, backup_dir / BACKUP_METADATA).startswith("OSError")
    assert usable_backup(backup_dir, verbose=True)
    assert completed_epochs(backup_dir) == 1
    assert (backup_dir / BACKUP_WEIGHTS).read_bytes() == previous_weights
    assert not (backup_dir / f"{BACKUP_WEIGHTS}.bkp").exists()
    assert "is damaged (OSError" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("record", "problem"),
    [("{", "JSONDecodeError"), ('{"batch": 0}', "KeyError"), ('{"epoch": -1}', "records epoch -1, expected a whole")],
)
def test_an_unreadable_epoch_record_is_a_problem(backup_dir, record, problem):
    (backup_dir / BACKUP_METADATA).write_text(record)
    assert problem in backup_problem(backup_dir / BACKUP_WEIGHTS, backup_dir / BACKUP_METADATA)


def test_a_backup_with_no_whole_copy_is_set_aside_under_a_free_name(backup_dir, capsys):
    cut_short(backup_dir / BACKUP_WEIGHTS)
    cut_short(backup_dir / f"{BACKUP_WEIGHTS}.bkp")
    files = {path.name: path.read_bytes() for path in backup_dir.iterdir()}
    (backup_dir.parent / "backup.damaged-1").mkdir()  # set aside by an earlier resumption
    assert not usable_backup(backup_dir, verbose=False)
    assert not backup_dir.exists()
    aside = backup_dir.parent / "backup.damaged-2"
    assert {path.name: path.read_bytes() for path in aside.iterdir()} == files
    assert capsys.readouterr().out == ""
