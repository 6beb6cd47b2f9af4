"""Faults: every output is complete or absent, earlier outputs survive, bad input fails before any work."""

from __future__ import annotations

import errno
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_convlstm import evaluation, files, metrics, viz
from keras_convlstm.cli import main
from keras_convlstm.models import build_model


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if ".tmp-" in path.name)


def test_atomic_path_keeps_the_old_file_when_the_writer_fails_midway(tmp_path):
    target = files.write_text(tmp_path / "table.json", '{"old": true}\n')
    with pytest.raises(OSError, match="could not write .*No space left on device.*earlier file is unchanged"):
        with files.atomic_path(target) as temporary:
            temporary.write_text('{"new": ')  # half a file, then the disk fills
            _disk_full()
    assert target.read_text() == '{"old": true}\n'
    assert _leftovers(tmp_path) == []


def test_a_temporary_file_left_by_a_killed_write_is_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".frames.npy.tmp-abc123.npy"
    stale.write_bytes(b"\x93NUMPY half")
    files.save_npy(tmp_path / "frames.npy", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert _leftovers(tmp_path) == []
    np.testing.assert_array_equal(np.load(tmp_path / "frames.npy"), np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("bad_path", ["is_a_folder", "parent_is_a_file"])
def test_file_paths_are_checked_before_any_work(tmp_path, bad_path):
    (tmp_path / "is_a_folder").mkdir()
    (tmp_path / "plain_file").write_text("x")
    path = tmp_path / "is_a_folder" if bad_path == "is_a_folder" else tmp_path / "plain_file" / "out.json"
    with pytest.raises(OSError, match="cannot write"):
        files.check_file_path(path)


def test_a_failed_gif_or_figure_write_leaves_the_earlier_file_intact(tmp_path, monkeypatch):
    frames = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    gif = viz.save_gif(frames, tmp_path / "clip.gif")
    figure_path = tmp_path / "grid.png"
    viz.plot_frames(frames, path=figure_path)
    before = gif.read_bytes(), figure_path.read_bytes()

    monkeypatch.setattr(viz.iio, "imwrite", _disk_full)
    with pytest.raises(OSError):
        viz.save_gif(frames[::-1], gif)
    figure = viz.plot_frames(frames[::-1])
    monkeypatch.setattr(type(figure), "savefig", _disk_full)
    with pytest.raises(OSError):
        viz.plot_frames(frames[::-1], path=figure_path)
    assert (gif.read_bytes(), figure_path.read_bytes()) == before
    assert _leftovers(tmp_path) == []


def test_data_over_an_existing_file_then_a_full_disk_keeps_the_good_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "sequences.npy"
    assert main(["data", "--num-sequences", "2", "--seed", "1", "--out", str(out)]) == 0
    good = np.load(out)

    def half_then_full(handle, array, **kwargs):
        handle.write(b"\x93NUMPY\x01\x00")
        _disk_full()

    monkeypatch.setattr(files.np, "save", half_then_full)
    assert main(["data", "--num-sequences", "3", "--seed", "2", "--out", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out), good)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["data", "--num-sequences", "-3"], "--num-sequences"),
        (["data", "--num-sequences", "0"], "--num-sequences"),
        (["train", "--learning-rate", "inf"], "--learning-rate"),
        (["train", "--learning-rate", "-0.1"], "--learning-rate"),
        (["train", "--max-minutes", "-1"], "--max-minutes"),
        (["train", "--epochs", "0"], "--epochs"),
        (["predict", "--model", "m.keras", "--input", "x.npy", "--context", "-2"], "--context"),
        (["evaluate", "--model", "m.keras", "--num-sequences", "many"], "--num-sequences"),
    ],
)
def test_numbers_out_of_range_are_refused_in_one_line_before_any_work(tmp_path, monkeypatch, capsys, args, flag):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: argument {flag}: expected a" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_output_path_faults_are_one_line_errors_before_any_work(tmp_path, capsys):
    (tmp_path / "plain_file").write_text("x")
    assert main(["data", "--num-sequences", "1", "--out", str(tmp_path / "plain_file" / "s.npy")]) == 2
    assert main(["evaluate", "--model", "missing.keras", "--json", str(tmp_path / "plain_file" / "m.json")]) == 2
    assert (
        main(["predict", "--model", "missing.keras", "--input", "x.npy", "--out-dir", str(tmp_path / "plain_file")])
        == 2
    )
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all("plain_file is a file" in line or "it is a file" in line for line in errors)
    assert (tmp_path / "plain_file").read_text() == "x"


def test_predict_with_a_nan_model_writes_nothing_beside_earlier_outputs(tmp_path, capsys):
    model = build_model("cpu-fast", image_size=16, filters=(2,), kernel_sizes=(3,))
    model.set_weights([np.full(w.shape, np.nan, w.dtype) for w in model.get_weights()])
    model.save(tmp_path / "nan.keras")
    sequences = np.zeros((1, 4, 16, 16, 1), np.uint8)
    np.save(tmp_path / "in.npy", sequences)
    out_dir = tmp_path / "predict"
    out_dir.mkdir()
    (out_dir / "predictions.npy").write_bytes(b"earlier run")
    args = ["predict", "--model", str(tmp_path / "nan.keras"), "--input", str(tmp_path / "in.npy")]
    assert main([*args, "--context", "2", "--horizon", "2", "--out-dir", str(out_dir)]) == 2
    assert "NaN" in capsys.readouterr().err
    assert sorted(p.name for p in out_dir.iterdir()) == ["predictions.npy"]
    assert (out_dir / "predictions.npy").read_bytes() == b"earlier run"


def test_metrics_refuse_float_frames_outside_the_unit_range():
    frames = np.random.default_rng(0).integers(0, 256, (1, 2, 8, 8, 1), dtype=np.uint8)
    assert metrics.mse_per_frame(frames, frames).max() == 0
    with pytest.raises(ValueError, match=r"prediction in \[0, 1\].*divide \[0, 255\] floats by 255"):
        metrics.mse_per_frame(frames.astype(np.float32), frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"found 64 values outside \(min -1, max -1\)"):
        metrics.ssim(keras.ops.convert_to_numpy(-np.ones((1, 1, 8, 8, 1), np.float32)), np.zeros((1, 1, 8, 8, 1)))


@pytest.fixture(scope="module")
def small_patch_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "patches.keras"
    build_model("cpu-fast", image_size=16, filters=(2,), kernel_sizes=(3,)).save(path)
    return path


@pytest.mark.parametrize("frame_shape", [(16, 16, 3), (16, 12, 1), (14, 14, 1), (32, 32, 1)])
def test_frames_that_do_not_fit_the_model_fail_in_one_line_before_any_output(
    tmp_path, capsys, small_patch_model, frame_shape
):
    np.save(tmp_path / "in.npy", np.zeros((10, 20, *frame_shape), np.uint8))
    out_dir = tmp_path / "predict"
    model = ["--model", str(small_patch_model)]
    assert main(["predict", *model, "--input", str(tmp_path / "in.npy"), "--out-dir", str(out_dir)]) == 2
    assert main(["evaluate", *model, "--data", str(tmp_path / "in.npy"), "--json", str(tmp_path / "m.json")]) == 2
    run = ["train", "--preset", "cpu-fast", "--data", str(tmp_path / "in.npy"), "--out-dir", str(tmp_path / "run")]
    assert main([*run, "--epochs", "1", "--num-sequences", "10"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    shape = ", ".join(map(str, frame_shape))
    assert len(errors) == 3 and all("expected frames of shape (batch, time, " in e and shape in e for e in errors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_damaged_inputs_are_named_for_what_they_are(tmp_path, capsys):
    text = tmp_path / "notes.npy"
    text.write_text("frame,value\n1,2\n")
    cut = tmp_path / "cut.npy"
    np.save(cut, np.zeros((2, 20, 16, 16, 1), np.uint8))
    cut.write_bytes(cut.read_bytes()[:4000])
    empty_model = tmp_path / "empty.keras"
    empty_model.write_bytes(b"")
    run_dir = tmp_path / "run"
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "run.json").write_text("")

    np.save(tmp_path / "good.npy", np.zeros((1, 12, 16, 16, 1), np.uint8))
    assert main(["predict", "--model", str(empty_model), "--input", str(tmp_path / "good.npy")]) == 2
    assert main(["evaluate", "--model", str(empty_model), "--data", str(text)]) == 2
    assert main(["train", "--data", str(text), "--out-dir", str(tmp_path / "a")]) == 2
    assert main(["train", "--data", str(cut), "--out-dir", str(tmp_path / "b")]) == 2
    assert main(["train", "--out-dir", str(run_dir), "--resume"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5
    assert "empty.keras: it is not a .keras archive (0 bytes" in errors[0] and "File not found" not in errors[0]
    assert "empty.keras: it is not a .keras archive" in errors[1]
    assert "notes.npy is not a .npy file" in errors[2] and "pickle" not in errors[2]
    assert "cut.npy is truncated or damaged" in errors[3] and "mmap" not in errors[3]
    assert "run.json cannot be read" in errors[4] and "char" not in errors[4]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (np.full((4, 3, 8, 8, 1), np.nan, np.float32), "NaN or infinite"),
        (np.full((4, 3, 8, 8, 1), 200.0, np.float32), r"in \[0, 1\]"),
    ],
)
def test_train_checks_array_pairs_and_validation_data_like_files(tmp_path, inputs, message):
    from keras_convlstm.training import train

    model = build_model("keras-example-causal", image_size=8, filters=(2, 2, 2))
    good = np.zeros((4, 3, 8, 8, 1), np.float32)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        train(model, (inputs, good), epochs=1, out_dir=tmp_path / "a", verbose=0)
    with pytest.raises(ValueError, match=message):
        train(model, (good, good), (good, inputs), epochs=1, out_dir=tmp_path / "b", verbose=0)
    for got, expected in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert list(tmp_path.iterdir()) == []


def test_a_file_size_limit_mid_write_keeps_the_earlier_dataset_in_a_fresh_process(tmp_path):
    """``ulimit -f`` for real: the new dataset outgrows the limit, the write fails, the old file survives."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    out = tmp_path / "sequences.npy"
    earlier = np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8, 1)
    np.save(out, earlier)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "keras_convlstm", "data", "--num-sequences", "4", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=limit_file_size, timeout=300)
    assert result.returncode == 2, result.stderr
    assert f"could not write {out}" in result.stderr and "earlier file is unchanged" in result.stderr
    assert "Traceback" not in result.stderr
    np.testing.assert_array_equal(np.load(out), earlier)
    assert _leftovers(tmp_path) == []


def test_evaluate_json_on_a_full_disk_keeps_the_earlier_table(tmp_path, monkeypatch, capsys, small_patch_model):
    np.save(tmp_path / "in.npy", np.zeros((2, 20, 16, 16, 1), np.uint8))
    table = tmp_path / "metrics.json"
    table.write_text('{"earlier": true}\n')
    monkeypatch.setattr(files.Path, "write_text", _disk_full)
    args = ["evaluate", "--model", str(small_patch_model), "--data", str(tmp_path / "in.npy"), "--json", str(table)]
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    assert table.read_text() == '{"earlier": true}\n'
    assert _leftovers(tmp_path) == []


def test_a_user_sees_only_our_line_no_native_start_up_logs_or_optimizer_warning(tmp_path):
    import os
    import subprocess
    import sys

    untrained = tmp_path / "untrained.keras"
    build_model("cpu-fast", image_size=16, filters=(2,), kernel_sizes=(3,)).save(untrained)
    np.save(tmp_path / "in.npy", np.zeros((1, 4, 16, 16, 1), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = ["predict", "--model", str(untrained), "--input", str(tmp_path / "in.npy"), "--context", "3"]
    command = [sys.executable, "-m", "keras_convlstm", *args, "--horizon", "2", "--out-dir", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    command[command.index(str(tmp_path / "in.npy"))] = str(tmp_path / "missing.npy")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"keras-convlstm predict: error: input file not found: {tmp_path / 'missing.npy'} (expected a .npy file "
        "of sequences)"
    ]


def test_an_unknown_loss_is_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match=r"unknown loss 'bogus': expected a Keras loss name"):
        build_model("cpu-fast", loss="bogus")
    assert build_model("cpu-fast", image_size=16, filters=(2,), kernel_sizes=(3,), loss="mse").loss == "mse"


def test_predict_on_a_full_disk_changes_none_of_its_outputs(tmp_path, monkeypatch, small_patch_model):
    np.save(tmp_path / "in.npy", np.random.default_rng(0).integers(0, 256, (1, 20, 16, 16, 1), dtype=np.uint8))
    out_dir = tmp_path / "predict"
    args = [
        "predict",
        "--model",
        str(small_patch_model),
        "--input",
        str(tmp_path / "in.npy"),
        "--out-dir",
        str(out_dir),
    ]
    assert main(args) == 0
    earlier = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    assert sorted(earlier) == ["predictions.npy", "rollout.gif", "rollout.png"]

    monkeypatch.setattr(viz.iio, "imwrite", _disk_full)  # the GIF is written last
    assert main([*args, "--context", "8", "--horizon", "12"]) == 2
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == earlier  # all three as they were


def test_evaluate_json_into_a_new_folder_keeps_the_work(tmp_path, capsys, small_patch_model):
    np.save(tmp_path / "in.npy", np.zeros((2, 20, 16, 16, 1), np.uint8))
    table = tmp_path / "not" / "yet" / "metrics.json"
    args = ["evaluate", "--model", str(small_patch_model), "--data", str(tmp_path / "in.npy"), "--json", str(table)]
    assert main(args) == 0
    assert evaluation.MetricTable.from_json(table).systems == ["model", "copy-last-frame", "blank"]
    assert f"wrote {table}" in capsys.readouterr().out
