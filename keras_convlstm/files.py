"""Owns where files go and how they are written: the Keras dataset cache, path checks, and atomic writes.

Nothing is half written: every output goes to a temporary file, then an atomic rename. The file ends with the
mode a plain write would give it: the replaced file's mode, or for a new file 0o666 less the umask.

A reader of ``path`` sees either the previous complete file or the new complete file, never a truncated one:
if the writer fails or the process is killed mid-write, ``path`` keeps its old content (or stays absent) and
the temporary file is removed (or, after a kill, left as a hidden ``.<name>.tmp-*`` file that the next write
to the same path removes).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    """The dataset cache of ``keras.utils.get_file``: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    keras_home = os.environ.get("KERAS_HOME")
    base = Path(keras_home) if keras_home else Path.home() / ".keras"
    return base / "datasets"


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


# Temporary files of the atomic writes in progress: a nested write to one of them writes it in place.
_STAGED: set[str] = set()


class WriteError(OSError):
    """An atomic write failed; the message names the files and what became of them (no ``[Errno N]`` prefix)."""

    def __str__(self) -> str:
        return self.strerror


def _create_temporary(path: Path) -> Path:
    """Creates an empty hidden file beside ``path`` with the mode a plain ``open(path, "w")`` would leave.

    That is ``path``'s mode when it exists, else 0o666 less the umask (``tempfile.mkstemp`` gives 0o600 whatever
    the umask, which would make every output private).
    """
    while True:
        temporary = path.with_name(f"{_temporary_prefix(path)}{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        if path.exists():
            os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        return temporary


def _what_was_kept(targets: list[Path]) -> str:
    existing = [path for path in targets if path.exists()]
    if not existing:
        return "nothing was written"
    if len(existing) == len(targets):
        return "the earlier file is unchanged" if len(existing) == 1 else "the earlier files are unchanged"
    names = ", ".join(str(path) for path in existing)
    return f"the earlier {names} {'is' if len(existing) == 1 else 'are'} unchanged and nothing else was written"


def _non_empty_path(path: str | os.PathLike, expected: str) -> Path:
    if not os.fspath(path):
        raise ValueError(f"expected {expected}, got an empty path ('')")
    return Path(path)


def check_file_path(path: str | os.PathLike) -> Path:
    """Checks, before any work, that a file can be created at ``path``; returns it as a ``Path``.

    Raises:
        ValueError: ``path`` is empty (an unset shell variable?), which would mean the current folder.
        IsADirectoryError: ``path`` is a folder.
        NotADirectoryError: a parent of ``path`` exists and is not a folder.
        PermissionError: the nearest existing parent folder is not writable.
    """
    path = _non_empty_path(path, "a file path")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder, expected a file path")
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, expected a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write {path}: no permission to write in {parent}")
            return path
    return path


def check_folder_path(path: str | os.PathLike) -> Path:
    """Checks, before any work, that ``path`` is or can become a writable folder; returns it as a ``Path``."""
    path = _non_empty_path(path, "a folder")
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"cannot write into {path}: it is a file, expected a folder")
    check_file_path(path / "file")
    return path


@contextlib.contextmanager
def atomic_paths() -> Iterator[Callable[[str | os.PathLike], Path]]:
    """Writes several files as one output: all of them appear, or none changes.

    Yields ``stage``: ``stage(path)`` returns a temporary path beside ``path`` to write to. When the block ends
    normally every staged file is renamed onto its target (renames do not fail for lack of space); when it
    raises, every temporary file is deleted and the targets keep their earlier content. Leftover temporary
    files of earlier killed writes are removed. Staging a path that is itself the temporary file of an
    enclosing write returns it unchanged: the enclosing write renames it, or deletes it and reports the error.

    Raises:
        NotADirectoryError, IsADirectoryError, PermissionError: from :func:`check_file_path`, at ``stage``.
        WriteError: a write failed (full disk, size limit, ...); the message names the target files, the
            reason, and says that the earlier files are unchanged (or that nothing was written).
    """
    staged: list[tuple[Path, Path]] = []

    def stage(path: str | os.PathLike) -> Path:
        if os.path.abspath(path) in _STAGED:
            return Path(path)
        path = check_file_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(_temporary_prefix(path) + "*"):
            stale.unlink(missing_ok=True)
        temporary = _create_temporary(path)
        staged.append((temporary, path))
        _STAGED.add(os.path.abspath(temporary))
        return temporary

    try:
        yield stage
        for temporary, path in staged:
            os.replace(temporary, path)
    except BaseException as error:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        if not staged or not isinstance(error, OSError) or isinstance(error, WriteError):
            raise
        targets = [path for _, path in staged]
        reason = error.strerror or str(error) or type(error).__name__
        message = f"could not write {', '.join(map(str, targets))} ({reason}); {_what_was_kept(targets)}"
        raise WriteError(error.errno, message) from error
    finally:
        _STAGED.difference_update(os.path.abspath(temporary) for temporary, _ in staged)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success renames it onto ``path``, on failure deletes it.

    The temporary file keeps ``path``'s suffix, so writers that choose a format by extension (``.keras``,
    ``.png``, ``.gif``) write the right one. See :func:`atomic_paths` for the errors.
    """
    with atomic_paths() as stage:
        yield stage(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically and returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, value: object, *, indent: int | None = 2) -> Path:
    """Writes ``value`` as JSON (with a final newline) to ``path`` atomically and returns the path."""
    return write_text(path, json.dumps(value, indent=indent) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Saves ``array`` as a ``.npy`` file atomically (C-contiguous, no pickle) and returns the path."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return Path(path)
