"""Owns the official Moving MNIST file (download, verification, loading), splits, shifted frames and datasets.

The Keras example reads ``mnist_test_seq.npy``: uint8 frames of shape ``(time, sequence, height, width)`` =
``(20, 10000, 64, 64)``. Here the file is downloaded once into the Keras cache and verified (size, md5, .npy
header) before it is used, and it is read memory-mapped: :func:`load_moving_mnist` returns a uint8 view of
shape ``(sequence, time, height, width, 1)`` without copying, and the float32 conversion happens per batch in
:class:`SequenceDataset` (dividing the whole file by 255 in float64, as the example does, takes ~6.5 GB).

The datasets (``keras.utils.PyDataset``) serve batches that are a pure function of (seed, epoch, batch index):
stored sequences (:class:`SequenceDataset`), given arrays (:class:`ArrayDataset`), and generated data: Moving
MNIST as shifted frames (:class:`GeneratedMovingMNIST`) or as given and future frames
(:class:`ContextHorizonMovingMNIST`), and moving squares (:class:`MovingSquareBatches`).

Frames everywhere are channels-last ``(batch, time, height, width, channels)``, either uint8 in [0, 255] or
float in [0, 1]; :func:`keras_convlstm.checks.validate_frames` checks that (also reachable here as
``data.validate_frames``) and :func:`to_float_frames` converts to float32 in [0, 1]. The datasets share
:class:`EpochDataset`, whose batches are a pure function of (seed, epoch, batch index).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import http.client
import io
import math
import mmap
import os
import shutil
import socket
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import keras
import numpy as np

from keras_convlstm import synthetic
from keras_convlstm.checks import check_integer, validate_frames
from keras_convlstm.files import default_cache_dir

OFFICIAL_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"
OFFICIAL_FILENAME = "mnist_test_seq.npy"
# keras.io's example caches the same file under this name (keras.utils.get_file("moving_mnist.npy", URL)).
KERAS_IO_FILENAME = "moving_mnist.npy"
OFFICIAL_NUM_BYTES = 819_200_096
OFFICIAL_MD5 = "be083ec986bfe91a449d63653c411eb2"
OFFICIAL_FRAME_SIZE = 64
NPY_MAGIC = b"\x93NUMPY"
DOWNLOAD_CHUNK_BYTES = 1 << 20
FILE_LAYOUT = "(time, sequence, height, width)"


# ---------------------------------------------------------------------------------------------------------
# Download and verification
# ---------------------------------------------------------------------------------------------------------


class DownloadError(RuntimeError):
    """The Moving MNIST file could not be downloaded or failed verification."""


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Reads a .npy header: ``(shape, dtype, data offset)``; ValueError if the file is not a .npy file."""
    with open(path, "rb") as handle:
        if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise ValueError(f"{path} is not a .npy file (it does not start with the .npy magic bytes)")
        handle.seek(0)
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as error:
            raise ValueError(f"{path} has an unreadable .npy header: {error}") from error
        return shape, dtype, handle.tell()


def npy_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a complete ``.npy`` file of numbers (not text, not pickled objects, not cut short).

    Reads only the header and the file size, so it is cheap for files of any size.

    Returns:
        None for a readable file, else one sentence that names the problem.
    """
    path = Path(path)
    try:
        shape, dtype, offset = _npy_header(path)
    except ValueError as error:
        return str(error)
    if dtype.hasobject:
        return f"{path} holds Python objects (dtype {dtype}), expected an array of numbers"
    expected_bytes = offset + math.prod(shape) * dtype.itemsize
    actual_bytes = path.stat().st_size
    if actual_bytes != expected_bytes:
        return (
            f"{path} is truncated or damaged: the header announces {expected_bytes:,} bytes for {dtype} of "
            f"shape {shape}, the file has {actual_bytes:,}"
        )
    return None


def _moving_mnist_file_problem(path: Path, frame_size: int | None) -> str | None:
    """Why ``path`` is not a complete .npy file of uint8 ``(time, sequence, height, width)``, or None."""
    try:
        shape, dtype, _ = _npy_header(path)
    except ValueError as error:
        return str(error)
    if dtype != np.uint8 or len(shape) != 4:
        return f"expected uint8 frames of shape {FILE_LAYOUT}, the file holds {dtype} of shape {shape}"
    if frame_size is not None and shape[2:] != (frame_size, frame_size):
        return f"expected {frame_size}x{frame_size} frames {FILE_LAYOUT}, the file holds shape {shape}"
    return npy_file_problem(path)


@functools.lru_cache(maxsize=8)
def _md5(path: Path, size: int, modified_ns: int) -> str:
    """md5 of a file; size and modification time are in the cache key, so a changed file is re-hashed."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, md5: str | None, num_bytes: int | None) -> str | None:
    """Why the downloaded or cached file is unusable, or None when it passes every requested check."""
    status = path.stat()
    if num_bytes is not None and status.st_size != num_bytes:
        return f"expected {num_bytes:,} bytes, got {status.st_size:,}"
    problem = _moving_mnist_file_problem(path, OFFICIAL_FRAME_SIZE)
    if problem is not None:
        return problem
    if md5 is not None:
        found = _md5(path, status.st_size, status.st_mtime_ns)
        if found != md5.lower():
            return f"md5 mismatch: expected {md5.lower()}, got {found}"
    return None


def _describe_failure(error: BaseException, timeout: float) -> str:
    """A readable reason for a network failure raised by urllib or http.client."""
    if isinstance(error, urllib.error.HTTPError):
        return f"the server answered HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.ContentTooShortError):
        return f"the body was truncated ({error.reason})"
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(cause, socket.gaierror):
        return f"the host name could not be resolved ({cause})"
    if isinstance(cause, ssl.SSLError):
        return f"SSL/TLS error ({cause})"
    if isinstance(cause, TimeoutError):
        return f"timed out after {timeout} s without data"
    if isinstance(cause, ConnectionRefusedError):
        return f"the connection was refused ({cause})"
    if isinstance(cause, http.client.IncompleteRead):
        return f"the body was truncated: {len(cause.partial):,} bytes read, {cause.expected:,} more expected"
    return f"{type(cause).__name__}: {cause}"


class _Rejected(Exception):
    """A download that arrived but is not the expected file."""


class _TimeoutAndHeaderChecks(urllib.request.BaseHandler):
    """The urllib handler that adds to ``keras.utils.get_file`` what it lacks.

    ``get_file`` downloads with ``urllib.request.urlretrieve``, which takes no timeout and hides the response
    headers. This handler sets ``timeout`` on every request (the connection and each read), names the client, and
    rejects an HTML page or an announced size other than ``num_bytes`` before any byte of the body is written.
    """

    handler_order = 400  # before urllib's own HTTP handlers (500), which open the connection with the timeout

    def __init__(self, timeout: float, num_bytes: int | None):
        self.timeout = timeout
        self.num_bytes = num_bytes

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        request.timeout = self.timeout
        request.add_unredirected_header("User-agent", "keras_convlstm")
        return request

    def http_response(self, request: urllib.request.Request, response):
        if 200 <= response.status < 300:
            content_type = response.headers.get("Content-Type", "")
            length = response.headers.get("Content-Length", "")
            problem = None
            if "html" in content_type.lower():
                problem = f"the server sent an HTML page (Content-Type {content_type!r}) instead of a .npy file"
            elif self.num_bytes is not None and length.isdigit() and int(length) != self.num_bytes:
                problem = f"the server announces {int(length):,} bytes, expected {self.num_bytes:,}"
            if problem is not None:
                response.close()
                raise _Rejected(problem)
        return response

    https_request = http_request
    https_response = http_response


@contextlib.contextmanager
def _get_file_with(checks: _TimeoutAndHeaderChecks, verbose: bool):
    """Runs ``keras.utils.get_file`` with ``checks`` installed and its console output on stderr or silenced.

    Both are process-wide while the block runs: urllib's global opener (``urllib.request.install_opener``; urllib's
    default opener is installed again afterwards, replacing any custom one) and ``sys.stdout``, where Keras writes
    its "Downloading data from" line and progress bar.
    """
    urllib.request.install_opener(urllib.request.build_opener(checks))
    try:
        with contextlib.redirect_stdout(sys.stderr if verbose else io.StringIO()):
            yield
    finally:
        urllib.request.install_opener(None)


def _fetch(url: str, target: Path, md5: str | None, num_bytes: int | None, timeout: float, verbose: bool) -> None:
    """Downloads ``url`` with ``keras.utils.get_file`` into a staging folder beside ``target``, verifies the file,
    then moves it into place; the staging folder is removed whatever happens."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
    staged = staging / target.name
    try:
        with _get_file_with(_TimeoutAndHeaderChecks(timeout, num_bytes), verbose):
            try:
                keras.utils.get_file(target.name, url, md5_hash=md5, cache_dir=staging, cache_subdir="")
            except ValueError:  # get_file's md5 check; name the first check the file fails, md5 included
                problem = _verify(staged, md5, num_bytes) if staged.is_file() else None
                if problem is None:
                    raise
                raise _Rejected(f"the downloaded file is not the expected Moving MNIST file: {problem}") from None
            except Exception as error:
                # get_file re-raises a urllib.error.URLError as a bare Exception, with the URLError as its context.
                if type(error) is Exception and isinstance(error.__context__, urllib.error.URLError):
                    raise error.__context__ from None
                raise
        problem = _verify(staged, None, num_bytes)  # size and .npy header; get_file checked the md5
        if problem is not None:
            raise _Rejected(f"the downloaded file is not the expected Moving MNIST file: {problem}")
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_moving_mnist(
    cache_dir: str | os.PathLike | None = None,
    url: str = OFFICIAL_URL,
    *,
    md5: str | None = OFFICIAL_MD5,
    num_bytes: int | None = OFFICIAL_NUM_BYTES,
    timeout: float = 60.0,
    verbose: bool = False,
) -> Path:
    """Downloads the Moving MNIST test file once and returns its verified path in the cache.

    A file already cached is used if it passes the checks below (see :func:`find_cached_moving_mnist`: this
    package's ``mnist_test_seq.npy`` or the keras.io example's ``moving_mnist.npy``); a corrupt
    ``mnist_test_seq.npy`` is deleted and downloaded again (an error then says it was deleted, and why; the
    keras.io copy is left alone). Hidden ``.part`` folders left by a download that was killed are removed.

    The download is ``keras.utils.get_file`` (its progress bar, its md5 check) into a hidden staging folder in
    ``cache_dir``, with what it lacks added here: a ``timeout``, a look at the headers before the body (no HTML
    page, the announced size is ``num_bytes``), a .npy header of uint8 ``(time, sequence, 64, 64)`` matching the
    file size, and the move into place only after every check passed. No partial file is left behind on failure.
    While it runs, urllib's global opener and ``sys.stdout`` are replaced: the process-wide settings through which
    a timeout and header checks reach ``get_file`` and its console output is redirected.

    Args:
        cache_dir: folder of the cached file; default :func:`default_cache_dir` (Keras' dataset cache).
        url: where to download from.
        md5: expected hex md5 digest; None skips the check (for a smaller file at another ``url``).
        num_bytes: expected file size in bytes; None skips the check.
        timeout: seconds to wait for the connection and for each read.
        verbose: show Keras's progress bar (on stderr) and say when a cached file is replaced.

    Returns:
        The path of the verified file (``cache_dir / "moving_mnist.npy"`` when only the keras.io copy is there).

    Raises:
        DownloadError: the file could not be downloaded or failed a check; the message names the URL, the
            cache path, the reason and how to get the data another way.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = directory / OFFICIAL_FILENAME
    cached = find_cached_moving_mnist(directory, md5=md5, num_bytes=num_bytes)
    if cached is not None:
        return cached
    removed = ""
    try:
        if target.is_file():
            problem = _verify(target, md5, num_bytes)
            if verbose:
                print(f"The cached {target} is unusable ({problem}); downloading it again")
            target.unlink()
            removed = f" (the file that was there failed its checks, {problem}, and was deleted)"
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob(f".{target.name}.*.part"):  # from a download that was killed
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)
        if verbose:
            print(f"Downloading {target.name} into {directory}", file=sys.stderr)
        _fetch(url, target, md5, num_bytes, timeout, verbose)
    except _Rejected as error:
        cause, reason = error, str(error)
    except (OSError, http.client.HTTPException, ValueError) as error:
        cause, reason = error, _describe_failure(error, timeout)
        if isinstance(error, urllib.error.HTTPError):
            error.close()  # an HTTPError holds the open response
    else:
        return target
    raise DownloadError(
        f"Could not download Moving MNIST from {url} to {target}: {reason}{removed}. "
        f"Download {OFFICIAL_FILENAME} by hand from {OFFICIAL_URL} and place it at {target}, "
        "or use keras_convlstm.synthetic.generate_moving_mnist() offline."
    ) from cause


def find_cached_moving_mnist(
    cache_dir: str | os.PathLike | None = None,
    *,
    md5: str | None = OFFICIAL_MD5,
    num_bytes: int | None = OFFICIAL_NUM_BYTES,
    verbose: bool = False,
) -> Path | None:
    """The verified official file in the Keras cache, or None: nothing is downloaded.

    Two names are looked up in ``cache_dir``: ``mnist_test_seq.npy`` (written by :func:`download_moving_mnist`)
    and ``moving_mnist.npy`` (written by the keras.io example's ``keras.utils.get_file``). A file counts only
    if it passes the checks of :func:`download_moving_mnist`: ``num_bytes`` bytes, a .npy header of uint8
    ``(time, sequence, 64, 64)`` and the ``md5`` digest (computed once per process for an unchanged file).

    Args:
        cache_dir: the folder to look in; default :func:`default_cache_dir` (Keras' dataset cache).
        md5: expected hex md5 digest; None skips the check.
        num_bytes: expected file size in bytes; None skips the check.
        verbose: print why a cached file that exists is not used.

    Returns:
        The path of the first file that passes, or None.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for name in (OFFICIAL_FILENAME, KERAS_IO_FILENAME):
        path = directory / name
        if not path.is_file():
            continue
        problem = _verify(path, md5, num_bytes)
        if problem is None:
            return path
        if verbose:
            print(f"Not using {path}: {problem}")
    return None


SOURCES = ("auto", "official", "generated")


def choose_source(source: str = "auto", *, verbose: bool = True) -> str:
    """Resolves a data source name: "auto" becomes "official" when the official file is cached, else "generated".

    "Cached" means :func:`find_cached_moving_mnist` finds a verified copy (this package's or the keras.io
    example's) in :func:`default_cache_dir`.

    Args:
        source: "auto", "official" (the official file, downloaded if needed) or "generated" (Moving MNIST made
            on the fly by :mod:`keras_convlstm.synthetic`).
        verbose: print one line when "auto" falls back to generated data (and why a cached file is not used).

    Returns:
        "official" or "generated".
    """
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; expected one of {SOURCES}")
    if source != "auto":
        return source
    if find_cached_moving_mnist(verbose=verbose) is not None:
        return "official"
    if verbose:
        print(
            f"No verified official file ({OFFICIAL_FILENAME} or {KERAS_IO_FILENAME}) in {default_cache_dir()}: "
            "generating Moving MNIST from real MNIST digits instead."
        )
    return "generated"


def load_moving_mnist(path: str | os.PathLike | None = None, num_sequences: int | None = 1000) -> np.ndarray:
    """Reads Moving MNIST sequences, memory-mapped, as uint8 ``(sequence, time, height, width, 1)``.

    The file stores ``(time, sequence, height, width)``; the result is a read-only view of the memory-mapped
    file with the first two axes swapped and a channel axis added: no data is read until it is used and no
    float copy is made (convert per batch, e.g. with :class:`SequenceDataset` or :func:`to_float_frames`).

    Args:
        path: a .npy file in that layout; None downloads (or reuses) the official file with
            :func:`download_moving_mnist`.
        num_sequences: how many sequences to keep, from the first; None keeps all.

    Returns:
        uint8 ``(num_sequences, time, height, width, 1)`` in [0, 255], a view of a ``np.memmap``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a .npy file of uint8 frames ``(time, sequence, height, width)`` or
            ``num_sequences`` is outside [1, number of sequences in the file].
    """
    path = download_moving_mnist() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no Moving MNIST file at {path}: expected a .npy file of uint8 frames {FILE_LAYOUT} such as "
            f"{OFFICIAL_FILENAME} from {OFFICIAL_URL}"
        )
    problem = _moving_mnist_file_problem(path, frame_size=None)
    if problem is not None:
        raise ValueError(f"{path} is not a Moving MNIST file: {problem}")
    frames = np.load(path, mmap_mode="r")
    available = frames.shape[1]
    num_sequences = available if num_sequences is None else check_integer(num_sequences, "num_sequences")
    if num_sequences > available:
        raise ValueError(f"num_sequences must be in [1, {available}] for {path}, got {num_sequences}")
    return np.swapaxes(frames[:, :num_sequences], 0, 1)[..., np.newaxis]


# ---------------------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------------------


def _as_float32(frames: np.ndarray) -> np.ndarray:
    """uint8 / 255 or a float cast, in float32, without validation."""
    if frames.dtype == np.uint8:
        return np.divide(frames, np.float32(255), dtype=np.float32)
    return np.asarray(frames, dtype=np.float32)


def to_float_frames(frames: np.ndarray, *, name: str = "frames") -> np.ndarray:
    """Validates ``frames`` and returns them as float32 in [0, 1].

    Args:
        frames: ``(batch, time, height, width, channels)``, uint8 in [0, 255] (divided by 255 in float32,
            never through float64) or float in [0, 1] (cast to float32; a float32 input is returned as is).
        name: the argument name used in error messages.

    Returns:
        float32 ``(batch, time, height, width, channels)`` in [0, 1].
    """
    validate_frames(frames, name=name)
    return _as_float32(np.asarray(frames))


def create_shifted_frames(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs every frame with the next one: inputs are frames ``0..T-2``, targets frames ``1..T-1``.

    Args:
        data: ``(batch, time, height, width, channels)`` with ``time >= 2``, uint8 or float in [0, 1].

    Returns:
        ``(x, y)``, float32 ``(batch, time - 1, height, width, channels)`` in [0, 1]; both are views of one
        float32 copy of ``data``.
    """
    validate_frames(data, name="data", min_frames=2)
    frames = _as_float32(np.asarray(data))
    return frames[:, :-1], frames[:, 1:]


# ---------------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------------


def split_indices(num_sequences: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(num_sequences)`` into train and validation indices.

    A ``np.random.default_rng(seed)`` permutation is cut into ``round(num_sequences * val_fraction)``
    validation and the remaining train indices (900 / 100 for 1000 sequences and 0.1); each part is sorted,
    which keeps reads from a memory-mapped file in file order.

    Args:
        num_sequences: number of sequences, >= 2.
        val_fraction: share of validation sequences, in (0, 1).
        seed: seed of the permutation.

    Returns:
        ``(train_idx, val_idx)``: sorted int64 arrays, disjoint, together covering ``range(num_sequences)``.
    """
    num_sequences = check_integer(num_sequences, "num_sequences", minimum=2)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    num_val = int(round(num_sequences * val_fraction))
    if not 1 <= num_val <= num_sequences - 1:
        raise ValueError(
            f"val_fraction {val_fraction} of {num_sequences} sequences gives {num_val} validation and "
            f"{num_sequences - num_val} training sequences; both parts must be non-empty"
        )
    order = np.random.default_rng(check_integer(seed, "seed", minimum=0)).permutation(num_sequences)
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def split_dataset(data: np.ndarray, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Splits sequences with :func:`split_indices`: ``(data[train_idx], data[val_idx])``.

    Args:
        data: ``(batch, time, height, width, channels)``, uint8 or float in [0, 1] (a memory map works; the
            selected sequences are copied, in their dtype).
        val_fraction: share of validation sequences, in (0, 1).
        seed: seed of the split.

    Returns:
        ``(train, val)`` with the dtype of ``data``.
    """
    validate_frames(data, name="data")
    train_idx, val_idx = split_indices(len(data), val_fraction, seed)
    return data[train_idx], data[val_idx]


# ---------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------


class EpochDataset(keras.utils.PyDataset):
    """Epoch bookkeeping: the batches of an epoch are a pure function of (seed, epoch, batch index).

    ``on_epoch_end`` advances the epoch by one. Keras 3 ``fit`` also calls it once before the first epoch
    (when it resets its iterator), so training code should call ``set_epoch(epoch)`` at each epoch begin
    (e.g. from a callback's ``on_epoch_begin``) to serve epoch ``e`` exactly, including in resumed runs.
    """

    def __init__(self, batch_size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = check_integer(batch_size, "batch_size")
        self.seed = seed
        self.epoch = 0
        self._cached_permutation = (None, None)  # ((epoch, count), permutation)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose batches are served (call it at each epoch begin: resumed runs match)."""
        self.epoch = check_integer(epoch, "epoch", minimum=0)

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index must be in [0, {len(self)}), got {index}")

    def _batch_bounds(self, index: int, total: int) -> tuple[int, int]:
        self._check_index(index)
        return index * self.batch_size, min((index + 1) * self.batch_size, total)

    def _permutation(self, count: int) -> np.ndarray:
        """The shuffled order of ``range(count)`` in the current epoch, from ``default_rng([seed, epoch])``."""
        if self._cached_permutation[0] != (self.epoch, count):
            permutation = np.random.default_rng([self.seed, self.epoch]).permutation(count)
            self._cached_permutation = ((self.epoch, count), permutation)
        return self._cached_permutation[1]


def _read_only_mapping(array: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` under a read-only ``np.memmap`` (or a view of one); None for any other storage."""
    base, mode = array, None
    while isinstance(base, np.ndarray):
        mode = getattr(base, "mode", mode)
        base = base.base
    return base if isinstance(base, mmap.mmap) and mode == "r" else None


def _read_float32(storage: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """``storage[rows]`` as float32 (uint8 divided by 255).

    A read-only memory map (rank >= 2) is read one index of axis 1 (one time step) at a time and the mapped
    pages are released after each read (``madvise(MADV_DONTNEED)``; the OS page cache keeps them). Without
    that, a process streaming the 819 MB file keeps every page it touched resident, and on kernels that map
    whole large folios one batch alone can add ~0.6 GB.
    """
    mapping = _read_only_mapping(storage)
    if mapping is None or storage.ndim < 2 or not hasattr(mmap, "MADV_DONTNEED"):
        return _as_float32(np.asarray(storage[rows]))
    selected = np.arange(len(storage))[rows]
    frames = np.empty((len(selected),) + storage.shape[1:], dtype=np.float32)
    for step in range(storage.shape[1]):
        frames[:, step] = _as_float32(np.asarray(storage[selected, step]))
        mapping.madvise(mmap.MADV_DONTNEED)
    return frames


class SequenceDataset(EpochDataset):
    """Streams shifted-frame batches ``(x, y)`` from stored sequences, converting one batch at a time.

    The storage stays in its dtype (typically the uint8 memory map of :func:`load_moving_mnist`); each batch
    is read, divided by 255 in float32 and split into inputs (frames ``0..T-2``) and targets (frames
    ``1..T-1``). With ``shuffle`` the order of epoch ``e`` is the permutation drawn from
    ``np.random.default_rng([seed, e])``: a pure function of ``(seed, epoch)``.

    When the storage is a read-only memory map, the file pages a batch reads are released from the process
    right after they are read (the OS page cache still holds them), so the resident memory of a process
    streaming the 819 MB file stays near one batch instead of growing to the file size.

    Args:
        sequences: ``(num_sequences, time, height, width, channels)``, uint8 or float in [0, 1], time >= 2.
        batch_size: sequences per batch; the last batch may be smaller.
        indices: which sequences to serve (e.g. ``train_idx`` of :func:`split_indices`); default all.
        shuffle: reshuffle the order every epoch.
        seed: seed of the shuffling.
        **kwargs: ``keras.utils.PyDataset`` arguments (``workers``, ``use_multiprocessing``, ...).

    Batches:
        ``(x, y)``, float32 ``(batch, time - 1, height, width, channels)`` in [0, 1].
    """

    def __init__(
        self,
        sequences: np.ndarray,
        batch_size: int = 5,
        *,
        indices: np.ndarray | None = None,
        shuffle: bool = True,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(batch_size, seed, **kwargs)
        validate_frames(sequences, name="sequences", min_frames=2)
        self.sequences = sequences
        if indices is None:
            indices = np.arange(len(sequences))
        indices = np.asarray(indices)
        if indices.ndim != 1 or len(indices) == 0 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(
                "expected indices as a non-empty 1-D integer array, "
                f"got dtype {indices.dtype} and shape {indices.shape}"
            )
        if indices.min() < 0 or indices.max() >= len(sequences):
            raise ValueError(
                f"indices must be in [0, {len(sequences)}), got values from {indices.min()} to {indices.max()}"
            )
        self.indices = indices
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def epoch_order(self) -> np.ndarray:
        """The sequence indices in the order served during the current epoch."""
        return self.indices[self._permutation(len(self.indices))] if self.shuffle else self.indices

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self._batch_bounds(index, len(self.indices))
        frames = _read_float32(self.sequences, self.epoch_order()[start:stop])
        return frames[:, :-1], frames[:, 1:]


class GeneratedMovingMNIST(EpochDataset):
    """Fresh Moving MNIST sequences every epoch, as shifted-frame batches ``(x, y)``.

    Batch ``i`` of epoch ``e`` is generated by :func:`keras_convlstm.synthetic.generate_moving_mnist` from
    ``np.random.SeedSequence([seed, e, i])``: a pure function of ``(seed, epoch, index)``, so any batch can be
    regenerated, in any order and in any worker.

    Args:
        sequences_per_epoch: sequences per epoch; the last batch may be smaller.
        batch_size: sequences per batch.
        seed: base seed.
        num_frames: frames per sequence, >= 2.
        image_size: side of the square frames in pixels.
        num_digits: digits per sequence.
        digits: uint8 ``(num_digits_available, 28, 28)``; default the MNIST train digits of
            ``load_mnist_digits("auto", "train", verbose=False)``.
        **kwargs: ``keras.utils.PyDataset`` arguments (``workers``, ``use_multiprocessing``, ...).

    Batches:
        ``(x, y)``, float32 ``(batch, num_frames - 1, image_size, image_size, 1)`` in [0, 1].
    """

    def __init__(
        self,
        sequences_per_epoch: int = 1000,
        batch_size: int = 5,
        *,
        seed: int = 0,
        num_frames: int = 20,
        image_size: int = 64,
        num_digits: int = 2,
        digits: np.ndarray | None = None,
        **kwargs,
    ):
        super().__init__(batch_size, seed, **kwargs)
        self.sequences_per_epoch = check_integer(sequences_per_epoch, "sequences_per_epoch")
        self.num_frames = check_integer(num_frames, "num_frames", minimum=2)
        if digits is None:
            digits, _ = synthetic.load_mnist_digits("auto", "train", verbose=False)
        self.image_size = image_size
        self.num_digits = num_digits
        self.digits = digits
        # Fail now, not inside fit(), on bad sizes or digits.
        self._generate(0, 1)

    def __len__(self) -> int:
        return math.ceil(self.sequences_per_epoch / self.batch_size)

    def _generate(self, index: int, count: int) -> np.ndarray:
        return synthetic.generate_moving_mnist(
            count,
            num_frames=self.num_frames,
            image_size=self.image_size,
            num_digits=self.num_digits,
            seed=np.random.SeedSequence([self.seed, self.epoch, index]),
            digits=self.digits,
        )

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self._batch_bounds(index, self.sequences_per_epoch)
        frames = _as_float32(self._generate(index, stop - start))
        return frames[:, :-1], frames[:, 1:]


class ContextHorizonMovingMNIST(GeneratedMovingMNIST):
    """Fresh Moving MNIST batches split into given and future frames, for an encoder-forecaster.

    The sequences are exactly those of :class:`GeneratedMovingMNIST` with the same arguments (a pure function
    of seed, epoch and batch index; call ``set_epoch`` at each epoch begin).

    Args:
        sequences_per_epoch: sequences per epoch.
        batch_size: sequences per batch.
        context: frames given; the other ``num_frames - context`` frames are the targets.
        **kwargs: the other arguments of :class:`GeneratedMovingMNIST` (``seed``, ``num_frames``,
            ``image_size``, ``num_digits``, ``digits``, ...).

    Batches:
        ``(x, y)``: float32 ``(batch, context, 64, 64, 1)`` and ``(batch, num_frames - context, 64, 64, 1)``
        in [0, 1].
    """

    def __init__(self, sequences_per_epoch: int = 1000, batch_size: int = 5, *, context: int = 10, **kwargs):
        super().__init__(sequences_per_epoch, batch_size, **kwargs)
        if not 1 <= context < self.num_frames:
            raise ValueError(
                f"context must be in [1, {self.num_frames - 1}] for {self.num_frames} frames, got {context}"
            )
        self.context = context

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        inputs, shifted = super().__getitem__(index)  # frames 0..T-2 and 1..T-1
        return inputs[:, : self.context], shifted[:, self.context - 1 :]


class MovingSquareBatches(EpochDataset):
    """Fresh moving-square batches: frames ``0..T-2`` of each sequence as input, frame ``T-1`` as target.

    Batch ``i`` of epoch ``e`` is :func:`keras_convlstm.synthetic.generate_moving_squares` with seed
    ``np.random.SeedSequence([seed, e, i])``, so every step sees new squares and a run can be repeated exactly.

    Args:
        batches_per_epoch: batches per epoch.
        batch_size: sequences per batch.
        image_size: canvas side in pixels.
        num_frames: frames per sequence (``T``); the last is the target.
        seed: base seed.
        **kwargs: ``keras.utils.PyDataset`` arguments.

    Batches:
        ``(x, y)``: float32 ``(batch, num_frames - 1, image_size, image_size, 1)`` and
        ``(batch, image_size, image_size, 1)``, values 0 or 1.
    """

    def __init__(
        self,
        batches_per_epoch: int,
        batch_size: int = 8,
        image_size: int = 64,
        num_frames: int = 10,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(batch_size, seed, **kwargs)
        self.batches_per_epoch = check_integer(batches_per_epoch, "batches_per_epoch")
        self.image_size = image_size
        self.num_frames = check_integer(num_frames, "num_frames", minimum=2)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_index(index)
        squares = synthetic.generate_moving_squares(
            self.batch_size,
            self.num_frames,
            image_size=self.image_size,
            seed=np.random.SeedSequence([self.seed, self.epoch, index]),
        )
        frames = to_float_frames(squares)
        return frames[:, :-1], frames[:, -1]


def _is_uint8_frames(array: np.ndarray) -> bool:
    return array.dtype == np.uint8 and array.ndim >= 4


class ArrayDataset(EpochDataset):
    """Batches of given ``(inputs, targets)`` pairs, reshuffled every epoch as a pure function of (seed, epoch).

    For data that is not a set of sequences to shift: the moving-square pairs (frames ``0..8`` -> frame 9),
    the noisy-squares movies and their shifted targets, clips and labels.

    Args:
        inputs: array whose first axis indexes examples; uint8 frames (rank >= 4) are divided by 255 per batch.
        targets: array with the same first-axis length (frames likewise; labels are passed through).
        batch_size: examples per batch; the last batch may be smaller.
        shuffle: reshuffle the order every epoch.
        seed: seed of the shuffling.
        **kwargs: ``keras.utils.PyDataset`` arguments.

    Batches:
        ``(inputs[chosen], targets[chosen])``, uint8 frames as float32 in [0, 1], anything else unchanged.
    """

    def __init__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        batch_size: int = 5,
        *,
        shuffle: bool = True,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(batch_size, seed, **kwargs)
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        if inputs.ndim == 0 or targets.ndim == 0 or len(inputs) != len(targets) or len(inputs) == 0:
            raise ValueError(
                "expected inputs and targets with the same non-zero number of examples on their first axis, "
                f"got shapes {inputs.shape} and {targets.shape}"
            )
        self.arrays = (inputs, targets)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.arrays[0]) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        count = len(self.arrays[0])
        start, stop = self._batch_bounds(index, count)
        chosen = np.sort(self._permutation(count)[start:stop]) if self.shuffle else slice(start, stop)
        return tuple(_read_float32(part, chosen) if _is_uint8_frames(part) else part[chosen] for part in self.arrays)


# ---------------------------------------------------------------------------------------------------------
# One entry point: the official file if cached, else generated
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MovingMNISTData:
    """Training and validation data from one source, as returned by :func:`load_or_generate_moving_mnist`.

    Attributes:
        source: "official" or "generated", the source actually used.
        train: shifted-frame batches ``(x, y)``, float32 ``(batch, 19, 64, 64, 1)``: a :class:`SequenceDataset`
            over the official training split, or a :class:`GeneratedMovingMNIST` that makes fresh sequences
            from MNIST training digits every epoch.
        validation: uint8 ``(num_validation, 20, 64, 64, 1)``: the official validation split, or sequences
            generated from MNIST test digits (no digit seen in training) with seed ``HELD_OUT_SEED + seed``.
    """

    source: str
    train: SequenceDataset | GeneratedMovingMNIST
    validation: np.ndarray

    @functools.cached_property
    def sequences(self) -> np.ndarray:
        """uint8 ``(num_sequences, 20, 64, 64, 1)``, the sequences the training split is drawn from.

        Official: the file's first ``num_sequences``, memory-mapped (``train`` reads its training split).
        Generated: one fixed draw of ``num_sequences`` from the training digits with ``seed``, made on first use
        (``train`` itself makes new sequences every epoch).
        """
        if isinstance(self.train, SequenceDataset):
            return self.train.sequences
        return synthetic.generate_moving_mnist(
            self.train.sequences_per_epoch, seed=self.train.seed, digits=self.train.digits
        )


def load_or_generate_moving_mnist(
    source: str = "auto",
    num_sequences: int = 1000,
    *,
    num_validation: int | None = None,
    val_fraction: float = 0.1,
    batch_size: int = 5,
    seed: int = 0,
    digit_source: str = "auto",
    verbose: bool = True,
) -> MovingMNISTData:
    """Moving MNIST for training and validation: the official file if it is cached (verified), else generated.

    ``source="auto"`` resolves with :func:`choose_source`: a verified copy of the official file in the Keras
    cache (under either name, see :func:`find_cached_moving_mnist`) is used, otherwise sequences are generated
    from real MNIST digits; nothing is downloaded unless ``source="official"``.

    - official: the first ``num_sequences`` sequences of the file, split with :func:`split_indices`
      (``val_fraction``, ``seed``); ``train`` streams the training part, ``validation`` is the validation part
      (its first ``num_validation`` sequences when given).
    - generated: ``train`` makes ``num_sequences`` fresh sequences per epoch from the MNIST training digits;
      ``validation`` holds ``num_validation`` sequences (default ``round(num_sequences * val_fraction)``)
      generated from the MNIST test digits.

    Args:
        source: "auto", "official" (downloaded if needed) or "generated".
        num_sequences: official: how many sequences of the file to use; generated: sequences per epoch.
        num_validation: at most this many validation sequences; None keeps the whole split (official) or
            ``round(num_sequences * val_fraction)`` (generated).
        val_fraction: share of the official sequences used for validation, in (0, 1).
        batch_size: sequences per training batch.
        seed: seed of the split, the shuffling and the generated sequences.
        digit_source: digits of generated data, see :func:`keras_convlstm.synthetic.load_mnist_digits`.
        verbose: print the source used and where generated digits come from.

    Returns:
        A :class:`MovingMNISTData`.
    """
    source = choose_source(source, verbose=verbose)
    if num_validation is not None:
        num_validation = check_integer(num_validation, "num_validation")
    if source == "official":
        sequences = load_moving_mnist(download_moving_mnist(verbose=verbose), num_sequences=num_sequences)
        train_idx, val_idx = split_indices(len(sequences), val_fraction, seed)
        train = SequenceDataset(sequences, batch_size, indices=train_idx, seed=seed)
        validation = sequences[val_idx[:num_validation]]
    else:
        train_digits, _ = synthetic.load_mnist_digits(digit_source, "train", verbose=verbose)
        test_digits, _ = synthetic.load_mnist_digits(digit_source, "test", verbose=verbose)
        train = GeneratedMovingMNIST(num_sequences, batch_size, seed=seed, digits=train_digits)
        count = round(num_sequences * val_fraction) if num_validation is None else num_validation
        validation = synthetic.generate_moving_mnist(
            max(1, count), seed=synthetic.HELD_OUT_SEED + seed, digits=test_digits
        )
    if verbose:
        print(f"Data source: {source}")
    return MovingMNISTData(source, train, validation)
