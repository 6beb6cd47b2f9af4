"""Tests of keras_convlstm.data: splits, shifted frames, datasets and the entry point that
loads or generates Moving MNIST."""

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_convlstm import data, mnist_digits, official_file, synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- streaming


@pytest.mark.slow
def test_streaming_the_full_size_file_stays_under_1_5_gb(tmp_path):
    """A full (20, 10000, 64, 64) file streamed for one epoch: no float (or uint8) copy of the whole file."""
    path = tmp_path / "mnist_test_seq.npy"
    writer = textwrap.dedent(
        f"""
        import numpy as np
        shape = (20, 10000, 64, 64)
        header = np.lib.format.open_memmap({str(path)!r}, mode="w+", dtype=np.uint8, shape=shape)
        offset = header.offset
        del header
        # Frame (t, s) is filled with (s + t) % 256; written one time step at a time with plain writes.
        sequence_values = np.arange(shape[1], dtype=np.uint8)[:, None, None] * np.ones((64, 64), np.uint8)
        with open({str(path)!r}, "r+b") as handle:
            handle.seek(offset)
            for step in range(shape[0]):
                handle.write((sequence_values + np.uint8(step)).tobytes())
        """
    )
    reader = textwrap.dedent(
        f"""
        import numpy as np
        from keras_convlstm import data, official_file
        sequences = official_file.load_moving_mnist({str(path)!r}, num_sequences=None)
        assert sequences.shape == (10000, 20, 64, 64, 1)
        dataset = data.SequenceDataset(sequences, batch_size=32, seed=0)
        order = dataset.epoch_order()
        seen = 0
        for index in range(len(dataset)):
            x, y = dataset[index]
            chosen = order[index * 32 : index * 32 + len(x)]
            expected = ((chosen[:, None] + np.arange(20)) % 256).astype(np.float32) / 255
            np.testing.assert_array_equal(x[:, :, 5, 7, 0], expected[:, :-1])
            np.testing.assert_array_equal(y[:, :, 63, 0, 0], expected[:, 1:])
            seen += len(x)
        assert seen == 10000
        # VmHWM is this address space's peak; getrusage's ru_maxrss would also count the forking parent's peak.
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        print(int(status["VmHWM"].split()[0]), int(status["RssAnon"].split()[0]))
        """
    )
    try:
        subprocess.run([sys.executable, "-c", writer], check=True, cwd=REPO_ROOT)
        assert path.stat().st_size > 819_200_000
        result = subprocess.run(
            [sys.executable, "-c", reader], check=True, cwd=REPO_ROOT, capture_output=True, text=True
        )
    finally:
        path.unlink(missing_ok=True)
    peak_kb, anon_kb = map(int, result.stdout.splitlines()[-1].split())
    print(f"peak RSS {peak_kb / 1e6:.2f} GB, anonymous RSS at the end {anon_kb / 1e6:.2f} GB")
    assert peak_kb < 1_500_000
    assert anon_kb < 700_000


# --------------------------------------------------------------------------------------------- splits, shifted frames


def test_split_indices_are_seeded_disjoint_and_covering():
    train, val = data.split_indices(1000, 0.1, seed=3)
    assert len(train) == 900 and len(val) == 100
    assert train.dtype == val.dtype == np.int64
    assert not set(train) & set(val)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
    again = data.split_indices(1000, 0.1, seed=3)
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(data.split_indices(1000, 0.1, seed=4)[1], val)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((10, 0.0), r"val_fraction must be in \(0, 1\), got 0.0"),
        ((10, 1.0), r"val_fraction must be in \(0, 1\), got 1.0"),
        ((10, 0.01), "gives 0 validation"),
        ((10, 0.99), "gives 10 validation and 0 training"),
        ((1, 0.5), "num_sequences must be an integer >= 2, got 1"),
    ],
)
def test_split_indices_rejects_empty_parts(args, match):
    with pytest.raises(ValueError, match=match):
        data.split_indices(*args)


def test_split_dataset_selects_the_split_sequences():
    sequences = np.random.default_rng(0).integers(0, 256, size=(20, 3, 4, 4, 1), dtype=np.uint8)
    train, val = data.split_dataset(sequences, val_fraction=0.25, seed=1)
    train_idx, val_idx = data.split_indices(20, 0.25, seed=1)
    assert train.dtype == np.uint8 and len(train) == 15 and len(val) == 5
    np.testing.assert_array_equal(train, sequences[train_idx])
    np.testing.assert_array_equal(val, sequences[val_idx])


@pytest.mark.parametrize("num_frames", [2, 20])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_create_shifted_frames(num_frames, dtype):
    raw = np.random.default_rng(num_frames).integers(0, 256, size=(3, num_frames, 8, 8, 1), dtype=np.uint8)
    sequences = raw if dtype == np.uint8 else raw / 255.0
    x, y = data.create_shifted_frames(sequences)
    assert x.shape == y.shape == (3, num_frames - 1, 8, 8, 1)
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(x, raw[:, :-1] / 255, rtol=1e-6)
    np.testing.assert_allclose(y, raw[:, 1:] / 255, rtol=1e-6)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_create_shifted_frames_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2 time steps, got 1"):
        data.create_shifted_frames(np.zeros((3, 1, 8, 8, 1), np.uint8))


# --------------------------------------------------------------------------------------------- datasets


def _labelled_sequences(count=10, num_frames=6):
    """uint8 sequences whose pixels encode (sequence, frame): value = 10 * sequence + frame."""
    values = 10 * np.arange(count)[:, None] + np.arange(num_frames)
    return np.broadcast_to(values[:, :, None, None, None], (count, num_frames, 4, 4, 1)).astype(np.uint8)


def _epoch(dataset) -> list:
    return [dataset[index] for index in range(len(dataset))]


def test_sequence_dataset_batches():
    sequences = _labelled_sequences()
    dataset = data.SequenceDataset(sequences, batch_size=4, seed=0)
    assert isinstance(dataset, keras.utils.PyDataset)
    assert len(dataset) == 3
    batches = _epoch(dataset)
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    order = []
    for x, y in batches:
        assert x.shape[1:] == y.shape[1:] == (5, 4, 4, 1) and x.dtype == y.dtype == np.float32
        ids = np.rint(x[:, 0, 0, 0, 0] * 255).astype(int) // 10
        np.testing.assert_array_equal(x, sequences[ids, :-1] / np.float32(255))
        np.testing.assert_array_equal(y, sequences[ids, 1:] / np.float32(255))
        order.extend(ids)
    assert sorted(order) == list(range(10)) and order != list(range(10))
    np.testing.assert_array_equal(order, dataset.epoch_order())
    with pytest.raises(IndexError):
        dataset[3]


def test_sequence_dataset_epochs_are_reproducible_and_differ():
    sequences = _labelled_sequences(count=30)
    dataset = data.SequenceDataset(sequences, batch_size=7, seed=5)
    first = dataset.epoch_order().copy()
    dataset.on_epoch_end()
    assert dataset.epoch == 1
    second = dataset.epoch_order().copy()
    assert not np.array_equal(first, second)
    dataset.set_epoch(0)
    np.testing.assert_array_equal(dataset.epoch_order(), first)
    other = data.SequenceDataset(sequences, batch_size=7, seed=5)
    other.set_epoch(1)
    for (x1, y1), (x2, y2) in zip(_epoch(other), (dataset.set_epoch(1), _epoch(dataset))[1], strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(data.SequenceDataset(sequences, 7, seed=6).epoch_order(), first)


def test_sequence_dataset_indices_and_no_shuffle():
    sequences = _labelled_sequences()
    dataset = data.SequenceDataset(sequences.astype(np.float32) / 255, batch_size=2, indices=[7, 1, 4], shuffle=False)
    assert len(dataset) == 2
    np.testing.assert_array_equal(dataset.epoch_order(), [7, 1, 4])
    x, _ = dataset[1]
    np.testing.assert_allclose(x, sequences[[4], :-1] / 255, rtol=1e-6)
    with pytest.raises(ValueError, match=r"indices must be in \[0, 10\)"):
        data.SequenceDataset(sequences, indices=[3, 10])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        data.SequenceDataset(sequences, batch_size=0)
    with pytest.raises(ValueError, match="at least 2 time steps"):
        data.SequenceDataset(sequences[:, :1])


def test_sequence_dataset_streams_from_a_memory_map(small_file):
    sequences = official_file.load_moving_mnist(small_file["path"], num_sequences=None)
    dataset = data.SequenceDataset(sequences, batch_size=4, shuffle=False)
    x, y = dataset[1]
    expected = np.swapaxes(small_file["frames"], 0, 1)[4:6, :, :, :, None] / np.float32(255)
    np.testing.assert_array_equal(x, expected[:, :-1])
    np.testing.assert_array_equal(y, expected[:, 1:])


def test_array_dataset_serves_pairs_in_a_seeded_order():
    inputs = _labelled_sequences(count=9, num_frames=3)
    labels = np.arange(9) * 10
    dataset = data.ArrayDataset(inputs, labels, batch_size=4, seed=2)
    assert len(dataset) == 3
    served = []
    for x, y in _epoch(dataset):
        assert x.dtype == np.float32 and y.dtype == labels.dtype
        np.testing.assert_array_equal(x, inputs[y // 10] / np.float32(255))
        served.extend(y // 10)
    assert sorted(served) == list(range(9)) and served != list(range(9))
    dataset.on_epoch_end()
    assert [int(v) for _, y in _epoch(dataset) for v in y // 10] != served
    dataset.set_epoch(0)
    assert [int(v) for _, y in _epoch(dataset) for v in y // 10] == served
    in_order = data.ArrayDataset(inputs, labels, batch_size=4, shuffle=False)
    np.testing.assert_array_equal(in_order[2][1], [80])
    with pytest.raises(ValueError, match=r"same non-zero number of examples.*\(9, 3, 4, 4, 1\) and \(8,\)"):
        data.ArrayDataset(inputs, labels[:8])


def test_array_dataset_reads_a_memory_map_in_float32(small_file):
    frames = official_file.load_moving_mnist(small_file["path"], num_sequences=None)
    dataset = data.ArrayDataset(frames[:, :10], frames[:, 10:], batch_size=6, shuffle=False)
    x, y = dataset[0]
    expected = np.swapaxes(small_file["frames"], 0, 1)[..., None] / np.float32(255)
    np.testing.assert_array_equal(x, expected[:, :10])
    np.testing.assert_array_equal(y, expected[:, 10:])


@pytest.fixture(scope="module")
def offline_digits():
    return mnist_digits.load_mnist_digits("offline", "train", verbose=False)[0]


def test_generated_moving_mnist_batches_are_fresh_and_deterministic(offline_digits):
    kwargs = {"seed": 7, "num_frames": 6, "image_size": 32, "digits": offline_digits[:, ::2, ::2].copy()}
    dataset = data.GeneratedMovingMNIST(11, batch_size=4, **kwargs)
    assert len(dataset) == 3
    first = _epoch(dataset)
    assert [len(x) for x, _ in first] == [4, 4, 3]
    x, y = first[0]
    assert x.shape == (4, 5, 32, 32, 1) and x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    reference = synthetic.generate_moving_mnist(
        4, 6, 32, 2, seed=np.random.SeedSequence([7, 0, 0]), digits=kwargs["digits"]
    )
    np.testing.assert_array_equal(x, reference[:, :-1] / np.float32(255))
    assert not np.array_equal(first[0][0], first[1][0][:4])
    dataset.on_epoch_end()
    second = _epoch(dataset)
    assert not np.array_equal(first[0][0], second[0][0])
    other = data.GeneratedMovingMNIST(11, batch_size=4, **kwargs)
    other.set_epoch(1)
    np.testing.assert_array_equal(other[2][0], second[2][0])  # any batch, any order
    dataset.set_epoch(0)
    np.testing.assert_array_equal(dataset[0][1], first[0][1])


def test_generated_moving_mnist_validates_its_arguments(offline_digits):
    with pytest.raises(ValueError, match="num_frames must be an integer >= 2, got 1"):
        data.GeneratedMovingMNIST(num_frames=1, digits=offline_digits)
    with pytest.raises(ValueError, match="image_size must be larger than digit_size"):
        data.GeneratedMovingMNIST(image_size=20, digits=offline_digits)


def test_keras_fit_serves_the_epoch_set_at_each_epoch_begin(offline_digits):
    """Keras calls on_epoch_end once before training; a set_epoch callback keeps the epoch numbers exact."""

    class Recording(data.GeneratedMovingMNIST):
        def __getitem__(self, index):
            self.served.append((self.epoch, int(index)))
            return super().__getitem__(index)

    digits = offline_digits[:, 4:-4:2, 4:-4:2].copy()  # 10x10 digits on a 16x16 canvas
    train = Recording(12, batch_size=4, num_frames=4, image_size=16, digits=digits)
    train.served = []
    validation = data.SequenceDataset(_labelled_sequences(4, 4).repeat(4, 2).repeat(4, 3), 2, shuffle=False)
    model = keras.Sequential([keras.Input((None, 16, 16, 1)), keras.layers.Conv3D(1, 1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam")
    set_epoch = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: train.set_epoch(epoch))
    history = model.fit(train, validation_data=validation, epochs=2, verbose=0, callbacks=[set_epoch])
    assert len(history.history["loss"]) == 2 and math.isfinite(history.history["val_loss"][-1])
    assert sorted(train.served[-6:]) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert train.epoch == 2


def test_load_or_generate_uses_the_cached_official_file(small_file, keras_cache, accept_small_file_as_official, capsys):
    (keras_cache / official_file.KERAS_IO_FILENAME).write_bytes(small_file["content"])
    accept_small_file_as_official()
    mnist = data.load_or_generate_moving_mnist(num_sequences=5, val_fraction=0.4, batch_size=2, seed=3)
    assert "Data source: official" in capsys.readouterr().out
    assert mnist.source == "official"
    expected = np.swapaxes(small_file["frames"], 0, 1)[:5, ..., None]
    np.testing.assert_array_equal(mnist.sequences, expected)
    train_idx, val_idx = data.split_indices(5, 0.4, seed=3)
    np.testing.assert_array_equal(mnist.validation, expected[val_idx])
    assert isinstance(mnist.train, data.SequenceDataset) and mnist.train.batch_size == 2
    np.testing.assert_array_equal(np.sort(mnist.train.epoch_order()), train_idx)
    x, y = mnist.train[0]
    np.testing.assert_array_equal(x, expected[mnist.train.epoch_order()[:2], :-1] / np.float32(255))
    first = data.load_or_generate_moving_mnist(num_sequences=5, num_validation=1, val_fraction=0.4, verbose=False)
    np.testing.assert_array_equal(first.validation, expected[data.split_indices(5, 0.4, seed=0)[1][:1]])


def test_load_or_generate_generates_without_a_cached_file(capsys):
    mnist = data.load_or_generate_moving_mnist(
        "auto", 6, num_validation=3, batch_size=4, seed=2, digit_source="offline"
    )
    printed = capsys.readouterr().out
    assert "No verified official file" in printed and "Data source: generated" in printed
    assert mnist.source == "generated"
    assert isinstance(mnist.train, data.GeneratedMovingMNIST)
    assert (mnist.train.sequences_per_epoch, mnist.train.batch_size, mnist.train.seed) == (6, 4, 2)
    test_digits, _ = mnist_digits.load_mnist_digits("offline", "test", verbose=False)
    reference = synthetic.generate_moving_mnist(3, seed=synthetic.HELD_OUT_SEED + 2, digits=test_digits)
    assert mnist.validation.shape == (3, 20, 64, 64, 1) and mnist.validation.dtype == np.uint8
    np.testing.assert_array_equal(mnist.validation, reference)
    train_digits, _ = mnist_digits.load_mnist_digits("offline", "train", verbose=False)
    np.testing.assert_array_equal(mnist.sequences, synthetic.generate_moving_mnist(6, seed=2, digits=train_digits))
    assert mnist.sequences is mnist.sequences  # generated once
    default = data.load_or_generate_moving_mnist("generated", 20, digit_source="offline", verbose=False)
    assert len(default.validation) == 2  # round(20 * 0.1)
