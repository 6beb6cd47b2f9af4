"""Pictures of frame sequences: matplotlib figures, GIF files and videos shown inline in notebooks.

Every function takes the frames of one sequence as ``(time, height, width)``, ``(time, height, width, 1)``
(grey) or ``(time, height, width, 3)`` (RGB), either float (clipped to [0, 1]) or uint8 (used as is).

Figure functions return a :class:`matplotlib.figure.Figure` that is detached from pyplot: in a notebook it is
shown once, as the value of the cell, and scripts save it with ``path=...`` (PNG at 100 dpi) or
``figure.savefig``. GIFs are written by imageio with a frame duration in milliseconds (never frames per
second) and ``loop=0`` (repeat forever). GIF frames are enlarged by a whole factor (at least
:data:`GIF_MIN_SIDE` pixels on the short side), framed by a 1-pixel grey border and numbered in a band below
the image, which also says "context" or "predicted" when the caller gives the number of context frames.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_convlstm import colab
from keras_convlstm.evaluation import MetricTable
from keras_convlstm.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_DPI = 100
# Gaps and label bands are white so that they stand out against the black background of Moving MNIST.
_BACKGROUND = 255
_LABEL_COLOR = (0, 0, 0)
# Shortest side, in pixels, that a GIF's frames are enlarged to by default (readable where the GIF is shown at
# its own size, as on GitHub).
GIF_MIN_SIDE = 192
# The border keeps a white object at the edge visible on a white page. The band of a predicted frame is dark
# with white text; all three are greys, so grey videos keep every value within GIF's 256 colours.
_BORDER = 128
_PREDICTED_BAND = 64
_PREDICTED_COLOR = (255, 255, 255)
_LOG_SCALE_KEYS = ("loss", "learning_rate", "lr")
# The longest display time one GIF frame can hold: 16 bits of 10 ms (655.35 s).
GIF_MAX_DURATION_MS = 65535 * 10


def _as_frames(frames: np.ndarray, name: str = "frames") -> np.ndarray:
    """Checks one sequence of frames and returns it as an array (no copy)."""
    frames = np.asarray(frames)
    layout_ok = frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] in (1, 3))
    if not layout_ok or frames.shape[0] < 1:
        raise ValueError(
            f"expected {name} of shape (time, height, width), (time, height, width, 1) or "
            f"(time, height, width, 3) with time >= 1, got shape {frames.shape}"
        )
    if frames.dtype != np.uint8 and not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(f"expected {name} as float in [0, 1] or uint8, got dtype {frames.dtype}")
    if np.issubdtype(frames.dtype, np.floating) and np.isnan(frames).any():
        raise ValueError(f"expected {name} without NaN, got {int(np.isnan(frames).sum())} NaN values")
    return frames


def to_uint8_rgb(frames: np.ndarray) -> np.ndarray:
    """Converts frames to uint8 RGB.

    Args:
        frames: ``(time, height, width)``, ``(time, height, width, 1)`` or ``(time, height, width, 3)``; float
            values are clipped to [0, 1], multiplied by 255 and rounded; uint8 values are kept.

    Returns:
        uint8 array ``(time, height, width, 3)``; grey frames have three equal channels.
    """
    frames = _as_frames(frames)
    if frames.dtype != np.uint8:
        frames = np.rint(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return frames


def _new_figure(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """Creates a figure with a grid of axes, detached from pyplot so that notebooks show it only once."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    plt.close(figure)
    return figure, axes


def _finish(figure: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=FIGURE_DPI, format=Path(path).suffix[1:] or "png")
    return figure


def _show_frame(axis: Axes, image: np.ndarray, title: str) -> None:
    axis.imshow(image, interpolation="nearest")
    axis.set_title(title)
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)


def plot_frames(
    frames: np.ndarray,
    ncols: int = 5,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Shows the frames of one sequence in a grid, each titled "Frame k" (k from 1) or by ``titles``.

    Args:
        frames: ``(time, height, width[, 1 or 3])``, float in [0, 1] or uint8. 20 frames with ``ncols=5`` give
            the 4x5 grid of the Keras example.
        ncols: frames per row.
        title: optional title above the grid.
        path: if given, the figure is also saved there as PNG.
        titles: one title per frame, instead of "Frame k".

    Returns:
        The figure, with one axes per frame.
    """
    if ncols < 1:
        raise ValueError(f"expected ncols >= 1, got {ncols}")
    images = to_uint8_rgb(frames)
    if titles is None:
        titles = [f"Frame {index + 1}" for index in range(len(images))]
    if len(titles) != len(images):
        raise ValueError(f"expected {len(images)} titles, one per frame, got {len(titles)}")
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    figure, axes = _new_figure(nrows, ncols, figsize=(2.0 * ncols, 2.0 * nrows + (0.5 if title else 0.0)))
    for index, axis in enumerate(axes.flat):
        if index < len(images):
            _show_frame(axis, images[index], titles[index])
        else:
            axis.remove()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _finish(figure, path)


def plot_truth_vs_prediction(
    truth: np.ndarray,
    prediction: np.ndarray,
    first_frame_number: int = 11,
    labels: Sequence[str] = ("Truth", "Prediction"),
    path: str | os.PathLike | None = None,
) -> Figure:
    """Shows true frames above predicted frames, column k titled "Frame {first_frame_number + k}".

    Args:
        truth: ``(horizon, height, width[, 1 or 3])``, float in [0, 1] or uint8.
        prediction: the predicted frames, same number of frames as ``truth``.
        first_frame_number: number of the first predicted frame (11 when frames 1-10 were given).
        labels: names of the top and bottom rows.
        path: if given, the figure is also saved there as PNG.

    Returns:
        The figure, with ``2 * horizon`` axes (top row first).
    """
    rows = [to_uint8_rgb(truth), to_uint8_rgb(prediction)]
    if len(rows[0]) != len(rows[1]):
        raise ValueError(
            f"expected truth and prediction with the same number of frames, got {len(rows[0])} and {len(rows[1])}"
        )
    if len(labels) != 2:
        raise ValueError(f"expected 2 row labels, got {len(labels)}: {labels!r}")
    horizon = len(rows[0])
    figure, axes = _new_figure(2, horizon, figsize=(2.0 * horizon, 4.4))
    for row, (images, label) in enumerate(zip(rows, labels, strict=True)):
        for column, image in enumerate(images):
            _show_frame(axes[row, column], image, f"Frame {first_frame_number + column}")
        axes[row, 0].set_ylabel(label, fontsize="large")
    figure.tight_layout()
    return _finish(figure, path)


def _history_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """``{metric: per-epoch values}`` from one record per epoch, all with the same keys."""
    keys = list(records[0])
    for index, record in enumerate(records):
        if list(record) != keys:
            raise ValueError(f"expected every epoch to log {keys}, got {list(record)} at row {index}")
    return {key: [float(record[key]) for record in records] for key in keys}


def _read_history(history_or_csv: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns ``(epochs counted from 1, {metric: values})`` from a History, a dict, records or a CSVLogger file."""
    if isinstance(history_or_csv, (str, os.PathLike)):
        with open(history_or_csv, newline="", encoding="utf-8") as file:
            records = list(csv.DictReader(file))
        if not records:
            raise ValueError(f"expected a CSV file with a header and one row per epoch, got {history_or_csv}")
        columns = _history_columns(records)
    elif hasattr(history_or_csv, "history"):
        columns = dict(history_or_csv.history)
        columns["epoch"] = list(history_or_csv.epoch)
    elif isinstance(history_or_csv, Mapping):
        columns = dict(history_or_csv)
    elif isinstance(history_or_csv, Sequence) and history_or_csv and isinstance(history_or_csv[0], Mapping):
        columns = _history_columns(history_or_csv)
    else:
        raise TypeError(
            "expected a keras History, a dict of per-epoch lists, a list of per-epoch dicts or a CSV file path, "
            f"got {type(history_or_csv).__name__}"
        )
    values = {key: np.asarray(series, dtype=np.float64) for key, series in columns.items()}
    epochs = values.pop("epoch", None)
    shapes = {key: series.shape for key, series in values.items()}
    if not values or any(len(shape) != 1 for shape in shapes.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"expected metrics with one value per epoch, all of one length, got shapes {shapes}")
    count = len(next(iter(values.values())))
    if epochs is None:
        return np.arange(1, count + 1), values
    if epochs.shape != (count,):
        raise ValueError(f"expected {count} epoch numbers, got shape {epochs.shape}")
    return epochs + 1, values


def _history_panels(keys: Sequence[str]) -> list[list[str]]:
    """Groups each metric with its validation counterpart: [["loss", "val_loss"], ["learning_rate"], ...]."""
    panels = []
    for key in keys:
        if key.startswith("val_") and key[4:] in keys:
            continue
        validation = f"val_{key}"
        panels.append([key, validation] if validation in keys else [key])
    return panels


def plot_history(
    history_or_csv: Any,
    path: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    ylabels: Mapping[str, str] | None = None,
) -> Figure:
    """Plots training curves: each metric with its ``val_`` counterpart, one panel per metric.

    Losses and learning rates use a logarithmic y axis when all their values are positive.

    Args:
        history_or_csv: a ``keras.callbacks.History``, a dict ``{name: per-epoch values}`` (an ``"epoch"``
            entry, counted from 0, is used as the x axis), a list of per-epoch dicts with the same keys (the
            ``"history"`` of :func:`keras_convlstm.pretrained.pretrained_info`) or the path of a
            ``keras.callbacks.CSVLogger`` file.
        path: if given, the figure is also saved there as PNG.
        metrics: the panels to draw, by metric name (``("loss",)`` draws loss and val_loss); None: all.
        ylabels: y-axis label of a panel, by metric name, e.g. the loss and its unit; default: none.

    Returns:
        The figure, with one axes per panel.
    """
    from matplotlib.ticker import MaxNLocator

    epochs, values = _read_history(history_or_csv)
    panels = _history_panels(list(values))
    if metrics is not None:
        known = [panel[0] for panel in panels]
        if not metrics or any(name not in known for name in metrics):
            raise ValueError(f"expected metric names among {known}, got {list(metrics)}")
        panels = [panel for panel in panels if panel[0] in metrics]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    figure, axes = _new_figure(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows))
    for index, axis in enumerate(axes.flat):
        if index >= len(panels):
            axis.remove()
            continue
        for key in panels[index]:
            axis.plot(epochs, values[key], marker="o", markersize=3, label=key)
        series = np.concatenate([values[key] for key in panels[index]])
        if any(part in panels[index][0] for part in _LOG_SCALE_KEYS) and np.all(series > 0):
            axis.set_yscale("log")
        axis.set_title(panels[index][0])
        axis.set_xlabel("Epoch")
        axis.set_ylabel((ylabels or {}).get(panels[index][0], ""))
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()
        axis.grid(True, alpha=0.3)
    figure.tight_layout()
    return _finish(figure, path)


def plot_metric_curves(
    table_or_dict: MetricTable | Mapping[str, Mapping[str, np.ndarray]],
    metrics: Sequence[str] = ("mse", "ssim"),
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plots per-step metrics of several systems (a model beside its baselines), one panel per metric.

    Args:
        table_or_dict: a :class:`~keras_convlstm.evaluation.MetricTable` or ``{system: {metric: (horizon,)}}``.
        metrics: metric names to plot.
        path: if given, the figure is also saved there as PNG.

    Returns:
        The figure, with one axes per metric; the x axis is the predicted frame number (1 to horizon).
    """
    table = table_or_dict if isinstance(table_or_dict, MetricTable) else MetricTable(dict(table_or_dict))
    missing = [name for name in metrics if name not in table.metric_names]
    if not metrics or missing:
        raise ValueError(f"expected metric names among {table.metric_names}, got {list(metrics)}")
    steps = np.arange(1, table.horizon + 1)
    figure, axes = _new_figure(1, len(metrics), figsize=(4.5 * len(metrics), 3.4))
    for axis, name in zip(axes.flat, metrics, strict=True):
        for system in table.systems:
            axis.plot(steps, table.metrics[system][name], marker="o", markersize=3, label=system)
        axis.set_title(name)
        axis.set_xlabel("Predicted frame")
        axis.set_xticks(steps)
        axis.grid(True, alpha=0.3)
    axes[0, 0].legend()
    figure.tight_layout()
    return _finish(figure, path)


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
    """Adds a band below each uint8 frame: "frame k", and "context" or "predicted" when ``context_frames`` is set."""
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
            (f"frame {number} (context)", False) if number <= context_frames else (f"frame {number} (predicted)", True)
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
        context_frames: frames numbered up to this are marked "context", later ones "predicted" (in a dark
            band); None marks neither.
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


def plot_confusion_matrix(
    counts: np.ndarray,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Shows a confusion matrix as a heat map, each cell labelled with its count (and row share).

    Args:
        counts: int ``(num_classes, num_classes)``: ``[i, j]`` examples of true class ``i`` predicted as ``j``
            (for example from ``keras_convlstm.videos.confusion_matrix``).
        class_names: one name per class (default "0", "1", ...).
        normalize: colour each cell by its share of the true class's examples (rows sum to 1); False colours
            by raw counts.
        title: optional title; the accuracy (trace over total) is appended to it.
        path: if given, the figure is also saved there as PNG.

    Returns:
        The figure, with one axes: true classes on rows, predicted classes on columns.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 1:
        raise ValueError(f"expected a square matrix (num_classes, num_classes), got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0:
        raise ValueError(f"expected non-negative integer counts, got dtype {counts.dtype}")
    num_classes = counts.shape[0]
    names = [str(name) for name in (range(num_classes) if class_names is None else class_names)]
    if len(names) != num_classes:
        raise ValueError(f"expected {num_classes} class names, got {len(names)}: {names!r}")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    accuracy = np.trace(counts) / max(1, counts.sum())
    side = 1.2 + 0.7 * num_classes
    figure, axes = _new_figure(1, 1, figsize=(side + 1.0, side))
    axis = axes[0, 0]
    image = axis.imshow(shares if normalize else counts, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    limit = 0.5 * (1 if normalize else max(1, counts.max()))
    for row in range(num_classes):
        for column in range(num_classes):
            value = shares[row, column] if normalize else counts[row, column]
            text = f"{counts[row, column]}"
            if normalize:
                text += f"\n{shares[row, column]:.0%}"
            colour = "white" if value > limit else "black"
            axis.text(column, row, text, ha="center", va="center", color=colour, fontsize="small")
    axis.set_xticks(range(num_classes), names, rotation=45, ha="right")
    axis.set_yticks(range(num_classes), names)
    axis.set_xlabel("Predicted class")
    axis.set_ylabel("True class")
    axis.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.1%} ({counts.sum()} examples)")
    figure.tight_layout()
    return _finish(figure, path)


def plot_trajectories(
    positions: np.ndarray,
    free_range: float = 36.0,
    num_frames_shown: int | None = 20,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plots bouncing-digit paths: each digit's path in the free range, and its coordinates against time.

    Args:
        positions: ``(time, digits, 2)`` top-left ``(row, col)`` positions in pixels, for example one sequence
            of :func:`keras_convlstm.synthetic.moving_mnist_trajectories`.
        free_range: side of the square the top-left corner moves in (image size minus digit size: 64 - 28).
        num_frames_shown: shade the first frames (those of a data sequence); None shades nothing.
        path: also save the figure there (PNG).
    """
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"expected positions of shape (time, digits, 2), got shape {positions.shape}")
    from matplotlib.patches import Rectangle

    figure, axes = _new_figure(1, 2, (13, 4))
    path_axis, time_axis = axes[0]
    colors = [f"C{digit}" for digit in range(positions.shape[1])]
    for digit, color in enumerate(colors):
        rows, cols = positions[:, digit, 0], positions[:, digit, 1]
        path_axis.plot(cols, rows, marker=".", color=color, label=f"digit {digit + 1}")
        path_axis.plot(cols[0], rows[0], marker="o", markersize=9, color=color)
        time_axis.plot(rows, color=color, label=f"digit {digit + 1}: row")
        time_axis.plot(cols, color=color, linestyle="--", label=f"digit {digit + 1}: column")
    path_axis.add_patch(Rectangle((0, 0), free_range, free_range, fill=False, linestyle=":"))
    path_axis.set(
        xlim=(-2, free_range + 2),
        ylim=(free_range + 2, -2),
        aspect="equal",
        xlabel="column of the top-left corner (px)",
        ylabel="row (px)",
        title="Paths (circle: start)",
    )
    for level in (0, free_range):
        time_axis.axhline(level, color="gray", linewidth=0.8)
    if num_frames_shown:
        time_axis.axvspan(0, num_frames_shown - 1, color="gray", alpha=0.1, label=f"{num_frames_shown} frames")
    time_axis.set(xlabel="frame", ylabel="position (px)", title=f"Coordinates bounce between 0 and {free_range:g}")
    time_axis.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    path_axis.legend(fontsize="small")
    figure.tight_layout()
    return _finish(figure, path)
