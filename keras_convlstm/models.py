"""Model presets as plain frozen dataclasses, and ``build_model`` that turns one into a compiled Keras model.

A preset names an architecture and its training settings; ``build_model(preset, **overrides)`` copies it with
``dataclasses.replace`` and builds a :class:`ConvLSTMModel`. The model keeps its :class:`ModelConfig` as
``model.config`` and rebuilds itself from it when a ``.keras`` file is loaded.

Frame-prediction models of kind ``"seq2seq"`` and ``"many_to_one"`` are one linear chain of layers (ConvLSTM2D,
temporal convolutions and frame-wise layers), which lets ``keras_convlstm.rollout`` advance them one frame at a time.
``"encoder_forecaster"`` models read ``input_frames`` frames and emit ``output_frames`` frames at once.

Example:
    >>> model = build_model("keras-example-causal")
    >>> model.count_params()
    746689
    >>> small = build_model("shi2015", filters=(8, 8), kernel_sizes=(3, 3), precision="bfloat16")
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_convlstm.checks import is_positive_int
from keras_convlstm.layers import CausalConv3D, Conv3D, ConvLSTM2D, DepthToSpace, SpaceToDepth
from keras_convlstm.losses import get_loss
from keras_convlstm.precision import AUTO, resolve_precision

KINDS = ("seq2seq", "many_to_one", "encoder_forecaster", "classifier")
OUTPUTS = ("conv3d", "causal_conv3d", "conv1x1")
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "adadelta": keras.optimizers.Adadelta,
}
# Dtype policy of the inner layers; the output layers always compute in float32.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
_CLASSIFIER_POOL_SIZE = 5
_CLASSIFIER_POOL_STRIDES = 2


def _as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and training settings of one model: plain data to print, copy and override.

    Lists are stored as tuples, so a config read back from JSON compares equal to the original.
    Invalid values raise ``ValueError`` when the config is created (``dataclasses.replace`` included).

    Attributes:
        name: preset name.
        kind: ``"seq2seq"`` (one output frame per input frame, output ``t`` predicts frame ``t + 1``),
            ``"many_to_one"`` (the whole input predicts the next frame), ``"encoder_forecaster"`` (reads
            ``input_frames`` frames, emits the ``output_frames`` that follow) or ``"classifier"`` (class
            probabilities of a clip).
        description: one line saying what the preset reproduces.
        image_size: frame height and width in pixels; one integer for square frames.
        channels: channels per frame (1 for grey frames).
        input_frames: fixed number of input frames, or None for any number (required by the encoder-forecaster
            and used as the clip length of the classifier).
        output_frames: frames emitted by an encoder-forecaster (None for the other kinds).
        patch_size: frames are cut into ``patch_size x patch_size`` patches stacked on channels before the
            ConvLSTM layers (1: no patches).
        filters: filters of each ConvLSTM2D layer, in order.
        kernel_sizes: square kernel size of each ConvLSTM2D layer (input-to-state and state-to-state).
        activation: activation of the ConvLSTM2D cell input and output ("tanh" in the paper, "relu" in the
            official example).
        batch_norm: BatchNormalization after every ConvLSTM2D layer but the last.
        batch_norm_last: BatchNormalization after the last ConvLSTM2D layer too.
        output: last layer of a frame model: ``"conv3d"`` (``Conv3D`` with 'same' padding: output ``t`` also
            reads input ``t + 1``, the official example's leak), ``"causal_conv3d"`` (:class:`CausalConv3D`,
            reads only inputs up to ``t``) or ``"conv1x1"`` (a 1x1 convolution applied to each frame).
        output_kernel_size: ``(time, height, width)`` kernel of a ``"conv3d"`` or ``"causal_conv3d"`` output.
        num_classes: number of classes of a classifier (None for the other kinds).
        loss: Keras loss name, or ``"bce_ssim"`` (:class:`keras_convlstm.losses.BCEPlusSSIM`).
        optimizer: ``"adam"``, ``"rmsprop"`` or ``"adadelta"`` (Keras defaults apart from the learning rate).
        learning_rate: optimizer learning rate.
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` compute dtype of the inner layers (weights
            stay float32; outputs and loss are float32; float16 trains with loss scaling), or ``"auto"``: the one
            the machine computes fastest (:func:`keras_convlstm.precision.resolve_precision`), resolved when the
            model is built, so ``model.config.precision`` and a saved model name the precision it computes in.
    """

    name: str
    kind: str = "seq2seq"
    description: str = ""
    image_size: int | tuple[int, int] = 64
    channels: int = 1
    input_frames: int | None = None
    output_frames: int | None = None
    patch_size: int = 1
    filters: tuple[int, ...] = (64,)
    kernel_sizes: tuple[int, ...] = (3,)
    activation: str = "tanh"
    batch_norm: bool = False
    batch_norm_last: bool = False
    output: str = "causal_conv3d"
    output_kernel_size: tuple[int, int, int] = (3, 3, 3)
    num_classes: int | None = None
    loss: str = "binary_crossentropy"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    precision: str = "float32"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _as_tuple(getattr(self, field.name)))
        self._validate()

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of one frame."""
        if isinstance(self.image_size, int):
            return (self.image_size, self.image_size, self.channels)
        return (*self.image_size, self.channels)

    def _validate(self) -> None:
        def fail(field: str, expected: str) -> None:
            raise ValueError(f"{field} must be {expected}, got {getattr(self, field)!r} (preset {self.name!r})")

        if self.kind not in KINDS:
            fail("kind", f"one of {KINDS}")
        size = self.image_size
        if not (
            is_positive_int(size) or (isinstance(size, tuple) and len(size) == 2 and all(map(is_positive_int, size)))
        ):
            fail("image_size", "a positive integer or a (height, width) pair of positive integers")
        for field in ("channels", "patch_size"):
            if not is_positive_int(getattr(self, field)):
                fail(field, "a positive integer")
        for field in ("filters", "kernel_sizes"):
            values = getattr(self, field)
            if not (isinstance(values, tuple) and values and all(map(is_positive_int, values))):
                fail(field, "a non-empty tuple of positive integers")
        if len(self.kernel_sizes) != len(self.filters):
            raise ValueError(
                f"kernel_sizes must give one kernel size per ConvLSTM2D layer: filters={self.filters} has "
                f"{len(self.filters)} layers, got kernel_sizes={self.kernel_sizes}"
            )
        height, width, _ = self.frame_shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"image_size must be divisible by patch_size={self.patch_size}, got {height}x{width} frames "
                f"(preset {self.name!r})"
            )
        # With "same" padding a ConvLSTM kernel wider than this reaches only zeros beyond the frame: more work, and
        # a setting that cannot do what it says (a kernel of 101 on a 16x16 grid trains for hours).
        widest = 2 * max(height, width) // self.patch_size - 1
        if max(self.kernel_sizes) > widest:
            raise ValueError(
                f"kernel_sizes must be at most {widest} (twice the side of the {height // self.patch_size}x"
                f"{width // self.patch_size} grid the ConvLSTM2D layers see, minus 1), got {self.kernel_sizes} "
                f"(preset {self.name!r})"
            )
        if self.output not in OUTPUTS:
            fail("output", f"one of {OUTPUTS}")
        kernel = self.output_kernel_size
        if not (isinstance(kernel, tuple) and len(kernel) == 3 and all(map(is_positive_int, kernel))):
            fail("output_kernel_size", "3 positive integers (time, height, width)")
        if self.kind == "many_to_one" and self.output != "conv1x1":
            fail("output", "'conv1x1' for a many_to_one model (its output is one frame)")
        if self.input_frames is not None and not is_positive_int(self.input_frames):
            fail("input_frames", "None or a positive integer")
        if self.kind == "encoder_forecaster":
            for field in ("input_frames", "output_frames"):
                if not is_positive_int(getattr(self, field)):
                    fail(field, "a positive integer for an encoder_forecaster")
        elif self.output_frames is not None:
            fail("output_frames", f"None for a {self.kind} model (only encoder_forecaster emits a fixed count)")
        if self.kind == "classifier":
            if not (is_positive_int(self.num_classes) and self.num_classes >= 2):
                fail("num_classes", "an integer >= 2 for a classifier")
        elif self.num_classes is not None:
            fail("num_classes", f"None for a {self.kind} model")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"one of {tuple(OPTIMIZERS)}")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            fail("learning_rate", "a positive number")
        if self.precision not in (AUTO, *PRECISION_POLICIES):
            fail("precision", f"one of {(AUTO, *PRECISION_POLICIES)}")


_OFFICIAL = ModelConfig(
    name="keras-example",
    description="The keras.io ConvLSTM example network, final Conv3D 'same' included (it leaks frame t+1).",
    filters=(64, 64, 64),
    kernel_sizes=(5, 3, 1),
    activation="relu",
    batch_norm=True,
    output="conv3d",
)
_SHI2015 = ModelConfig(
    name="shi2015",
    description="Shi et al. 2015 ConvLSTM 128-64-64 (5x5) on 4x4 patches, 1x1 output convolution.",
    patch_size=4,
    filters=(128, 64, 64),
    kernel_sizes=(5, 5, 5),
    output="conv1x1",
    output_kernel_size=(1, 1, 1),
    optimizer="rmsprop",
)
_NOISY_SQUARES = ModelConfig(
    name="noisy-squares",
    description="The Keras 2 example on 40x40 noisy squares: 4 x (ConvLSTM2D 40 + BatchNorm), Conv3D 'same'.",
    image_size=40,
    filters=(40, 40, 40, 40),
    kernel_sizes=(3, 3, 3, 3),
    batch_norm=True,
    batch_norm_last=True,
    output="conv3d",
    optimizer="adadelta",
    # Keras 2's Adadelta defaulted to learning_rate=1.0; Keras 3 defaults to 0.001, far too small here.
    learning_rate=1.0,
)

# Its training speed against the official network's: BENCHMARKS.md, section (a). "auto" keeps float32 on CPUs
# that would emulate bfloat16 (BENCHMARKS.md, section (g)).
_CPU_FAST = ModelConfig(
    name="cpu-fast",
    description="Causal 4x4-patch model, 2 x ConvLSTM2D 32 (5x5), auto precision: trains on 2 CPU cores.",
    patch_size=4,
    filters=(32, 32),
    kernel_sizes=(5, 5),
    output="causal_conv3d",
    precision=AUTO,
)

PRESETS: dict[str, ModelConfig] = {
    config.name: config
    for config in (
        _OFFICIAL,
        dataclasses.replace(
            _OFFICIAL,
            name="keras-example-causal",
            description="The keras.io example network with a causal final Conv3D: same weights, no leak.",
            output="causal_conv3d",
        ),
        _SHI2015,
        dataclasses.replace(
            _SHI2015,
            name="shi2015-encoder-forecaster",
            kind="encoder_forecaster",
            description="Shi et al. 2015 encoder-forecaster: reads 10 frames, emits the next 10 at once.",
            input_frames=10,
            output_frames=10,
        ),
        _CPU_FAST,
        dataclasses.replace(
            _CPU_FAST,
            name="cpu-quality",
            description="cpu-fast with 2 x 64 filters (1.36M parameters): the shipped pretrained model.",
            filters=(64, 64),
        ),
        ModelConfig(
            name="moving-square",
            kind="many_to_one",
            description="The PyTorch moving-square demo: one ConvLSTM2D (16, 3x3), last state -> 1x1 conv.",
            filters=(16,),
            kernel_sizes=(3,),
            output="conv1x1",
            output_kernel_size=(1, 1, 1),
            loss="mse",
        ),
        _NOISY_SQUARES,
        dataclasses.replace(
            _NOISY_SQUARES,
            name="noisy-squares-causal",
            description="The Keras 2 noisy-squares network with a causal final Conv3D.",
            output="causal_conv3d",
        ),
        ModelConfig(
            name="classifier",
            kind="classifier",
            description="KTH-style action classifier: 2 ConvLSTM2D (32, 3x3), max-pool 5/2, softmax.",
            image_size=(60, 80),
            input_frames=15,
            filters=(32, 32),
            kernel_sizes=(3, 3),
            num_classes=6,
            loss="sparse_categorical_crossentropy",
        ),
    )
}


def list_presets() -> list[str]:
    """Names of the model presets, in definition order."""
    return list(PRESETS)


def get_preset(name: str) -> ModelConfig:
    """Returns the :class:`ModelConfig` of preset ``name``; raises ``ValueError`` naming the valid presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {list_presets()}")
    return PRESETS[name]


def check_input(model: keras.Model | ModelConfig, frames, *, check_time: bool = True) -> None:
    """Raises ``ValueError`` unless ``frames`` has the input shape the model expects.

    Args:
        model: a model from :func:`build_model`, its :class:`ModelConfig`, or any Keras model with one 5-D input.
        frames: array, tensor or nested list ``(batch, time, height, width, channels)``; unknown (None) sizes
            pass.
        check_time: also check the number of frames (False for a rollout, which steps one frame at a time).

    Raises:
        TypeError: ``model`` is neither a Keras model nor a :class:`ModelConfig` (a path, say).
    """
    if not isinstance(model, keras.Model | ModelConfig):
        raise TypeError(
            f"expected a keras.Model (keras.saving.load_model reads a .keras file) or a ModelConfig, got "
            f"{type(model).__name__} {model!r:.80}"
        )
    config = model if isinstance(model, ModelConfig) else getattr(model, "config", None)
    if isinstance(config, ModelConfig):
        name, expected = config.name, (None, config.input_frames, *config.frame_shape)
    else:
        name, expected = model.name, tuple(model.input_shape)
    if not check_time:
        expected = (None, None, *expected[2:])
    shape = tuple(frames.shape) if hasattr(frames, "shape") else np.shape(frames)
    matches = len(shape) == len(expected) == 5 and all(
        want is None or got is None or got == want for got, want in zip(shape, expected, strict=True)
    )
    if not matches:
        sizes = ["time" if axis == 1 and size is None else str(size) for axis, size in enumerate(expected) if axis]
        raise ValueError(f"model {name!r} expected frames of shape (batch, {', '.join(sizes)}), got shape {shape}")


def _output_layer(config: ModelConfig, filters: int) -> keras.layers.Layer:
    """The float32 convolution that maps ConvLSTM features to ``filters`` output channels in [0, 1]."""
    common = {"activation": "sigmoid", "dtype": "float32", "name": "output_conv"}
    if config.kind == "many_to_one":
        return keras.layers.Conv2D(filters, 1, **common)
    if config.output == "conv1x1":
        return Conv3D(filters, (1, 1, 1), **common)
    if config.output == "causal_conv3d":
        return CausalConv3D(filters, config.output_kernel_size, **common)
    return Conv3D(filters, config.output_kernel_size, padding="same", **common)


def _chain_layers(config: ModelConfig) -> list[keras.layers.Layer]:
    """Layers of a seq2seq, many-to-one or classifier model, each reading the previous one's output."""
    policy = PRECISION_POLICIES[config.precision]
    patch = config.patch_size
    layers = [SpaceToDepth(patch, dtype=policy, name="space_to_depth")] if patch > 1 else []
    last = len(config.filters) - 1
    for index, (filters, kernel_size) in enumerate(zip(config.filters, config.kernel_sizes, strict=True)):
        layers.append(
            ConvLSTM2D(
                filters,
                kernel_size,
                padding="same",
                activation=config.activation,
                return_sequences=index < last or config.kind == "seq2seq",
                dtype=policy,
                name=f"conv_lstm_{index + 1}",
            )
        )
        if config.batch_norm and (index < last or config.batch_norm_last):
            layers.append(keras.layers.BatchNormalization(dtype=policy, name=f"batch_norm_{index + 1}"))
    if config.kind == "classifier":
        return [
            *layers,
            keras.layers.MaxPooling2D(_CLASSIFIER_POOL_SIZE, strides=_CLASSIFIER_POOL_STRIDES, dtype=policy),
            keras.layers.Flatten(dtype=policy),
            keras.layers.Dense(config.num_classes, activation="softmax", dtype="float32", name="classes"),
        ]
    layers.append(_output_layer(config, config.channels * patch * patch))
    if patch > 1:
        layers.append(DepthToSpace(patch, dtype="float32", name="depth_to_space"))
    return layers


def _encoder_forecaster(config: ModelConfig, inputs: keras.KerasTensor) -> keras.KerasTensor:
    """Encoder ConvLSTMs read the input; forecaster ConvLSTMs start from their states and read no frames."""
    policy = PRECISION_POLICIES[config.precision]
    patch = config.patch_size
    encoded = SpaceToDepth(patch, dtype=policy, name="space_to_depth")(inputs) if patch > 1 else inputs
    states = []
    for index, (filters, kernel_size) in enumerate(zip(config.filters, config.kernel_sizes, strict=True)):
        encoder = ConvLSTM2D(
            filters,
            kernel_size,
            padding="same",
            activation=config.activation,
            return_sequences=True,
            return_state=True,
            dtype=policy,
            name=f"encoder_{index + 1}",
        )
        encoded, hidden, cell = encoder(encoded)
        states.append([hidden, cell])
    # The forecaster's input carries no information: one zero channel per future frame, shaped from the
    # (symbolic) batch of encoded frames.
    blank = keras.ops.zeros_like(encoded[:, :1, :, :, :1])
    forecast = keras.ops.repeat(blank, config.output_frames, axis=1)
    hidden_sequences = []
    for index, (filters, kernel_size) in enumerate(zip(config.filters, config.kernel_sizes, strict=True)):
        forecaster = ConvLSTM2D(
            filters,
            kernel_size,
            padding="same",
            activation=config.activation,
            return_sequences=True,
            dtype=policy,
            name=f"forecaster_{index + 1}",
        )
        forecast = forecaster(forecast, initial_state=states[index])
        hidden_sequences.append(forecast)
    if len(hidden_sequences) > 1:
        forecast = keras.layers.Concatenate(axis=-1, dtype=policy, name="concat_hidden_states")(hidden_sequences)
    outputs = _output_layer(config, config.channels * patch * patch)(forecast)
    if patch > 1:
        outputs = DepthToSpace(patch, dtype="float32", name="depth_to_space")(outputs)
    return outputs


@keras.saving.register_keras_serializable(package="keras_convlstm")
class ConvLSTMModel(keras.Model):
    """A functional Keras model built from a :class:`ModelConfig`, kept as ``model.config``.

    Saved ``.keras`` files store the config and rebuild the same graph on loading. Its recurrent layers are
    :class:`keras_convlstm.layers.ConvLSTM2D`: Keras's layer, with a faster training step on JAX and PyTorch.

    Args:
        config: the :class:`ModelConfig`, or its fields as a dict (as read back from a saved file).
        **kwargs: ``keras.Model`` arguments (``name``, ``trainable``).

    Input shape:
        ``(batch, time, height, width, channels)`` float32 frames in [0, 1]; ``time`` is ``config.input_frames``
        (any number when None).

    Output shape:
        seq2seq: ``(batch, time, height, width, channels)``, output ``t`` predicting frame ``t + 1``;
        many_to_one: ``(batch, height, width, channels)``; encoder_forecaster:
        ``(batch, output_frames, height, width, channels)``; classifier: ``(batch, num_classes)``.
        Always float32, frames in [0, 1] (sigmoid), class probabilities (softmax).
    """

    def __init__(self, config: ModelConfig | dict, **kwargs):
        if isinstance(config, dict):
            config = ModelConfig(**config)
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig or a dict of its fields, got {type(config).__name__}")
        config = dataclasses.replace(config, precision=resolve_precision(config.precision))
        inputs = keras.Input((config.input_frames, *config.frame_shape), name="frames")
        if config.kind == "encoder_forecaster":
            outputs = _encoder_forecaster(config, inputs)
        else:
            outputs = inputs
            for layer in _chain_layers(config):
                outputs = layer(outputs)
        kwargs.setdefault("name", config.name.replace("-", "_"))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config

    def call(self, inputs, training=None, mask=None):
        check_input(self.config, inputs)
        return super().call(inputs, training=training, mask=mask)

    def get_config(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict) -> ConvLSTMModel:
        return cls(**config)


def make_optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    """The optimizer named by ``config``; wrapped in a ``LossScaleOptimizer`` for float16."""
    optimizer = OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate)
    if config.precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_model(preset: str | ModelConfig = "keras-example-causal", **overrides) -> ConvLSTMModel:
    """Builds and compiles a model from a preset name or a :class:`ModelConfig`, with optional field overrides.

    On TensorFlow, XLA compilation is off on CPU (it made ConvLSTM training about 60x slower there) and "auto"
    when a GPU is visible; other backends get Keras's "auto". The global Keras dtype policy is left untouched. A
    ``precision="auto"`` config is resolved for this machine (bfloat16 only where the hardware computes it
    natively); ``model.config`` holds the answer.

    Args:
        preset: a name from :func:`list_presets`, or a :class:`ModelConfig`.
        **overrides: :class:`ModelConfig` fields to change, e.g. ``filters=(8, 8), kernel_sizes=(3, 3)``.

    Returns:
        A compiled :class:`ConvLSTMModel` with ``model.config`` set.

    Raises:
        ValueError: unknown preset or field, or an invalid field value.
        TypeError: ``preset`` is neither a string nor a ModelConfig.
    """
    if isinstance(preset, str):
        config = get_preset(preset)
    elif isinstance(preset, ModelConfig):
        config = preset
    else:
        raise TypeError(f"preset must be a preset name or a ModelConfig, got {type(preset).__name__}")
    valid = [field.name for field in dataclasses.fields(ModelConfig)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown ModelConfig field(s) {unknown}; valid fields are {valid}")
    config = dataclasses.replace(config, **overrides)
    model = ConvLSTMModel(config)
    model.compile(
        optimizer=make_optimizer(model.config),
        loss=get_loss(config.loss),
        metrics=["accuracy"] if config.kind == "classifier" else None,
        jit_compile=_jit_compile(),
    )
    return model


def _jit_compile() -> bool | str:
    """XLA off for TensorFlow on a CPU (it made ConvLSTM training about 60x slower there), Keras's "auto" otherwise.

    "auto" compiles with XLA on a TensorFlow GPU and always on JAX (whose uncompiled steps run op by op).
    """
    if keras.backend.backend() != "tensorflow":
        return "auto"
    import tensorflow as tf

    return "auto" if tf.config.list_physical_devices("GPU") else False
