"""Training data: shifted frames, seeded splits and the datasets that serve batches to ``fit``.

The datasets (``keras.utils.PyDataset``) serve batches that are a pure function of (seed, epoch, batch index):
stored sequences (:class:`SequenceDataset`, e.g. the memory-mapped official file of
:func:`keras_convlstm.official_file.load_moving_mnist`, converted to float32 one batch at a time), given arrays
(:class:`ArrayDataset`) and Moving MNIST generated afresh every epoch as shifted frames
(:class:`GeneratedMovingMNIST`). :func:`load_or_generate_moving_mnist` is the one entry point for training and
validation data: the official file if a verified copy is cached, else generated sequences.

Frames everywhere are channels-last ``(batch, time, height, width, channels)``, either uint8 in [0, 255] or
float in [0, 1], checked and converted by :mod:`keras_convlstm.frames` (each dataset reads and converts one batch
at a time, and each batch comes from arrays checked once, when the dataset is made). The datasets share
:class:`EpochDataset`, whose batches are a pure function of (seed, epoch, batch index).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import mmap

import keras
import numpy as np

from keras_convlstm import mnist_digits, synthetic
from keras_convlstm.checks import check_integer
from keras_convlstm.frames import as_float, validate_frames
from keras_convlstm.official_file import choose_source, download_moving_mnist, load_moving_mnist


def create_shifted_frames(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs every frame with the next one: inputs are frames ``0..T-2``, targets frames ``1..T-1``.

    Args:
        data: ``(batch, time, height, width, channels)`` with ``time >= 2``, uint8 or float in [0, 1].

    Returns:
        ``(x, y)``, float32 ``(batch, time - 1, height, width, channels)`` in [0, 1]; both are views of one
        float32 copy of ``data``.
    """
    frames = as_float(validate_frames(data, name="data", min_frames=2))
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
        return as_float(np.asarray(storage[rows]))
    selected = np.arange(len(storage))[rows]
    frames = np.empty((len(selected),) + storage.shape[1:], dtype=np.float32)
    for step in range(storage.shape[1]):
        frames[:, step] = as_float(np.asarray(storage[selected, step]))
        mapping.madvise(mmap.MADV_DONTNEED)
    return frames


class SequenceDataset(EpochDataset):
    """Streams shifted-frame batches ``(x, y)`` from stored sequences, converting one batch at a time.

    The storage stays in its dtype (typically the uint8 memory map of
    :func:`keras_convlstm.official_file.load_moving_mnist`); each batch
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
            digits, _ = mnist_digits.load_mnist_digits("auto", "train", verbose=False)
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
        frames = as_float(self._generate(index, stop - start))
        return frames[:, :-1], frames[:, 1:]


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

    ``source="auto"`` resolves with :func:`keras_convlstm.official_file.choose_source`: a verified copy of the
    official file in the Keras cache (under either name, see
    :func:`keras_convlstm.official_file.find_cached_moving_mnist`) is used, otherwise sequences are generated
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
        digit_source: digits of generated data, see :func:`keras_convlstm.mnist_digits.load_mnist_digits`.
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
        train_digits, _ = mnist_digits.load_mnist_digits(digit_source, "train", verbose=verbose)
        test_digits, _ = mnist_digits.load_mnist_digits(digit_source, "test", verbose=verbose)
        train = GeneratedMovingMNIST(num_sequences, batch_size, seed=seed, digits=train_digits)
        count = round(num_sequences * val_fraction) if num_validation is None else num_validation
        validation = synthetic.generate_moving_mnist(
            max(1, count), seed=synthetic.HELD_OUT_SEED + seed, digits=test_digits
        )
    if verbose:
        print(f"Data source: {source}")
    return MovingMNISTData(source, train, validation)
