"""Tests of keras_convlstm.viz: the matplotlib figures."""

import types

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from sample_frames import random_frames

from keras_convlstm import animation, viz
from keras_convlstm.evaluation import MetricTable


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_frames_grid_titles_and_png(tmp_path):
    frames = random_frames(time=20, channels=1)
    path = tmp_path / "frames.png"
    figure = viz.plot_frames(frames, title="A sequence", path=path)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 20
    assert [axis.get_title() for axis in figure.axes] == [f"Frame {k}" for k in range(1, 21)]
    assert figure.axes[0].get_subplotspec().get_gridspec().get_geometry() == (4, 5)
    np.testing.assert_array_equal(figure.axes[7].images[0].get_array(), animation.to_uint8_rgb(frames)[7])
    assert figure.get_suptitle() == "A sequence"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1000, 1010)  # 10 x (4 rows of 2.4 + 0.5 for the title) inches at 100 dpi


@pytest.mark.parametrize("ncols", [5, 10])
def test_plot_frames_titles_are_not_hidden_by_the_row_above(ncols):
    square = random_frames(time=20, height=32, width=32, channels=3)  # square frames fill the width of a cell
    figure = viz.plot_frames(square, ncols=ncols, title="A sequence")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for above, below in zip(figure.axes[:-ncols], figure.axes[ncols:], strict=True):
        title_top = below.title.get_window_extent(renderer).y1
        assert title_top <= above.get_window_extent(renderer).y0, (above.get_title(), below.get_title())


def test_plot_frames_partial_last_row():
    figure = viz.plot_frames(random_frames(time=7), ncols=5)
    assert len(figure.axes) == 7
    assert figure.axes[-1].get_title() == "Frame 7"
    assert len(viz.plot_frames(random_frames(time=3), ncols=5).axes) == 3
    with pytest.raises(ValueError, match="expected ncols >= 1, got 0"):
        viz.plot_frames(random_frames(), ncols=0)


def test_plot_frames_own_titles():
    figure = viz.plot_frames(random_frames(time=3), titles=["left", "still", "right"])
    assert [axis.get_title() for axis in figure.axes] == ["left", "still", "right"]
    with pytest.raises(ValueError, match="expected 3 titles, one per frame, got 2"):
        viz.plot_frames(random_frames(time=3), titles=["left", "right"])


def test_plot_truth_vs_prediction(tmp_path):
    truth, prediction = random_frames(time=10, seed=1), random_frames(time=10, seed=2)
    path = tmp_path / "rollout.png"
    figure = viz.plot_truth_vs_prediction(truth, prediction, path=path)
    assert len(figure.axes) == 20
    titles = [f"Frame {k}" for k in range(11, 21)]
    assert [axis.get_title() for axis in figure.axes] == titles * 2
    assert figure.axes[0].get_ylabel() == "Truth"
    assert figure.axes[10].get_ylabel() == "Prediction"
    np.testing.assert_array_equal(figure.axes[13].images[0].get_array(), animation.to_uint8_rgb(prediction)[3])
    with Image.open(path) as image:
        assert image.size == (2000, 440)

    shifted = viz.plot_truth_vs_prediction(truth[:3], prediction[:3], first_frame_number=8)
    assert [axis.get_title() for axis in shifted.axes[:3]] == ["Frame 8", "Frame 9", "Frame 10"]
    with pytest.raises(ValueError, match="same number of frames, got 10 and 9"):
        viz.plot_truth_vs_prediction(truth, prediction[:9])


def _panel_lines(axis) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in axis.get_lines()}


def test_plot_history_from_dict_history_and_csv(tmp_path):
    logs = {"loss": [0.5, 0.3, 0.2], "val_loss": [0.6, 0.4, 0.35], "learning_rate": [1e-3, 1e-3, 5e-4]}
    csv_path = tmp_path / "training.csv"
    csv_path.write_text("epoch,learning_rate,loss,val_loss\n0,0.001,0.5,0.6\n1,0.001,0.3,0.4\n2,0.0005,0.2,0.35\n")
    history = types.SimpleNamespace(history=logs, epoch=[0, 1, 2])  # the two attributes keras History has
    for source in (logs, history, csv_path, str(csv_path)):
        figure = viz.plot_history(source)
        panels = {axis.get_title(): axis for axis in figure.axes}
        assert set(panels) == {"loss", "learning_rate"}
        lines = _panel_lines(panels["loss"])
        assert set(lines) == {"loss", "val_loss"}
        np.testing.assert_array_equal(lines["val_loss"][0], [1, 2, 3])
        np.testing.assert_allclose(lines["val_loss"][1], logs["val_loss"])
        assert panels["loss"].get_yscale() == "log"
        np.testing.assert_allclose(_panel_lines(panels["learning_rate"])["learning_rate"][1], [1e-3, 1e-3, 5e-4])


def test_plot_history_linear_scale_unpaired_metrics_and_png(tmp_path):
    path = tmp_path / "history.png"
    figure = viz.plot_history({"mae": [3.0, 2.0], "loss": [0.0, -1.0], "val_extra": [1.0, 2.0]}, path=path)
    panels = {axis.get_title(): axis for axis in figure.axes}
    assert set(panels) == {"mae", "loss", "val_extra"}
    assert panels["mae"].get_yscale() == "linear"
    assert panels["loss"].get_yscale() == "linear"  # non-positive values cannot go on a log axis
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_plot_history_of_a_single_epoch_ticks_that_epoch_only():
    figure = viz.plot_history({"loss": [0.6], "val_loss": [0.5]})
    figure.canvas.draw()
    assert list(figure.axes[0].get_xticks()) == [1]


def test_plot_history_rejects_bad_input():
    with pytest.raises(TypeError, match="got int"):
        viz.plot_history(3)
    with pytest.raises(ValueError, match="all of one length"):
        viz.plot_history({"loss": [1.0, 2.0], "val_loss": [1.0]})
    with pytest.raises(ValueError, match="expected 2 epoch numbers"):
        viz.plot_history({"loss": [1.0, 2.0], "epoch": [0]})


def test_plot_history_from_records_with_chosen_panels_and_labels():
    records = [
        {"epoch": 0, "learning_rate": 1e-3, "loss": 0.5, "val_loss": 0.6},
        {"epoch": 1, "learning_rate": 1e-3, "loss": 0.3, "val_loss": 0.4},
    ]
    figure = viz.plot_history(records, metrics=("loss",), ylabels={"loss": "BCE per pixel"})
    (axis,) = figure.axes
    assert (axis.get_title(), axis.get_ylabel()) == ("loss", "BCE per pixel")
    lines = _panel_lines(axis)
    np.testing.assert_array_equal(lines["loss"][0], [1, 2])
    np.testing.assert_allclose(lines["val_loss"][1], [0.6, 0.4])
    assert [axis.get_ylabel() for axis in viz.plot_history(records).axes] == ["", ""]
    with pytest.raises(ValueError, match=r"expected metric names among \['learning_rate', 'loss'\], got \['mse'\]"):
        viz.plot_history(records, metrics=("mse",))
    with pytest.raises(ValueError, match="expected every epoch to log"):
        viz.plot_history([records[0], {"epoch": 1, "loss": 0.3}])


def test_plot_metric_curves(tmp_path):
    values = {
        "model": {"mse": [1.0, 2.0, 3.0], "ssim": [0.9, 0.8, 0.7], "psnr": [20.0, 19.0, 18.0]},
        "copy-last-frame": {"mse": [2.0, 3.0, 4.0], "ssim": [0.8, 0.6, 0.5], "psnr": [18.0, 17.0, 16.0]},
    }
    table = MetricTable(values)
    path = tmp_path / "curves.png"
    for source in (table, values):
        figure = viz.plot_metric_curves(source, path=path)
        assert [axis.get_title() for axis in figure.axes] == ["mse", "ssim"]
        lines = _panel_lines(figure.axes[1])
        assert set(lines) == {"model", "copy-last-frame"}
        np.testing.assert_array_equal(lines["copy-last-frame"][0], [1, 2, 3])
        np.testing.assert_array_equal(lines["copy-last-frame"][1], [0.8, 0.6, 0.5])
    assert len(viz.plot_metric_curves(table, metrics=("psnr",)).axes) == 1
    with Image.open(path) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match=r"expected metric names among \['mse', 'ssim', 'psnr'\]"):
        viz.plot_metric_curves(table, metrics=("csi",))


def test_plot_trajectories_draws_each_digit_path(tmp_path):
    from keras_convlstm.synthetic import moving_mnist_trajectories

    positions = moving_mnist_trajectories(1, num_frames=30, num_digits=3, seed=0)[0]
    figure = viz.plot_trajectories(positions, path=tmp_path / "paths.png")
    path_axis, time_axis = figure.axes
    # One path line and one start marker per digit; a row and a column curve per digit.
    assert len(path_axis.lines) == 2 * 3
    np.testing.assert_array_equal(path_axis.lines[0].get_xdata(), positions[:, 0, 1])
    assert len([line for line in time_axis.lines if len(line.get_xdata()) == 30]) == 2 * 3
    assert (tmp_path / "paths.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"\(time, digits, 2\)"):
        viz.plot_trajectories(positions[..., 0])
