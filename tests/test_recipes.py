"""Recipes, each run once in quick mode (some with smaller data still) into a temporary folder."""

import dataclasses
import inspect
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest

from keras_convlstm import cli, data, recipes, synthetic


def _png_ok(path) -> None:
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[-1] in (3, 4) and min(image.shape[:2]) > 50, path


def _run(tmp_path_factory, name: str, **overrides) -> tuple[dict, object]:
    out_dir = tmp_path_factory.mktemp(name)
    summary = recipes.RECIPES[name](out_dir=out_dir, quick=True, seed=0, verbose=0, **overrides)
    assert json.loads((out_dir / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for file in summary["files"]:
        assert (out_dir / file).is_file(), file
    return summary, out_dir


# Smaller settings than a recipe's quick ones where these tests need less; a recipe not named here runs quick as it is.
QUICK_OVERRIDES = {
    "moving-square": {"max_steps": 150},
    "noisy-squares": {"num_train": 20, "epochs": 1},
    "shi2015": {
        "sequences_per_epoch": 16,
        "epochs": 1,
        "test_sequences": 4,
        "filters": (8,),
        "digit_source": "offline",
    },
    # Notebook 04's quick values: 8 people for 5 epochs (the recipe's quick default is 16 people for 4).
    "actions": {"num_people": 8, "epochs": 5, "digit_source": "offline"},
}


def _module(name: str):
    """The module of the recipe registered as ``name``."""
    return inspect.getmodule(recipes.RECIPES[name])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``quick_run(name)``: the summary and folder of recipe ``name`` run quick once for the module."""
    runs = {}

    def run(name: str) -> tuple[dict, object]:
        if name not in runs:
            runs[name] = _run(tmp_path_factory, name, **QUICK_OVERRIDES.get(name, {}))
        return runs[name]

    return run


@pytest.fixture(scope="module")
def moving_square(quick_run):
    return quick_run("moving-square")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_registered_recipe_runs_quick_and_writes_its_summary_and_files(quick_run, name):
    summary, out_dir = quick_run(name)  # which checks summary.json and that every file it names was written
    assert (summary["recipe"], summary["quick"], summary["seed"]) == (name, True, 0)
    assert summary["seconds"] >= 0 and summary["files"]


@pytest.mark.slow
def test_moving_square_beats_copy_last_frame(moving_square):
    summary, out_dir = moving_square
    held_out = summary["held_out"]
    size = recipes.moving_square.QUICK.image_size
    assert summary["settings"]["image_size"] == size and summary["steps_trained"] <= 150
    assert held_out["model"]["mse_per_pixel"] < held_out["copy-last-frame"]["mse_per_pixel"]
    assert held_out["model"]["mse_per_pixel"] < held_out["blank"]["mse_per_pixel"]
    assert summary["beats_copy_last_frame"] is True
    # A blank frame misses the square's pixels: 25 of 256 on a 16x16 canvas.
    square = recipes.moving_square.SQUARE_SIZE**2
    assert held_out["blank"]["mse_per_pixel"] == pytest.approx(square / size**2, abs=1e-6)
    assert held_out["blank"]["mse"] == pytest.approx(square)
    assert summary["reached_threshold"] == (summary["final_train_mse"] < 0.001)


@pytest.mark.slow
def test_moving_square_files(moving_square):
    summary, out_dir = moving_square
    for png in ("inputs.png", "truth_vs_prediction.png", "mse_curve.png"):
        _png_ok(out_dir / png)
    gif = iio.imread(out_dir / "inputs_and_prediction.gif", index=None)
    # 9 inputs and the prediction, 12 times larger (192 pixels) in a 1-pixel border, above their numbers.
    assert gif.shape[0] == 10 and gif.shape[2] == 16 * 12 + 2 and gif.shape[1] > 16 * 12 + 2
    history = (out_dir / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + summary["steps_trained"] // 10


@pytest.mark.slow
def test_noisy_squares(quick_run):
    summary, out_dir = quick_run("noisy-squares")
    settings = summary["settings"]
    assert settings["test_movie"] == 24 and settings["movies_generated"] == 25
    assert settings["train_movies"] + settings["validation_movies"] == 20
    assert (settings["context_frames"], settings["predicted_frames"]) == (7, 16)
    assert set(summary["rollout"]) == {"noisy-squares", "noisy-squares-causal", "copy-last-frame", "blank"}
    for scores in summary["rollout"].values():
        # The summed MSE of a 40x40 frame is 1600 times the per-pixel MSE.
        assert scores["mse"] == pytest.approx(1600 * scores["mse_per_pixel"], rel=1e-4)
        assert 0 <= scores["mse_per_pixel"] <= 1
    for png in summary["files"]:
        _png_ok(out_dir / png)
    metrics_file = json.loads((out_dir / "metrics.json").read_text())
    assert len(metrics_file["metrics"]["noisy-squares"]["mse"]) == 16
    # Blank's MSE is the number of lit pixels of each clean truth frame (they are exactly 0 or 1).
    noisy = recipes.noisy_squares
    movies = noisy.build_data(noisy.choose_settings(True, **QUICK_OVERRIDES["noisy-squares"]), seed=0)
    np.testing.assert_allclose(metrics_file["metrics"]["blank"]["mse"], movies.truth[0].sum(axis=(1, 2, 3)))


def test_noisy_squares_held_out_movies_are_the_frames_after_the_context():
    noisy = recipes.noisy_squares
    settings = noisy.choose_settings(True)
    context, truth = noisy.held_out_movies(settings, 3, seed=5)
    assert context.shape == (3, 7, 40, 40, 1) and truth.shape == (3, 16, 40, 40, 1)
    assert context.dtype == truth.dtype == np.float32
    movies, next_frames = synthetic.generate_noisy_squares(3, 23, seed=5)
    np.testing.assert_array_equal(context, np.clip(movies[:, :7], 0, 1))
    # next_frames[:, t] is clean frame t + 1: the truth starts at frame 7, the first one not given.
    np.testing.assert_array_equal(truth, next_frames[:, 6:22])
    again, _ = noisy.held_out_movies(settings, 3, seed=5)
    np.testing.assert_array_equal(again, context)
    predictions = noisy.predict({}, context, settings)
    assert list(predictions) == ["copy-last-frame", "blank"]
    np.testing.assert_array_equal(predictions["copy-last-frame"][:, 3], context[:, -1])


@pytest.mark.slow
def test_shi2015(quick_run):
    summary, out_dir = quick_run("shi2015")
    assert summary["settings"]["filters"] == [8] and summary["settings"]["threshold"] == 0.5
    assert summary["settings"]["precision"] == "float32"
    for preset in recipes.shi2015.PRESETS:
        built = recipes.shi2015.build_model(preset, recipes.shi2015.choose_settings(True, filters=(8,)))
        assert summary["models"][preset] == {
            "parameters": built.count_params(),
            "filters": [8],
            "kernel_sizes": [5],
            "patch_size": 4,
            "precision": "float32",
        }
    assert set(summary["results"]) == {"2_digits", "3_digits"}
    for scores in summary["results"].values():
        assert set(scores) == {"shi2015", "shi2015-encoder-forecaster", "copy-last-frame", "blank"}
        # A blank frame turns no pixel on: no hits and no false alarms.
        assert scores["blank"]["pod"] == 0 and scores["blank"]["far"] is None
        for system in scores.values():
            assert math.isfinite(system["bce_per_sequence"]) and system["bce_per_sequence"] > 0
            assert 0 <= system["csi"] <= 1 and 0 <= system["pod"] <= 1
            assert system["far"] is None or 0 <= system["far"] <= 1
    # bce_per_sequence sums the per-frame cross-entropy over the 10 predicted frames.
    table = json.loads((out_dir / "metrics_2digits.json").read_text())
    bce = np.sum(table["metrics"]["shi2015"]["bce"])
    assert summary["results"]["2_digits"]["shi2015"]["bce_per_sequence"] == pytest.approx(bce, abs=0.01)
    assert summary["paper"]["table1_bce_per_sequence"]["ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64"] == 3670.85
    assert summary["paper"]["three_digits_bce_per_sequence"] == 6379.42
    for png in summary["files"]:
        _png_ok(out_dir / png)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_shi2015_builds_its_presets_in_the_settings_precision(precision):
    settings = recipes.shi2015.choose_settings(True, filters=(4, 4), kernel_size=3, precision=precision)
    model = recipes.shi2015.build_model("shi2015-encoder-forecaster", settings)
    assert model.config.precision == precision and model.config.filters == (4, 4)
    assert model.get_layer("encoder_1").dtype_policy.compute_dtype == precision


def test_context_horizon_dataset_matches_generated_sequences():
    digits = np.full((3, 28, 28), 200, dtype=np.uint8)
    pairs = recipes.shi2015.ContextHorizonMovingMNIST(6, 3, context=10, seed=5, digits=digits)
    shifted = data.GeneratedMovingMNIST(6, 3, seed=5, digits=digits)
    pairs.set_epoch(2)
    shifted.set_epoch(2)
    x, y = pairs[1]
    inputs, targets = shifted[1]
    assert x.shape == (3, 10, 64, 64, 1) and y.shape == (3, 10, 64, 64, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x, inputs[:, :10])
    np.testing.assert_array_equal(y, targets[:, 9:])
    pairs.set_epoch(3)
    assert not np.array_equal(pairs[1][0], x)
    with pytest.raises(ValueError, match="context must be in"):
        recipes.shi2015.ContextHorizonMovingMNIST(6, 3, context=20, digits=digits)


def test_moving_square_batches_are_seeded_and_fresh():
    batches = recipes.moving_square.MovingSquareBatches(2, batch_size=4, image_size=12, seed=1)
    x, y = batches[0]
    assert x.shape == (4, 9, 12, 12, 1) and y.shape == (4, 12, 12, 1) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0} and (x.sum(axis=(2, 3, 4)) == 25).all()
    np.testing.assert_array_equal(batches[0][0], x)
    assert not np.array_equal(batches[1][0], x)
    batches.set_epoch(1)
    assert not np.array_equal(batches[0][0], x)


@pytest.mark.slow
def test_actions_beats_chance_on_held_out_people(quick_run):
    summary, out_dir = quick_run("actions")
    quick = recipes.actions.QUICK
    clips_made = QUICK_OVERRIDES["actions"]["num_people"] * quick.clips_per_person
    clips = summary["clips"]
    assert clips["train"] + clips["validation"] + clips["test"] == clips_made
    counts = np.array(summary["confusion_matrix"])
    assert counts.shape == (4, 4) and counts.sum() == clips["test"]
    assert summary["held_out_accuracy"] == pytest.approx(np.trace(counts) / counts.sum(), abs=1e-4)
    assert summary["chance_accuracy"] == 0.25
    assert summary["held_out_accuracy"] > 0.6
    assert len(summary["test_people"]) == 2
    gifs = sorted((out_dir / "videos").rglob("*.gif"))
    assert len(gifs) == clips_made
    assert iio.imread(gifs[0], index=None).shape[:3] == (quick.num_frames, *quick.frame_size)
    for png in summary["files"]:
        _png_ok(out_dir / png)


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_registered_recipe_is_documented_and_run_by_the_command_line(monkeypatch, tmp_path, capsys, name):
    """The name leads to its module's ``run``: the package lists it, and ``recipe NAME`` runs it with the options."""
    module = _module(name)
    assert module.NAME == name and recipes.RECIPES[name] is module.run
    assert f"- ``{name}`` (:mod:`~{module.__name__}`)" in " ".join(recipes.__doc__.split())
    calls = []
    monkeypatch.setitem(recipes.RECIPES, name, lambda **settings: calls.append(settings) or {"recipe": name})
    out_dir = tmp_path / name
    assert cli.main(["recipe", name, "--quick", "--seed", "3", "--out-dir", str(out_dir)]) == 0
    assert calls == [{"out_dir": out_dir, "quick": True, "seed": 3}]
    assert json.loads(capsys.readouterr().out) == {"recipe": name}


def test_an_unknown_recipe_is_refused_naming_the_registered_ones(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["recipe", "unknown"])
    err = capsys.readouterr().err
    assert "unknown" in err and all(name in err for name in recipes.RECIPES)


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_chooses_its_frozen_quick_or_full_settings_and_applies_overrides(name):
    module = _module(name)
    quick, full = module.QUICK, module.FULL
    assert module.choose_settings(True) == quick and module.choose_settings(False) == full and quick != full
    field = next(field.name for field in dataclasses.fields(quick) if type(getattr(quick, field.name)) is int)
    value = getattr(quick, field) + 1
    assert module.choose_settings(True, **{field: value}) == dataclasses.replace(quick, **{field: value})
    assert module.choose_settings(False, **{field: None}) == full  # None keeps the chosen setting
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(quick, field, value)
    with pytest.raises(TypeError, match="unknown"):
        module.choose_settings(True, unknown=1)


def test_settings_derived_from_the_chosen_ones_and_the_originals_full_settings():
    square = recipes.moving_square
    assert square.choose_settings(True, max_steps=155, image_size=None).epochs == 16  # whole epochs of 10 steps
    assert (square.FULL.image_size, square.FULL.max_steps, square.FULL.epochs) == (64, 100, 10)  # the demo's
    noisy = recipes.noisy_squares
    chosen = noisy.choose_settings(True, num_train=20, epochs=None, filters=[4])
    assert chosen == dataclasses.replace(noisy.QUICK, num_train=20, filters=(4,))
    assert (chosen.test_movie, chosen.num_movies) == (24, 25)
    # The Keras 2 example's: 1000 training movies, movie 1004 rolled out, 1200 generated, 4 x ConvLSTM2D 40.
    assert (noisy.FULL.test_movie, noisy.FULL.num_movies, noisy.FULL.filters) == (1004, 1200, (40, 40, 40, 40))
    # Shi et al.'s 10 -> 10 frames in both modes, with the presets' filters in the full one.
    assert recipes.shi2015.choose_settings(False).filters is None
    assert recipes.shi2015.QUICK.predicted_frames == recipes.shi2015.FULL.predicted_frames == 10
    assert recipes.actions.choose_settings(False).learning_rate is None  # the preset's
    with pytest.raises(ValueError, match=r"max_steps must be an integer >= 1, got 0 \(MovingSquareSettings\)"):
        square.choose_settings(True, max_steps=0)
