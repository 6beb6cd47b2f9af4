"""The command line: each sub-command end to end on small files, and one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_convlstm.cli import main
from keras_convlstm.losses import BCEPlusSSIM
from keras_convlstm.models import build_model

REPO = Path(__file__).resolve().parents[1]


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "keras_convlstm", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_help_for_every_command():
    result = run_module("--help")
    assert result.returncode == 0
    for command in ("data", "train", "predict", "evaluate", "demo"):
        assert command in result.stdout
    for command in ("data", "train", "predict", "evaluate", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0


@pytest.fixture(scope="module")
def sequences_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "sequences.npy"
    assert main(["data", "--num-sequences", "6", "--digits", "test", "--seed", "4", "--out", str(path)]) == 0
    return path


def test_data_generates_uint8_sequences(sequences_file):
    sequences = np.load(sequences_file)
    assert sequences.shape == (6, 20, 64, 64, 1)
    assert sequences.dtype == np.uint8
    assert sequences.max() > 200


@pytest.mark.slow
def test_train_predict_evaluate_round_trip(sequences_file, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "cpu-fast",
                "--data",
                str(sequences_file),
                "--num-sequences",
                "6",
                "--val-fraction",
                "0.34",
                "--epochs",
                "2",
                "--batch-size",
                "2",
                "--out-dir",
                str(run_dir),
            ]
        )
        == 0
    )
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "best.keras").is_file()
    assert json.loads((run_dir / "run.json").read_text())["preset"] == "cpu-fast"

    out_dir = tmp_path / "predicted"
    assert (
        main(
            [
                "predict",
                "--model",
                str(run_dir / "model.keras"),
                "--input",
                str(sequences_file),
                "--horizon",
                "5",
                "--out-dir",
                str(out_dir),
            ]
        )
        == 0
    )
    predictions = np.load(out_dir / "predictions.npy")
    assert predictions.shape == (6, 5, 64, 64, 1)
    assert predictions.dtype == np.float32
    assert (out_dir / "rollout.png").stat().st_size > 0
    assert (out_dir / "rollout.gif").stat().st_size > 0

    table_path = tmp_path / "metrics.json"
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(run_dir / "model.keras"),
                "--data",
                str(sequences_file),
                "--json",
                str(table_path),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    for system in ("model", "copy-last-frame", "blank"):
        assert system in printed
    assert table_path.is_file() and json.loads(table_path.read_text())


def test_fine_tuning_with_scheduled_sampling_starts_from_the_given_weights(sequences_file, tmp_path):
    common = ["--preset", "cpu-fast", "--data", str(sequences_file), "--num-sequences", "4", "--batch-size", "2"]
    common += ["--val-fraction", "0.5"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", *common, "--epochs", "1", "--out-dir", str(first)]) == 0
    fine_tune = ["--init-from", str(first / "model.keras"), "--learning-rate", "1e-12", "--loss", "bce_ssim"]
    fine_tune += ["--scheduled-sampling", "0", "1"]
    assert main(["train", *common, *fine_tune, "--epochs", "1", "--out-dir", str(second)]) == 0
    settings = json.loads((second / "run.json").read_text())
    assert settings["scheduled_sampling"] == [0, 1] and settings["init_from"] == str(first / "model.keras")
    assert settings["loss"] == "bce_ssim"
    start = keras.saving.load_model(first / "model.keras").get_weights()
    fine_tuned = keras.saving.load_model(second / "model.keras")
    assert fine_tuned.config.loss == "bce_ssim" and isinstance(fine_tuned.loss, BCEPlusSSIM)
    end = fine_tuned.get_weights()
    for before, after in zip(start, end, strict=True):
        np.testing.assert_allclose(after, before, atol=1e-6)


def test_layer_overrides_build_and_record_a_deeper_model(sequences_file, tmp_path, capsys, fake_hardware):
    fake_hardware(cpu_flags={"avx2", "fma"})  # a CPU without bfloat16 instructions: "auto" trains in float32
    args = ["train", "--preset", "cpu-fast", "--data", str(sequences_file), "--num-sequences", "4"]
    args += ["--val-fraction", "0.5", "--batch-size", "2", "--epochs", "1"]
    run_dir = tmp_path / "deep"
    assert main([*args, "--filters", "4", "6", "8", "--kernel-sizes", "3", "5", "3", "--out-dir", str(run_dir)]) == 0
    assert "in float32 on" in capsys.readouterr().out
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["filters"] == [4, 6, 8] and settings["kernel_sizes"] == [3, 5, 3]
    assert settings["precision"] == "auto" and settings["compute_precision"] == "float32"
    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.config.filters == (4, 6, 8) and model.config.kernel_sizes == (3, 5, 3)
    assert model.config.patch_size == 4 and model.config.precision == "float32"
    kernels = [layer.cell.kernel.shape for layer in model.layers if isinstance(layer, keras.layers.ConvLSTM2D)]
    assert kernels == [(3, 3, 16, 16), (5, 5, 4, 24), (3, 3, 6, 32)]
    capsys.readouterr()
    assert main([*args, "--filters", "4", "6", "8", "--out-dir", str(tmp_path / "mismatch")]) == 2
    assert "one kernel size per ConvLSTM2D layer" in one_line_error(capsys)
    assert not (tmp_path / "mismatch").exists()


def test_bad_fine_tuning_options_give_one_line_errors(tmp_path, sequences_file, capsys):
    other = tmp_path / "other.keras"
    build_model("moving-square").save(other)
    data_args = ["--data", str(sequences_file), "--num-sequences", "4", "--epochs", "1"]
    args = ["train", "--preset", "cpu-fast", *data_args, "--out-dir", str(tmp_path / "a"), "--init-from", str(other)]
    assert main(args) == 2
    assert "do not fit the 'cpu-fast' preset" in one_line_error(capsys)
    args = ["train", "--preset", "cpu-fast", *data_args, "--out-dir", str(tmp_path / "b")]
    assert main([*args, "--scheduled-sampling", "5", "2"]) == 2
    assert "start_step <= ramp_end_step" in one_line_error(capsys)
    assert main([*args, "--init-from", "no-such-model"]) == 2
    assert "model file not found" in one_line_error(capsys)


def test_interrupted_run_needs_resume_flag(tmp_path, capsys):
    (tmp_path / "backup").mkdir()
    assert main(["train", "--out-dir", str(tmp_path), "--epochs", "1"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["train", "--out-dir", str(tmp_path / "fresh"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_missing_files_give_one_line_errors(tmp_path, sequences_file, capsys):
    assert main(["predict", "--model", str(tmp_path / "none.keras"), "--input", str(sequences_file)]) == 2
    assert "model file not found" in one_line_error(capsys)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive")
    assert main(["predict", "--model", str(corrupt), "--input", str(sequences_file)]) == 2
    assert "could not load" in one_line_error(capsys)
    assert main(["evaluate", "--model", str(corrupt), "--data", str(tmp_path / "none.npy")]) == 2
    one_line_error(capsys)


def test_wrong_input_shape_gives_one_line_error(tmp_path, capsys):
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((4, 20, 64, 64), np.uint8))
    assert main(["train", "--data", str(flat), "--out-dir", str(tmp_path / "run"), "--epochs", "1"]) == 2
    assert "(batch, time, height, width, channels)" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_unknown_preset_is_rejected_by_the_module_entry_point(tmp_path):
    result = run_module("train", "--preset", "no-such-model", "--out-dir", str(tmp_path))
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "keras-example" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_writes_pictures_metrics_and_model(tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--train",
                "--minutes",
                "0.05",
                "--sequences-per-epoch",
                "16",
                "--eval-sequences",
                "4",
                "--out-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    for name in ("frames.png", "sequence.gif", "rollout.png", "rollout.gif", "metrics.json", "model.keras"):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert sorted(metrics) == ["blank", "copy-last-frame", "model"]
    assert len(metrics["model"]["mse"]) == 10
    printed = capsys.readouterr().out
    assert "copy-last-frame" in printed and "blank" in printed
