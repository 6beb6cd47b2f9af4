"""The shipped pretrained models load, are small, and reproduce their recorded held-out checks."""

from pathlib import Path

import numpy as np
import pytest

import benchmarks
from benchmarks.ship_pretrained import check_mse, read_history
from keras_convlstm import pretrained, viz
from keras_convlstm.cli import DEMO_PRETRAINED
from keras_convlstm.evaluation import VIEWS, MetricTable
from keras_convlstm.recipes import shi2015
from keras_convlstm.synthetic import HELD_OUT_SEED, generate_moving_mnist_split

NAME = "cpu-quality-moving-mnist"
MOVING_MNIST = [
    "cpu-deep-rollout-moving-mnist",
    "cpu-quality-moving-mnist",
    "cpu-quality-rollout-moving-mnist",
    "keras-example-causal-moving-mnist",
    "keras-example-moving-mnist",
]
# The seed systems of notebook 04 at their full sizes: the data each trained on, and its preset.
SEED_SYSTEMS = {
    "moving-square-64px": ("moving-square", "moving-square"),
    "noisy-squares-causal-40px": ("noisy-squares", "noisy-squares-causal"),
    "shi2015-encoder-forecaster-moving-mnist": ("shi2015", "shi2015-encoder-forecaster"),
}
SHIPPED = sorted([*MOVING_MNIST, *SEED_SYSTEMS])
# The keras.io network trained by its own recipe, leak included, and its causal twin trained by the same command.
KERAS_EXAMPLE = "keras-example-moving-mnist"
CAUSAL_TWIN = "keras-example-causal-moving-mnist"
PRESETS = {KERAS_EXAMPLE: "keras-example", CAUSAL_TWIN: "keras-example-causal"}


def _preset_and_data(name: str) -> tuple[str, str]:
    if name in SEED_SYSTEMS:
        data, preset = SEED_SYSTEMS[name]
        return preset, data
    return PRESETS.get(name, "cpu-quality"), "moving-mnist"


def test_the_demo_model_has_the_lowest_held_out_mse_and_breaks_the_tie_on_ssim():
    """Two shipped models are within 0.2 % on held-out MSE; the demo takes the one with the higher SSIM."""
    assert pretrained.list_pretrained() == SHIPPED
    assert pretrained.list_pretrained("moving-mnist") == MOVING_MNIST
    assert pretrained.list_pretrained("noisy-squares") == ["noisy-squares-causal-40px"]
    assert pretrained.list_pretrained("moving-square") == ["moving-square-64px"]
    assert pretrained.list_pretrained("shi2015") == ["shi2015-encoder-forecaster-moving-mnist"]
    assert pretrained.list_pretrained("bouncing-balls") == []
    means = {name: pretrained.pretrained_info(name)["held_out"]["means"]["model"] for name in MOVING_MNIST}
    lowest = min(values["mse"] for values in means.values())
    tied = [name for name in MOVING_MNIST if means[name]["mse"] <= 1.01 * lowest]
    assert DEMO_PRETRAINED == max(tied, key=lambda name: means[name]["ssim"]) == "cpu-deep-rollout-moving-mnist"
    for name in SHIPPED:
        assert (pretrained._assets() / f"{name}.keras").stat().st_size <= 15 * 1024 * 1024


@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_model_reproduces_its_recorded_check(name):
    info = pretrained.pretrained_info(name)
    model = pretrained.load_pretrained(name)
    preset, data = _preset_and_data(name)
    assert model.config.name == info["preset"] == preset and info["data"] == data
    assert model.count_params() == info["parameters"]
    assert info["check"]["sequences"] == 16 and info["check"]["precision"] == "float32"
    # float32 on any CPU: only the order of the convolutions' sums may differ from the shipping machine's.
    assert check_mse(model, data) == pytest.approx(info["check"]["model_mse"], rel=1e-3)
    recorded = info["held_out"]["means"]
    assert np.isfinite(recorded["model"]["ssim"])
    if name != KERAS_EXAMPLE:  # the keras.io network's forecast is worse than a blank frame: the test below
        assert recorded["model"]["mse"] < recorded["copy-last-frame"]["mse"]


def test_the_keras_io_network_record_measures_its_leak_and_the_pages_illusion():
    """What notebook 03 and BENCHMARKS.md (k) say of the shipped keras.io network, read from its record."""
    info = pretrained.pretrained_info(KERAS_EXAMPLE)
    views = MetricTable.from_dict(info["views"])
    means = views.means()
    assert views.horizon == 10 and views.systems == [*VIEWS, "copy-last-frame", "blank"]
    mse = {system: np.asarray(values["mse"]) for system, values in views.metrics.items()}
    # The leak: seeing the frame it predicts (steps 1-9 of one call on the whole sequence) against not seeing it.
    assert mse["whole-sequence"][:9].max() < 1 < 70 < mse["one-step"].min()
    assert mse["whole-sequence"][9] == pytest.approx(mse["one-step"][9], rel=1e-3)  # no frame 21 to leak
    # The page's illusion: its one-step view beats both baselines on MSE, its rollout neither, at any step.
    assert means["one-step"]["mse"] < means["blank"]["mse"] < means["copy-last-frame"]["mse"]
    assert (mse["rollout"] > mse["blank"]).all() and means["rollout"]["ssim"] < 0.01
    scored = info["held_out"]["means"]["model"]  # the rollout is what evaluate scored
    assert [means["rollout"][key] for key in ("mse", "ssim")] == pytest.approx([scored["mse"], scored["ssim"]])
    assert mse["one-step"][0] == pytest.approx(mse["rollout"][0], rel=1e-3)  # both read the same 10 true frames


def _recipe(command: str) -> list[str]:
    """A training command's words without its preset, its output folder and the note after it."""
    words = command.split(" (")[0].split()
    dropped = {
        index + offset for index, word in enumerate(words) if word in ("--preset", "--out-dir") for offset in (0, 1)
    }
    return [word for index, word in enumerate(words) if index not in dropped]


def test_the_causal_twin_has_no_leak_and_forecasts_better_than_the_keras_io_network():
    """The two keras.io networks trained by one command: the leak's effect on trained models, from their records."""
    leaky, twin = (pretrained.pretrained_info(name) for name in (KERAS_EXAMPLE, CAUSAL_TWIN))
    for key in ("data", "parameters", "epochs_completed"):
        assert twin[key] == leaky[key]
    assert _recipe(twin["command"]) == _recipe(leaky["command"])
    assert f"--preset {twin['preset']} " in twin["command"] and twin["preset"] == "keras-example-causal"
    assert [row["learning_rate"] for row in twin["history"]] == [row["learning_rate"] for row in leaky["history"]]
    views = MetricTable.from_dict(twin["views"])
    mse = {system: np.asarray(values["mse"]) for system, values in views.metrics.items()}
    # No leak: one call on the whole true sequence predicts what the true frames before each one predict.
    np.testing.assert_allclose(mse["whole-sequence"], mse["one-step"], rtol=1e-2)
    # Its teacher-forced loss is the higher, by design: it never sees the frame it predicts ...
    assert twin["best_checkpoint"]["value"] > leaky["best_checkpoint"]["value"]
    # ... and its forecast the better.
    leaky_rollout = MetricTable.from_dict(leaky["views"]).means()["rollout"]["mse"]
    assert views.means()["rollout"]["mse"] < leaky_rollout


def test_the_noisy_squares_network_beats_both_baselines_at_every_step_of_its_rollout():
    held_out = pretrained.pretrained_info("noisy-squares-causal-40px")["held_out"]
    mse = {system: np.asarray(values) for system, values in held_out["mse_per_step"].items()}
    assert held_out["description"].startswith("1000 ") and mse["model"].shape == (16,)
    assert (mse["model"] < mse["copy-last-frame"]).all() and (mse["model"] < mse["blank"]).all()


def test_the_full_size_moving_square_network_beats_both_baselines_on_its_held_out_squares():
    info = pretrained.pretrained_info("moving-square-64px")
    means = info["held_out"]["means"]
    assert info["held_out"]["description"].startswith("1000 ") and info["parameters"] == 9_873
    assert 3 * means["model"]["mse"] < min(means["copy-last-frame"]["mse"], means["blank"]["mse"])
    assert means["model"]["pod"] > 0.5  # most square pixels predicted where the square is (blank finds none)


def test_the_shi_encoder_forecaster_scores_both_test_sets_in_the_papers_convention():
    info = pretrained.pretrained_info("shi2015-encoder-forecaster-moving-mnist")
    assert info["held_out"]["description"].startswith("3000 generated two-digit") and info["filters"] == [64, 64]
    table = MetricTable.from_dict(info["held_out"]["table"])
    scores = info["shi2015_scores"]
    assert set(scores) == {"2_digits", "3_digits"} and set(scores["2_digits"]) == set(table.metrics)
    for system, values in table.metrics.items():
        # Table 1's cross-entropy per sequence is the per-frame cross-entropy summed over the 10 predicted frames.
        assert scores["2_digits"][system]["bce_per_sequence"] == pytest.approx(np.sum(values["bce"]), abs=0.01)
        assert scores["2_digits"][system]["mse"] == pytest.approx(np.mean(values["mse"]), abs=1e-5)
    for digits in scores.values():  # it beats both baselines on either test set, on every measure of error
        for measure in ("bce_per_sequence", "mse"):
            assert digits["model"][measure] < min(digits["copy-last-frame"][measure], digits["blank"][measure])
    for measure in ("mse", "bce"):  # ... and at every predicted frame of the two-digit set
        per_step = {system: np.asarray(values[measure]) for system, values in table.metrics.items()}
        assert (per_step["model"] < np.minimum(per_step["copy-last-frame"], per_step["blank"])).all()
    # Below the paper's FC-LSTM on two digits (notebook 04 and BENCHMARKS.md (p) say so).
    assert scores["2_digits"]["model"]["bce_per_sequence"] < shi2015.PAPER_TABLE1["FC-LSTM-2048-2048"]


def test_unknown_pretrained_name_lists_what_exists():
    with pytest.raises(ValueError, match=f"unknown pretrained model 'nope'.*{NAME}"):
        pretrained.load_pretrained("nope")


def test_loading_does_not_warn_about_the_optimizer_state_left_out(recwarn):
    pretrained.load_pretrained(NAME)
    assert not [w for w in recwarn if "Skipping variable loading" in str(w.message)]


@pytest.mark.half_precision
def test_a_shipped_model_rebuilt_in_float32_predicts_the_stored_frames_within_bfloat16_rounding():
    stored = pretrained.load_pretrained(NAME, precision="bfloat16")
    rebuilt = pretrained.load_pretrained(NAME, precision="float32")
    assert stored.config.precision == "bfloat16" and rebuilt.config.precision == "float32"
    assert rebuilt.get_layer("conv_lstm_1").dtype_policy.name == "float32"
    for before, after in zip(stored.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(after, before)
    sequences = generate_moving_mnist_split(4, seed=HELD_OUT_SEED, split="test")
    frames = sequences[:, :10].astype(np.float32) / 255
    difference = np.abs(np.asarray(rebuilt.predict(frames, verbose=0)) - np.asarray(stored.predict(frames, verbose=0)))
    # bfloat16 keeps 8 significant bits: each product and activation is rounded by up to 2**-8 of its size. Over
    # ten recurrent steps the sigmoid frames of the two models differed by at most 0.007 (mean 9e-5) on the
    # shipping machine; the bounds leave a factor of about two: four bfloat16 roundings of a pixel in [0, 1] at
    # most, a sixteenth of one on average.
    assert 0 < difference.max() <= 4 * 2**-8
    assert difference.mean() <= 2**-8 / 16


# The training logs kept for the shipped models; cpu-quality-moving-mnist's was not kept, so it ships no history.
HISTORY_LOGS = {
    "cpu-deep-rollout-moving-mnist": "deep_rollout_history.csv",
    "cpu-quality-rollout-moving-mnist": "bce_ssim_rollout_history.csv",
    KERAS_EXAMPLE: "keras_example_history.csv",
    CAUSAL_TWIN: "keras_example_causal_history.csv",
    "noisy-squares-causal-40px": "noisy_squares_causal_history.csv",
    "moving-square-64px": "moving_square_history.csv",
    "shi2015-encoder-forecaster-moving-mnist": "shi2015_encoder_forecaster_history.csv",
}


@pytest.mark.parametrize("name", sorted(HISTORY_LOGS))
def test_shipped_history_is_the_run_that_produced_the_model(name):
    info = pretrained.pretrained_info(name)
    history = info["history"]
    logged = {row["epoch"]: row for row in history}
    # Every epoch the run finished is logged, or named as missing (the moving-square run lost 18 rows of its log).
    missing = info.get("history_missing_epochs", [])
    assert sorted([*logged, *missing]) == list(range(info["epochs_completed"])) and len(logged) == len(history)
    # The summary recorded when the model was shipped (strings, as CSVLogger wrote them) is the history's last row.
    assert history[-1] == {key: float(value) for key, value in info["final_epoch"].items()}
    best = info["best_checkpoint"]  # its epoch counted from 1; loss where the run had no validation data
    watched = best["monitor"]
    assert watched == ("val_loss" if "val_loss" in history[0] else "loss")
    assert best["value"] <= min(row[watched] for row in history)
    if best["epoch"] - 1 in logged:
        assert logged[best["epoch"] - 1][watched] == best["value"]
    else:
        assert best["epoch"] - 1 in missing
    # What benchmarks/ship_pretrained.py writes from the run's log.
    assert history == read_history(Path(benchmarks.__file__).parent / "results" / HISTORY_LOGS[name])


def test_shipped_history_plots_one_point_per_epoch():
    history = pretrained.pretrained_info("cpu-deep-rollout-moving-mnist")["history"]
    figure = viz.plot_history(history, metrics=("loss",), ylabels={"loss": "BCE + 0.5 (1 - SSIM)"})
    (axis,) = figure.axes
    assert axis.get_ylabel() == "BCE + 0.5 (1 - SSIM)"
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert set(lines) == {"loss", "val_loss"}
    np.testing.assert_array_equal(lines["val_loss"].get_xdata(), np.arange(1, len(history) + 1))
    np.testing.assert_array_equal(lines["val_loss"].get_ydata(), [row["val_loss"] for row in history])
    assert "history" not in pretrained.pretrained_info(NAME)
