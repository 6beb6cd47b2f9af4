"""Backups of interrupted runs: reading, and repairing before Keras reads it, the ``backup/`` folder of a run.

Keras's ``BackupAndRestore(double_checkpoint=True)`` keeps there the state of the last finished epoch, the weights
(model, optimizer and counters: ``latest.weights.h5``) and the epoch record (``training_metadata.json``), each beside
its previous copy (``*.bkp``). A kill, a full disk or a size limit can leave them damaged: :func:`usable_backup`
falls back to the previous copy, or sets the folder aside as ``backup.damaged-N`` (which
:mod:`keras_convlstm.run_folder` counts among a run's outputs) so that training starts again, and
:func:`completed_epochs` reads how many epochs the backup holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BACKUP_WEIGHTS = "latest.weights.h5"
BACKUP_METADATA = "training_metadata.json"


def backup_problem(weights: Path, metadata: Path) -> str | None:
    """Why the weights and epoch record of a ``BackupAndRestore`` folder cannot be read back, or None.

    Args:
        weights: the HDF5 weights file (``latest.weights.h5`` or its ``.bkp`` copy).
        metadata: the JSON epoch record beside it (``training_metadata.json`` or its ``.bkp`` copy).

    Returns:
        None when both can be read and the record holds a whole number of epochs, else the problem in one line.
    """
    import h5py

    try:
        with h5py.File(weights, "r"):
            pass
        epoch = json.loads(metadata.read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    if not isinstance(epoch, int) or epoch < 0:
        return f"{metadata.name} records epoch {epoch!r}, expected a whole number >= 0"
    return None


def usable_backup(backup_dir: Path, *, verbose: bool) -> bool:
    """Checks an interrupted run's backup before Keras reads it; falls back to its previous copy when needed.

    A backup whose latest files are damaged (a full disk, a size limit, a kill mid-write) but whose previous
    copy (``*.bkp``, kept by ``double_checkpoint``) is whole is restored from that copy. When neither can be
    read, the folder is set aside as ``backup.damaged-N`` and training starts again from its first epoch.

    Args:
        backup_dir: the ``backup/`` folder of a run folder.
        verbose: print what was done with a damaged backup.

    Returns:
        Whether training resumes from ``backup_dir``.
    """
    weights, metadata = backup_dir / BACKUP_WEIGHTS, backup_dir / BACKUP_METADATA
    problem = backup_problem(weights, metadata)
    if problem is None:
        return True
    previous_weights, previous_metadata = Path(f"{weights}.bkp"), Path(f"{metadata}.bkp")
    if backup_problem(previous_weights, previous_metadata) is None:
        os.replace(previous_weights, weights)
        os.replace(previous_metadata, metadata)
        if verbose:
            print(f"the last backup in {backup_dir} is damaged ({problem}); resuming from the one before it")
        return True
    number = 1
    while (aside := backup_dir.with_name(f"{backup_dir.name}.damaged-{number}")).exists():
        number += 1
    os.replace(backup_dir, aside)
    if verbose:
        print(f"the backup in {backup_dir} is damaged ({problem}); set aside as {aside}, starting from epoch 1")
    return False


def completed_epochs(backup_dir: Path) -> int:
    """The epochs that the backup in ``backup_dir`` holds as finished (a run resumes at this 0-based epoch).

    Read from its ``training_metadata.json``; check the folder with :func:`usable_backup` first.
    """
    return json.loads((backup_dir / BACKUP_METADATA).read_text())["epoch"]
