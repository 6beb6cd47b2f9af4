"""Tests of keras_convlstm.evaluation: the baselines and the metric table (``evaluate`` runs in test_pretrained)."""

import numpy as np
import pytest
from harness import tiny_model, to_numpy

from keras_convlstm import evaluation, metrics


def test_baselines():
    rng = np.random.default_rng(9)
    context = rng.integers(0, 256, size=(2, 5, 4, 6, 1), dtype=np.uint8)
    copied = evaluation.copy_last_frame(context, 3)
    assert copied.shape == (2, 3, 4, 6, 1)
    assert copied.dtype == np.uint8
    for step in range(3):
        np.testing.assert_array_equal(copied[:, step], context[:, -1])
    blank = evaluation.blank_frames(context.astype(np.float32), 4)
    assert blank.shape == (2, 4, 4, 6, 1)
    assert blank.dtype == np.float32
    assert not blank.any()
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got 0"):
        evaluation.copy_last_frame(context, 0)
    with pytest.raises(ValueError, match=r"got shape \(5, 4, 6, 1\)"):
        evaluation.blank_frames(context[0], 2)


def _table() -> evaluation.MetricTable:
    rng = np.random.default_rng(10)
    context = rng.random((2, 3, 8, 8, 1))
    truth = rng.random((2, 4, 8, 8, 1))
    predictions = {
        "model": rng.random((2, 4, 8, 8, 1)),
        "copy-last-frame": evaluation.copy_last_frame(context, 4),
        "blank": evaluation.blank_frames(context, 4),
    }
    return evaluation.MetricTable.from_predictions(predictions, truth, threshold=0.5)


def test_metric_table_values_and_means():
    table = _table()
    assert table.systems == ["model", "copy-last-frame", "blank"]
    assert table.metric_names == list(metrics.METRIC_NAMES)
    assert table.horizon == 4
    assert table.threshold == 0.5
    # The blank baseline never predicts an "on" pixel: FAR is undefined at every step.
    assert np.isnan(table.metrics["blank"]["far"]).all()
    means = table.means()
    assert np.isnan(means["blank"]["far"])
    assert means["model"]["mse"] == pytest.approx(table.metrics["model"]["mse"].mean())
    assert means["blank"]["pod"] == 0.0


def test_metric_table_means_skip_undefined_steps():
    table = evaluation.MetricTable({"a": {"far": [0.2, np.nan, 0.4]}})
    assert table.means()["a"]["far"] == pytest.approx(0.3)
    assert table.threshold is None


def test_metric_table_json_round_trip(tmp_path):
    table = _table()
    path = table.to_json(tmp_path / "metrics.json")
    assert path == tmp_path / "metrics.json"
    restored = evaluation.MetricTable.from_json(path)
    assert restored == table
    for system in table.systems:
        for name in table.metric_names:
            np.testing.assert_array_equal(restored.metrics[system][name], table.metrics[system][name])
    changed = evaluation.MetricTable.from_dict(table.to_dict())
    changed.metrics["model"]["mse"] = changed.metrics["model"]["mse"] + 1.0
    assert changed != table


def test_metric_table_text():
    table = _table()
    text = str(table)
    assert text == table.to_text()
    lines = text.splitlines()
    for system in table.systems:
        assert sum(line.startswith(system) for line in lines) == 3  # means, mse per step, ssim per step
    assert "mse per predicted frame" in text
    assert "ssim per predicted frame" in text
    model_row = next(line for line in lines if line.startswith("model"))
    assert f"{table.means()['model']['ssim']:.4g}" in model_row.split()
    # Header, rule and the three system rows of the first table line up to the same width.
    assert len({len(line) for line in lines[1:6]}) == 1
    bce_text = table.to_text(step_metrics=("bce", "not-a-metric"))
    assert "bce per predicted frame" in bce_text
    assert "mse per predicted frame" not in bce_text


def test_metric_table_rejects_inconsistent_metrics():
    with pytest.raises(ValueError, match=r"expected per-step values of shape \(3,\), got \(2,\)"):
        evaluation.MetricTable({"a": {"mse": [1, 2, 3]}, "b": {"mse": [1, 2]}})
    with pytest.raises(ValueError, match=r"expected every system to have metrics \['mse'\]"):
        evaluation.MetricTable({"a": {"mse": [1.0]}, "b": {"ssim": [1.0]}})
    with pytest.raises(ValueError, match="at least one system"):
        evaluation.MetricTable({})


def _mse_per_step(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """MSE summed over a frame's pixels, averaged over sequences: ``(horizon,)``."""
    return ((prediction.astype(np.float64) - truth) ** 2).sum(axis=(2, 3, 4)).mean(axis=0)


@pytest.fixture(scope="module")
def view_sequences() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(3, 7, 16, 16, 1), dtype=np.uint8)


@pytest.mark.parametrize("preset", ["keras-example", "keras-example-causal"])
def test_evaluate_views_against_reference_loops(preset, view_sequences):
    model = tiny_model(preset, filters=(4, 4), kernel_sizes=(3, 3), image_size=16, precision="float32")
    context, horizon = 4, 3
    table = evaluation.evaluate_views(model, view_sequences, context, horizon, batch_size=2)
    assert table.systems == ["rollout", "one-step", "whole-sequence", "copy-last-frame", "blank"]
    frames = view_sequences.astype(np.float32) / 255
    truth = frames[:, context : context + horizon]

    def call(inputs: np.ndarray) -> np.ndarray:
        return to_numpy(model(inputs, training=False))

    # The keras.io page's views, as its code computes them: the model on the true prefix, last output ...
    one_step = np.stack([call(frames[:, :t])[:, -1] for t in range(context, context + horizon)], axis=1)
    np.testing.assert_allclose(table.metrics["one-step"]["mse"], _mse_per_step(one_step, truth), rtol=1e-4)
    # ... and the training view: the whole true sequence in one call.
    whole = call(frames[:, : context + horizon - 1])[:, context - 1 :]
    np.testing.assert_allclose(table.metrics["whole-sequence"]["mse"], _mse_per_step(whole, truth), rtol=1e-4)
    # The first predicted frame is read from true frames only, in every view but a leaky whole-sequence call.
    assert table.metrics["rollout"]["mse"][0] == pytest.approx(table.metrics["one-step"]["mse"][0], rel=1e-4)
    leaky = preset == "keras-example"
    same_as_one_step = np.allclose(table.metrics["whole-sequence"]["mse"], table.metrics["one-step"]["mse"], rtol=1e-4)
    assert same_as_one_step != leaky


def test_evaluate_views_needs_a_frame_by_frame_model(view_sequences):
    model = tiny_model("shi2015-encoder-forecaster")
    with pytest.raises(ValueError, match="sequence-to-sequence"):
        evaluation.evaluate_views(model, view_sequences, 4, 3)


def test_evaluate_returns_the_frames_it_scored(view_sequences):
    from keras_convlstm.rollout import predict_rollout

    model = tiny_model("keras-example-causal", filters=(4,), kernel_sizes=(3,), image_size=16, precision="float32")
    table, predictions = evaluation.evaluate(model, view_sequences, 4, 3, batch_size=2, return_predictions=True)
    assert evaluation.evaluate(model, view_sequences, 4, 3, batch_size=2) == table
    assert list(predictions) == table.systems == ["model", "copy-last-frame", "blank"]
    frames = view_sequences.astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(predictions["model"], predict_rollout(model, view_sequences[:, :4], 3))
    np.testing.assert_array_equal(predictions["copy-last-frame"], np.repeat(frames[:, 3:4], 3, axis=1))
    np.testing.assert_array_equal(predictions["blank"], np.zeros_like(frames[:, 4:7]))
    assert all(frames.dtype == np.float32 for frames in predictions.values())
    assert table == evaluation.MetricTable.from_predictions(predictions, frames[:, 4:7])
    with pytest.warns(DeprecationWarning, match="'context' is now 'context_frames'"):
        assert evaluation.evaluate(model, view_sequences, context=4, horizon=3, batch_size=2) == table
