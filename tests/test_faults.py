"""Faults: every output is complete or absent, earlier outputs survive, bad input fails before any work."""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from command_line import one_line_error
from harness import tiny_model
from PIL import Image, ImageSequence

from keras_convlstm import animation, cli, evaluation, files, metrics, rollout, viz
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
    gif = animation.save_gif(frames, tmp_path / "clip.gif")
    figure_path = tmp_path / "grid.png"
    viz.plot_frames(frames, path=figure_path)
    before = gif.read_bytes(), figure_path.read_bytes()

    monkeypatch.setattr(animation.iio, "imwrite", _disk_full)
    with pytest.raises(OSError):
        animation.save_gif(frames[::-1], gif)
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
        (["train", "--learning-rate", "-1e-3"], "--learning-rate"),
        (["data", "--seed", "-1"], "--seed"),
        (["train", "--seed", "-1"], "--seed"),
        (["evaluate", "--model", "m.keras", "--seed", str(2**32)], "--seed"),
        (["recipe", "moving-square", "--seed", "1.5"], "--seed"),
        (["train", "--val-fraction", "1"], "--val-fraction"),
        (["train", "--val-fraction", "-1e-3"], "--val-fraction"),
        (["train", "--val-fraction", "nan"], "--val-fraction"),
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
    model = tiny_model("cpu-fast", filters=(2,), kernel_sizes=(3,))
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
    tiny_model("cpu-fast", filters=(2,), kernel_sizes=(3,)).save(path)
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

    model = tiny_model("keras-example-causal", image_size=8, filters=(2, 2, 2))
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
    tiny_model("cpu-fast", filters=(2,), kernel_sizes=(3,)).save(untrained)
    np.save(tmp_path / "in.npy", np.zeros((1, 4, 16, 16, 1), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = ["predict", "--model", str(untrained), "--input", str(tmp_path / "in.npy"), "--context", "3"]
    command = [sys.executable, "-m", "keras_convlstm", *args, "--horizon", "2", "--out-dir", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    # On a loaded machine the 2 frames can take longer than PROGRESS_DELAY_S: then the progress bar shows, and goes.
    shown = [line for line in re.split(r"[\r\n]", result.stderr) if line.strip()]
    assert result.returncode == 0 and all(line.startswith("predicting: ") for line in shown), result.stderr
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


def test_predict_on_a_full_disk_changes_none_of_its_outputs(tmp_path, monkeypatch, capsys, small_patch_model):
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

    monkeypatch.setattr(animation.iio, "imwrite", _disk_full)  # the GIF is written last
    assert main([*args, "--context", "8", "--horizon", "12"]) == 2
    written = ", ".join(str(out_dir / name) for name in ("predictions.npy", "rollout.png", "rollout.gif"))
    assert one_line_error(capsys).endswith(
        f"error: could not write {written} (No space left on device); the earlier files are unchanged"
    )
    assert main([*args[:-1], str(tmp_path / "fresh")]) == 2
    assert one_line_error(capsys).endswith("(No space left on device); nothing was written")
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == earlier  # all three as they were
    assert not (tmp_path / "fresh").exists() or list((tmp_path / "fresh").iterdir()) == []


def test_evaluate_json_into_a_new_folder_keeps_the_work(tmp_path, capsys, small_patch_model):
    np.save(tmp_path / "in.npy", np.zeros((2, 20, 16, 16, 1), np.uint8))
    table = tmp_path / "not" / "yet" / "metrics.json"
    args = ["evaluate", "--model", str(small_patch_model), "--data", str(tmp_path / "in.npy"), "--json", str(table)]
    assert main(args) == 0
    assert evaluation.MetricTable.from_json(table).systems == ["model", "copy-last-frame", "blank"]
    assert f"wrote {table}" in capsys.readouterr().out


@pytest.fixture
def umask():
    """Sets the process's umask for one test: ``umask(0o022)``; restores the earlier one after."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_every_output_gets_the_mode_a_plain_write_gives(tmp_path, umask, small_patch_model, mask):
    umask(mask)
    (tmp_path / "plain").write_text("a plain write")
    frames = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    outputs = [
        files.write_json(tmp_path / "run.json", {"seed": 0}),
        files.save_npy(tmp_path / "predictions.npy", frames),
        animation.save_gif(frames, tmp_path / "rollout.gif"),
        tmp_path / "rollout.png",
        tmp_path / "model.keras",
    ]
    viz.plot_frames(frames, path=tmp_path / "rollout.png")
    with files.atomic_path(tmp_path / "model.keras") as temporary:
        keras.saving.load_model(small_patch_model).save(temporary)
    assert _mode(tmp_path / "plain") == 0o666 & ~mask
    assert {path.name: oct(_mode(path)) for path in outputs} == {path.name: oct(0o666 & ~mask) for path in outputs}


def test_a_replaced_file_keeps_its_mode_through_the_command_line(tmp_path, umask, capsys):
    umask(0o022)
    out = tmp_path / "sequences.npy"
    assert main(["data", "--num-sequences", "1", "--out", str(out)]) == 0
    assert _mode(out) == 0o644  # as `np.save(out, ...)` would leave it
    out.chmod(0o640)
    assert main(["data", "--num-sequences", "1", "--seed", "3", "--out", str(out)]) == 0
    assert _mode(out) == 0o640
    table = files.write_json(tmp_path / "metrics.json", {})
    table.chmod(0o600)
    assert _mode(files.write_json(table, {"replaced": True})) == 0o600


def test_a_horizon_beyond_the_machine_is_refused_before_any_work(tmp_path, monkeypatch, capsys, small_patch_model):
    np.save(tmp_path / "in.npy", np.zeros((2, 12, 16, 16, 1), np.uint8))
    rollouts = []
    monkeypatch.setattr(rollout, "predict_rollout", lambda *args, **kwargs: rollouts.append(args))
    out_dir = tmp_path / "predict"
    args = ["predict", "--model", str(small_patch_model), "--input", str(tmp_path / "in.npy")]
    args += ["--out-dir", str(out_dir)]
    started = time.perf_counter()
    assert main([*args, "--horizon", str(10**9)]) == 2
    assert time.perf_counter() - started < 10
    error = one_line_error(capsys)
    assert f"--horizon {10**9} on 2 sequences needs about" in error and "TB of memory (" in error
    assert f"TB into {out_dir} (" in error and "choose a smaller --horizon" in error
    assert rollouts == [] and not out_dir.exists()

    class SmallMachine:  # psutil.virtual_memory() of a machine with 64 MB available
        available = 64_000_000

    monkeypatch.setattr(cli.psutil, "virtual_memory", SmallMachine)
    memory, _ = cli.predict_needs((2, 12, 16, 16, 1), 10, 10_000, with_truth=False)
    assert memory > SmallMachine.available > 2 * 10_000 * 16 * 16 * 4  # the frames alone would fit
    assert main([*args, "--horizon", "10000"]) == 2
    assert "(64.0MB available)" in one_line_error(capsys)
    assert rollouts == [] and not out_dir.exists()


def test_the_estimate_of_predict_covers_what_it_writes_and_progress_is_shown(
    tmp_path, monkeypatch, capsys, small_patch_model
):
    sequences = np.random.default_rng(1).integers(0, 256, (3, 12, 16, 16, 1), dtype=np.uint8)
    np.save(tmp_path / "in.npy", sequences)
    monkeypatch.setattr(cli, "PROGRESS_DELAY_S", 0.0)
    monkeypatch.setattr(cli, "PREDICT_BATCH", 2)  # two batches: 2 sequences, then 1
    monkeypatch.setattr(cli, "GIF_FRAMES", 7)
    out_dir = tmp_path / "predict"
    args = ["predict", "--model", str(small_patch_model), "--input", str(tmp_path / "in.npy"), "--context", "4"]
    assert main([*args, "--horizon", "30", "--out-dir", str(out_dir)]) == 0
    progress = capsys.readouterr().err
    assert "predicting:" in progress and "60/90 [" in progress  # after the first batch of 2 x 30 frames
    written = sum(path.stat().st_size for path in out_dir.iterdir())
    _, disk = cli.predict_needs(sequences.shape, 4, 30, with_truth=False)
    assert written <= disk
    expected = rollout.predict_rollout(keras.saving.load_model(small_patch_model), sequences[:, :4], 30)
    np.testing.assert_allclose(np.load(out_dir / "predictions.npy"), expected, atol=1e-6)
    with Image.open(out_dir / "rollout.gif") as gif:  # identical frames may be merged: count their display time
        shown_ms = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif))
    assert shown_ms == (4 + 7) * 200  # the 4 context frames, then the first GIF_FRAMES predicted ones


def test_a_full_disk_under_train_names_the_run_folder(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "in.npy", np.random.default_rng(0).integers(0, 256, (3, 6, 64, 64, 1), dtype=np.uint8))

    def disk_full_inside_keras(self, *args, **kwargs):  # Keras's saving code names no file in its errors
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", disk_full_inside_keras)
    run_dir = tmp_path / "run"
    args = ["train", "--preset", "cpu-fast", "--precision", "float32", "--filters", "4", "--kernel-sizes", "3"]
    args += ["--data", str(tmp_path / "in.npy"), "--batch-size", "2", "--val-fraction", "0.34", "--epochs", "1"]
    assert main([*args, "--out-dir", str(run_dir)]) == 2
    assert one_line_error(capsys).endswith(f"error: could not write into {run_dir} (No space left on device)")


def test_a_cache_folder_that_cannot_be_written_points_at_the_command_line_choices(
    tmp_path, monkeypatch, capsys, small_patch_model
):
    cache = Path(os.environ["KERAS_HOME"]) / "datasets"
    make_folder = Path.mkdir

    def read_only_keras_home(self, *args, **kwargs):
        if self.is_relative_to(cache.parent):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return make_folder(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_keras_home)
    assert main(["data", "--source", "official", "--out", str(tmp_path / "s.npy")]) == 2
    error = one_line_error(capsys)
    assert f"cannot save the official Moving MNIST file in {cache} (Permission denied)" in error
    assert error.endswith("--cache-dir FOLDER with a folder you can write, or --source generated (made here, offline)")
    assert main(["evaluate", "--model", str(small_patch_model), "--data", "official"]) == 2
    error = one_line_error(capsys)
    assert error.endswith("KERAS_HOME=FOLDER with a folder you can write, or --data generated (made here, offline)")
    assert list(tmp_path.iterdir()) == []


def test_frames_given_as_python_lists_are_named_as_such():
    with pytest.raises(TypeError, match=r"float in \[0, 1\], got a list of Python int values"):
        metrics.mse_per_frame([[[[[1]]]]], [[[[[1]]]]])
    with pytest.raises(TypeError, match=r"float in \[0, 1\], got int64$"):
        metrics.mse_per_frame(np.ones((1, 1, 1, 1, 1), np.int64), np.ones((1, 1, 1, 1, 1), np.int64))


def tiny_train(data_file: Path, out_dir: Path) -> list[str]:
    """``train`` arguments for a seconds-long run on ``data_file``: 6 sequences split 4 / 2, batches of 2."""
    args = ["train", "--preset", "cpu-fast", "--precision", "float32", "--filters", "4", "--kernel-sizes", "3"]
    return [*args, "--data", str(data_file), "--batch-size", "2", "--val-fraction", "0.34", "--out-dir", str(out_dir)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--steps-per-epoch", "1000"], "steps_per_epoch=1000 is more than the 2 batches of the training data"),
        (["--scheduled-sampling", "0", "10", "--context", "25"], "the training inputs have 19 frames"),
        (["--num-sequences", "1000"], "--num-sequences 1000: {data} holds 6"),
        (["--batch-size", "5"], "--batch-size 5 is more than the 4 training sequences of {data}"),
        (["--sync-batchnorm"], "--sync-batchnorm: only with several devices (--devices N or --multi-worker)"),
    ],
)
def test_train_settings_the_data_cannot_honour_fail_in_one_line_before_any_file(tmp_path, capsys, options, message):
    data_file = tmp_path / "d.npy"
    np.save(data_file, np.random.default_rng(0).integers(0, 256, (6, 20, 64, 64, 1), dtype=np.uint8))
    assert main([*tiny_train(data_file, tmp_path / "run"), "--epochs", "1", *options]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and message.format(data=data_file) in errors[0], errors
    assert sorted(path.name for path in tmp_path.iterdir()) == ["d.npy"]


def test_devices_the_data_cannot_be_split_across_fail_before_any_file_in_a_fresh_process(tmp_path):
    """Three replicas and a validation set of one batch of 2: refused before run.json or any other file."""
    import os
    import subprocess
    import sys

    data_file = tmp_path / "d.npy"
    np.save(data_file, np.zeros((6, 4, 64, 64, 1), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "keras_convlstm", *tiny_train(data_file, tmp_path / "run"), "--devices", "3"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "keras-convlstm train: error: the validation data has one batch of 2 sequence(s), which cannot be split "
        "across 3 replicas: give it at least 3 sequences, or use fewer devices"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["d.npy"]


def test_negative_numbers_in_any_notation_reach_the_option_and_plain_ones_stay_values():
    assert cli.attach_negative_numbers(["--learning-rate", "-1e-3", "--max-minutes", "-inf"]) == [
        "--learning-rate=-1e-3",
        "--max-minutes=-inf",
    ]
    kept = ["--scheduled-sampling", "-1", "5", "--context", "-0.5"]
    assert cli.attach_negative_numbers(kept) == kept  # argparse reads these as values already
    args = cli.build_parser().parse_args(["train", *cli.attach_negative_numbers(["--scheduled-sampling", "-1", "5"])])
    assert args.scheduled_sampling == [-1, 5]


def test_a_gif_of_thousands_of_identical_frames_is_written_with_the_longest_display_time_gif_allows(tmp_path):
    still = np.zeros((3400, 4, 4), np.uint8)
    moved = np.concatenate([still, np.full((1, 4, 4), 255, np.uint8)])
    gif = animation.save_gif(moved, tmp_path / "still.gif", annotate=False, scale=1)
    with Image.open(gif) as image:
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(image)]
    assert durations == [3276 * 200, 200]  # 3,400 x 200 ms merged, capped at the last whole frame within 655.35 s
    with Image.open(animation.save_gif(still[:1], tmp_path / "one.gif", annotate=False, scale=1)) as image:
        assert image.n_frames == 1 and image.info["duration"] == 200
    (tmp_path / "one.gif").unlink()
    with pytest.raises(ValueError, match=r"expected duration_ms from 1 to 655350 .*, got 1000000"):
        animation.save_gif(still[:2], tmp_path / "slow.gif", duration_ms=1_000_000)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["still.gif"]


@pytest.mark.parametrize("first_import", ["layers", "losses", "precision"])
def test_a_package_model_loads_whichever_package_module_was_imported_first(tmp_path, first_import):
    import subprocess
    import sys

    path = tmp_path / "causal.keras"
    tiny_model("keras-example-causal", image_size=8, filters=(2, 2, 2)).save(path)
    script = (
        f"import keras_convlstm.{first_import}\nimport keras\n"
        f"model = keras.saving.load_model({str(path)!r})\nprint(type(model).__name__, model.config.name)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ConvLSTMModel", "keras-example-causal"]


def test_python_m_runs_the_command_line_through_the_package_import_hook(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "keras_convlstm", "data", "--num-sequences", "1", "--out", str(tmp_path / "s.npy")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "s.npy").shape == (1, 20, 64, 64, 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--frame-size", "18"], "--frame-size 18: the preset reads frames in 4x4 patches; expected sides divisible"),
        (["--frame-size", "16", "--num-sequences", "2"], "--num-sequences 2: --data {data} is video, cut into every"),
    ],
)
def test_video_options_errors_name_the_options_typed(tmp_path, capsys, options, message):
    from PIL import Image as PILImage

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(12):
        PILImage.fromarray(np.full((16, 16), index * 20, np.uint8)).save(folder / f"{index:02d}.png")
    assert main([*tiny_train(folder, tmp_path / "run"), "--epochs", "1", *options]) == 2
    error = one_line_error(capsys)
    assert message.format(data=folder) in error and "image_size" not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["frames"]


@pytest.mark.parametrize("options", [["--frame-size", "16"], ["--clip-frames", "5"], ["--colour"], ["--grey"]])
def test_video_options_with_sequences_are_refused_not_ignored(tmp_path, capsys, options):
    data_file = tmp_path / "d.npy"
    np.save(data_file, np.zeros((6, 4, 64, 64, 1), np.uint8))
    assert main([*tiny_train(data_file, tmp_path / "run"), "--epochs", "1", *options]) == 2
    error = one_line_error(capsys)
    assert f"only for videos, but --data {data_file} holds sequences" in error and options[0][:7] in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["d.npy"]


def test_evaluate_refuses_an_explicit_count_beyond_the_file_and_scores_all_by_default(tmp_path, capsys):
    model = tmp_path / "m.keras"
    tiny_model("cpu-fast", filters=(2,), kernel_sizes=(3,)).save(model)
    data_file = tmp_path / "d.npy"
    np.save(data_file, np.zeros((3, 20, 16, 16, 1), np.uint8))
    args = ["evaluate", "--model", str(model), "--data", str(data_file), "--context", "4", "--horizon", "2"]
    assert main([*args, "--num-sequences", "1000"]) == 2
    assert one_line_error(capsys).endswith(f"error: --num-sequences 1000: {data_file} holds 3 sequences")
    assert main(args) == 0
    assert f"scoring 3 sequences of {data_file} (all it holds)" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--out-dir=", "--json=", "--out="])
def test_an_empty_output_path_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch, capsys, option):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "in.npy", np.zeros((1, 6, 16, 16, 1), np.uint8))
    commands = {
        "--out-dir=": ["predict", "--model", "m.keras", "--input", "in.npy"],
        "--json=": ["evaluate", "--model", "m.keras", "--data", "in.npy"],
        "--out=": ["data", "--num-sequences", "1"],
    }
    assert main([*commands[option], option]) == 2  # `--out-dir "$UNSET"` in a script
    assert one_line_error(capsys).endswith("got an empty path ('')")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.npy"]


def test_an_npz_archive_named_npy_is_named_for_what_it_is(tmp_path, capsys, small_patch_model):
    np.savez(tmp_path / "frames.npy", x=np.zeros((1, 6, 16, 16, 1), np.uint8))  # savez keeps the .npy name
    archive = tmp_path / "frames.npy"
    (tmp_path / "frames.npy.npz").rename(archive)
    assert main(["predict", "--model", str(small_patch_model), "--input", str(archive)]) == 2
    assert f"{archive} is not a .npy file" in one_line_error(capsys)


def test_a_kernel_wider_than_twice_the_grid_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"kernel_sizes must be at most 31 \(twice the side of the 16x16 grid"):
        build_model("cpu-fast", filters=(2,), kernel_sizes=(101,))
    assert build_model("cpu-fast", image_size=16, filters=(2,), kernel_sizes=(7,)).config.kernel_sizes == (7,)


def test_library_calls_name_the_argument_a_user_got_wrong(tmp_path, small_patch_model):
    from keras_convlstm import data, training

    frames = np.zeros((2, 4, 16, 16, 1), np.uint8)
    with pytest.raises(TypeError, match=r"expected a keras.Model \(keras.saving.load_model reads a .keras file\)"):
        rollout.predict_rollout(str(small_patch_model), frames, 2)
    model = keras.saving.load_model(small_patch_model)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got 0"):
        rollout.official_rollout(model, frames, 0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        data.split_indices(10, 0.2, seed=-1)
    pair = (frames[:, :-1].astype(np.float32), frames[:, 1:].astype(np.float32))
    for option in ({"seed": -1}, {"patience": -1}):
        with pytest.raises(ValueError, match=f"{next(iter(option))} must be an integer >= 0, got -1"):
            training.train(model, pair, epochs=1, out_dir=tmp_path / "run", verbose=0, **option)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_is_reported_like_ctrl_c_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    import signal

    def terminated_while_generating(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # `kill PID`, or a job scheduler stopping the job
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt the command")

    monkeypatch.setattr(cli.synthetic, "generate_moving_mnist_split", terminated_while_generating)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["data", "--num-sequences", "2", "--out", str(tmp_path / "s.npy")]) == 143
    assert one_line_error(capsys) == (
        "keras-convlstm data: interrupted; every file is written whole or not at all, so none is left half written"
    )
    assert signal.getsignal(signal.SIGTERM) == before and list(tmp_path.iterdir()) == []


def test_data_beyond_the_machine_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.synthetic, "generate_moving_mnist_split", lambda *args, **kwargs: pytest.fail("ran"))
    assert main(["data", "--num-sequences", str(10**9), "--out", str(tmp_path / "s.npy")]) == 2
    error = one_line_error(capsys)
    assert "--num-sequences 1,000,000,000 needs about 81.9TB of memory" in error
    assert error.endswith("choose a smaller --num-sequences") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--url", "https://example.org/f.npy"], "--url: not used with --source generated"),
        (["--cache-dir", "cache"], "--cache-dir: not used with --source generated"),
        (["--source", "official", "--seed", "3"], "--seed: not used with --source official"),
        (["--source", "official", "--digits", "test"], "--digits: not used with --source official"),
    ],
)
def test_data_options_of_the_other_source_are_refused_not_ignored(tmp_path, monkeypatch, capsys, options, message):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "--num-sequences", "1", "--out", "s.npy", *options]) == 2
    assert one_line_error(capsys).endswith(f"error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_predict_refuses_a_model_whose_frames_leave_the_unit_range(tmp_path, capsys):
    inputs = keras.Input((None, 16, 16, 1))
    keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="ones")(inputs)).save(
        tmp_path / "linear.keras"
    )
    np.save(tmp_path / "in.npy", np.full((1, 6, 16, 16, 1), 255, np.uint8))
    args = ["predict", "--model", str(tmp_path / "linear.keras"), "--input", str(tmp_path / "in.npy")]
    assert main([*args, "--context", "3", "--horizon", "2", "--out-dir", str(tmp_path / "out")]) == 2
    assert "predicted values outside [0, 1] (min 2, max 3)" in one_line_error(capsys)  # 1 + 1, then 2 + 1
    assert not (tmp_path / "out").exists()
