"""Tests of keras_convlstm.animation: frames as uint8 RGB, GIF files and bytes, and videos shown in notebooks."""

import base64
import io
import re
import sys
import types

import imageio.v3 as iio
import ipywidgets as widgets
import numpy as np
import pytest
from IPython.display import HTML
from PIL import Image
from sample_frames import random_frames

from keras_convlstm import animation


def _read_gif(source) -> tuple[np.ndarray, list[int], int]:
    """Returns ``(frames as uint8 RGB, per-frame durations in ms, loop)`` of a GIF file or bytes."""
    with Image.open(io.BytesIO(bytes(source)) if isinstance(source, (bytes, memoryview)) else source) as image:
        frames, durations = [], []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info["duration"])
        return np.stack(frames), durations, image.info["loop"]


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_to_uint8_rgb_layouts(channels):
    frames = random_frames(channels=channels)
    converted = animation.to_uint8_rgb(frames)
    assert converted.shape == (4, 8, 10, 3)
    assert converted.dtype == np.uint8
    expected = np.rint(frames * 255).astype(np.uint8)
    if channels != 3:
        expected = np.repeat(expected.reshape(4, 8, 10, 1), 3, axis=-1)
    np.testing.assert_array_equal(converted, expected)
    # uint8 frames pass through unchanged (apart from the grey channel being repeated).
    as_uint8 = converted[..., 0] if channels is None else np.ascontiguousarray(converted[..., :channels])
    np.testing.assert_array_equal(animation.to_uint8_rgb(as_uint8), converted)


def test_to_uint8_rgb_clips_and_rounds():
    frames = np.array([[[-0.5, 0.0, 0.5 / 255, 1.49 / 255, 1.0, 1.5, np.inf]]])
    np.testing.assert_array_equal(animation.to_uint8_rgb(frames)[0, 0, :, 0], [0, 0, 0, 1, 255, 255, 255])


@pytest.mark.parametrize(
    ("frames", "error", "message"),
    [
        (np.zeros((1, 4, 8, 8, 1)), ValueError, r"got shape \(1, 4, 8, 8, 1\)"),
        (np.zeros((4, 8, 8, 2)), ValueError, r"got shape \(4, 8, 8, 2\)"),
        (np.zeros((0, 8, 8)), ValueError, "time >= 1"),
        (np.zeros((4, 8, 8), dtype=np.int64), TypeError, "got dtype int64"),
        (np.full((2, 3, 3), np.nan), ValueError, "got 18 NaN values"),
    ],
)
def test_to_uint8_rgb_rejects_bad_frames(frames, error, message):
    with pytest.raises(error, match=message):
        animation.to_uint8_rgb(frames)


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_save_gif_round_trip(tmp_path, channels):
    frames = random_frames(time=5, channels=channels)
    path = animation.save_gif(frames, tmp_path / "video.gif", scale=1, annotate=False)
    assert path == tmp_path / "video.gif"
    read, durations, loop = _read_gif(path)
    assert read.shape == (5, 8, 10, 3)
    assert durations == [200] * 5
    assert loop == 0
    # GIF stores up to 256 colours per frame exactly: always for grey, here also for RGB (80 pixels a frame).
    np.testing.assert_array_equal(read, animation.to_uint8_rgb(frames))


def test_save_gif_duration_loop_and_clipping(tmp_path):
    frames = np.stack([np.full((6, 6), value) for value in (-0.5, 0.25, 1.5)])
    clipped = animation.save_gif(frames, tmp_path / "clipped.gif", duration_ms=500, loop=2, scale=1, annotate=False)
    read, durations, loop = _read_gif(clipped)
    assert durations == [500] * 3
    assert loop == 2
    np.testing.assert_array_equal(read[:, 0, 0, 0], [0, 64, 255])
    with pytest.raises(ValueError, match=r"expected duration_ms from 1 to 655350 .* got 0"):
        animation.save_gif(frames, tmp_path / "bad.gif", duration_ms=0)
    with pytest.raises(ValueError, match="expected loop >= 0"):
        animation.gif_bytes(frames, loop=-1)


def test_gif_bytes_equal_the_saved_file(tmp_path):
    frames = random_frames(time=3, channels=1)
    data = animation.gif_bytes(frames)
    assert data[:6] == b"GIF89a"
    assert data == animation.save_gif(frames, tmp_path / "same.gif").read_bytes()


def test_side_by_side_layout_and_labels():
    truth, prediction = (
        random_frames(time=3, height=20, width=30, seed=1),
        random_frames(time=3, height=20, width=24, seed=2),
    )
    plain = animation.side_by_side(truth, prediction, labels=None, gap=4)
    assert plain.shape == (3, 20, 30 + 4 + 24, 3)
    np.testing.assert_array_equal(plain[:, :, :30], animation.to_uint8_rgb(truth))
    np.testing.assert_array_equal(plain[:, :, 34:], animation.to_uint8_rgb(prediction))
    assert (plain[:, :, 30:34] == 255).all()

    labelled = animation.side_by_side(truth, prediction)
    band = labelled.shape[1] - 20
    assert labelled.shape == (3, band + 20, 58, 3)
    assert 8 <= band <= 30
    np.testing.assert_array_equal(labelled[:, band:], plain)
    header = labelled[0, :band]
    assert (header[:, :30] < 128).any() and (header[:, 34:] < 128).any()  # text drawn over each video
    np.testing.assert_array_equal(labelled[1, :band], header)
    assert not np.array_equal(header, animation.side_by_side(truth, prediction, labels=("A", "B"))[0, :band])

    with pytest.raises(ValueError, match="same number of frames and height"):
        animation.side_by_side(truth, prediction[:2])
    with pytest.raises(ValueError, match="expected 2 labels, got 1"):
        animation.side_by_side(truth, prediction, labels=("only",))


def _bordered(frames: np.ndarray, scale: int) -> np.ndarray:
    """Reference enlargement: each pixel a ``scale x scale`` block, in a 1-pixel border of grey 128."""
    enlarged = np.kron(animation.to_uint8_rgb(frames), np.ones((1, scale, scale, 1), dtype=np.uint8))
    return np.pad(enlarged, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=128)


def test_save_side_by_side_gif(tmp_path):
    truth, prediction = random_frames(time=4, channels=1, seed=3), random_frames(time=4, channels=1, seed=4)
    path = animation.save_side_by_side_gif(truth, prediction, tmp_path / "pair.gif", first_frame=3, context_frames=4)
    read, durations, _ = _read_gif(path)
    assert durations == [200] * 4
    # Each 8 x 10 video is enlarged 24 times (192 pixels high) in its own border, below the labels band.
    pair = animation.side_by_side(_bordered(truth, 24), _bordered(prediction, 24))
    np.testing.assert_array_equal(read[:, : pair.shape[1]], pair)
    bands = read[:, pair.shape[1] :]
    assert 8 <= bands.shape[1] <= 30 and bands.shape[2] == pair.shape[2]
    # Frames 3 and 4 are context (white band), frames 5 and 6 future (dark band).
    assert [int(np.median(band)) for band in bands] == [255, 255, 64, 64]
    assert len({band.tobytes() for band in bands}) == 4
    with pytest.raises(ValueError, match="same number of frames and height"):
        animation.save_side_by_side_gif(truth, prediction[:3], tmp_path / "bad.gif")
    assert not (tmp_path / "bad.gif").exists()


@pytest.mark.parametrize(
    ("height", "width", "scale", "expected"),
    [(16, 16, None, 12), (64, 64, None, 3), (64, 48, None, 4), (50, 70, None, 4), (300, 200, None, 1), (8, 8, 2, 2)],
)
def test_gif_frames_enlarge_by_pixel_replication(height, width, scale, expected):
    frames = np.random.default_rng(0).integers(0, 256, (3, height, width), dtype=np.uint8)
    shown = animation.gif_frames(frames, scale=scale)
    assert shown.dtype == np.uint8
    assert shown.shape[0] == 3 and shown.shape[2] == width * expected + 2
    image = shown[:, 1 : 1 + height * expected, 1 : 1 + width * expected]
    # Taking every expected-th pixel gives the frames back; every block repeats its pixel.
    np.testing.assert_array_equal(image[:, ::expected, ::expected], animation.to_uint8_rgb(frames))
    np.testing.assert_array_equal(shown[:, : height * expected + 2], _bordered(frames, expected))
    if scale is None:  # the smallest factor giving 192 pixels on the short side
        assert min(height, width) * expected >= 192 > min(height, width) * (expected - 1)
    raw = animation.gif_frames(frames, scale=scale, annotate=False)
    np.testing.assert_array_equal(raw, _bordered(frames, expected)[:, 1:-1, 1:-1])


def test_gif_frames_border_shows_a_white_object_at_the_edge():
    white = np.ones((2, 16, 16))
    shown = animation.gif_frames(white, scale=1)
    image = shown[:, :18]
    for edge in (image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]):
        assert (edge == 128).all()
    assert (image[:, 1:-1, 1:-1] == 255).all()


def test_gif_frames_number_each_frame_and_mark_context_and_future():
    frames = np.zeros((4, 16, 16), dtype=np.uint8)
    numbered = animation.gif_frames(frames)
    bands = numbered[:, 194:]
    assert 8 <= bands.shape[1] <= 30
    # White bands with dark text in them, each frame's own number.
    assert all(int(np.median(band)) == 255 and (band < 128).any() for band in bands)
    assert len({band.tobytes() for band in bands}) == 4
    # Numbering from first_frame: frames 2-4 look the same whether counted from 1 or given from 2.
    np.testing.assert_array_equal(animation.gif_frames(frames[1:], first_frame=2), numbered[1:])

    marked = animation.gif_frames(frames, context_frames=2)[:, 194:]
    assert [int(np.median(band)) for band in marked] == [255, 255, 64, 64]  # context white, future dark
    assert (marked[2:] > 160).any(axis=(1, 2, 3)).all()  # light text in the dark bands
    assert not np.array_equal(marked[0], bands[0])  # "frame 1 (context)", not "frame 1"
    all_future = animation.gif_frames(frames, first_frame=11, context_frames=10)[:, 194:]
    assert [int(np.median(band)) for band in all_future] == [64] * 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"scale": 0}, r"expected scale None \(automatic\) or an integer >= 1, got 0"),
        ({"scale": 1.5}, "an integer >= 1, got 1.5"),
        ({"first_frame": 0}, r"expected first_frame as an integer >= 1 \(frames count from 1\), got 0"),
        ({"context_frames": -1}, "expected context_frames None or an integer >= 0, got -1"),
    ],
)
def test_gif_frames_reject_bad_arguments(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        animation.save_gif(random_frames(), tmp_path / "bad.gif", **arguments)
    assert not (tmp_path / "bad.gif").exists()


def test_annotated_gif_round_trip_keeps_frames_duration_and_loop(tmp_path):
    frames = np.stack([np.full((16, 16), 60 * k, dtype=np.uint8) for k in range(4)])
    frames[:, 7:9, 7:9] = 255
    path = animation.save_gif(frames, tmp_path / "marked.gif", duration_ms=300, loop=3, context_frames=2)
    read = iio.imread(path, index=None)
    np.testing.assert_array_equal(read[..., :3], animation.gif_frames(frames, context_frames=2))
    metadata = iio.immeta(path)
    assert metadata["duration"] == 300 and metadata["loop"] == 3
    _, durations, loop = _read_gif(path)
    assert durations == [300] * 4 and loop == 3
    assert animation.gif_bytes(frames, 300, 3, context_frames=2) == path.read_bytes()


def _html_gifs(view: HTML) -> list[tuple[np.ndarray, list[int], int]]:
    encoded = re.findall(r'src="data:image/gif;base64,([A-Za-z0-9+/=]+)"', view.data)
    return [_read_gif(base64.b64decode(data)) for data in encoded]


def test_show_videos_html_rows_of_pairs():
    pairs = [(random_frames(time=5, seed=k), random_frames(time=5, seed=10 + k)) for k in range(3)]
    view = animation.show_videos(pairs, mode="html", duration_ms=300)
    assert isinstance(view, HTML)
    assert view.data.count("<tr>") == 3
    assert view.data.count("Truth") >= 3 and view.data.count("Prediction") >= 3
    gifs = _html_gifs(view)
    assert len(gifs) == 6
    frames, durations, loop = gifs[3]
    assert durations == [300] * 5 and loop == 0
    np.testing.assert_array_equal(frames, animation.gif_frames(pairs[1][1]))
    marked, _, _ = _html_gifs(animation.show_videos(pairs[:1], mode="html", first_frame=11, context_frames=10))[0]
    np.testing.assert_array_equal(marked, animation.gif_frames(pairs[0][0], first_frame=11, context_frames=10))
    small, _, _ = _html_gifs(animation.show_videos(pairs[:1], mode="html", scale=1))[0]
    np.testing.assert_array_equal(small[:, 1:9, 1:11], animation.to_uint8_rgb(pairs[0][0]))


def test_show_videos_html_dict_labels_are_escaped_and_auto_falls_back():
    view = animation.show_videos({"<model>": random_frames(), "blank": random_frames(seed=1)}, width=128)
    assert isinstance(view, HTML)  # tests do not run inside an IPython kernel
    assert "&lt;model&gt;" in view.data and "<model>" not in view.data
    assert view.data.count('width="128"') == 2
    assert len(_html_gifs(view)) == 2


def test_show_videos_widgets():
    videos = [random_frames(time=3), random_frames(time=3, seed=1)]
    view = animation.show_videos(videos, labels=("Truth", "Prediction"), mode="widgets")
    assert isinstance(view, widgets.HBox)
    assert len(view.children) == 2
    label, image = view.children[1].children
    assert isinstance(label, widgets.Label) and label.value == "Prediction"
    assert isinstance(image, widgets.Image) and image.format == "gif"
    frames, durations, _ = _read_gif(image.value)
    assert len(frames) == 3 and durations == [200] * 3

    rows = animation.show_videos([(videos[0], videos[1]), (videos[1], videos[0])], mode="widgets")
    assert isinstance(rows, widgets.VBox)
    assert [type(row) for row in rows.children] == [widgets.HBox, widgets.HBox]


def test_show_videos_widgets_carry_the_html_view_for_front_ends_without_widgets():
    view = animation.show_videos([(random_frames(time=3), random_frames(time=3, seed=1))], mode="widgets")
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    html_view = animation.show_videos([(random_frames(time=3), random_frames(time=3, seed=1))], mode="html")
    assert bundle["text/html"] == html_view.data


@pytest.mark.parametrize(
    ("kernel", "colab", "expected"),
    [(True, False, "widgets"), (True, True, "html"), (False, False, "html"), (False, True, "html")],
)
def test_show_videos_auto_picks_widgets_in_jupyter_and_html_in_colab(monkeypatch, kernel, colab, expected):
    """Faked environments: a Jupyter kernel gets widgets; Colab and plain Python get the HTML table."""
    monkeypatch.setattr(animation, "_in_ipython_kernel", lambda: kernel)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    view = animation.show_videos([random_frames(time=3)])
    assert isinstance(view, widgets.HBox if expected == "widgets" else HTML)


def test_show_videos_auto_falls_back_to_html_without_ipywidgets(monkeypatch):
    monkeypatch.setattr(animation, "_in_ipython_kernel", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # makes `import ipywidgets` raise ImportError
    assert isinstance(animation.show_videos([random_frames(time=3)]), HTML)


def test_show_videos_with_ipywidgets_7_shows_html_and_refuses_widgets(monkeypatch):
    """ipywidgets 7 (Colab's) lacks the display hook of the widget view: auto picks HTML, 'widgets' says why not."""
    monkeypatch.setattr(animation, "_in_ipython_kernel", lambda: True)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(widgets, "__version__", "7.7.1")
    assert isinstance(animation.show_videos([random_frames(time=3)]), HTML)
    with pytest.raises(ValueError, match=r"mode='widgets' needs ipywidgets >= 8, got 7\.7\.1"):
        animation.show_videos([random_frames(time=3)], mode="widgets")


def test_show_videos_rejects_bad_arguments():
    video = random_frames()
    with pytest.raises(ValueError, match="expected mode 'auto', 'widgets' or 'html', got 'gif'"):
        animation.show_videos([video], mode="gif")
    with pytest.raises(ValueError, match="expected 2 labels, got 1"):
        animation.show_videos([video, video], labels=("one",), mode="html")
    with pytest.raises(TypeError, match="mixture"):
        animation.show_videos([video, (video, video)], mode="html")
    with pytest.raises(ValueError, match="labels come from the keys"):
        animation.show_videos({"a": video}, labels=("b",), mode="html")
