"""The official Moving MNIST file: download, verification, loading.

The Keras example reads ``mnist_test_seq.npy``: uint8 frames of shape ``(time, sequence, height, width)`` =
``(20, 10000, 64, 64)``. Here the file is downloaded once into the Keras cache and verified (size, md5, .npy
header) before it is used (:func:`download_moving_mnist`; :func:`find_cached_moving_mnist` looks for a verified
copy without downloading, and :func:`choose_source` decides between the file and generated data), and it is read
memory-mapped: :func:`load_moving_mnist` returns a uint8 view of shape ``(sequence, time, height, width, 1)``
without copying. The float32 conversion happens per batch in :class:`keras_convlstm.data.SequenceDataset`
(dividing the whole file by 255 in float64, as the example does, takes ~6.5 GB).
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import math
import os
import shutil
import socket
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from keras_convlstm.checks import check_integer
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


def _announced_size(response: http.client.HTTPResponse, num_bytes: int | None) -> int | None:
    """The body size the server announces (None if it does not); rejects an HTML page or a size other than
    ``num_bytes`` before any byte of the body is read."""
    content_type = response.headers.get("Content-Type", "")
    length = response.headers.get("Content-Length", "")
    announced = int(length) if length.isdigit() else None
    if "html" in content_type.lower():
        raise _Rejected(f"the server sent an HTML page (Content-Type {content_type!r}) instead of a .npy file")
    if num_bytes is not None and announced is not None and announced != num_bytes:
        raise _Rejected(f"the server announces {announced:,} bytes, expected {num_bytes:,}")
    return announced


def _fetch(url: str, target: Path, md5: str | None, num_bytes: int | None, timeout: float, verbose: bool) -> None:
    """Streams ``url`` into a staging folder beside ``target``, verifies the file, then moves it into place; the
    staging folder is removed whatever happens."""
    from tqdm.auto import tqdm  # only a download needs it

    request = urllib.request.Request(url, headers={"User-Agent": "keras_convlstm"})
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
    staged = staging / target.name
    try:
        # The timeout bounds the connection and each read; urlopen raises HTTPError for a status other than 2xx.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            announced = _announced_size(response, num_bytes)
            progress = tqdm(
                total=announced, desc=target.name, unit="B", unit_scale=True, unit_divisor=1024, disable=not verbose
            )
            with open(staged, "wb") as handle, progress:
                while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                    handle.write(chunk)
                    progress.update(len(chunk))
        received = staged.stat().st_size
        if announced is not None and received != announced:  # the server closed the connection early
            raise _Rejected(f"the body was truncated: {received:,} bytes read, {announced:,} announced")
        problem = _verify(staged, md5, num_bytes)
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

    The download streams ``urllib.request.urlopen(url, timeout=timeout)`` into a hidden staging folder in
    ``cache_dir`` (a tqdm progress bar on stderr when ``verbose``): the headers are looked at before the body (no
    HTML page, the announced size is ``num_bytes``), then the file must have the announced size, a .npy header of
    uint8 ``(time, sequence, 64, 64)`` matching its size and the ``md5`` digest before it is moved into place. No
    partial file is left behind on failure, and no process-wide setting (urllib's opener, ``sys.stdout``) changes.
    A download is not resumed: an interrupted one starts again from the first byte.

    Args:
        cache_dir: folder of the cached file; default :func:`default_cache_dir` (Keras' dataset cache).
        url: where to download from.
        md5: expected hex md5 digest; None skips the check (for a smaller file at another ``url``).
        num_bytes: expected file size in bytes; None skips the check.
        timeout: seconds to wait for the connection and for each read.
        verbose: show a progress bar (on stderr) and say when a cached file is replaced.

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
            print(f"Downloading {url} to {target}", file=sys.stderr)
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
    float copy is made (convert per batch, e.g. with :class:`keras_convlstm.data.SequenceDataset` or
    :func:`keras_convlstm.frames.to_float_frames`).

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
