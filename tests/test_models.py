"""Tests of the model presets, build_model and the saved-model round trip."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import (
    frame_presets,
    random_inputs,
    run_fresh_process_reload_test,
    run_model_saving_test,
    save_model_files,
    small_seq2seq,
    tiny_model,
    tiny_settings,
)

from keras_convlstm.layers import CausalConv3D, Conv3D, ConvLSTM2D, DepthToSpace, SpaceToDepth
from keras_convlstm.models import (
    PRESETS,
    ModelConfig,
    build_model,
    check_input,
    get_preset,
    list_presets,
)

CAUSAL_SEQ2SEQ = [name for name, config in PRESETS.items() if config.kind == "seq2seq" and config.output != "conv3d"]


@pytest.fixture(autouse=True)
def _seeded_weights():
    keras.utils.set_random_seed(0)


def expected_output_shape(config: ModelConfig, time: int) -> tuple:
    if config.kind == "classifier":
        return (2, config.num_classes)
    if config.kind == "many_to_one":
        return (2, *config.frame_shape)
    frames = config.output_frames if config.kind == "encoder_forecaster" else time
    return (2, frames, *config.frame_shape)


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_builds_saves_and_reloads_with_equal_outputs(name, tmp_path):
    preset = get_preset(name)
    assert preset.name == name
    model = tiny_model(name)
    # The preset's own settings but for the tiny sizes; "auto" precision resolved for this machine.
    assert dataclasses.replace(model.config, precision=preset.precision) == dataclasses.replace(
        preset, **tiny_settings(name)
    )
    reloaded = run_model_saving_test(model, random_inputs(model, time=2), tmp_path)
    assert reloaded.config == model.config


def test_an_unknown_preset_is_refused_naming_the_known_ones():
    names = list_presets()
    assert len(set(names)) == len(names)
    quoted = ".*".join(repr(name) for name in names)
    with pytest.raises(ValueError, match=rf"unknown model preset 'nope'; expected one of \[{quoted}\]"):
        get_preset("nope")


@pytest.mark.parametrize("name", ["keras-example", "keras-example-causal"])
def test_official_network_is_exact(name):
    model = build_model(name)
    assert model.count_params() == 746_689
    assert sum(int(np.prod(weight.shape)) for weight in model.trainable_weights) == 746_433
    assert model.input_shape == (None, None, 64, 64, 1)
    assert model.output_shape == (None, None, 64, 64, 1)
    layers = model.layers[1:]
    assert [type(layer).__name__ for layer in layers] == [
        "ConvLSTM2D",
        "BatchNormalization",
        "ConvLSTM2D",
        "BatchNormalization",
        "ConvLSTM2D",
        "CausalConv3D" if name.endswith("causal") else "Conv3D",
    ]
    convlstms = [layer for layer in layers if isinstance(layer, keras.layers.ConvLSTM2D)]
    assert [(layer.filters, layer.kernel_size) for layer in convlstms] == [(64, (5, 5)), (64, (3, 3)), (64, (1, 1))]
    assert all(layer.padding == "same" and layer.return_sequences for layer in convlstms)
    assert all(layer.cell.activation is keras.activations.relu for layer in convlstms)
    output = layers[-1]
    assert (output.filters, output.kernel_size) == (1, (3, 3, 3))
    assert output.activation is keras.activations.sigmoid
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.loss == "binary_crossentropy"
    assert model.jit_compile is bool(tf.config.list_physical_devices("GPU"))


def test_xla_only_when_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert tiny_model("moving-square").jit_compile is False
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind in (None, "GPU") else [])
    assert tiny_model("moving-square").jit_compile is True


def test_other_presets_follow_their_references():
    shi = build_model("shi2015", image_size=16)
    assert [type(layer) for layer in shi.layers[1:]] == [
        SpaceToDepth,
        *[ConvLSTM2D] * 3,
        Conv3D,
        DepthToSpace,
    ]
    assert [layer.filters for layer in shi.layers[2:5]] == [128, 64, 64]
    assert shi.layers[5].kernel_size == (1, 1, 1) and shi.layers[5].filters == 16
    assert isinstance(shi.optimizer, keras.optimizers.RMSprop) and shi.optimizer.rho == pytest.approx(0.9)

    noisy = get_preset("noisy-squares")
    assert (noisy.image_size, noisy.filters, noisy.batch_norm_last) == (40, (40, 40, 40, 40), True)
    model = build_model("noisy-squares")
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 4
    assert isinstance(model.optimizer, keras.optimizers.Adadelta)
    assert float(model.optimizer.learning_rate) == 1.0

    square = build_model("moving-square")
    assert [type(layer) for layer in square.layers[1:]] == [ConvLSTM2D, keras.layers.Conv2D]
    assert square.layers[1].filters == 16 and not square.layers[1].return_sequences
    assert square.output_shape == (None, 64, 64, 1) and square.loss == "mse"

    classifier = build_model("classifier")
    assert classifier.input_shape == (None, 15, 60, 80, 1) and classifier.output_shape == (None, 6)
    assert [type(layer).__name__ for layer in classifier.layers[1:]] == [
        "ConvLSTM2D",
        "ConvLSTM2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
    ]
    assert classifier.loss == "sparse_categorical_crossentropy"


def test_encoder_forecaster_preset():
    model = build_model("shi2015-encoder-forecaster")
    assert model.config.kind == "encoder_forecaster"
    assert model.input_shape == (None, 10, 64, 64, 1) and model.output_shape == (None, 10, 64, 64, 1)
    encoders = [layer for layer in model.layers if layer.name.startswith("encoder_")]
    forecasters = [layer for layer in model.layers if layer.name.startswith("forecaster_")]
    assert [layer.filters for layer in encoders] == [layer.filters for layer in forecasters] == [128, 64, 64]
    assert model.get_layer("output_conv").input.shape[-1] == 128 + 64 + 64


def test_encoder_forecaster_states_carry_the_input():
    model = tiny_model("shi2015-encoder-forecaster")
    frames = random_inputs(model)
    first = np.asarray(model(frames))
    second = np.asarray(model(frames[::-1]))
    assert first.shape == (2, 2, 16, 16, 1)
    assert np.abs(first[0] - second[1]).max() < 1e-6  # per-sequence: batch order does not matter
    assert np.abs(first[0] - first[1]).max() > 1e-4  # different inputs give different forecasts


@pytest.mark.parametrize(
    "precision",
    [
        pytest.param("float32", marks=pytest.mark.backends),
        *(pytest.param(name, marks=pytest.mark.half_precision) for name in ("bfloat16", "float16")),
    ],
)
@pytest.mark.parametrize("name", list(PRESETS))
def test_output_shape_and_dtype(name, precision):
    model = tiny_model(name, precision=precision)
    frames = random_inputs(model, time=5)
    outputs = model(frames)
    assert tuple(outputs.shape) == expected_output_shape(model.config, 5)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    values = keras.ops.convert_to_numpy(outputs)
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    if model.config.kind == "classifier":
        np.testing.assert_allclose(values.sum(axis=-1), 1.0, rtol=1e-5)


def test_precision_sets_layer_policies_only():
    model = tiny_model("cpu-fast", precision="bfloat16")
    assert keras.config.dtype_policy().name == "float32"
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers[1:]}
    assert policies["conv_lstm_1"] == policies["conv_lstm_2"] == "mixed_bfloat16"
    assert policies["output_conv"] == policies["depth_to_space"] == "float32"
    assert all(weight.dtype == "float32" for weight in model.weights)
    half = tiny_model("moving-square", precision="float16")
    assert isinstance(half.optimizer, keras.optimizers.LossScaleOptimizer)
    assert half.layers[1].dtype_policy.name == "mixed_float16"
    assert not isinstance(build_model("moving-square").optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("name", frame_presets())
def test_frame_models_are_one_chain_of_steppable_layers(name):
    """The rollout walks these models layer by layer: one chain; frame-wise layers act per frame."""
    model = tiny_model(name)
    layers = model.layers[1:]
    assert isinstance(model.layers[0], keras.layers.InputLayer)
    previous = model.layers[0].output
    for layer in layers:
        assert layer.input is previous, f"{layer.name} does not read the previous layer's output"
        previous = layer.output
    assert model.outputs[0] is previous
    temporal = (keras.layers.ConvLSTM2D, CausalConv3D)
    frames = random_inputs(model, time=4)
    x = frames
    for layer in layers:
        if isinstance(layer, keras.layers.Conv3D) and layer.kernel_size[0] > 1:
            assert isinstance(layer, CausalConv3D) or layer.padding == "same"
        elif not isinstance(layer, temporal):
            whole = np.asarray(layer(x, training=False))
            one_frame = np.asarray(layer(x[:, 2:3], training=False))
            np.testing.assert_allclose(one_frame, whole[:, 2:3], atol=1e-6, err_msg=layer.name)
        x = layer(x, training=False)
    np.testing.assert_allclose(np.asarray(x), np.asarray(model(frames)), atol=1e-6)
    if model.config.kind == "many_to_one":
        assert isinstance(layers[-2], keras.layers.ConvLSTM2D) and not layers[-2].return_sequences


@pytest.mark.parametrize("name", CAUSAL_SEQ2SEQ)
def test_causal_presets_never_read_future_frames(name):
    model = tiny_model(name)
    frames = random_inputs(model, time=6)
    outputs = np.asarray(model(frames, training=False))
    for t in (0, 3):
        changed = frames.copy()
        changed[:, t + 1 :] = np.random.default_rng(t).random(changed[:, t + 1 :].shape)
        perturbed = np.asarray(model(changed, training=False))
        np.testing.assert_allclose(perturbed[:, : t + 1], outputs[:, : t + 1], atol=1e-6)
        assert np.abs(perturbed[:, t + 1 :] - outputs[:, t + 1 :]).max() > 1e-5


def test_official_network_leaks_the_next_frame():
    """Output t of the official network depends on input t + 1, the frame it is trained to predict."""
    model = tiny_model("keras-example")
    frames = random_inputs(model, time=6)
    changed = frames.copy()
    changed[:, 3] = 1.0 - changed[:, 3]
    before = np.asarray(model(frames, training=False))
    after = np.asarray(model(changed, training=False))
    np.testing.assert_allclose(after[:, :2], before[:, :2], atol=1e-6)
    assert np.abs(after[:, 2] - before[:, 2]).max() > 1e-5


def test_config_is_plain_frozen_data():
    config = get_preset("shi2015")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.patch_size = 2
    copy = dataclasses.replace(config, filters=[8, 8], kernel_sizes=[3, 3])
    assert copy.filters == (8, 8) and copy.kernel_sizes == (3, 3) and config.filters == (128, 64, 64)
    assert ModelConfig(**dataclasses.asdict(copy)) == copy
    assert ModelConfig(name="x", image_size=[60, 80]).frame_shape == (60, 80, 1)
    built = build_model(copy, image_size=8)
    assert built.config == dataclasses.replace(copy, image_size=8)


@pytest.mark.backends
def test_one_training_step_lowers_the_loss():
    """One step on a fixed batch lowers its loss.

    Eager on TensorFlow, where tracing costs more than the step; compiled on JAX, whose op-by-op step is slower.
    """
    for name in ("shi2015", "moving-square"):
        model = tiny_model(name, learning_rate=0.01)
        model.run_eagerly = keras.backend.backend() == "tensorflow"
        frames = random_inputs(model, time=4)
        shape = expected_output_shape(model.config, time=4)
        targets = (np.random.default_rng(1).random(shape) > 0.8).astype(np.float32)
        # train_on_batch reports the loss of the weights it starts from; without dropout or BatchNormalization
        # in these models, training and inference compute the same loss, so one traced function is enough.
        before = model.train_on_batch(frames, targets)
        assert model.train_on_batch(frames, targets) < before


ONLY_JAX_UNROLLS = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="only JAX training steps unroll the ConvLSTM2D loops"
)


def _loops_in_trace(model: keras.Model, frames: np.ndarray, training: bool) -> int:
    """How many ``lax.scan`` loops JAX traces in one call of ``model`` (the ConvLSTM2D loops, when not unrolled)."""
    import jax

    def call(trainable, non_trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs, training=training)[0]

    groups = (model.trainable_variables, model.non_trainable_variables)
    values = [[variable.value for variable in group] for group in groups]
    return str(jax.make_jaxpr(call)(*values, frames)).count("scan[")


@pytest.mark.backends
@ONLY_JAX_UNROLLS
@pytest.mark.parametrize("name", ["cpu-fast", "shi2015-encoder-forecaster"])
def test_jax_training_unrolls_the_recurrent_loops_of_known_short_sequences(monkeypatch, name):
    """Each ConvLSTM2D layer unrolls when the frames it reads are few enough: the chain's layers and the encoder's
    read the 3 input frames, the forecaster's the 2 it emits."""
    from keras_convlstm import layers

    model = tiny_model(name)
    frames = random_inputs(model, time=3)
    reading_input_frames = len(model.config.filters)
    loops = reading_input_frames * (2 if model.config.kind == "encoder_forecaster" else 1)
    monkeypatch.setattr(layers, "MAX_UNROLLED_FRAMES", 3)
    assert _loops_in_trace(model, frames, training=True) == 0
    assert _loops_in_trace(model, frames, training=False) == loops
    monkeypatch.setattr(layers, "MAX_UNROLLED_FRAMES", 2)
    assert _loops_in_trace(model, frames, training=True) == reading_input_frames
    monkeypatch.setattr(layers, "MAX_UNROLLED_FRAMES", 1)
    assert _loops_in_trace(model, frames, training=True) == loops


@pytest.mark.backends
@ONLY_JAX_UNROLLS
@pytest.mark.parametrize(
    ("image_size", "patch_size"), [(8, 4), (32, 1)], ids=["2x2 grid", "32x32 grid, matmul kernel gradient"]
)
def test_an_unrolled_training_step_computes_what_the_loop_computes(monkeypatch, tmp_path, image_size, patch_size):
    """One training step of the same model from the same weights, unrolled (JAX) or looped, gives the same weights,
    and the model trained unrolled saves and reloads with the same outputs. The ConvLSTM2D layer of the second
    case sees 32x32 frames, so its unrolled step computes the kernel gradients as matrix products.

    Plain gradient descent moves each weight by its gradient times the learning rate, so the comparison checks the
    gradients too (Adam's first step would only show their signs). Gradients here are about 1e-4: a learning rate of
    1000 makes the step about 0.1, and equal weights to 1e-5 mean gradients equal to 1e-8.
    """
    from keras_convlstm import convolution, layers

    grid = image_size // patch_size
    # The 32x32 grid takes the matrix-product kernel gradient, the 2x2 one XLA's own.
    assert convolution.matmul_kernel_gradient((4, grid, grid, 4)) == (grid == 32)
    frames = np.random.default_rng(0).random((4, 5, image_size, image_size, 1), np.float32)
    trained = {}
    for form, limit in (("unrolled", layers.MAX_UNROLLED_FRAMES), ("looped", 0)):
        monkeypatch.setattr(layers, "MAX_UNROLLED_FRAMES", limit)
        model = small_seq2seq(image_size=image_size, patch_size=patch_size)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1000.0), loss=model.loss)
        initial = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
        loss = model.train_on_batch(frames[:, :-1], frames[:, 1:])
        trained[form] = (loss, [keras.ops.convert_to_numpy(weight) for weight in model.weights])
        if form == "unrolled":
            run_model_saving_test(model, frames, tmp_path, atol=1e-6)
    (unrolled_loss, unrolled), (looped_loss, looped) = trained.values()
    np.testing.assert_allclose(unrolled_loss, looped_loss, rtol=1e-6)
    assert len(unrolled) == len(looped) == 5  # ConvLSTM2D kernel, recurrent kernel and bias; output kernel and bias
    for before, after_unrolled, after_looped in zip(initial, unrolled, looped, strict=True):
        assert np.abs(after_looped - before).max() > 1e-2  # the step moved every weight
        np.testing.assert_allclose(after_unrolled, after_looped, atol=1e-5, rtol=0)


@pytest.mark.backends
def test_a_training_step_equals_the_step_of_keras_own_layer():
    """On every backend, one training step of a model with the package's ConvLSTM2D (on PyTorch its fused
    ``cell.run_layer``, on JAX unrolled) gives the weights the same model gives with Keras's own layer class.

    Plain gradient descent with a learning rate of 1000, as above: equal weights to 1e-5 mean equal gradients."""
    frames = np.random.default_rng(1).random((4, 5, 16, 16, 1), np.float32)
    trained = []
    for keras_class in (False, True):
        model = small_seq2seq()
        if keras_class:
            for layer in model.layers:
                if isinstance(layer, keras.layers.ConvLSTM2D):
                    layer.__class__ = keras.layers.ConvLSTM2D  # Keras's own call, the same weights
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1000.0), loss=model.loss)
        initial = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
        loss = model.train_on_batch(frames[:, :-1], frames[:, 1:])
        trained.append((initial, loss, [keras.ops.convert_to_numpy(weight) for weight in model.weights]))
    (initial, ours_loss, ours), (keras_initial, keras_loss, theirs) = trained
    for before, keras_before in zip(initial, keras_initial, strict=True):
        np.testing.assert_array_equal(before, keras_before)  # same seed, same starting weights
    np.testing.assert_allclose(ours_loss, keras_loss, rtol=1e-6)
    for before, after_ours, after_keras in zip(initial, ours, theirs, strict=True):
        assert np.abs(after_keras - before).max() > 1e-2  # the step moved every weight
        np.testing.assert_allclose(after_ours, after_keras, atol=1e-5, rtol=0)


def _moving_square_sequences(count: int, time: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = np.zeros((count, time, size, size, 1), np.float32)
    for sequence in range(count):
        row, col = rng.integers(0, size - 3, 2)
        step = rng.choice([-1, 1], 2)
        for t in range(time):
            r, c = (row + step[0] * t) % (size - 2), (col + step[1] * t) % (size - 2)
            frames[sequence, t, r : r + 3, c : c + 3] = 1.0
    return frames


@pytest.mark.half_precision
def test_bfloat16_model_learns_a_tiny_problem():
    model = build_model(
        "cpu-fast", image_size=16, filters=(8, 8), kernel_sizes=(3, 3), learning_rate=0.01, precision="bfloat16"
    )
    sequences = _moving_square_sequences(16, 8, 16, seed=0)
    inputs, targets = sequences[:, :-1], sequences[:, 1:]
    history = model.fit(inputs, targets, batch_size=8, epochs=20, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
def test_saved_models_reload_in_a_fresh_process(tmp_path):
    """Five kinds of model, trained one step and saved, reload in a fresh process with their config, optimizer
    step and outputs.

    Fewer layers than the presets keep the models small; every custom layer, batch normalization, the automatic
    precision and the model kinds outside seq2seq are still covered. The step runs eagerly and the outputs are
    computed by calling the models, which skips tracing the training and prediction functions.
    """
    shallow = {
        "keras-example-causal": {"filters": (4, 4), "kernel_sizes": (3, 3)},
        "cpu-fast": {},
        "shi2015-encoder-forecaster": {"filters": (4,), "kernel_sizes": (3,)},
        "moving-square": {},
        "classifier": {"filters": (4,), "kernel_sizes": (3,)},
    }
    names = []
    for index, name in enumerate(shallow):
        model = tiny_model(name, **shallow[name])
        frames = random_inputs(model, time=4, seed=index)
        targets = np.asarray(model(frames))
        if model.config.kind == "classifier":
            targets = np.array([1, 3])
        model.run_eagerly = True
        model.fit(frames, targets, epochs=1, verbose=0)
        assert int(model.optimizer.iterations) == 1
        save_model_files(model, frames, tmp_path)
        names.append(model.name)
    run_fresh_process_reload_test(tmp_path, names, atol=1e-6)


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("nope", {}, r"unknown model preset 'nope'; expected one of \['keras-example'"),
        ("shi2015", {"filter": (8,)}, r"unknown ModelConfig field\(s\) \['filter'\]; valid fields are \['name'"),
        ("shi2015", {"filters": (8, 0, 8)}, r"filters must be a non-empty tuple of positive integers, got \(8, 0, 8\)"),
        ("shi2015", {"filters": ()}, r"filters must be .*got \(\)"),
        ("shi2015", {"filters": (8, 8)}, r"one kernel size per ConvLSTM2D layer: filters=\(8, 8\) has 2 layers"),
        ("shi2015", {"image_size": 30}, r"image_size must be divisible by patch_size=4, got 30x30 frames"),
        ("keras-example", {"image_size": (64, 0)}, r"image_size must be a positive integer or .*got \(64, 0\)"),
        ("keras-example", {"precision": "float64"}, r"precision must be one of \('auto', .*'bfloat16'.*got 'float64'"),
        ("keras-example", {"kind": "gan"}, r"kind must be one of .*got 'gan'"),
        ("keras-example", {"output": "dense"}, r"output must be one of .*got 'dense'"),
        ("keras-example", {"optimizer": "sgd"}, r"optimizer must be one of .*got 'sgd'"),
        ("keras-example", {"learning_rate": 0}, r"learning_rate must be a positive number, got 0"),
        ("moving-square", {"output": "conv3d"}, r"output must be 'conv1x1' for a many_to_one model"),
        ("shi2015-encoder-forecaster", {"output_frames": None}, r"output_frames must be a positive integer"),
        ("classifier", {"num_classes": 1}, r"num_classes must be an integer >= 2"),
    ],
)
def test_build_model_rejects_bad_arguments(preset, overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model(preset, **overrides)


def test_build_model_rejects_a_wrong_preset_type():
    with pytest.raises(TypeError, match=r"preset must be a preset name or a ModelConfig, got dict"):
        build_model({"name": "shi2015"})


def test_models_reject_inputs_of_the_wrong_shape():
    model = tiny_model("keras-example")
    frames = np.zeros((2, 6, 6, 1), np.float32)
    message = r"model 'keras-example' expected frames of shape \(batch, time, 6, 6, 1\), got shape \(2, 6, 6, 1\)"
    with pytest.raises(ValueError, match=message):
        model(frames)
    with pytest.raises(ValueError, match=message):
        check_input(model, frames)
    with pytest.raises(ValueError, match=r"got shape \(1, 3, 8, 8, 1\)"):
        check_input(model.config, np.zeros((1, 3, 8, 8, 1)))
    check_input(model, np.zeros((1, 3, 6, 6, 1)))
    forecaster = tiny_model("shi2015-encoder-forecaster")
    with pytest.raises(
        ValueError, match=r"expected frames of shape \(batch, 3, 16, 16, 1\), got shape \(1, 4, 16, 16, 1\)"
    ):
        check_input(forecaster, np.zeros((1, 4, 16, 16, 1)))
