"""Next-frame clips from real video files (.mp4, .gif, PNG frames, .npy) and colour models trained on them."""

import json
import os

import imageio.v3 as iio
import keras
import numpy as np
import pytest
from PIL import Image

from keras_convlstm import clips, metrics
from keras_convlstm.animation import save_side_by_side_gif
from keras_convlstm.models import build_model
from keras_convlstm.rollout import official_rollout, predict_rollout
from keras_convlstm.viz import plot_truth_vs_prediction

COLOURS = ((255, 40, 40), (40, 255, 40), (60, 60, 255))


def moving_square(num_frames: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 ``(num_frames, size, size, 3)``: a coloured 4x4 square on black, moving one pixel a frame."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    row, col = rng.integers(0, size - 4, size=2)
    step_row, step_col = rng.choice([-1, 1], size=2)
    colour = COLOURS[seed % len(COLOURS)]
    for t in range(num_frames):
        if not 0 <= row + step_row <= size - 4:
            step_row = -step_row
        if not 0 <= col + step_col <= size - 4:
            step_col = -step_col
        row, col = row + step_row, col + step_col
        frames[t, row : row + 4, col : col + 4] = colour
    return frames


def write_png_frames(folder, frames: np.ndarray) -> None:
    """Frames named frame_0.png .. frame_N.png, unpadded: reading them in order needs a numeric sort."""
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{index}.png")


def write_mp4(path, frames: np.ndarray) -> None:
    iio.imwrite(path, frames, plugin="pyav", codec="mpeg4", fps=10)


def write_gif(path, frames: np.ndarray) -> None:
    iio.imwrite(path, frames, extension=".gif", duration=100, loop=0)


def cache_files(cache_dir) -> list[str]:
    return sorted(os.listdir(cache_dir)) if cache_dir.exists() else []


def test_png_frames_cut_into_exact_clips_of_a_memory_mapped_cache(tmp_path):
    frames = moving_square(25)
    write_png_frames(tmp_path / "frames", frames)
    clip_set = clips.load_video_clips(
        tmp_path / "frames", 8, stride=4, frame_size=None, channels=3, cache_dir=tmp_path / "cache", verbose=False
    )
    assert clip_set.clips.shape == (5, 8, 16, 16, 3) and clip_set.clips.dtype == np.uint8
    assert isinstance(clip_set.clips, np.memmap)
    for index, start in enumerate(range(0, 25 - 8 + 1, 4)):
        np.testing.assert_array_equal(clip_set.clips[index], frames[start : start + 8])
    np.testing.assert_array_equal(clip_set.starts, [0, 4, 8, 12, 16])
    assert clip_set.videos == ["frames"] and clip_set.video_frames.tolist() == [25]
    assert cache_files(tmp_path / "cache") == sorted([clip_set.path.name, clip_set.path.with_suffix(".json").name])

    grey = clips.load_video_clips(
        tmp_path / "frames", 8, stride=4, frame_size=8, channels=1, cache_dir=tmp_path / "cache", verbose=False
    )
    assert grey.clips.shape == (5, 8, 8, 8, 1) and grey.clips.dtype == np.uint8
    full_size_grey = clips.read_frames(tmp_path / "frames", frame_size=None, channels=1)[..., 0].astype(float)
    # ITU-R 601 luma of the colour frames, to Pillow's integer rounding.
    luma = frames.astype(float) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(full_size_grey, luma, atol=1)


def test_a_folder_of_mp4_gif_png_and_npy_videos_splits_by_video(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    sources = {name: moving_square(24 + 4 * seed, seed=seed) for seed, name in enumerate("abcde")}
    write_mp4(folder / "a.mp4", sources["a"])
    write_gif(folder / "b.gif", sources["b"])
    write_png_frames(folder / "c", sources["c"])
    np.save(folder / "d.npy", sources["d"])
    write_mp4(folder / "e.mov", sources["e"])
    (folder / "notes.txt").write_text("not a video")

    clip_set = clips.load_video_clips(folder, 6, channels=3, frame_size=16, cache_dir=tmp_path / "cache", verbose=False)
    assert clip_set.videos == ["a.mp4", "b.gif", "c", "d.npy", "e.mov"]
    assert clip_set.video_frames.tolist() == [24, 28, 32, 36, 40]
    assert np.bincount(clip_set.video_index).tolist() == [4, 4, 5, 6, 6]
    assert clip_set.clips.shape == (25, 6, 16, 16, 3) and clip_set.clips.dtype == np.uint8
    for index, name in enumerate("abcde"):
        first = clip_set.clips[np.flatnonzero(clip_set.video_index == index)[0]].astype(float)
        error = np.abs(first - sources[name][:6]).mean()
        assert error < (8 if name in "ae" else 1e-9 if name in "cd" else 2), (name, error)  # mpeg4 is lossy

    for seed in range(4):
        train_idx, val_idx = clip_set.split(0.25, seed=seed)
        assert np.intersect1d(train_idx, val_idx).size == 0
        np.testing.assert_array_equal(np.union1d(train_idx, val_idx), np.arange(len(clip_set)))
        assert not set(clip_set.video_index[train_idx]) & set(clip_set.video_index[val_idx])
        np.testing.assert_array_equal(clip_set.split(0.25, seed=seed)[1], val_idx)

    train, validation = clip_set.datasets(batch_size=3, val_fraction=0.25, seed=1)
    x, y = train[0]
    assert x.shape == y.shape == (3, 5, 16, 16, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert validation.dtype == np.uint8 and validation.shape[1:] == (6, 16, 16, 3)


def test_the_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    write_gif(tmp_path / "clip.gif", moving_square(20))
    decoded = []
    original = clips.iter_frames
    monkeypatch.setattr(clips, "iter_frames", lambda *args: decoded.append(args[0]) or original(*args))
    settings = {"clip_frames": 5, "channels": 3, "frame_size": 16, "cache_dir": tmp_path / "cache", "verbose": False}
    first = clips.load_video_clips(tmp_path / "clip.gif", **settings)
    second = clips.load_video_clips(tmp_path / "clip.gif", **settings)
    assert len(decoded) == 1 and second.path == first.path
    np.testing.assert_array_equal(second.clips, first.clips)

    write_gif(tmp_path / "clip.gif", moving_square(30, seed=1))
    third = clips.load_video_clips(tmp_path / "clip.gif", **settings)
    assert len(decoded) == 2 and third.path != first.path and third.clips.shape == (6, 5, 16, 16, 3)


def test_a_single_video_is_split_in_time(tmp_path):
    write_mp4(tmp_path / "one.mp4", moving_square(40))
    clip_set = clips.load_video_clips(
        tmp_path / "one.mp4", 8, stride=2, frame_size=16, cache_dir=tmp_path / "cache", verbose=False
    )
    assert clip_set.clips.shape == (17, 8, 16, 16, 1)
    train_idx, val_idx = clip_set.split(0.25)
    boundary = 30  # round(0.75 * 40)
    assert len(train_idx) and len(val_idx)
    assert (clip_set.starts[train_idx] + 8 <= boundary).all() and (clip_set.starts[val_idx] >= boundary).all()
    with pytest.raises(ValueError, match=r"one.mp4 \(40 frames\).*0 validation clips"):
        clip_set.split(0.05)


def _bad_inputs(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video")
    write_gif(tmp_path / "short.gif", moving_square(5))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_gif(mixed / "small.gif", moving_square(12))
    write_gif(mixed / "large.gif", moving_square(12, size=32))
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a video")
    np.save(tmp_path / "floats.npy", np.zeros((12, 16, 16), dtype=np.float32))
    frames = tmp_path / "bad_frame"
    write_png_frames(frames, moving_square(12))
    (frames / "frame_3.png").write_bytes(b"not a png")
    return {
        "broken.mp4": ({"path": tmp_path / "broken.mp4"}, ValueError, r"could not decode the video .*broken\.mp4"),
        "short": ({"path": tmp_path / "short.gif"}, ValueError, r"short\.gif has 5 frames, fewer than the 8"),
        "mixed": ({"path": mixed, "frame_size": None}, ValueError, r"one frame size.*pass frame_size"),
        "empty": ({"path": tmp_path / "empty"}, ValueError, r"no video in the folder .*empty"),
        "missing": ({"path": tmp_path / "none.mp4"}, FileNotFoundError, r"no video file or folder at .*none\.mp4"),
        "text": ({"path": tmp_path / "notes.txt"}, ValueError, r"expected a video file ending in .*notes\.txt"),
        "floats": ({"path": tmp_path / "floats.npy"}, ValueError, r"expected one video of uint8 frames .*float32"),
        "bad frame": ({"path": frames}, ValueError, r"could not read the frame .*frame_3\.png"),
        "patch": ({"path": mixed / "large.gif", "frame_size": 30, "patch_size": 4}, ValueError, r"patch size 4"),
    }


@pytest.mark.parametrize(
    "case", ["broken.mp4", "short", "mixed", "empty", "missing", "text", "floats", "bad frame", "patch"]
)
def test_bad_files_and_folders_give_one_line_errors_and_leave_nothing(tmp_path, case):
    arguments, error_type, pattern = _bad_inputs(tmp_path)[case]
    cache_dir = tmp_path / "cache"
    with pytest.raises(error_type, match=pattern) as raised:
        clips.load_video_clips(clip_frames=8, cache_dir=cache_dir, verbose=False, **arguments)
    assert "\n" not in str(raised.value)
    assert cache_files(cache_dir) == []


@pytest.mark.backends
def test_a_colour_model_trains_rolls_out_scores_draws_and_reloads(tmp_path):
    folder = tmp_path / "videos"
    for seed in range(3):
        write_png_frames(folder / f"square{seed}", moving_square(24, seed=seed))
    clip_set = clips.load_video_clips(folder, 8, channels=3, frame_size=16, cache_dir=tmp_path / "cache", verbose=False)
    train, validation = clip_set.datasets(batch_size=2, val_fraction=0.3, seed=0)

    keras.utils.set_random_seed(0)
    model = build_model(
        "cpu-fast", channels=3, image_size=16, filters=(4,), kernel_sizes=(3,), precision="float32", patch_size=4
    )
    before = [weight.copy() for weight in model.get_weights()]
    history = model.fit(train, epochs=1, steps_per_epoch=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(old, new) for old, new in zip(before, model.get_weights(), strict=True))

    context, truth = validation[:, :5], validation[:, 5:8]
    prediction = predict_rollout(model, context, 3)
    assert prediction.shape == (len(validation), 3, 16, 16, 3) and prediction.dtype == np.float32
    np.testing.assert_allclose(prediction, official_rollout(model, context, 3), atol=1e-5)

    scores = metrics.frame_metrics(prediction, truth)
    assert scores["mse"].shape == (3,)
    per_channel = [metrics.ssim(prediction[..., [c]], truth[..., [c]]) for c in range(3)]
    np.testing.assert_allclose(scores["ssim"], np.mean(per_channel, axis=0), rtol=1e-10)

    gif = save_side_by_side_gif(truth[0] / np.float32(255), prediction[0], tmp_path / "side_by_side.gif", scale=1)
    drawn = iio.imread(gif, index=None)
    assert drawn.shape[0] == 3 and drawn.shape[-1] in (3, 4) and drawn.shape[2] > 2 * 16
    # The left video's first frame: inside the grey border, the only non-white rows of the left column.
    border = np.flatnonzero(np.abs(drawn[0, :, 0, :3].astype(int) - 128).max(axis=-1) < 24)
    assert len(border) == 16 + 2
    truth_panel = drawn[0, border[1] : border[-1], 1:17, :3].astype(int)
    assert np.abs(truth_panel - truth[0, 0]).mean() < 10
    assert (truth_panel.max(axis=-1) - truth_panel.min(axis=-1)).max() > 100  # still in colour
    plot_truth_vs_prediction(truth[0], prediction[0], path=tmp_path / "rollout.png")
    assert iio.imread(tmp_path / "rollout.png").ndim == 3

    model.save(tmp_path / "colour.keras")
    reloaded = keras.saving.load_model(tmp_path / "colour.keras")
    assert reloaded.config.channels == 3
    np.testing.assert_allclose(predict_rollout(reloaded, context, 3), prediction, atol=1e-6)


def test_command_line_trains_on_a_video_folder_and_forecasts_a_video(tmp_path, capsys):
    from keras_convlstm.cli import main

    folder = tmp_path / "videos"
    folder.mkdir()
    for seed in range(3):
        write_gif(folder / f"square{seed}.gif", moving_square(18, seed=seed))
    run_dir = tmp_path / "run"
    train = ["train", "--data", str(folder), "--colour", "--frame-size", "16", "--clip-frames", "6"]
    train += ["--clip-stride", "3", "--preset", "cpu-fast", "--filters", "4", "--kernel-sizes", "3"]
    train += ["--precision", "float32", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2"]
    train += ["--out-dir", str(run_dir)]
    assert main(train) == 0
    run = json.loads((run_dir / "run.json").read_text())
    assert run["channels"] == 3 and run["clip_frames"] == 6 and run["data"]["files"] == 3
    assert run["num_sequences"] == 15  # 3 videos x 5 clips
    assert keras.saving.load_model(run_dir / "model.keras").input_shape == (None, None, 16, 16, 3)

    out_dir = tmp_path / "forecast"
    predict = ["predict", "--model", str(run_dir / "model.keras"), "--input", str(folder / "square1.gif")]
    assert main([*predict, "--context", "10", "--horizon", "5", "--out-dir", str(out_dir)]) == 0
    forecast = np.load(out_dir / "predictions.npy")
    assert forecast.shape == (1, 5, 16, 16, 3) and forecast.dtype == np.float32
    side_by_side = iio.imread(out_dir / "rollout.gif", index=None)
    assert side_by_side.shape[0] == 10 + 5  # the context, then the forecast
    assert side_by_side.shape[2] > 2 * 16  # truth beside the forecast
    assert iio.imread(out_dir / "rollout.png").ndim == 3

    evaluate = ["evaluate", "--model", str(run_dir / "model.keras"), "--data", str(folder / "square2.gif")]
    assert main([*evaluate, "--context", "6", "--horizon", "4", "--json", str(tmp_path / "scores.json")]) == 0
    assert "scoring 1 sequences" in capsys.readouterr().out  # 18 frames give one clip of 6 + 4
    scores = json.loads((tmp_path / "scores.json").read_text())["metrics"]
    assert {"model", "copy-last-frame"} <= set(scores) and len(scores["model"]["ssim"]) == 4

    capsys.readouterr()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "run2")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "run2")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 2 and "no video in the folder" in error
