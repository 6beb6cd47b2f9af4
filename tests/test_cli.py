"""The command line: each sub-command end to end on small files, and one-line errors for bad input."""

import importlib.util
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from command_line import one_line_error

from keras_convlstm import run_folder, synthetic, training
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
    common += ["--filters", "4", "4"]  # the weights carried over matter here, not the network's size
    common += ["--val-fraction", "0.5"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", *common, "--epochs", "1", "--out-dir", str(first)]) == 0
    fine_tune = ["--init-from", str(first / "model.keras"), "--learning-rate", "1e-12", "--loss", "bce_ssim"]
    fine_tune += ["--scheduled-sampling", "0", "1"]
    assert main(["train", *common, *fine_tune, "--epochs", "1", "--out-dir", str(second)]) == 0
    settings = json.loads((second / "run.json").read_text())
    schedule = {"context": 10, "start_step": 0, "ramp_end_step": 1, "seed": 0}
    assert settings["scheduled_sampling"] == schedule
    assert settings["init_from"] == run_folder.fingerprint(first / "model.keras")
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
    assert main([*args, "--init-from", "cpu-deep-rollout-moving-mnis"]) == 2  # a shipped name, misspelled
    error = one_line_error(capsys)
    assert "--init-from cpu-deep-rollout-moving-mnis: no such file, nor a shipped model; expected a .keras" in error
    assert "cpu-deep-rollout-moving-mnist, cpu-quality-moving-mnist" in error


def test_interrupted_run_needs_resume_flag(tmp_path, capsys):
    (tmp_path / "backup").mkdir()
    assert main(["train", "--out-dir", str(tmp_path), "--epochs", "1"]) == 2
    assert f"{tmp_path} holds an interrupted run (backup): resume it, overwrite it" in capsys.readouterr().err
    assert main(["train", "--out-dir", str(tmp_path / "fresh"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_missing_files_give_one_line_errors(tmp_path, sequences_file, capsys):
    assert main(["predict", "--model", str(tmp_path / "none.keras"), "--input", str(sequences_file)]) == 2
    assert "model file not found" in one_line_error(capsys)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive")
    assert main(["predict", "--model", str(corrupt), "--input", str(sequences_file)]) == 2
    assert "could not load" in one_line_error(capsys)
    assert main(["evaluate", "--model", str(corrupt), "--data", str(tmp_path / "none.npy")]) == 2
    one_line_error(capsys)


def test_a_folder_or_a_misspelled_source_is_named_for_what_it_is(tmp_path, sequences_file, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["predict", "--model", str(folder), "--input", str(sequences_file)]) == 2
    assert f"{folder} is a folder (expected a .keras file written by `train`)" in one_line_error(capsys)
    assert main(["train", "--init-from", str(folder), "--out-dir", str(tmp_path / "run")]) == 2
    assert f"{folder} is a folder (expected a .keras file written by `train`)" in one_line_error(capsys)
    model = tmp_path / "m.keras"
    build_model("cpu-fast", image_size=16, filters=(2,), kernel_sizes=(3,)).save(model)
    assert main(["evaluate", "--model", str(model), "--data", "generate"]) == 2
    expected = "--data generate: no such file or folder; expected 'generated', 'official', a .npy file of sequences"
    assert expected in one_line_error(capsys)


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
def test_demo_writes_pictures_metrics_and_model(tmp_path, capsys, monkeypatch):
    from keras_convlstm.rollout import FrameStepper

    rolled = []  # sequences per rollout call: the demo scores and pictures one rollout of each held-out sequence
    roll = FrameStepper.roll
    monkeypatch.setattr(
        FrameStepper, "roll", lambda self, frames, steps: rolled.append(len(frames)) or roll(self, frames, steps)
    )
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
    assert sum(rolled) == 4, rolled


def tiny_training(data_file: str | Path) -> list[str]:
    """``train`` arguments for a seconds-long run: one ConvLSTM2D layer of 4 filters, 4 + 2 sequences of 64x64."""
    args = ["train", "--preset", "cpu-fast", "--precision", "float32", "--filters", "4", "--kernel-sizes", "3"]
    return [*args, "--data", str(data_file), "--batch-size", "2", "--val-fraction", "0.34"]


def folder_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def history_epochs(run_dir: Path) -> list[str]:
    return [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]]


def test_a_second_train_into_a_run_folder_is_refused_until_overwrite(sequences_file, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*tiny_training(sequences_file), "--epochs", "2", "--out-dir", str(run_dir)]) == 0
    first = folder_files(run_dir)
    assert sorted(first) == ["best.json", "best.keras", "history.csv", "model.keras", "run.json"]
    capsys.readouterr()

    again = [*tiny_training(sequences_file), "--epochs", "1", "--learning-rate", "0.3", "--out-dir", str(run_dir)]
    assert main(again) == 2
    assert f"{run_dir} holds a finished run (run.json, best.keras" in one_line_error(capsys)
    assert main([*again, "--resume"]) == 2
    assert f"nothing to resume in {run_dir}: its run finished" in one_line_error(capsys)
    with pytest.raises(SystemExit) as exit_info:
        main([*again, "--resume", "--overwrite"])
    assert exit_info.value.code == 2 and "not allowed with argument" in one_line_error(capsys)
    assert folder_files(run_dir) == first  # the first run's best model, record and history, byte for byte

    assert main([*again, "--overwrite"]) == 0
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["learning_rate"] == 0.3 and settings["epochs"] == 1
    assert history_epochs(run_dir) == ["0"]
    assert json.loads((run_dir / "best.json").read_text())["epoch"] == 1


def test_a_second_writer_is_refused_while_the_first_trains_and_a_killed_writer_blocks_nobody(
    sequences_file, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "keras_convlstm", *tiny_training(sequences_file), "--epochs", "1000"]
    with subprocess.Popen([*command, "--out-dir", str(run_dir)], stdout=subprocess.DEVNULL, env=env) as first:
        try:
            deadline = time.monotonic() + 240
            while not (run_dir / "run.json").exists():  # written once the first has passed its checks
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
            second = [*tiny_training(sequences_file), "--epochs", "1", "--out-dir", str(run_dir)]
            for options in ([], ["--overwrite"], ["--resume"]):
                assert main([*second, *options]) == 2
                assert f"{run_dir} is in use: process {first.pid} is writing to it" in one_line_error(capsys)
        finally:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert (run_dir / "run.lock").exists() and json.loads((run_dir / "run.json").read_text())["epochs"] == 1000

    assert main([*second, "--overwrite"]) == 0  # the lock died with its process
    assert json.loads((run_dir / "run.json").read_text())["epochs"] == 1
    assert history_epochs(run_dir) == ["0"]
    assert not (run_dir / "run.lock").exists()


def test_resume_compares_the_data_by_content_and_names_every_changed_setting(
    sequences_file, tmp_path, monkeypatch, capsys
):
    """Started with ``--data d.npy`` in one folder, resumed with the same words from a folder whose d.npy differs."""
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    shutil.copy(sequences_file, first / "d.npy")
    assert main(["data", "--num-sequences", "6", "--seed", "9", "--out", str(other / "d.npy")]) == 0
    run_dir = tmp_path / "run"
    args = [*tiny_training("d.npy"), "--epochs", "3", "--out-dir", str(run_dir)]

    class Crash(Exception):
        """A failure the command line does not expect, as the second epoch starts."""

    def interrupted_in_epoch_2(callback, epoch, logs=None):
        if epoch == 1:
            raise Crash
        start_epoch(callback, epoch, logs)

    start_epoch = training.EpochSync.on_epoch_begin
    monkeypatch.chdir(first)
    with monkeypatch.context() as patch:
        patch.setattr(training.EpochSync, "on_epoch_begin", interrupted_in_epoch_2)
        with pytest.raises(Crash):
            main(args)
    assert (run_dir / "backup").is_dir() and history_epochs(run_dir) == ["0"]
    capsys.readouterr()

    monkeypatch.chdir(other)
    assert main([*args, "--resume"]) == 2
    error = one_line_error(capsys)
    assert f"data {first / 'd.npy'} (" in error and f") -> {other / 'd.npy'} (" in error
    assert main([*args, "--resume", "--epochs", "4", "--learning-rate", "0.01"]) == 2
    error = one_line_error(capsys)
    for changed in ("epochs 3 -> 4", "learning_rate None -> 0.01", f"data {first / 'd.npy'}"):
        assert changed in error
    assert history_epochs(run_dir) == ["0"] and (run_dir / "backup").is_dir()

    # The same file by another relative path is the same data: the run resumes and ends.
    assert main([*args[:-4], "--data", "../first/d.npy", *args[-4:], "--resume"]) == 0
    assert history_epochs(run_dir) == ["0", "1", "2"] and not (run_dir / "backup").exists()
    recorded = json.loads((run_dir / "run.json").read_text())["data"]
    assert recorded == run_folder.fingerprint(first / "d.npy")  # its absolute path, size and SHA-256


def test_evaluate_says_how_many_sequences_it_scored(sequences_file, tmp_path, capsys):
    model = tmp_path / "untrained.keras"
    keras.utils.set_random_seed(0)
    build_model("cpu-fast", filters=(4,), kernel_sizes=(3,), precision="float32").save(model)
    args = ["evaluate", "--model", str(model), "--data", str(sequences_file)]
    assert main(args) == 0
    assert f"scoring 6 sequences of {sequences_file} (all it holds)" in capsys.readouterr().out
    assert main([*args, "--num-sequences", "2"]) == 0
    assert f"scoring 2 sequences of {sequences_file}\n" in capsys.readouterr().out


def test_help_is_quiet_and_quick_and_loads_no_keras():
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-m", "keras_convlstm", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Processor time, which other work on a busy machine does not stretch (loading TensorFlow takes several seconds).
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 2.0
    assert result.returncode == 0 and result.stderr == "" and result.stdout.startswith("usage: keras-convlstm")
    probe = "import sys, keras_convlstm.cli; print(sorted({'keras', 'tensorflow', 'jax', 'torch'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert loaded.stdout == "[]\n", loaded.stderr


@pytest.mark.parametrize("backend", ["torch", "jaxx"])
def test_a_keras_backend_that_cannot_load_is_one_line_naming_the_installed_ones(backend, sequences_file, tmp_path):
    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed here")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend}
    installed = ", ".join(name for name in ("tensorflow", "jax", "torch") if importlib.util.find_spec(name))
    expected = f"Keras cannot load the backend KERAS_BACKEND='{backend}': "

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "keras_convlstm", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    result = run("--help")
    assert result.returncode == 0 and result.stderr == "" and "evaluate" in result.stdout
    for args in (["evaluate", "--model", "m.keras", "--data", str(sequences_file)], ["train", "--preset", "cpu-fast"]):
        result = run(*args)
        assert result.returncode == 2
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert expected in result.stderr and f"; installed backends: {installed} (set KERAS_BACKEND" in result.stderr
    result = run("data", "--num-sequences", "1", "--out", str(tmp_path / "s.npy"))  # generated data needs no Keras
    assert result.returncode == 0 and np.load(tmp_path / "s.npy").shape == (1, 20, 64, 64, 1)


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_train_says_in_one_line_how_to_resume(sequences_file, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [*tiny_training(sequences_file), "--epochs", "1000"]
    command = [sys.executable, "-m", "keras_convlstm", *args, "--out-dir", str(run_dir)]
    # stderr goes to a file: a pipe nobody reads while stdout is read could fill and stall the run.
    with open(tmp_path / "stderr.txt", "w+") as stderr:
        # Ctrl-C reaches a command run from a terminal; one started by a shell in the background (`make test &`)
        # would inherit SIGINT ignored, so the child gets the default a terminal gives.
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, preexec_fn=default_sigint
        ) as process:
            for line in process.stdout:
                if line.startswith("Epoch 2/"):  # printed once epoch 1 and its backup are written
                    process.send_signal(signal.SIGINT)
                    break
            process.communicate(timeout=120)
        stderr.seek(0)
        err = stderr.read()
    assert process.returncode == 130, err
    resume = f"keras-convlstm {shlex.join(args)} --out-dir {run_dir} --resume"
    interrupted = "keras-convlstm train: interrupted; continue from its last finished epoch with"
    assert err.splitlines() == [f"{interrupted}: {resume}"]
    assert (run_dir / "backup").is_dir()


def test_ctrl_c_before_any_epoch_or_outside_train_is_one_line(sequences_file, tmp_path, monkeypatch, capsys):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", ctrl_c)
    run_dir = tmp_path / "run"
    assert main([*tiny_training(sequences_file), "--epochs", "2", "--out-dir", str(run_dir)]) == 130
    expected = f"keras-convlstm train: interrupted before its first epoch ended: nothing in {run_dir} to resume"
    assert one_line_error(capsys).startswith(expected)
    monkeypatch.setattr(synthetic, "generate_moving_mnist_split", ctrl_c)
    assert main(["data", "--out", str(tmp_path / "s.npy")]) == 130
    assert "keras-convlstm data: interrupted; every file is written whole" in one_line_error(capsys)
    assert not (tmp_path / "s.npy").exists()


def test_training_on_generated_data_validates_on_held_out_digits(tmp_path, monkeypatch):
    """``--data generated`` validates on sequences of the test digits, as ``load_or_generate_moving_mnist`` makes."""
    from keras_convlstm import data, mnist_digits

    given = {}

    def stand_in(model, train_set, validation, **kwargs):  # what train would fit on, without fitting
        given.update(train_set=train_set, validation=validation)
        history = keras.callbacks.History()
        history.history, history.epoch = {"loss": [0.5]}, [0]
        return history

    monkeypatch.setattr(training, "train", stand_in)
    args = ["train", "--preset", "cpu-fast", "--filters", "4", "--kernel-sizes", "3", "--data", "generated"]
    assert main([*args, "--num-sequences", "20", "--batch-size", "2", "--seed", "3", "--out-dir", str(tmp_path)]) == 0
    expected = data.load_or_generate_moving_mnist("generated", 20, num_validation=2, batch_size=2, seed=3)
    np.testing.assert_array_equal(given["validation"], expected.validation)
    assert given["train_set"].seed == 3 and given["train_set"].sequences_per_epoch == 20
    test_digits, _ = mnist_digits.load_mnist_digits("auto", "test", verbose=False)
    regenerated = synthetic.generate_moving_mnist(2, seed=synthetic.HELD_OUT_SEED + 3, digits=test_digits)
    np.testing.assert_array_equal(given["validation"], regenerated)
