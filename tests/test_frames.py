"""Tests of keras_convlstm.frames: the checks of frame batches and single movies, and their dtype conversion."""

import numpy as np
import pytest

from keras_convlstm import frames as frames_module

# --------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("frames", "error", "match"),
    [
        (
            np.zeros((20, 64, 64, 1), np.uint8),
            ValueError,
            r"\(batch, time, height, width, channels\), got shape \(20, 64, 64, 1\)",
        ),
        (np.zeros((1, 2, 3, 8, 8, 1), np.uint8), ValueError, r"got shape \(1, 2, 3, 8, 8, 1\)"),
        (np.zeros((2, 5, 1, 16, 16), np.uint8), ValueError, "channels-last.*looks channels-first"),
        (np.zeros((2, 5, 3, 16, 16), np.float32), ValueError, "channels-last.*looks channels-first"),
        (np.zeros((2, 1, 8, 8, 1), np.uint8), ValueError, "at least 2 time steps, got 1"),
        (np.full((2, 3, 8, 8, 1), np.nan, np.float32), ValueError, "found 384 NaN or infinite"),
        (np.where(np.eye(8)[None, None, :, :, None] > 0, np.inf, 0.5).repeat(2, 1), ValueError, "found 16 NaN or inf"),
        (np.linspace(-0.5, 1.5, 2 * 3 * 64).reshape(2, 3, 8, 8, 1), ValueError, r"outside \(min -0.5, max 1.5\)"),
        (np.zeros((2, 3, 8, 8, 1), np.int32), TypeError, "uint8.*or float.*got int32"),
        (np.zeros((0, 3, 8, 8, 1), np.uint8), ValueError, "non-empty"),
    ],
    ids=[
        "4-d",
        "6-d",
        "channels-first",
        "channels-first-rgb",
        "too-short",
        "nan",
        "inf",
        "out-of-range",
        "int32",
        "empty",
    ],
)
def test_validate_frames_rejects_bad_input(frames, error, match):
    with pytest.raises(error, match=match):
        frames_module.validate_frames(frames, min_frames=2)


def test_out_of_range_error_counts_the_values():
    frames = np.full((1, 2, 4, 4, 1), 0.5, np.float32)
    frames[0, 0, 0, :3] = 1.25
    with pytest.raises(ValueError, match=r"found 3 values outside \(min 0.5, max 1.25\)"):
        frames_module.to_float_frames(frames, name="targets")


def test_to_float_frames_divides_uint8_in_float32():
    frames = np.arange(256, dtype=np.uint8).reshape(1, 4, 8, 8, 1)
    converted = frames_module.to_float_frames(frames)
    assert converted.dtype == np.float32
    np.testing.assert_array_equal(converted, frames.astype(np.float32) / np.float32(255))
    floats = np.random.default_rng(0).random((1, 2, 4, 4, 1))
    assert frames_module.to_float_frames(floats).dtype == np.float32
    np.testing.assert_allclose(frames_module.to_float_frames(floats), floats, rtol=1e-7)


def test_float64_conversion_is_the_exact_division():
    frames = np.arange(256, dtype=np.uint8).reshape(1, 4, 8, 8, 1)
    converted = frames_module.to_float_frames(frames, dtype=np.float64)
    assert converted.dtype == np.float64
    np.testing.assert_array_equal(converted, frames.astype(np.float64) / 255.0)


def test_checked_arrays_come_back_without_a_copy():
    floats = np.random.default_rng(0).random((2, 3, 4, 4, 1)).astype(np.float32)
    assert frames_module.validate_frames(floats) is floats
    assert frames_module.to_float_frames(floats) is floats
    assert frames_module.as_float(floats) is floats
    as_lists = frames_module.validate_frames(floats.tolist())
    np.testing.assert_array_equal(as_lists, floats.astype(np.float64))


def test_frame_layout_ignores_dtype_and_values():
    """The baselines take any dtype: only the shape is checked."""
    ints = np.full((2, 3, 4, 4, 1), 7, np.int64)
    assert frames_module.check_frame_layout(ints, name="context") is ints
    with pytest.raises(ValueError, match=r"expected context of shape \(batch, time, height, width, channels\)"):
        frames_module.check_frame_layout(ints[0], name="context")
    with pytest.raises(ValueError, match="at least 4 time steps, got 3"):
        frames_module.check_frame_layout(ints, min_frames=4)


@pytest.mark.parametrize(
    ("frames", "error", "match"),
    [
        (np.zeros((4, 8), np.uint8), ValueError, r"\(time, height, width\).*got shape \(4, 8\)"),
        (np.zeros((4, 8, 8, 2), np.uint8), ValueError, r"got shape \(4, 8, 8, 2\)"),
        (np.zeros((0, 8, 8), np.uint8), ValueError, "time >= 1"),
        (np.zeros((2, 8, 8), np.int16), TypeError, "got dtype int16"),
        (np.full((2, 8, 8), np.nan), ValueError, "got 128 NaN values"),
    ],
    ids=["2-d", "two-channels", "no-frames", "int16", "nan"],
)
def test_validate_sequence_rejects_bad_input(frames, error, match):
    with pytest.raises(error, match=match):
        frames_module.validate_sequence(frames)


def test_validate_sequence_allows_floats_outside_the_range():
    """Pictures clip them: a prediction slightly above 1 is still shown."""
    movie = np.full((2, 8, 8, 3), 1.25, np.float32)
    assert frames_module.validate_sequence(movie) is movie
