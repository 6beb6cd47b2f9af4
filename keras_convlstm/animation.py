"""Animations of frame sequences: GIF files and bytes, and looping videos shown in notebooks.

Every function takes the frames of one sequence as ``(time, height, width)``, ``(time, height, width, 1)``
(grey) or ``(time, height, width, 3)`` (RGB), either float (clipped to [0, 1]) or uint8 (used as is);
:func:`to_uint8_rgb` converts them (and the figures of :mod:`keras_convlstm.viz` use it too).

GIFs are written by imageio with a frame duration in milliseconds (never frames per second) and ``loop=0``
(repeat forever). GIF frames are enlarged by a whole factor (at least :data:`GIF_MIN_SIDE` pixels on the short
side), framed by a 1-pixel grey border and numbered in a band below the image, which also says "context" or
"future" (dark) when the caller gives the number of context frames: "future" rather than "predicted", since a
truth video shown beside a forecast has the same band. :func:`show_videos` places such GIFs side by side
in a notebook, as ipywidgets or as an HTML table.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_convlstm import colab
from keras_convlstm.files import atomic_path
from keras_convlstm.frames import validate_sequence

# Gaps and label bands are white so that they stand out against the black background of Moving MNIST.
_BACKGROUND = 255
_LABEL_COLOR = (0, 0, 0)
# Shortest side, in pixels, that a GIF's frames are enlarged to by default (readable where the GIF is shown at
# its own size, as on GitHub).
GIF_MIN_SIDE = 192
# The border keeps a white object at the edge visible on a white page. The band of a frame after the context is dark
# with white text; all three are greys, so grey videos keep every value within GIF's 256 colours.
_BORDER = 128
_PREDICTED_BAND = 64
_PREDICTED_COLOR = (255, 255, 255)
# The longest display time one GIF frame can hold: 16 bits of 10 ms (655.35 s).
GIF_MAX_DURATION_MS = 65535 * 10


def to_uint8_rgb(frames: np.ndarray) -> np.ndarray:
    """Converts frames to uint8 RGB.

    Args:
        frames: ``(time, height, width)``, ``(time, height, width, 1)`` or ``(time, height, width, 3)``; float
            values are clipped to [0, 1], multiplied by 255 and rounded; uint8 values are kept.

    Returns:
        uint8 array ``(time, height, width, 3)``; grey frames have three equal channels.
    """
    frames = validate_sequence(frames)
    if frames.dtype != np.uint8:
        frames = np.rint(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return frames


def _gif_scale(height: int, width: int, scale: int | None) -> int:
    """The enlargement factor: ``scale``, or the smallest one reaching :data:`GIF_MIN_SIDE` when None."""
    if scale is None:
        return max(1, math.ceil(GIF_MIN_SIDE / min(height, width)))
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"expected scale None (automatic) or an integer >= 1, got {scale!r}")
    return int(scale)


def _framed(frames: np.ndarray, scale: int) -> np.ndarray:
    """Enlarges uint8 ``(time, height, width, 3)`` frames by ``scale`` (nearest neighbour) in a 1-pixel grey border."""
    enlarged = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.pad(enlarged, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=_BORDER)


def _with_frame_bands(frames: np.ndarray, first_frame: int, context_frames: int | None) -> np.ndarray:
    """Adds a band below each uint8 frame: "frame k", and "context" or "future" when ``context_frames`` is set."""
    if isinstance(first_frame, bool) or not isinstance(first_frame, (int, np.integer)) or first_frame < 1:
        raise ValueError(f"expected first_frame as an integer >= 1 (frames count from 1), got {first_frame!r}")
    if context_frames is not None and (
        isinstance(context_frames, bool) or not isinstance(context_frames, (int, np.integer)) or context_frames < 0
    ):
        raise ValueError(f"expected context_frames None or an integer >= 0, got {context_frames!r}")
    numbers = range(first_frame, first_frame + len(frames))
    if context_frames is None:
        labels = [(f"frame {number}", False) for number in numbers]
    else:
        labels = [
            (f"frame {number} (context)", False) if number <= context_frames else (f"frame {number} (future)", True)
            for number in numbers
        ]
    font = ImageFont.load_default()
    height = max(font.getbbox(label)[3] for label, _ in labels) + 4
    width = frames.shape[2]
    bands = np.stack(
        [
            _label_band(label, width, height, font, _PREDICTED_COLOR, _PREDICTED_BAND)
            if predicted
            else _label_band(label, width, height, font)
            for label, predicted in labels
        ]
    )
    return np.concatenate([frames, bands], axis=1)


def _encode_gif(frames: np.ndarray, target: str | Path, duration_ms: int, loop: int) -> bytes | None:
    """Writes uint8 RGB frames, exactly as given, as a GIF file (or returns its bytes for ``"<bytes>"``)."""
    if not 0 < duration_ms <= GIF_MAX_DURATION_MS:
        raise ValueError(
            f"expected duration_ms from 1 to {GIF_MAX_DURATION_MS} (milliseconds per frame), got {duration_ms}"
        )
    if loop < 0:
        raise ValueError(f"expected loop >= 0 (0 repeats forever), got {loop}")
    return iio.imwrite(target, frames, extension=".gif", duration=_gif_durations(frames, duration_ms), loop=loop)


def _gif_durations(frames: np.ndarray, duration_ms: int) -> int | list[int]:
    """Each frame's display time: Pillow merges a run of identical frames into one, which shows the run's total
    time up to :data:`GIF_MAX_DURATION_MS`; frames beyond that get 0 ms, so they are dropped, not overflowed.
    One number when every frame keeps ``duration_ms`` (Pillow takes only a number for a single frame)."""
    repeats = np.all(frames[1:] == frames[:-1], axis=tuple(range(1, frames.ndim)))
    durations, shown = [duration_ms], duration_ms
    for repeat in repeats:
        shown = shown + duration_ms if repeat else duration_ms
        durations.append(duration_ms if shown <= GIF_MAX_DURATION_MS else 0)
    return durations if 0 in durations else duration_ms


def gif_frames(
    frames: np.ndarray,
    scale: int | None = None,
    first_frame: int = 1,
    context_frames: int | None = None,
    annotate: bool = True,
) -> np.ndarray:
    """The frames of a GIF as :func:`save_gif` writes them.

    Args:
        frames: ``(time, height, width[, 1 or 3])``, float in [0, 1] (clipped) or uint8.
        scale: whole enlargement factor (nearest neighbour: each pixel becomes a ``scale x scale`` block); None
            picks the smallest one giving at least :data:`GIF_MIN_SIDE` pixels on the short side; 1 keeps the size.
        first_frame: number of the first frame (frames count from 1).
        context_frames: frames numbered up to this are marked "context", later ones "future" (in a dark
            band: the predicted frames of a forecast, the true ones of the truth beside it); None marks neither.
        annotate: False gives only the enlarged pixels: no border, no band (for GIFs read back as data).

    Returns:
        uint8 ``(time, height * scale + 2 + band, width * scale + 2, 3)``: the enlarged frame in a 1-pixel grey
        border above a band with its number; ``(time, height * scale, width * scale, 3)`` without annotation.
    """
    frames = to_uint8_rgb(frames)
    scale = _gif_scale(frames.shape[1], frames.shape[2], scale)
    if not annotate:
        return frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return _with_frame_bands(_framed(frames, scale), first_frame, context_frames)


def save_gif(
    frames: np.ndarray,
    path: str | os.PathLike,
    duration_ms: int = 200,
    loop: int = 0,
    *,
    scale: int | None = None,
    first_frame: int = 1,
    context_frames: int | None = None,
    annotate: bool = True,
) -> Path:
    """Writes frames as an animated GIF, enlarged, framed and numbered (see :func:`gif_frames`).

    GIF stores durations in units of 10 ms and at most 256 colours per frame (grey frames are exact).
    Consecutive identical frames (possible only with ``annotate=False``, as numbered frames all differ) are
    merged by Pillow into one frame shown for their total duration, at most 655.35 s (GIF's limit).

    Args:
        frames: ``(time, height, width[, 1 or 3])``, float in [0, 1] (clipped) or uint8.
        path: output file.
        duration_ms: display time of each frame in milliseconds.
        loop: number of repetitions; 0 loops forever.
        scale, first_frame, context_frames, annotate: see :func:`gif_frames`.

    Returns:
        The path written.
    """
    shown = gif_frames(frames, scale, first_frame, context_frames, annotate)
    path = Path(path)
    with atomic_path(path) as temporary:
        _encode_gif(shown, temporary, duration_ms, loop)
    return path


def gif_bytes(
    frames: np.ndarray,
    duration_ms: int = 200,
    loop: int = 0,
    *,
    scale: int | None = None,
    first_frame: int = 1,
    context_frames: int | None = None,
    annotate: bool = True,
) -> bytes:
    """Encodes frames as an animated GIF in memory (same encoding as :func:`save_gif`).

    Args:
        frames: ``(time, height, width[, 1 or 3])``, float in [0, 1] (clipped) or uint8.
        duration_ms: display time of each frame in milliseconds.
        loop: number of repetitions; 0 loops forever.
        scale, first_frame, context_frames, annotate: see :func:`gif_frames`.

    Returns:
        The GIF file content.
    """
    return _encode_gif(gif_frames(frames, scale, first_frame, context_frames, annotate), "<bytes>", duration_ms, loop)


def _label_band(
    label: str,
    width: int,
    height: int,
    font: ImageFont.ImageFont,
    color: tuple[int, int, int] = _LABEL_COLOR,
    background: int = _BACKGROUND,
) -> np.ndarray:
    """A ``(height, width, 3)`` band (white by default) with ``label`` centred (cut at the band's edges)."""
    band = Image.new("RGB", (width, height), (background,) * 3)
    left, _, right, _ = font.getbbox(label)
    ImageDraw.Draw(band).text((max(0, (width - (right - left)) // 2), 2), label, fill=color, font=font)
    return np.asarray(band)


def _join(blocks: Sequence[np.ndarray], gap: int, axis: int) -> np.ndarray:
    """Concatenates arrays along ``axis`` with ``gap`` background pixels between neighbours."""
    spacer_shape = list(blocks[0].shape)
    spacer_shape[axis] = gap
    spacer = np.full(spacer_shape, _BACKGROUND, dtype=np.uint8)
    pieces = [piece for block in blocks for piece in (spacer, block)][1:]
    return np.concatenate(pieces, axis=axis)


def _pair(truth: np.ndarray, prediction: np.ndarray) -> list[np.ndarray]:
    """Both videos as uint8 RGB, checked to have the same number of frames and height."""
    videos = [to_uint8_rgb(truth), to_uint8_rgb(prediction)]
    if videos[0].shape[:2] != videos[1].shape[:2]:
        raise ValueError(
            "expected truth and prediction with the same number of frames and height, got shapes "
            f"{videos[0].shape} and {videos[1].shape}"
        )
    return videos


def side_by_side(
    truth: np.ndarray,
    prediction: np.ndarray,
    labels: Sequence[str] | None = ("Truth", "Prediction"),
    gap: int = 4,
) -> np.ndarray:
    """Places two videos next to each other, with their labels in a band above them.

    Args:
        truth: ``(time, height, width[, 1 or 3])``, float in [0, 1] (clipped) or uint8.
        prediction: same number of frames and height as ``truth``.
        labels: the two labels, or None for no label band.
        gap: white pixels between the videos.

    Returns:
        uint8 ``(time, band + height, width_truth + gap + width_prediction, 3)``.
    """
    videos = _pair(truth, prediction)
    if gap < 0:
        raise ValueError(f"expected gap >= 0, got {gap}")
    body = _join(videos, gap, axis=2)
    if labels is None:
        return body
    if len(labels) != 2:
        raise ValueError(f"expected 2 labels, got {len(labels)}: {labels!r}")
    font = ImageFont.load_default()
    height = max(font.getbbox(label)[3] for label in labels) + 4
    band = _join(
        [_label_band(label, video.shape[2], height, font) for label, video in zip(labels, videos, strict=True)],
        gap,
        axis=1,
    )
    return np.concatenate([np.broadcast_to(band, (len(body), *band.shape)), body], axis=1)


def save_side_by_side_gif(
    truth: np.ndarray,
    prediction: np.ndarray,
    path: str | os.PathLike,
    labels: Sequence[str] | None = ("Truth", "Prediction"),
    gap: int = 4,
    duration_ms: int = 200,
    loop: int = 0,
    *,
    scale: int | None = None,
    first_frame: int = 1,
    context_frames: int | None = None,
) -> Path:
    """Writes :func:`side_by_side` frames as a GIF (see :func:`save_gif`) and returns the path.

    Each video is enlarged and framed on its own (``scale`` None reaches :data:`GIF_MIN_SIDE` pixels on the
    short side of each), and one band below both numbers the frames (see :func:`gif_frames`).
    """
    videos = _pair(truth, prediction)
    scale = _gif_scale(videos[0].shape[1], min(video.shape[2] for video in videos), scale)
    pair = side_by_side(*(_framed(video, scale) for video in videos), labels=labels, gap=gap)
    shown = _with_frame_bands(pair, first_frame, context_frames)
    path = Path(path)
    with atomic_path(path) as temporary:
        _encode_gif(shown, temporary, duration_ms, loop)
    return path


def _video_rows(videos: Any, labels: Sequence[str] | None) -> list[list[tuple[str, np.ndarray]]]:
    """Normalises the inputs of :func:`show_videos` to rows of ``(label, frames)``."""
    if isinstance(videos, Mapping):
        if labels is not None:
            raise ValueError(f"labels come from the keys of a dict of videos; got labels={labels!r} as well")
        return [list(videos.items())]
    if isinstance(videos, np.ndarray):
        videos = [videos]
    videos = list(videos)
    if not videos:
        raise ValueError("expected at least one video, got none")
    if all(isinstance(item, (tuple, list)) for item in videos):
        rows = [list(item) for item in videos]
        width = len(rows[0])
        if any(len(row) != width for row in rows):
            raise ValueError(f"expected rows of the same length, got lengths {[len(row) for row in rows]}")
        default = ("Truth", "Prediction") if width == 2 else tuple(f"Video {k + 1}" for k in range(width))
    elif not any(isinstance(item, (tuple, list)) for item in videos):
        rows = [videos]
        default = tuple(f"Video {k + 1}" for k in range(len(videos)))
    else:
        raise TypeError("expected a list of videos or a list of (truth, prediction) pairs, got a mixture")
    labels = default if labels is None else tuple(labels)
    if len(labels) != len(rows[0]):
        raise ValueError(f"expected {len(rows[0])} labels, got {len(labels)}: {labels!r}")
    return [list(zip(labels, row, strict=True)) for row in rows]


def _in_ipython_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def _widgets_major_version(widgets: Any) -> int:
    """The major version of the ipywidgets module: the widget view needs 8 (``_repr_mimebundle_``)."""
    return int(widgets.__version__.split(".")[0])


def _widgets_view(rows: list[list[tuple[str, bytes]]], width: int | None) -> Any:
    import ipywidgets as widgets

    if _widgets_major_version(widgets) < 8:
        raise ValueError(f"mode='widgets' needs ipywidgets >= 8, got {widgets.__version__}; use mode='html'")
    size = {} if width is None else {"width": width}
    boxes = [
        widgets.HBox(
            [
                widgets.VBox([widgets.Label(value=label), widgets.Image(value=data, format="gif", **size)])
                for label, data in row
            ]
        )
        for row in rows
    ]
    view = boxes[0] if len(boxes) == 1 else widgets.VBox(boxes)
    # The same GIFs as HTML in the display data: front ends that cannot render widgets (GitHub, nbconvert)
    # show this instead of a bare "HBox(...)" repr.
    widget_bundle, fallback = view._repr_mimebundle_, _html_view(rows, width).data
    view._repr_mimebundle_ = lambda **kwargs: {**widget_bundle(**kwargs), "text/html": fallback}
    return view


def _html_view(rows: list[list[tuple[str, bytes]]], width: int | None) -> Any:
    from IPython.display import HTML

    size = "" if width is None else f' width="{width}"'
    cells = [
        "".join(
            f'<td style="text-align:center;padding:4px">{html.escape(label)}<br>'
            f'<img src="data:image/gif;base64,{base64.b64encode(data).decode("ascii")}"{size} '
            f'style="image-rendering:pixelated" alt="{html.escape(label)}"></td>'
            for label, data in row
        )
        for row in rows
    ]
    return HTML("<table>" + "".join(f"<tr>{row}</tr>" for row in cells) + "</table>")


def show_videos(
    videos: Mapping[str, np.ndarray] | Sequence[np.ndarray] | Sequence[Sequence[np.ndarray]],
    labels: Sequence[str] | None = None,
    duration_ms: int = 200,
    mode: str = "auto",
    width: int | None = None,
    *,
    scale: int | None = None,
    first_frame: int = 1,
    context_frames: int | None = None,
) -> Any:
    """Builds a notebook view of looping GIFs placed side by side, one row per group.

    Nothing is displayed here: return the object as the last expression of a cell to show it.

    Args:
        videos: ``{label: frames}`` or a list of frames (one row), or a list of ``(truth, prediction)``
            pairs (or other equal-length tuples), one row each. Frames are
            ``(time, height, width[, 1 or 3])``, float in [0, 1] (clipped) or uint8.
        labels: one label per column; defaults to the dict keys, ``("Truth", "Prediction")`` for pairs, else
            "Video 1", "Video 2", ...
        duration_ms: display time of each frame in milliseconds.
        mode: "widgets" (an ipywidgets ``HBox`` of ``VBox(Label, Image)``, or a ``VBox`` of such rows, whose
            display data also carries the HTML view for front ends without widgets), "html" (an
            ``IPython.display.HTML`` table of base64 ``<img>`` tags, which renders in Colab, on GitHub and in
            exported HTML), or "auto": widgets inside a Jupyter kernel with ipywidgets 8 or newer, html in
            Colab (where ipywidgets 8 has needed extra front-end set-up), with ipywidgets 7 and everywhere else.
            The widget view needs ipywidgets 8.
        width: display width of each GIF in pixels (the GIF keeps its size); None shows it at its own size.
        scale, first_frame, context_frames: enlargement and frame numbering of every GIF (see :func:`gif_frames`).

    Returns:
        The widget or the HTML object.
    """
    if mode not in ("auto", "widgets", "html"):
        raise ValueError(f"expected mode 'auto', 'widgets' or 'html', got {mode!r}")
    rows = [
        [
            (
                label,
                gif_bytes(frames, duration_ms, scale=scale, first_frame=first_frame, context_frames=context_frames),
            )
            for label, frames in row
        ]
        for row in _video_rows(videos, labels)
    ]
    if mode == "auto":
        try:
            import ipywidgets
        except ImportError:
            mode = "html"
        else:
            widgets_8 = _widgets_major_version(ipywidgets) >= 8
            mode = "widgets" if widgets_8 and _in_ipython_kernel() and not colab.in_colab() else "html"
    return _widgets_view(rows, width) if mode == "widgets" else _html_view(rows, width)
