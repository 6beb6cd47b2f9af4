"""Architecture diagrams: figures and PNG files, clean layouts, labels that state the real model's shapes and sizes."""

from __future__ import annotations

import dataclasses
import itertools
import re

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch  # noqa: E402
from PIL import Image  # noqa: E402

from keras_convlstm import diagrams  # noqa: E402
from keras_convlstm.models import build_model, get_preset  # noqa: E402

PARAMETERS = re.compile(r"^([\d,]+) parameters(?: \(([\d,]+) trainable\))?$")
# A small encoder-forecaster: two layers on 4x4 patches of 16x16 frames, 3 frames in, 2 out.
SMALL_ENCODER_FORECASTER = dataclasses.replace(
    get_preset("shi2015-encoder-forecaster"),
    name="small-encoder-forecaster",
    image_size=16,
    filters=(8, 4),
    kernel_sizes=(3, 3),
    input_frames=3,
    output_frames=2,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts_top_down(figure: Figure) -> list[str]:
    """The figure's texts, from the top of the figure down (left to right on one height)."""
    texts = figure.axes[0].texts
    return [
        text.get_text() for text in sorted(texts, key=lambda text: (-text.get_position()[1], text.get_position()[0]))
    ]


def _shape_text(shape) -> str:
    """``(None, None, 16, 16, 4)`` as the diagrams write it: ``(batch, time, 16, 16, 4)``."""
    return "(" + ", ".join(["batch"] + ["time" if size is None else str(size) for size in shape[1:]]) + ")"


def _strictly_overlap(first, second, tolerance: float = 0.5) -> bool:
    return (
        first.x0 + tolerance < second.x1
        and second.x0 + tolerance < first.x1
        and first.y0 + tolerance < second.y1
        and second.y0 + tolerance < first.y1
    )


def _layout_problems(figure: Figure) -> list[str]:
    """Texts that leave the figure, overlap another text, or cross the border of a box or a node."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = figure.axes[0]
    texts = [(text.get_text(), text.get_window_extent(renderer)) for text in axes.texts if text.get_text()]
    shapes = [patch.get_window_extent(renderer) for patch in axes.patches if isinstance(patch, FancyBboxPatch | Circle)]
    frame = figure.bbox
    problems = []
    for label, extent in texts:
        if extent.x0 < frame.x0 or extent.y0 < frame.y0 or extent.x1 > frame.x1 or extent.y1 > frame.y1:
            problems.append(f"{label!r} leaves the figure")
        for shape in shapes:
            inside = shape.x0 <= extent.x0 and extent.x1 <= shape.x1 and shape.y0 <= extent.y0 and extent.y1 <= shape.y1
            if _strictly_overlap(extent, shape) and not inside:
                problems.append(f"{label!r} crosses the border of a box")
    for (first, first_extent), (second, second_extent) in itertools.combinations(texts, 2):
        if _strictly_overlap(first_extent, second_extent):
            problems.append(f"{first!r} overlaps {second!r}")
    return problems


DIAGRAMS = {
    "cell": lambda **options: diagrams.draw_convlstm_cell(**options),
    "cell-relu-3x5": lambda **options: diagrams.draw_convlstm_cell(kernel_size=(3, 5), activation="relu", **options),
    "keras-example": lambda **options: diagrams.draw_network("keras-example", **options),
    "cpu-fast": lambda **options: diagrams.draw_network("cpu-fast", **options),
    "noisy-squares": lambda **options: diagrams.draw_network("noisy-squares", **options),
    "moving-square": lambda **options: diagrams.draw_network("moving-square", **options),
    "classifier": lambda **options: diagrams.draw_network("classifier", **options),
    "shi2015-encoder-forecaster": lambda **options: diagrams.draw_encoder_forecaster(
        "shi2015-encoder-forecaster", **options
    ),
    "small-encoder-forecaster": lambda **options: diagrams.draw_encoder_forecaster(SMALL_ENCODER_FORECASTER, **options),
    "one-layer-encoder-forecaster": lambda **options: diagrams.draw_encoder_forecaster(
        dataclasses.replace(SMALL_ENCODER_FORECASTER, filters=(8,), kernel_sizes=(3,), patch_size=1), **options
    ),
}


@pytest.mark.parametrize("name", ["cell", "keras-example", "shi2015-encoder-forecaster"])
def test_a_diagram_is_a_detached_figure_saved_as_png(name, tmp_path):
    figures_before = plt.get_fignums()
    path = tmp_path / "diagrams" / f"{name}.png"
    figure = DIAGRAMS[name](path=path)
    assert isinstance(figure, Figure)
    assert plt.get_fignums() == figures_before  # detached: a notebook shows it once, as the cell's value
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"))
    width, height = figure.get_size_inches()
    assert pixels.shape == (round(height * diagrams.FIGURE_DPI), round(width * diagrams.FIGURE_DPI))
    assert (pixels < 100).mean() > 0.005, "the picture is (nearly) blank"
    assert sorted(item.name for item in path.parent.iterdir()) == [path.name]  # no temporary file left


@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_texts_neither_overlap_nor_cross_a_box_nor_leave_the_figure(name):
    assert _layout_problems(DIAGRAMS[name]()) == []


def test_the_cell_names_its_kernel_and_activation():
    default = _texts_top_down(diagrams.draw_convlstm_cell())
    assert "input-to-state\n$W_x *$ (5\u00d75 conv)" in default
    assert "state-to-state\n$W_h *$ (5\u00d75 conv)" in default
    assert "candidate\n$g_t = \\tanh(z_g)$" in default and "$\\tanh(C_t)$" in default
    for gate in ("forget gate\n$f_t = \\sigma(z_f)$", "input gate\n$i_t = \\sigma(z_i)$"):
        assert gate in default
    for symbol in ("$X_t$", "$H_{t-1}$", "$C_{t-1}$", "$H_t$", "$C_t$"):
        assert symbol in default

    relu = _texts_top_down(diagrams.draw_convlstm_cell(kernel_size=(3, 1), activation="relu"))
    assert "input-to-state\n$W_x *$ (3\u00d71 conv)" in relu
    assert "candidate\n$g_t = \\mathrm{relu}(z_g)$" in relu and "$\\mathrm{relu}(C_t)$" in relu
    assert not any("tanh" in text for text in relu)


NETWORKS = {
    "keras-example": lambda: build_model("keras-example"),
    "cpu-fast": lambda: build_model("cpu-fast"),
    "moving-square": lambda: build_model("moving-square"),
    "classifier": lambda: build_model("classifier"),
    "small causal override": lambda: build_model(
        "keras-example-causal", image_size=16, filters=(8, 4), kernel_sizes=(3, 1), batch_norm_last=True
    ),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_labels_are_the_models_parameter_counts_and_output_shapes(name):
    model = NETWORKS[name]()
    texts = _texts_top_down(diagrams.draw_network(model))
    assert texts[0] == f"{model.config.name}: {model.count_params():,} parameters"

    counted = [PARAMETERS.match(text) for text in texts if PARAMETERS.match(text)]
    layers = model.layers[1:]  # the input layer has no parameters and no label
    assert [int(match[1].replace(",", "")) for match in counted] == [layer.count_params() for layer in layers]
    for match, layer in zip(counted, layers, strict=True):
        trainable = sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)
        stated = int((match[2] or match[1]).replace(",", ""))
        assert stated == trainable, layer.name

    shapes = [text for text in texts if text.startswith("(batch")]
    assert shapes == [_shape_text(layer.output.shape) for layer in model.layers]


def test_network_shapes_are_those_the_model_computes():
    model = NETWORKS["small causal override"]()
    frames = np.zeros((2, 3, 16, 16, 1), np.float32)
    texts = _texts_top_down(diagrams.draw_network(model))
    shapes = [text for text in texts if text.startswith("(batch")]
    computed = tuple(keras.ops.convert_to_numpy(model(frames)).shape)
    assert shapes[0] == "(batch, time, 16, 16, 1)"
    assert shapes[-1] == "(batch, time, " + ", ".join(map(str, computed[2:])) + ")"


def test_the_keras_io_network_diagram_reads_as_its_code():
    texts = _texts_top_down(diagrams.draw_network(get_preset("keras-example")))
    title, description, *rest = texts
    assert description == get_preset("keras-example").description
    assert [text for text in rest if not text.startswith("(") and not PARAMETERS.match(text)] == [
        "Input",
        "ConvLSTM2D: 64 filters, 5\u00d75, relu",
        "BatchNormalization",
        "ConvLSTM2D: 64 filters, 3\u00d73, relu",
        "BatchNormalization",
        "ConvLSTM2D: 64 filters, 1\u00d71, relu",
        "Conv3D: 1 filter, 3\u00d73\u00d73, sigmoid, 'same' padding",
        "Output",
    ]
    assert [text for text in rest if PARAMETERS.match(text)] == [
        "416,256 parameters",
        "256 parameters (128 trainable)",
        "295,168 parameters",
        "256 parameters (128 trainable)",
        "33,024 parameters",
        "1,729 parameters",
    ]
    assert [text for text in rest if text.startswith("(")] == [
        "(batch, time, 64, 64, 1)",
        *["(batch, time, 64, 64, 64)"] * 5,
        "(batch, time, 64, 64, 1)",
    ]


def test_patch_layers_and_the_causal_output_are_named():
    texts = _texts_top_down(diagrams.draw_network("cpu-fast"))
    assert "SpaceToDepth: 4\u00d74 patches" in texts and "DepthToSpace: 4\u00d74 patches" in texts
    assert "CausalConv3D: 16 filters, 3\u00d73\u00d73, sigmoid" in texts
    assert "(batch, time, 16, 16, 16)" in texts
    many_to_one = _texts_top_down(diagrams.draw_network("moving-square"))
    assert "ConvLSTM2D: 16 filters, 3\u00d73, tanh, last step only" in many_to_one
    assert "Conv2D: 1 filter, 1\u00d71, sigmoid" in many_to_one


def test_encoder_forecaster_shapes_are_those_of_the_built_model():
    config = SMALL_ENCODER_FORECASTER
    model = build_model(config)
    texts = _texts_top_down(diagrams.draw_encoder_forecaster(model))
    shapes = [text for text in texts if text.startswith("(batch")]
    outputs = [layer.output[0] if isinstance(layer.output, list) else layer.output for layer in model.layers]
    built = {_shape_text(output.shape) for output in outputs}
    zeros = "(batch, 2, 4, 4, 1)"  # the forecaster's input: one zero channel on the 4x4 patch grid
    assert set(shapes) <= built | {zeros}
    assert {zeros, "(batch, 2, 4, 4, 12)", "(batch, 2, 16, 16, 1)"} <= set(shapes)  # concatenation, prediction
    predicted = keras.ops.convert_to_numpy(model(np.zeros((1, 3, 16, 16, 1), np.float32)))
    assert shapes[0] == _shape_text((None, *predicted.shape[1:]))  # the top label: the predicted frames
    assert texts.count("copy $H$, $C$\nafter frame 3") == 2
    assert "Predicted frames\n4\u20135" in texts


def test_the_shi_encoder_forecaster_has_its_layer_sizes():
    texts = _texts_top_down(diagrams.draw_encoder_forecaster("shi2015-encoder-forecaster"))
    for index, filters in enumerate((128, 64, 64), start=1):
        for part in ("encoder", "forecaster"):
            assert f"{part} ConvLSTM2D {index}\n{filters} filters, 5\u00d75, tanh" in texts
    assert "Input: frames 1\u201310" in texts and "Predicted frames\n11\u201320" in texts
    assert "Concatenate\nall forecaster\nhidden states" in texts
    assert "(batch, 10, 16, 16, 256)" in texts  # 128 + 64 + 64 concatenated channels
    assert "Conv3D: 16 filters,\n1\u00d71\u00d71, sigmoid" in texts
    one_layer = dataclasses.replace(SMALL_ENCODER_FORECASTER, filters=(8,), kernel_sizes=(3,))
    assert not any(
        text.startswith("Concatenate") for text in _texts_top_down(diagrams.draw_encoder_forecaster(one_layer))
    )


@pytest.mark.parametrize(
    ("draw", "argument", "error", "message"),
    [
        (
            diagrams.draw_convlstm_cell,
            {"kernel_size": 0},
            ValueError,
            r"kernel_size must be a positive integer .*got 0",
        ),
        (diagrams.draw_convlstm_cell, {"kernel_size": (3, 3, 3)}, ValueError, r"kernel_size .* got \(3, 3, 3\)"),
        (diagrams.draw_convlstm_cell, {"activation": ""}, ValueError, r"activation must be the name .* got ''"),
        (diagrams.draw_convlstm_cell, {"activation": None}, ValueError, r"activation must be the name .* got None"),
        (diagrams.draw_network, {"config_or_model": 42}, TypeError, r"expected a ModelConfig, .* got int"),
        (diagrams.draw_network, {"config_or_model": "no-such-preset"}, ValueError, r"unknown model preset"),
        (
            diagrams.draw_network,
            {"config_or_model": "shi2015-encoder-forecaster"},
            ValueError,
            r"encoder_forecaster model 'shi2015-encoder-forecaster'; draw it with draw_encoder_forecaster",
        ),
        (
            diagrams.draw_encoder_forecaster,
            {"config_or_model": "keras-example"},
            ValueError,
            r"expects an encoder_forecaster model, got the seq2seq model 'keras-example'; draw it with draw_network",
        ),
    ],
)
def test_bad_arguments_fail_with_a_clear_error(draw, argument, error, message):
    with pytest.raises(error, match=message):
        draw(**argument)


def test_a_keras_model_without_a_config_is_refused():
    inputs = keras.Input((None, 8, 8, 1))
    plain = keras.Model(inputs, keras.layers.ConvLSTM2D(2, 3, padding="same")(inputs))
    with pytest.raises(TypeError, match="built by keras_convlstm.models.build_model .* got Functional"):
        diagrams.draw_network(plain)


def test_a_failed_save_keeps_the_earlier_file(tmp_path, monkeypatch):
    path = tmp_path / "cell.png"
    diagrams.draw_convlstm_cell(path=path)
    earlier = path.read_bytes()

    def half_written(self, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="No space left on device"):
        diagrams.draw_convlstm_cell(kernel_size=3, path=path)
    assert path.read_bytes() == earlier
    assert [item.name for item in tmp_path.iterdir()] == ["cell.png"]
