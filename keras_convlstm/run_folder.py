"""Owns a training run's folder: the record of the run's settings, the lock of its writer, and the decision to
start, resume or overwrite the run already there.

:func:`claim` holds a folder for one process while a block runs; the :class:`RunFolder` it yields checks at once
whether the run there may be touched, and :meth:`RunFolder.start`, the call's first write, records the settings
(or checks them against the run it resumes). Besides what training writes, a run folder holds:

- ``run.json``: the settings of the run, written before its first epoch and kept. A resumed run must bring the
  same settings. Files and arrays are compared by content (:func:`fingerprint`, :func:`array_fingerprint`: size
  and SHA-256); the absolute path of a file is recorded for the reader, not compared.
- ``run.lock``: locked (``fcntl.flock``) by the process writing the folder, removed when it lets go. The
  operating system drops the lock of a process that dies, so a lock file left by a kill stops nobody.

A folder is ``"empty"`` (no output of a run, or only the record of one stopped before its first epoch ended),
``"interrupted"`` (a ``backup/`` folder: a run stopped after some epoch, which resuming continues) or
``"finished"`` (a run's results without a backup). The ``existing_run`` policy says what a call does with a run
already there:

- ``"refuse"``: start only where there is no run (the command line's default);
- ``"resume"``: continue the interrupted run, with the same settings; refuse anything else;
- ``"overwrite"``: delete the earlier run's outputs, then start afresh;
- ``"auto"``: resume an interrupted run, replace a finished one (:func:`keras_convlstm.training.train`'s default).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import numpy as np

from keras_convlstm.files import check_folder_path, write_json

RECORD = "run.json"
LOCK = "run.lock"
BACKUP = "backup"
# What a run writes into its folder: what makes a folder hold a run, and what "overwrite" deletes. model.keras
# is the command line's final model; resume.json is the settings file of runs started by earlier versions.
OUTPUTS = (RECORD, "best.keras", "best.json", "history.csv", "model.keras", BACKUP, "resume.json")
SET_ASIDE = "backup.damaged-*"
POLICIES = ("auto", "refuse", "resume", "overwrite")
STATES = {"empty": "no run", "interrupted": "an interrupted run", "finished": "a finished run"}
ABSENT = "(absent)"  # how a record shows a setting it lacks


def fingerprint(path: str | os.PathLike) -> dict[str, object]:
    """A data file as ``run.json`` records it: ``{"path": absolute path, "bytes": size, "sha256": hex digest}``.

    A resumed run compares ``bytes`` and ``sha256``, not ``path``: the same file named by another relative path
    (or moved) resumes; another file at the same path is refused.
    """
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def array_fingerprint(array: np.ndarray) -> dict[str, object]:
    """An in-memory array as ``run.json`` records it: ``{"shape", "dtype", "sha256"}`` of its bytes in C order."""
    contiguous = np.ascontiguousarray(array)
    return {
        "shape": list(contiguous.shape),
        "dtype": contiguous.dtype.name,
        "sha256": hashlib.sha256(contiguous).hexdigest(),
    }


def folder_state(path: str | os.PathLike) -> str:
    """``"interrupted"`` (a ``backup/`` folder), ``"finished"`` (a run's outputs, no backup) or ``"empty"``.

    A folder that holds only the record of a run stopped before its first epoch ended (``run.json``, a
    ``history.csv`` without rows) is empty: no result would be lost by starting there again.
    """
    path = Path(path)
    if (path / BACKUP).is_dir():
        return "interrupted"
    history = path / "history.csv"
    results = [output for output in run_outputs(path) if output.name not in (RECORD, "resume.json", history.name)]
    if results or (history.is_file() and len(history.read_text(encoding="utf-8").splitlines()) > 1):
        return "finished"
    return "empty"


def run_outputs(path: str | os.PathLike) -> list[Path]:
    """The outputs of a run found in ``path`` (see ``OUTPUTS``), with backups set aside as damaged."""
    path = Path(path)
    if not path.is_dir():
        return []
    return [path / name for name in OUTPUTS if (path / name).exists()] + sorted(path.glob(SET_ASIDE))


def differences(saved: Mapping[str, object], settings: Mapping[str, object]) -> list[str]:
    """``"name old -> new"`` for every setting that differs between two records (files and arrays by content)."""
    names = list(settings) + [name for name in saved if name not in settings]
    return [
        f"{name} {_shown(saved.get(name, ABSENT))} -> {_shown(settings.get(name, ABSENT))}"
        for name in names
        if _content(saved.get(name, ABSENT)) != _content(settings.get(name, ABSENT))
    ]


def _content(value: object) -> object:
    """``value`` without the paths of its fingerprints: what two records must share."""
    if isinstance(value, dict):
        return {key: _content(item) for key, item in value.items() if not (key == "path" and "sha256" in value)}
    if isinstance(value, list):
        return [_content(item) for item in value]
    return value


def _shown(value: object) -> str:
    if isinstance(value, dict) and "sha256" in value:
        if "path" in value:
            return f"{value['path']} ({value['bytes']} bytes, sha256 {str(value['sha256'])[:12]})"
        return f"{value['dtype']} array {tuple(value['shape'])} sha256 {str(value['sha256'])[:12]}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return value if value is ABSENT else repr(value)


class RunFolder:
    """A run folder that this process holds (from :func:`claim`), and what the call will do with the run there.

    Args:
        path: the folder, which exists and whose lock this process holds.
        existing_run: the policy (see the module's docstring).

    Attributes:
        state: ``"empty"``, ``"interrupted"`` or ``"finished"``, when the folder was claimed.
        resumes: whether the call continues the interrupted run there.

    Raises:
        FileExistsError: the folder holds a run that ``existing_run`` does not let the call touch.
        FileNotFoundError: ``"resume"``, and the folder holds no interrupted run.
        ValueError: the interrupted run's ``run.json`` cannot be read.
    """

    def __init__(self, path: Path, existing_run: str):
        self.path = path
        self.existing_run = existing_run
        self.state = folder_state(path)
        self.resumes = self.state == "interrupted" and existing_run in ("auto", "resume")
        self.started = False
        if existing_run == "resume" and self.state != "interrupted":
            if self.state == "empty":
                raise FileNotFoundError(f"nothing to resume in {path}: no epoch of a run was backed up there")
            raise FileNotFoundError(
                f"nothing to resume in {path}: its run finished (no backup/ folder); overwrite it or choose "
                "another folder"
            )
        if existing_run == "refuse" and self.state != "empty":
            names = ", ".join(output.name for output in run_outputs(path))
            choices = "resume it, overwrite it" if self.state == "interrupted" else "overwrite it"
            raise FileExistsError(f"{path} holds {STATES[self.state]} ({names}): {choices}, or choose another folder")
        self.saved = self._read_record() if self.resumes else None

    def _read_record(self) -> dict:
        record = self.path / RECORD
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
            if not isinstance(saved, dict):
                raise ValueError(f"expected a JSON object, got {type(saved).__name__}")
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{record} cannot be read ({type(error).__name__}): it records the settings of the interrupted "
                "run, which cannot be resumed without it; overwrite it or choose another folder"
            ) from error
        return saved

    def start(self, settings: Mapping[str, object]) -> bool:
        """The call's first write, once all its checks have passed: records ``settings``; returns ``resumes``.

        A resumed run must bring the settings in its record; otherwise nothing changes and the error names
        every setting that differs, old and new. A fresh start first deletes the outputs of the run it replaces.

        Args:
            settings: JSON values by name; fingerprints (:func:`fingerprint`) are compared by content.

        Raises:
            ValueError: a resumed run with other settings.
            RuntimeError: the folder was started already (claim it again for another run).
        """
        if self.started:
            raise RuntimeError(f"{self.path} has started a run already: claim the folder again for another one")
        settings = json.loads(json.dumps(dict(settings)))  # tuples become lists, as in the saved record
        if self.resumes:
            changed = differences(self.saved, settings)
            if changed:
                raise ValueError(
                    f"{self.path} holds an interrupted run with other settings ({'; '.join(changed)}): call again "
                    "with its settings to resume it, overwrite it, or choose another folder"
                )
        else:
            for output in run_outputs(self.path) + _staged_files(self.path):
                if output.is_dir():
                    shutil.rmtree(output)
                else:
                    output.unlink()
        write_json(self.path / RECORD, settings)
        self.started = True
        return self.resumes


def _staged_files(path: Path) -> list[Path]:
    """Hidden temporary files of outputs, left by a kill mid-write (see ``keras_convlstm.files``)."""
    return [staged for name in OUTPUTS for staged in path.glob(f".{name}.tmp-*")]


@contextlib.contextmanager
def claim(out_dir: str | os.PathLike, existing_run: str = "refuse") -> Iterator[RunFolder]:
    """Holds ``out_dir`` for this process while the block runs, and decides what happens to the run there.

    Takes the folder's lock (creating the folder if needed), then checks its state against ``existing_run``
    (see the module's docstring) before the block runs. Nothing of a run is written until
    :meth:`RunFolder.start`; when the block ends the lock is released and its file removed, and folders this
    call created are removed again if they stayed empty (a check that failed leaves nothing behind).

    Args:
        out_dir: the run folder.
        existing_run: ``"refuse"``, ``"resume"``, ``"overwrite"`` or ``"auto"``.

    Raises:
        ValueError: an unknown ``existing_run``, or (see :class:`RunFolder`) an unreadable record.
        BlockingIOError: another process holds the folder.
        FileExistsError, FileNotFoundError: see :class:`RunFolder`.
        NotADirectoryError, PermissionError: ``out_dir`` cannot be a writable folder.
    """
    if existing_run not in POLICIES:
        raise ValueError(f"existing_run must be one of {', '.join(map(repr, POLICIES))}, got {existing_run!r}")
    path = check_folder_path(out_dir)
    created = [folder for folder in (path, *path.parents) if not folder.exists()]
    path.mkdir(parents=True, exist_ok=True)
    try:
        lock = _lock(path)
        try:
            yield RunFolder(path, existing_run)
        finally:
            (path / LOCK).unlink(missing_ok=True)  # removed while still held: see _lock
            lock.close()
    finally:
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()


def _lock(folder: Path) -> IO[str]:
    """Opens ``folder/run.lock`` and locks it (exclusive, without waiting); it then holds this process's id.

    A holder removes the file before it lets go, so a process that locked the removed file while waiting
    tries again with the new one: two processes never both hold the lock.
    """
    path = folder / LOCK
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open until the folder is let go
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            process = f"process {holder}" if holder.isdigit() else "another process"
            raise BlockingIOError(
                f"{folder} is in use: {process} is writing to it; wait until it ends, or choose another folder"
            ) from None
        except OSError as error:  # a file system without locks (some network mounts)
            warnings.warn(
                f"cannot lock {path} ({error.strerror}): a second process writing to {folder} would go unnoticed",
                stacklevel=2,
            )
            return handle
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
