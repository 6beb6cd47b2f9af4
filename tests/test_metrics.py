import numpy as np
import pytest
from skimage.metrics import structural_similarity

from keras_convlstm import metrics

SHAPE = (3, 4, 9, 11, 1)


def _pair(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(shape)
    prediction = np.clip(truth + 0.3 * rng.standard_normal(shape), 0.0, 1.0)
    return prediction, truth


def _per_frame_loop(function, prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Applies ``function(p_frame, t_frame) -> float`` to every frame with loops, then averages the batch."""
    batch, horizon = prediction.shape[:2]
    values = np.zeros((batch, horizon))
    for b in range(batch):
        for k in range(horizon):
            values[b, k] = function(prediction[b, k], truth[b, k])
    return values.mean(axis=0)


@pytest.mark.parametrize(
    ("metric", "frame_function"),
    [
        (metrics.mse_per_frame, lambda p, t: np.sum((p - t) ** 2)),
        (metrics.mae_per_frame, lambda p, t: np.sum(np.abs(p - t))),
        (metrics.mse_per_pixel, lambda p, t: np.mean((p - t) ** 2)),
        (metrics.mae_per_pixel, lambda p, t: np.mean(np.abs(p - t))),
        (metrics.psnr, lambda p, t: 10 * np.log10(1.0 / np.mean((p - t) ** 2))),
        (metrics.correlation, lambda p, t: np.sum(p * t) / np.sqrt(np.sum(p * p) * np.sum(t * t) + 1e-9)),
    ],
)
def test_per_frame_metrics_match_loop_reference(metric, frame_function):
    prediction, truth = _pair(seed=1)
    values = metric(prediction, truth)
    assert values.shape == (SHAPE[1],)
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, _per_frame_loop(frame_function, prediction, truth), rtol=1e-12)


def _structured_images() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    rows, columns = np.mgrid[0:32, 0:40]
    gradient = (rows + columns) / (31 + 39)
    checker = ((rows // 4 + columns // 4) % 2).astype(np.float64)
    square = np.zeros((32, 40))
    square[8:20, 10:25] = 1.0
    shifted_square = np.roll(square, (2, 3), axis=(0, 1))
    return [
        (rng.random((32, 40)), rng.random((32, 40))),
        (gradient, np.clip(gradient + 0.05 * rng.standard_normal((32, 40)), 0, 1)),
        (checker, 1.0 - checker),
        (square, shifted_square),
        (np.zeros((32, 40)), square),
        (np.full((32, 40), 0.3), np.full((32, 40), 0.3)),
    ]


def test_ssim_matches_scikit_image_per_frame():
    pairs = _structured_images()
    prediction = np.stack([p for p, _ in pairs])[None, ..., None]
    truth = np.stack([t for _, t in pairs])[None, ..., None]
    expected = [structural_similarity(p, t, data_range=1) for p, t in pairs]
    np.testing.assert_allclose(metrics.ssim(prediction, truth), expected, rtol=0, atol=1e-6)


def test_ssim_matches_scikit_image_batch_and_channels():
    prediction, truth = _pair(seed=2, shape=(2, 3, 10, 8, 1))
    expected = _per_frame_loop(
        lambda p, t: structural_similarity(p[..., 0], t[..., 0], data_range=1), prediction, truth
    )
    np.testing.assert_allclose(metrics.ssim(prediction, truth), expected, rtol=0, atol=1e-6)

    prediction, truth = _pair(seed=3, shape=(2, 2, 12, 9, 3))
    expected = _per_frame_loop(
        lambda p, t: structural_similarity(p, t, data_range=1, channel_axis=-1), prediction, truth
    )
    np.testing.assert_allclose(metrics.ssim(prediction, truth), expected, rtol=0, atol=1e-6)


def test_ssim_blocks_give_the_same_values(monkeypatch):
    prediction, truth = _pair(seed=4, shape=(3, 5, 8, 8, 1))
    whole = metrics.ssim(prediction, truth)
    monkeypatch.setattr(metrics, "_SSIM_BLOCK", 4)
    np.testing.assert_allclose(metrics.ssim(prediction, truth), whole, rtol=0, atol=1e-15)


def test_ssim_rejects_frames_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 7x7 pixels for SSIM, got 6x9"):
        metrics.ssim(np.zeros((1, 1, 6, 9, 1)), np.zeros((1, 1, 6, 9, 1)))


def test_identical_inputs_give_perfect_scores():
    _, truth = _pair(seed=5)
    truth = (truth > 0.5).astype(np.float64)  # both classes present in every frame
    scores = metrics.frame_metrics(truth, truth)
    assert list(scores) == list(metrics.METRIC_NAMES)
    np.testing.assert_array_equal(scores["mse"], 0.0)
    np.testing.assert_array_equal(scores["mae"], 0.0)
    np.testing.assert_allclose(scores["ssim"], 1.0, atol=1e-12)
    np.testing.assert_array_equal(scores["psnr"], np.inf)
    np.testing.assert_array_equal(scores["csi"], 1.0)
    np.testing.assert_array_equal(scores["far"], 0.0)
    np.testing.assert_array_equal(scores["pod"], 1.0)
    np.testing.assert_allclose(scores["correlation"], 1.0, atol=1e-9)
    # A clipped prediction of exact binary targets costs about -log(1 - 1e-7) per pixel.
    np.testing.assert_allclose(scores["bce"], 9 * 11 * 1e-7, rtol=1e-3)


def test_contingency_counts_and_scores_on_known_table():
    # Step 0: 3 hits, 2 misses, 1 false alarm, 2 correct negatives; step 1: nothing predicted on, truth empty.
    truth = np.zeros((1, 2, 2, 4, 1))
    prediction = np.zeros((1, 2, 2, 4, 1))
    truth[0, 0, :, :, 0] = [[1, 1, 1, 1], [1, 0, 0, 0]]
    prediction[0, 0, :, :, 0] = [[0.9, 0.5, 0.7, 0.2], [0.49, 0.8, 0.0, 0.1]]
    counts = metrics.contingency_counts(prediction, truth, threshold=0.5)
    np.testing.assert_array_equal(counts["hits"], [3, 0])
    np.testing.assert_array_equal(counts["misses"], [2, 0])
    np.testing.assert_array_equal(counts["false_alarms"], [1, 0])
    np.testing.assert_array_equal(counts["correct_negatives"], [2, 8])
    np.testing.assert_array_equal(metrics.csi(prediction, truth), [3 / 6, np.nan])
    np.testing.assert_array_equal(metrics.far(prediction, truth), [1 / 4, np.nan])
    np.testing.assert_array_equal(metrics.pod(prediction, truth), [3 / 5, np.nan])


def test_contingency_counts_pool_the_batch_and_follow_the_threshold():
    truth = np.zeros((2, 1, 1, 2, 1))
    prediction = np.zeros((2, 1, 1, 2, 1))
    truth[0, 0, 0] = [[1.0], [1.0]]
    prediction[0, 0, 0] = [[1.0], [0.0]]  # 1 hit, 1 miss
    prediction[1, 0, 0] = [[0.3], [0.0]]  # a false alarm only below threshold 0.3
    np.testing.assert_array_equal(metrics.csi(prediction, truth, threshold=0.5), [1 / 2])
    np.testing.assert_array_equal(metrics.csi(prediction, truth, threshold=0.3), [1 / 3])
    np.testing.assert_array_equal(metrics.far(prediction, truth, threshold=0.3), [1 / 2])
    for threshold in (float("nan"), 0.0, -1.0, 2.0):  # every pixel on, or every pixel off
        with pytest.raises(ValueError, match=rf"expected a threshold in \(0, 1\], got {threshold}"):
            metrics.csi(prediction, truth, threshold=threshold)


def test_bce_matches_direct_formula():
    prediction, truth = _pair(seed=6)
    prediction[0, 0, 0, 0, 0] = 0.0  # exercises the clipping
    prediction[0, 0, 0, 1, 0] = 1.0
    clipped = np.clip(prediction, 1e-7, 1 - 1e-7)
    entropy = -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped))
    expected_steps = entropy.sum(axis=(2, 3, 4)).mean(axis=0)
    np.testing.assert_allclose(metrics.bce_per_frame(prediction, truth), expected_steps, rtol=1e-12)
    expected_sequence = entropy.sum(axis=(1, 2, 3, 4)).mean()
    assert metrics.bce_per_sequence(prediction, truth) == pytest.approx(expected_sequence, rel=1e-12)
    with pytest.raises(ValueError, match=r"expected eps in \(0, 0.5\), got 0.0"):
        metrics.bce_per_frame(prediction, truth, eps=0.0)


def test_uint8_inputs_are_divided_by_255():
    rng = np.random.default_rng(8)
    prediction = rng.integers(0, 256, size=SHAPE, dtype=np.uint8)
    truth = rng.integers(0, 256, size=SHAPE, dtype=np.uint8)
    from_uint8 = metrics.frame_metrics(prediction, truth)
    from_float = metrics.frame_metrics(prediction / 255.0, truth / 255.0)
    for name in metrics.METRIC_NAMES:
        np.testing.assert_array_equal(from_uint8[name], from_float[name], err_msg=name)


@pytest.mark.parametrize(
    ("prediction", "truth", "error", "message"),
    [
        (np.zeros((1, 2, 8, 8, 1)), np.zeros((1, 3, 8, 8, 1)), ValueError, "same shape"),
        (np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 1)), ValueError, r"got shape \(2, 8, 8, 1\)"),
        (np.full((1, 1, 8, 8, 1), np.nan), np.zeros((1, 1, 8, 8, 1)), ValueError, "found 64 NaN or infinite"),
        (np.zeros((1, 1, 8, 8, 1), dtype=np.int32), np.zeros((1, 1, 8, 8, 1)), TypeError, "got int32"),
    ],
)
def test_bad_inputs_raise(prediction, truth, error, message):
    with pytest.raises(error, match=message):
        metrics.frame_metrics(prediction, truth)


def test_sharpness_on_hand_computed_frames():
    edge = np.zeros((4, 4), np.float64)
    edge[:, 2:] = 1.0  # one jump of 1 among each row's 3 horizontal steps, none vertically
    ramp = np.tile([0.0, 1 / 3, 2 / 3, 1.0], (4, 1))  # the same rise spread over the 3 steps: blurred
    checkerboard = np.indices((4, 4)).sum(axis=0) % 2
    frames = np.stack([edge, ramp, checkerboard, np.full((4, 4), 0.5)])[np.newaxis, ..., np.newaxis]
    expected = [np.sqrt((1 / 3) / 2), np.sqrt((1 / 9) / 2), 1.0, 0.0]
    np.testing.assert_allclose(metrics.sharpness(frames), expected)
    np.testing.assert_allclose(metrics.sharpness(np.round(frames * 255).astype(np.uint8)), expected, atol=2e-3)
    # The batch mean over sequences: a flat sequence halves every step's value.
    np.testing.assert_allclose(metrics.sharpness(np.concatenate([frames, 0 * frames])), np.divide(expected, 2))


def test_sharpness_of_an_average_is_at_most_the_average_sharpness():
    rng = np.random.default_rng(0)
    frames = (rng.random((5, 1, 16, 16, 1)) > 0.7).astype(np.float64)
    mean_frame = frames.mean(axis=0, keepdims=True)
    assert metrics.sharpness(mean_frame)[0] < metrics.sharpness(frames)[0]
    with pytest.raises(ValueError, match=r"got shape \(16, 16\)"):
        metrics.sharpness(np.zeros((16, 16)))
