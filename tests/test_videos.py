"""Video folders (loading, clips, grey/RGB, resizing, person-wise splits, errors) and moving-digit actions."""

import importlib.util

import imageio.v3 as iio
import numpy as np
import pytest

from keras_convlstm import animation, synthetic, videos, viz

FFMPEG_PLUGIN = next(
    (plugin for plugin, module in (("pyav", "av"), ("FFMPEG", "imageio_ffmpeg")) if importlib.util.find_spec(module)),
    None,
)


def _video(seed: int, num_frames: int, height: int = 24, width: int = 32) -> np.ndarray:
    """RGB frames whose every frame differs (GIF writers merge identical neighbours)."""
    return (np.random.default_rng(seed).random((num_frames, height, width, 3)) * 255).astype(np.uint8)


def _gif_folder(root, people=(1, 2, 3), classes=("boxing", "walking"), num_frames=31):
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for person in people:
            frames = _video(10 * person + label, num_frames)
            animation.save_gif(
                frames, root / name / f"person{person:02d}_{name}_d1_uncomp.gif", scale=1, annotate=False
            )
    return root


def _digits(count: int = 20) -> np.ndarray:
    """Random 28x28 blobs that are never empty (a digit must be visible to track it)."""
    digits = np.zeros((count, 28, 28), dtype=np.uint8)
    digits[:, 6:22, 8:20] = np.random.default_rng(0).integers(100, 256, size=(count, 16, 12))
    return digits


def test_gif_folder_clips_labels_groups(tmp_path):
    root = _gif_folder(tmp_path / "videos")
    clips = videos.load_video_folder(root, num_frames=10, image_size=(12, 16))
    # 31 frames give 3 clips of 10 (1 frame dropped); 2 classes x 3 people.
    assert clips.clips.shape == (18, 10, 12, 16, 1)
    assert clips.clips.dtype == np.uint8
    assert clips.class_names == ["boxing", "walking"]
    assert clips.labels.tolist() == [0] * 9 + [1] * 9
    assert clips.groups.tolist() == [f"person{p:02d}" for p in (1, 2, 3) for _ in range(3)] * 2
    assert clips.sources[0] == "boxing/person01_boxing_d1_uncomp.gif"
    assert clips.skipped == []


def test_clips_are_consecutive_frames_of_the_video(tmp_path):
    root = _gif_folder(tmp_path / "videos", people=(1,), num_frames=12)
    path = root / "boxing" / "person01_boxing_d1_uncomp.gif"
    full = videos.read_video(path, image_size=None, grayscale=False)
    assert full.shape == (12, 24, 32, 3)
    clips = videos.load_video_folder(root, num_frames=4, image_size=None, grayscale=False, stride=2)
    boxing = clips.clips[clips.labels == 0]
    assert boxing.shape == (5, 4, 24, 32, 3)  # starts 0, 2, 4, 6, 8
    np.testing.assert_array_equal(boxing[1], full[2:6])
    limited = videos.load_video_folder(root, num_frames=4, image_size=None, max_clips_per_video=2)
    assert len(limited) == 4


def test_gif_round_trip_and_grey_conversion(tmp_path):
    frames = _video(0, 5)
    path = tmp_path / "clip.gif"
    animation.save_gif(frames, path, scale=1, annotate=False)
    rgb = videos.read_video(path, image_size=None, grayscale=False)
    grey = videos.read_video(path, image_size=None, grayscale=True)
    assert rgb.shape == (5, 24, 32, 3) and grey.shape == (5, 24, 32, 1)
    # GIF palettes quantise colours; the luma of the decoded RGB frames is what grey returns.
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey[..., 0] - luma).max() <= 1.0
    assert np.abs(rgb.astype(int) - frames).mean() < 20


def test_resize_shape_and_values(tmp_path):
    # A grey video of constant frames keeps its value through bilinear resizing.
    frames = np.stack([np.full((24, 32), 40 * k, dtype=np.uint8) for k in range(1, 5)])
    path = tmp_path / "steps.gif"
    animation.save_gif(frames, path, scale=1, annotate=False)
    small = videos.read_video(path, image_size=(6, 8))
    assert small.shape == (4, 6, 8, 1)
    assert small[:, :, :, 0].tolist() == [[[40 * k] * 8] * 6 for k in range(1, 5)]
    assert videos.read_video(path, image_size=10, grayscale=False).shape == (4, 10, 10, 3)
    assert videos.read_video(path, image_size=None, frame_step=2).shape == (2, 24, 32, 1)


def test_cut_clips_counts():
    video = np.arange(23)
    assert videos.cut_clips(video, 5).tolist() == [list(range(s, s + 5)) for s in (0, 5, 10, 15)]
    assert videos.cut_clips(video, 5, stride=9).shape == (3, 5)
    assert videos.cut_clips(video[:4], 5).shape == (0, 5)


def test_short_videos_are_skipped_and_reported(tmp_path):
    root = _gif_folder(tmp_path / "videos", people=(1,), num_frames=8)
    animation.save_gif(_video(7, 20), root / "boxing" / "person02_boxing_d2_uncomp.gif", scale=1, annotate=False)
    clips = videos.load_video_folder(root, num_frames=10, image_size=(12, 16))
    assert len(clips) == 2 and clips.groups.tolist() == ["person02", "person02"]
    assert sorted(clips.skipped) == [
        "boxing/person01_boxing_d1_uncomp.gif",
        "walking/person01_walking_d1_uncomp.gif",
    ]
    with pytest.raises(ValueError, match="no video .* has the 30 frames of one clip"):
        videos.load_video_folder(root, num_frames=30)


def test_group_of():
    assert videos.group_of("person01_boxing_d1_uncomp.avi") == "person01"
    assert videos.group_of("clip_without_person.gif") == "clip_without_person"
    assert videos.group_of("v_ApplyEyeMakeup_g08_c01.avi", r"_(g\d+)_c\d+") == "g08"
    assert videos.group_of("person01_boxing.avi", None) == "person01_boxing"


def test_split_by_group_is_disjoint_and_complete():
    groups = np.array([f"person{k % 10:02d}" for k in range(100)])
    train_idx, test_idx = videos.split_by_group(groups, test_fraction=0.3, seed=1)
    assert set(groups[train_idx]).isdisjoint(groups[test_idx])
    assert len(set(groups[test_idx])) == 3
    assert sorted(np.concatenate([train_idx, test_idx]).tolist()) == list(range(100))
    again = videos.split_by_group(groups, test_fraction=0.3, seed=1)
    np.testing.assert_array_equal(again[1], test_idx)
    named = videos.split_by_group(groups, test_groups=["person02", "person05"])
    assert set(groups[named[1]]) == {"person02", "person05"}
    with pytest.raises(ValueError, match="at least 2 distinct groups"):
        videos.split_by_group(np.array(["a", "a"]))
    with pytest.raises(ValueError, match="unknown: \\['person99'\\]"):
        videos.split_by_group(groups, test_groups=["person99"])
    with pytest.raises(ValueError, match="test_fraction must be in"):
        videos.split_by_group(groups, test_fraction=1.0)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no video folder at"):
        videos.load_video_folder(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="got the file"):
        videos.load_video_folder(tmp_path / "file.txt")
    with pytest.raises(ValueError, match="found no sub-folder"):
        videos.load_video_folder(tmp_path)
    (tmp_path / "boxing").mkdir()
    (tmp_path / "boxing" / "notes.txt").write_text("not a video")
    with pytest.raises(ValueError, match="holds no video file"):
        videos.load_video_folder(tmp_path)
    (tmp_path / "boxing" / "person01_boxing.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(ValueError, match="could not decode the video .*person01_boxing.gif"):
        videos.load_video_folder(tmp_path)
    with pytest.raises(ValueError, match="image_size must be"):
        videos.read_video(tmp_path / "boxing" / "person01_boxing.gif", image_size=(0, 4))
    with pytest.raises(ValueError, match="ending in one of"):
        videos.read_video(tmp_path / "boxing" / "notes.txt")


def test_different_sizes_need_image_size(tmp_path):
    (tmp_path / "a").mkdir()
    animation.save_gif(_video(0, 4, 8, 8), tmp_path / "a" / "person01_a.gif", scale=1, annotate=False)
    animation.save_gif(_video(1, 4, 8, 12), tmp_path / "a" / "person02_a.gif", scale=1, annotate=False)
    with pytest.raises(ValueError, match="one frame size"):
        videos.load_video_folder(tmp_path, num_frames=4, image_size=None)
    assert videos.load_video_folder(tmp_path, num_frames=4, image_size=(8, 8)).clips.shape == (2, 4, 8, 8, 1)


def test_missing_ffmpeg_plugin_is_named(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("av", "imageio_ffmpeg") else real_find_spec(name),
    )
    path = tmp_path / "person01_boxing.avi"
    path.write_bytes(b"\x00")
    with pytest.raises(ImportError, match=r"pip install av.*pip install imageio-ffmpeg"):
        videos.read_video(path)
    assert videos.video_plugin(tmp_path / "clip.gif") == "pillow"


@pytest.mark.skipif(FFMPEG_PLUGIN is None, reason="needs the av or imageio-ffmpeg package to write videos")
@pytest.mark.parametrize("extension", [".mp4", ".avi"])
def test_ffmpeg_videos(tmp_path, extension):
    (tmp_path / "jumping").mkdir()
    # Smooth frames (a moving gradient) survive lossy compression well enough to check values.
    ramp = np.linspace(0, 200, 32, dtype=np.float64)
    frames = np.stack([np.broadcast_to(np.roll(ramp, k)[None, :, None], (32, 32, 3)) for k in range(12)])
    options = {"codec": "mpeg4"} if FFMPEG_PLUGIN == "pyav" else {}
    path = tmp_path / "jumping" / f"person07_jumping_d1{extension}"
    iio.imwrite(path, frames.astype(np.uint8), fps=10, plugin=FFMPEG_PLUGIN, **options)
    clips = videos.load_video_folder(tmp_path, num_frames=6, image_size=(16, 16), grayscale=False)
    assert clips.clips.shape == (2, 6, 16, 16, 3)
    assert clips.groups.tolist() == ["person07", "person07"]
    full = videos.read_video(path, image_size=None)
    assert full.shape == (12, 32, 32, 1)
    # Grey frames: all three channels are equal, so the luma is the channel value (up to compression).
    assert np.abs(full[..., 0] - frames[..., 0]).mean() < 12


def test_confusion_matrix_and_figure(tmp_path):
    counts = videos.confusion_matrix(np.array([0, 1, 2, 2, 1]), np.array([0, 1, 1, 2, 1]), 3)
    assert counts.tolist() == [[1, 0, 0], [0, 2, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match=r"must be in \[0, 3\)"):
        videos.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    figure = viz.plot_confusion_matrix(counts, ["a", "b", "c"], path=tmp_path / "cm.png")
    assert "accuracy 80.0% (5 examples)" in figure.axes[0].get_title()
    assert iio.imread(tmp_path / "cm.png").ndim == 3
    with pytest.raises(ValueError, match="expected 3 class names"):
        viz.plot_confusion_matrix(counts, ["a"])


def test_actions_shapes_labels_balanced_and_seeded():
    digits = _digits()
    clips, labels = synthetic.generate_moving_digit_actions(
        42, num_classes=4, num_frames=6, image_size=(30, 40), digit_size=28, seed=3, digits=digits
    )
    assert clips.shape == (42, 6, 30, 40, 1) and clips.dtype == np.uint8
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [11, 11, 10, 10]
    again = synthetic.generate_moving_digit_actions(
        42, num_classes=4, num_frames=6, image_size=(30, 40), digit_size=28, seed=3, digits=digits
    )
    np.testing.assert_array_equal(again[0], clips)
    np.testing.assert_array_equal(again[1], labels)
    other = synthetic.generate_moving_digit_actions(42, 4, 6, (30, 40), 28, seed=4, digits=digits)
    assert not np.array_equal(other[0], clips)
    small, eight = synthetic.generate_moving_digit_actions(16, 8, 3, 20, digit_size=10, seed=0, digits=digits)
    assert small.shape == (16, 3, 20, 20, 1) and np.bincount(eight).tolist() == [2] * 8
    # Every frame shows the whole digit (it wraps around the borders instead of leaving the canvas).
    assert (small.reshape(16, 3, -1).sum(-1) == small[:, :1].reshape(16, 1, -1).sum(-1)).all()


@pytest.mark.parametrize("num_classes", [4, 8])
def test_actions_move_in_the_labelled_direction(num_classes):
    speed = 3.0
    clips, labels = synthetic.generate_moving_digit_actions(
        24, num_classes, num_frames=5, image_size=48, digit_size=12, speed=speed, seed=1, digits=_digits()
    )
    steps = synthetic.action_displacements(num_classes)
    for clip, label in zip(clips[..., 0], labels, strict=True):
        # Find the circular shift that maps frame 0 onto the last frame exactly.
        shifts = [(dr, dc) for dr in range(-15, 16) for dc in range(-15, 16)]
        matches = [s for s in shifts if np.array_equal(np.roll(clip[0], s, axis=(0, 1)), clip[-1])]
        assert len(matches) == 1
        expected = 4 * speed * steps[label]
        assert np.abs(np.array(matches[0]) - expected).max() <= 1.0, (label, matches, expected)


def test_actions_errors():
    with pytest.raises(ValueError, match="num_classes must be one of"):
        synthetic.generate_moving_digit_actions(4, num_classes=5, digits=_digits())
    with pytest.raises(ValueError, match="larger than digit_size"):
        synthetic.generate_moving_digit_actions(4, image_size=20, digit_size=28, digits=_digits())
    with pytest.raises(ValueError, match="speed must be a positive number"):
        synthetic.generate_moving_digit_actions(4, speed=0, digits=_digits())
