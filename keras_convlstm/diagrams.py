r"""Architecture diagrams drawn with matplotlib: one ConvLSTM step, a stacked network, the encoder-forecaster.

Like the figures of :mod:`keras_convlstm.viz`, every function returns a :class:`matplotlib.figure.Figure`
detached from pyplot (a notebook shows it once, as the value of the cell) and also saves it as PNG at 100 dpi
when given ``path=...`` (written atomically: the file is complete or absent).

- :func:`draw_convlstm_cell`: what ``keras.layers.ConvLSTM2D`` computes in one step (the equations of
  :mod:`keras_convlstm.cell`).
- :func:`draw_network`: the layers of a sequence model, with the shape of every tensor between them and every
  layer's parameter count, read from the built Keras model.
- :func:`draw_encoder_forecaster`: Shi et al.'s (2015) encoder-forecaster, layer sizes from its config.

Example:
    >>> figure = draw_network("keras-example", path="keras_example.png")
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from keras_convlstm.checks import check_size
from keras_convlstm.files import atomic_path

if TYPE_CHECKING:
    import keras
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from keras_convlstm.models import ModelConfig

FIGURE_DPI = 100
FONT_SIZE = 10
SMALL_FONT_SIZE = 9
# Fill colours by what a layer does: recurrent, normalising, convolutional output, reshaping, data.
COLORS = {
    "recurrent": "#cfe2f3",
    "gate": "#fff2cc",
    "convolution": "#fce5cd",
    "normalization": "#eeeeee",
    "reshape": "#d9ead3",
    "data": "#ffffff",
}
_LINE = {"color": "#333333", "linewidth": 1.2}
_ARROW = {"arrowstyle": "-|>", "mutation_scale": 12, "shrinkA": 0, "shrinkB": 0, **_LINE}
_NODE_RADIUS = 0.17


class _Box(NamedTuple):
    """A drawn box, in inches from the lower left corner of the figure."""

    x: float  # centre
    y: float
    width: float
    height: float

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.height / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.height / 2)

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.width / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.width / 2, self.y)


def _canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of ``width x height`` inches, detached from pyplot, with one axes measured in inches."""
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(width, height))
    plt.close(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_xlim(0.0, width)
    axes.set_ylim(0.0, height)
    axes.set_axis_off()
    return figure, axes


def _finish(figure: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=FIGURE_DPI, format="png")
    return figure


def _box(
    axes: Axes,
    center: tuple[float, float],
    size: tuple[float, float],
    text: str,
    color: str,
    fontsize: float = FONT_SIZE,
) -> _Box:
    from matplotlib.patches import FancyBboxPatch

    box = _Box(*center, *size)
    axes.add_patch(
        FancyBboxPatch(
            (box.x - box.width / 2, box.y - box.height / 2),
            box.width,
            box.height,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=color,
            edgecolor=_LINE["color"],
            linewidth=_LINE["linewidth"],
        )
    )
    axes.text(box.x, box.y, text, ha="center", va="center", fontsize=fontsize, linespacing=1.5)
    return box


def _node(axes: Axes, center: tuple[float, float], symbol: str) -> _Box:
    """A small circle holding an operation (``r"\times"`` for the element-wise product, ``"+"`` for a sum)."""
    from matplotlib.patches import Circle

    axes.add_patch(Circle(center, _NODE_RADIUS, facecolor="white", edgecolor=_LINE["color"], linewidth=1.2))
    axes.text(*center, f"${symbol}$", ha="center", va="center", fontsize=FONT_SIZE + 1)
    return _Box(*center, 2 * _NODE_RADIUS, 2 * _NODE_RADIUS)


def _arrow(axes: Axes, *points: tuple[float, float], dashed: bool = False) -> None:
    """A line through ``points`` with an arrowhead on its last point."""
    from matplotlib.patches import FancyArrowPatch

    style = "--" if dashed else "-"
    if len(points) > 2:
        xs, ys = zip(*points[:-1], strict=True)
        axes.plot(xs, ys, linestyle=style, solid_capstyle="butt", **_LINE)
    axes.add_patch(FancyArrowPatch(points[-2], points[-1], linestyle=style, **_ARROW))


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'s' * (number != 1)}"


def _math_name(activation: str) -> str:
    """An activation's name as mathtext: ``\\tanh``, ``\\mathrm{relu}``."""
    return r"\tanh" if activation == "tanh" else r"\mathrm{" + activation.replace("_", r"\_") + "}"


def draw_convlstm_cell(
    kernel_size: int | Sequence[int] = 5, activation: str = "tanh", path: str | os.PathLike | None = None
) -> Figure:
    r"""Draws one ConvLSTM step as ``keras.layers.ConvLSTM2D`` computes it (no peepholes).

    The input frame :math:`X_t` and the hidden state :math:`H_{t-1}` each go through a convolution (input-to-state
    :math:`W_x *` and state-to-state :math:`W_h *`, both ``kernel_size``, 'same' padding, four blocks of
    ``filters`` channels); their sum plus the bias splits into the gates :math:`i, f, o` (sigmoid) and the
    candidate :math:`g` (``activation``). Then :math:`C_t = f \circ C_{t-1} + i \circ g` and
    :math:`H_t = o \circ \phi(C_t)`. The equations are in :mod:`keras_convlstm.cell`.

    Args:
        kernel_size: the kernel's height and width, one integer for a square kernel (5 for Shi et al. and the
            first layer of the keras.io network).
        activation: name of the activation :math:`\phi` of the candidate and the cell output ("tanh", Keras's
            default; "relu" in the keras.io network).
        path: if given, the figure is also saved there as PNG.

    Returns:
        The figure.
    """
    kernel = check_size(kernel_size, "kernel_size")
    if not (isinstance(activation, str) and activation.isidentifier()):
        raise ValueError(f"activation must be the name of an activation such as 'tanh' or 'relu', got {activation!r}")
    phi = _math_name(activation)
    size = "\u00d7".join(map(str, kernel))
    figure, axes = _canvas(13.4, 7.0)
    axes.text(
        6.7,
        6.7,
        "One ConvLSTM step, as keras.layers.ConvLSTM2D computes it",
        ha="center",
        va="center",
        fontsize=FONT_SIZE + 3,
        weight="bold",
    )

    # Input-to-state and state-to-state convolutions, summed with the bias: z, four blocks of `filters` channels.
    conv_x = _box(axes, (2.7, 2.3), (2.1, 0.8), f"input-to-state\n$W_x *$ ({size} conv)", COLORS["convolution"])
    conv_h = _box(axes, (2.7, 0.95), (2.1, 0.8), f"state-to-state\n$W_h *$ ({size} conv)", COLORS["convolution"])
    axes.text(0.25, conv_x.y, "$X_t$", ha="left", va="center", fontsize=FONT_SIZE + 3)
    axes.text(0.25, conv_h.y, "$H_{t-1}$", ha="left", va="center", fontsize=FONT_SIZE + 3)
    _arrow(axes, (0.95, conv_x.y), conv_x.left)
    _arrow(axes, (0.95, conv_h.y), conv_h.left)
    total = _node(axes, (4.35, (conv_x.y + conv_h.y) / 2), "+")
    axes.text(total.x + 0.25, total.y + 0.22, "$+\\,b$", ha="left", va="bottom", fontsize=FONT_SIZE)
    _arrow(axes, conv_x.right, (total.x, conv_x.y), total.top)
    _arrow(axes, conv_h.right, (total.x, conv_h.y), total.bottom)

    # The gates read their block of z; g is the candidate (Keras calls its block c).
    gate_y, gate_size = 3.75, (1.4, 0.85)
    gates = {
        "f": _box(axes, (5.4, gate_y), gate_size, "forget gate\n$f_t = \\sigma(z_f)$", COLORS["gate"]),
        "i": _box(axes, (7.0, gate_y), gate_size, "input gate\n$i_t = \\sigma(z_i)$", COLORS["gate"]),
        "g": _box(axes, (8.6, gate_y), gate_size, f"candidate\n$g_t = {phi}(z_g)$", COLORS["gate"]),
        "o": _box(axes, (10.2, gate_y), gate_size, "output gate\n$o_t = \\sigma(z_o)$", COLORS["gate"]),
    }
    bus_y = total.y
    axes.plot([total.right[0], gates["o"].x], [bus_y, bus_y], **_LINE)
    for gate in gates.values():
        _arrow(axes, (gate.x, bus_y), gate.bottom)
    axes.text(
        7.8,
        bus_y - 0.15,
        "$z = W_x * X_t + W_h * H_{t-1} + b$: four blocks (i, f, c, o), each of filters channels",
        ha="center",
        va="top",
        fontsize=SMALL_FONT_SIZE,
    )

    # Cell state: C_t = f o C_{t-1} + i o g.
    state_y = 5.95
    forget = _node(axes, (gates["f"].x, state_y), r"\times")
    update = _node(axes, ((gates["i"].x + gates["g"].x) / 2, state_y), "+")
    product = _node(axes, (update.x, 4.9), r"\times")
    branch_x = 11.5
    axes.text(0.25, state_y, "$C_{t-1}$", ha="left", va="center", fontsize=FONT_SIZE + 3)
    _arrow(axes, (0.95, state_y), forget.left)
    _arrow(axes, gates["f"].top, forget.bottom)
    _arrow(axes, gates["i"].top, (gates["i"].x, product.y), product.left)
    _arrow(axes, gates["g"].top, (gates["g"].x, product.y), product.right)
    _arrow(axes, product.top, update.bottom)
    _arrow(axes, forget.right, update.left)
    _arrow(axes, update.right, (12.4, state_y))
    axes.text(12.5, state_y, "$C_t$", ha="left", va="center", fontsize=FONT_SIZE + 3)
    axes.text(3.0, state_y + 0.12, "cell state (the memory)", ha="center", va="bottom", fontsize=SMALL_FONT_SIZE)
    axes.text(product.x - 0.25, product.y + 0.2, "$i_t \\circ g_t$", ha="right", va="bottom", fontsize=FONT_SIZE)
    axes.text(
        update.x + 0.25,
        state_y + 0.12,
        "$f_t \\circ C_{t-1} + i_t \\circ g_t$",
        ha="left",
        va="bottom",
        fontsize=FONT_SIZE,
    )

    # Hidden state: H_t = o o phi(C_t).
    squash = _box(axes, (branch_x, 4.9), (1.05, 0.5), f"${phi}(C_t)$", COLORS["gate"])
    output = _node(axes, (branch_x, gate_y), r"\times")
    _arrow(axes, (branch_x, state_y), squash.top)
    _arrow(axes, squash.bottom, output.top)
    _arrow(axes, gates["o"].right, output.left)
    _arrow(axes, output.right, (12.4, gate_y))
    axes.text(12.5, gate_y, "$H_t$", ha="left", va="center", fontsize=FONT_SIZE + 3)
    axes.text(12.5, gate_y - 0.3, "output,\nnext step", ha="left", va="top", fontsize=SMALL_FONT_SIZE)

    legend = (
        "$*$: 2-D convolution, 'same' padding    $\\circ$ and $\\times$ in a circle: element-wise product    "
        f"$\\sigma$: sigmoid (recurrent_activation)    ${phi}$: the activation\n"
        "$X_t$: (batch, height, width, channels);  $H$, $C$ and the gates: (batch, height, width, filters)"
    )
    axes.text(6.7, 0.05, legend, ha="center", va="bottom", fontsize=SMALL_FONT_SIZE, linespacing=1.6)
    return _finish(figure, path)


def _model_config(config_or_model: ModelConfig | keras.Model | str) -> ModelConfig:
    """The :class:`ModelConfig` of a preset name, a config, or a model built by ``build_model``."""
    from keras_convlstm.models import ModelConfig, get_preset

    if isinstance(config_or_model, str):
        return get_preset(config_or_model)
    if isinstance(config_or_model, ModelConfig):
        return config_or_model
    config = getattr(config_or_model, "config", None)
    if isinstance(config, ModelConfig):
        return config
    raise TypeError(
        "expected a ModelConfig, a preset name or a model built by keras_convlstm.models.build_model "
        f"(with a .config), got {type(config_or_model).__name__}"
    )


def describe_layer(layer: keras.layers.Layer) -> str:
    """One line saying what a Keras layer is: class, filters or units, kernel, activation, what else differs.

    Example: ``"ConvLSTM2D: 64 filters, 5×5, relu"``, ``"Conv3D: 1 filter, 3×3×3, sigmoid, 'same' padding"``.
    """
    settings = layer.get_config()
    kind = type(layer).__name__
    parts = []
    if "filters" in settings:
        parts.append(_count(settings["filters"], "filter"))
    if "units" in settings:
        parts.append(_count(settings["units"], "unit"))
    if "patch_size" in settings:
        parts.append(f"{settings['patch_size']}\u00d7{settings['patch_size']} patches")
    window = settings.get("kernel_size", settings.get("pool_size"))
    if window is not None:
        parts.append("\u00d7".join(map(str, window)))
    strides = tuple(settings.get("strides", ()))
    if any(stride != 1 for stride in strides) and strides != tuple(window or ()):
        parts.append(f"stride {strides[0]}" if len(set(strides)) == 1 else "stride " + "\u00d7".join(map(str, strides)))
    if settings.get("activation") not in (None, "linear"):
        parts.append(settings["activation"])
    # Padding decides what a convolution reads (a 'same' Conv3D reads the next frame); ConvLSTM2D pads per frame.
    if settings.get("padding") == "same" and kind != "ConvLSTM2D" and any(size > 1 for size in window or ()):
        parts.append("'same' padding")
    if settings.get("return_sequences") is False:
        parts.append("last step only")
    kind = "Input" if kind == "InputLayer" else kind
    return f"{kind}: {', '.join(parts)}" if parts else kind


def describe_shape(shape: Sequence[int | None]) -> str:
    """A tensor shape with its unknown sizes named: ``(None, None, 64, 64, 1)`` -> ``"(batch, time, 64, 64, 1)"``.

    The first axis is the batch; any other unknown size is the time axis (the only one a model leaves open).
    """
    names = ["batch" if axis == 0 else "time" if size is None else str(size) for axis, size in enumerate(shape)]
    return f"({', '.join(names)})"


def _parameter_label(layer: keras.layers.Layer) -> str:
    total = layer.count_params()
    trainable = sum(int(math.prod(weight.shape)) for weight in layer.trainable_weights)
    label = f"{total:,} parameters"
    return label if trainable == total else f"{label} ({trainable:,} trainable)"


def _layer_color(layer: keras.layers.Layer) -> str:
    kind = type(layer).__name__
    if "LSTM" in kind:
        return COLORS["recurrent"]
    if "Normalization" in kind:
        return COLORS["normalization"]
    if "Conv" in kind or kind == "Dense":
        return COLORS["convolution"]
    if kind == "InputLayer":
        return COLORS["data"]
    return COLORS["reshape"]


def draw_network(config_or_model: ModelConfig | keras.Model | str, path: str | os.PathLike | None = None) -> Figure:
    """Draws the layers of a sequence model, top to bottom, with the tensor shape between them and their parameters.

    Shapes and parameter counts are read from the Keras model itself (built from the config when a config or a
    preset name is given; nothing is trained), so the picture holds for every preset and override: patch layers,
    causal or 'same' Conv3D outputs, 1x1 output convolutions, classifiers.

    Args:
        config_or_model: a :class:`~keras_convlstm.models.ModelConfig`, a preset name (``"keras-example"``) or
            a model built by :func:`~keras_convlstm.models.build_model`, of any kind but ``"encoder_forecaster"``
            (its layers do not form one chain: see :func:`draw_encoder_forecaster`).
        path: if given, the figure is also saved there as PNG.

    Returns:
        The figure: one box per layer (the input first), the layer's parameter count beside it and the shape of
        its output, ``(batch, time, height, width, channels)``, on the arrow below it.
    """
    config = _model_config(config_or_model)
    if config.kind == "encoder_forecaster":
        raise ValueError(
            f"draw_network draws a chain of layers, got the encoder_forecaster model {config.name!r}; "
            "draw it with draw_encoder_forecaster"
        )
    if getattr(config_or_model, "config", None) is config:
        model = config_or_model
    else:
        from keras_convlstm.models import ConvLSTMModel

        model = ConvLSTMModel(config)
    layers = model.layers
    box_size, pitch = (3.9, 0.42), 1.0
    description = textwrap.wrap(config.description, 95)
    header = 1.0 + 0.2 * len(description)
    width, height = 7.4, header + pitch * len(layers) + 0.3
    figure, axes = _canvas(width, height)
    axes.text(
        0.3,
        height - 0.3,
        f"{config.name}: {model.count_params():,} parameters",
        ha="left",
        va="center",
        fontsize=FONT_SIZE + 2,
        weight="bold",
    )
    if description:
        axes.text(0.3, height - 0.55, "\n".join(description), ha="left", va="top", fontsize=SMALL_FONT_SIZE)
    x = 0.3 + box_size[0] / 2
    for index, layer in enumerate(layers):
        y = height - header - pitch * index
        box = _box(axes, (x, y), box_size, describe_layer(layer), _layer_color(layer))
        if index:
            axes.text(box.right[0] + 0.2, y, _parameter_label(layer), ha="left", va="center", fontsize=FONT_SIZE)
        end = (x, y - pitch + box_size[1] / 2)
        _arrow(axes, box.bottom, end)
        axes.text(
            x + 0.12,
            (box.bottom[1] + end[1]) / 2,
            describe_shape(layer.output.shape),
            ha="left",
            va="center",
            fontsize=SMALL_FONT_SIZE,
            color="#444444",
        )
    _box(axes, (x, height - header - pitch * len(layers)), box_size, "Output", COLORS["data"])
    return _finish(figure, path)


def draw_encoder_forecaster(
    config_or_model: ModelConfig | keras.Model | str, path: str | os.PathLike | None = None
) -> Figure:
    """Draws Shi et al.'s (2015) encoder-forecaster as :func:`~keras_convlstm.models.build_model` builds it.

    The encoder's stacked ConvLSTMs read the ``input_frames`` frames; the last hidden and cell states of each
    encoder layer start the forecaster layer of the same depth, which reads no frames (zeros) for
    ``output_frames`` steps; the hidden states of all forecaster layers are concatenated and a 1x1 convolution
    (sigmoid) gives the predicted frames. Patch layers (space-to-depth and back) appear when ``patch_size > 1``.
    Layer sizes and shapes come from the config alone: no model is built.

    Args:
        config_or_model: a :class:`~keras_convlstm.models.ModelConfig` of kind ``"encoder_forecaster"``, its
            preset name (``"shi2015-encoder-forecaster"``) or a model built from one.
        path: if given, the figure is also saved there as PNG.

    Returns:
        The figure.
    """
    config = _model_config(config_or_model)
    if config.kind != "encoder_forecaster":
        raise ValueError(
            f"draw_encoder_forecaster expects an encoder_forecaster model, got the {config.kind} model "
            f"{config.name!r}; draw it with draw_network"
        )
    height_px, width_px, channels = config.frame_shape
    patch, depth = config.patch_size, len(config.filters)
    grid = (height_px // patch, width_px // patch)
    frames_in, frames_out = config.input_frames, config.output_frames

    def shape(frames: int, channel_count: int, size: tuple[int, int] = grid) -> str:
        return describe_shape((None, frames, *size, channel_count))

    pitch, box_height, box_width = 1.0, 0.62, 2.9
    columns = {"encoder": 1.75, "forecaster": 6.35, "output": 10.5}
    first = 2 if patch > 1 else 1  # the row of the first ConvLSTM layers
    # The 1x1 convolution reads the concatenation above the forecaster's rows, or its one layer beside it.
    convolution_row = first + depth if depth > 1 else first
    output_row = convolution_row + (2 if patch > 1 else 1)
    width, height = 12.5, (output_row + 1) * pitch + 0.9
    figure, axes = _canvas(width, height)

    def row(index: float) -> float:
        return 0.15 + pitch * (index + 0.5)

    def box(column: str, index: float, text: str, color: str) -> _Box:
        return _box(axes, (columns[column], row(index)), (box_width, box_height), text, color)

    def down_to_up(lower: _Box, upper: _Box, label: str) -> None:
        _arrow(axes, lower.top, upper.bottom)
        axes.text(
            lower.x + 0.12,
            (lower.top[1] + upper.bottom[1]) / 2,
            label,
            ha="left",
            va="center",
            fontsize=SMALL_FONT_SIZE,
            color="#444444",
        )

    axes.text(
        0.3,
        height - 0.35,
        f"{config.name}: {frames_in} frames in, {frames_out} frames out",
        ha="left",
        va="center",
        fontsize=FONT_SIZE + 2,
        weight="bold",
    )
    merging = "the hidden states of all its layers, concatenated, go" if depth > 1 else "its hidden states go"
    summary = (
        f"The encoder reads frames 1\u2013{frames_in}. Each forecaster layer starts from the last hidden and cell "
        f"states (H, C) of the encoder layer at its depth, reads no frames and runs {frames_out} steps; {merging} "
        f"through a 1\u00d71 convolution that gives frames {frames_in + 1}\u2013{frames_in + frames_out}."
        + (f" The ConvLSTMs work on {patch}\u00d7{patch} patches of the frames." if patch > 1 else "")
        + " Shapes: (batch, time, height, width, channels)."
    )
    axes.text(
        0.3,
        height - 0.65,
        "\n".join(textwrap.wrap(summary, 92)),
        ha="left",
        va="top",
        fontsize=SMALL_FONT_SIZE,
        linespacing=1.4,
    )
    below = box("encoder", 0, f"Input: frames 1\u2013{frames_in}", COLORS["data"])
    below_shape = shape(frames_in, channels, (height_px, width_px))
    if patch > 1:
        reshaped = box("encoder", 1, f"SpaceToDepth: {patch}\u00d7{patch} patches", COLORS["reshape"])
        down_to_up(below, reshaped, below_shape)
        below, below_shape = reshaped, shape(frames_in, channels * patch * patch)
    zeros = box("forecaster", first - 1, f"no frames: zeros,\n{frames_out} steps", COLORS["data"])
    zeros_shape = shape(frames_out, 1)
    sizes = list(zip(config.filters, config.kernel_sizes, strict=True))
    forecasters = []
    for index, (filters, kernel_size) in enumerate(sizes):
        settings = f"{filters} filters, {kernel_size}\u00d7{kernel_size}, {config.activation}"
        encoder = box("encoder", first + index, f"encoder ConvLSTM2D {index + 1}\n{settings}", COLORS["recurrent"])
        forecaster = box(
            "forecaster", first + index, f"forecaster ConvLSTM2D {index + 1}\n{settings}", COLORS["recurrent"]
        )
        down_to_up(below, encoder, below_shape)
        down_to_up(zeros, forecaster, zeros_shape)
        _arrow(axes, encoder.right, forecaster.left, dashed=True)
        axes.text(
            (encoder.right[0] + forecaster.left[0]) / 2,
            encoder.y + 0.08,
            f"copy $H$, $C$\nafter frame {frames_in}",
            ha="center",
            va="bottom",
            fontsize=SMALL_FONT_SIZE,
        )
        below, below_shape = encoder, shape(frames_in, filters)
        zeros, zeros_shape = forecaster, shape(frames_out, filters)
        forecasters.append(forecaster)

    output_channels = channels * patch * patch
    convolution = box(
        "output",
        convolution_row,
        f"Conv3D: {_count(output_channels, 'filter')},\n1\u00d71\u00d71, sigmoid",
        COLORS["convolution"],
    )
    if depth > 1:
        top, bottom = forecasters[-1].top[1], forecasters[0].bottom[1]
        merged = _box(
            axes,
            (columns["output"], (top + bottom) / 2),
            (box_width, top - bottom),
            "Concatenate\nall forecaster\nhidden states",
            COLORS["reshape"],
        )
        for forecaster in forecasters:
            _arrow(axes, forecaster.right, (merged.left[0], forecaster.y))
        down_to_up(merged, convolution, shape(frames_out, sum(config.filters)))
    else:
        _arrow(axes, forecasters[0].right, convolution.left)
    below, below_shape = convolution, shape(frames_out, output_channels)
    if patch > 1:
        restored = box("output", convolution_row + 1, f"DepthToSpace: {patch}\u00d7{patch} patches", COLORS["reshape"])
        down_to_up(below, restored, below_shape)
        below, below_shape = restored, shape(frames_out, channels, (height_px, width_px))
    predicted = box(
        "output", output_row, f"Predicted frames\n{frames_in + 1}\u2013{frames_in + frames_out}", COLORS["data"]
    )
    down_to_up(below, predicted, below_shape)
    return _finish(figure, path)
