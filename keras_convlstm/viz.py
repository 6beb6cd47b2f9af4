"""Matplotlib figures of frame sequences, training curves and results.

Frame grids, true frames above predicted ones, training curves, per-step metric curves of several systems,
confusion matrices and bouncing-digit trajectories. Frames are those of one sequence, ``(time, height, width)``,
``(time, height, width, 1)`` (grey) or ``(time, height, width, 3)`` (RGB), either float (clipped to [0, 1]) or
uint8 (used as is), converted by :func:`keras_convlstm.animation.to_uint8_rgb` (GIFs and videos shown in
notebooks are in :mod:`keras_convlstm.animation`).

Figure functions return a :class:`matplotlib.figure.Figure` that is detached from pyplot: in a notebook it is
shown once, as the value of the cell, and scripts save it with ``path=...`` (PNG at 100 dpi) or
``figure.savefig``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_convlstm.animation import to_uint8_rgb
from keras_convlstm.evaluation import MetricTable
from keras_convlstm.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_DPI = 100
_LOG_SCALE_KEYS = ("loss", "learning_rate", "lr")


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
    # 0.4 inch a row above each frame for its title
    figure, axes = _new_figure(nrows, ncols, figsize=(2.0 * ncols, 2.4 * nrows + (0.5 if title else 0.0)))
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
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if len(epochs) == 1:  # a lone point would get ticks at fractions of an epoch around it
            axis.set_xticks(epochs)
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
