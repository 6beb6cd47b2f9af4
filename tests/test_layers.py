"""Tests of the custom layers: patch shuffling, the causal temporal convolution and ConvLSTM2D's training step."""

import keras
import numpy as np
import pytest
from harness import cpu_multiplies_bfloat16, record_calls, run_layer_test, to_numpy

from keras_convlstm.layers import CausalConv3D, Conv3D, ConvLSTM2D, DepthToSpace, SpaceToDepth


def _space_to_depth_reference(frames: np.ndarray, p: int) -> np.ndarray:
    """Explicit loops: output pixel (i, j) stacks the p x p block at (i * p, j * p) as (row, column, channel)."""
    *leading, height, width, channels = frames.shape
    out = np.zeros((*leading, height // p, width // p, channels * p * p), frames.dtype)
    for i in range(height // p):
        for j in range(width // p):
            for row in range(p):
                for col in range(p):
                    start = (row * p + col) * channels
                    out[..., i, j, start : start + channels] = frames[..., i * p + row, j * p + col, :]
    return out


def _causal_conv_reference(frames: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Direct sum over the kernel window: past frames only in time, centred in space, zeros outside."""
    batch, time, height, width, _ = frames.shape
    kt, kh, kw, _, filters = kernel.shape
    out = np.zeros((batch, time, height, width, filters))
    for t in range(time):
        for i in range(height):
            for j in range(width):
                total = bias.astype(np.float64).copy()
                for dt in range(kt):
                    for di in range(kh):
                        for dj in range(kw):
                            src_t = t - (kt - 1) + dt
                            src_i = i - (kh - 1) // 2 + di
                            src_j = j - (kw - 1) // 2 + dj
                            if 0 <= src_t and 0 <= src_i < height and 0 <= src_j < width:
                                total = total + frames[:, src_t, src_i, src_j, :] @ kernel[dt, di, dj]
                out[:, t, i, j] = total
    return out


@pytest.mark.parametrize("patch_size", [1, 2, 4])
def test_space_to_depth_matches_reference(patch_size):
    frames = np.random.default_rng(0).random((2, 3, 8, 12, 2), dtype=np.float32)
    result = np.asarray(SpaceToDepth(patch_size)(frames))
    assert result.shape == (2, 3, 8 // patch_size, 12 // patch_size, 2 * patch_size**2)
    np.testing.assert_array_equal(result, _space_to_depth_reference(frames, patch_size))


def test_space_to_depth_on_single_frames_matches_reference():
    frames = np.random.default_rng(1).random((3, 8, 4, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(SpaceToDepth(2)(frames)), _space_to_depth_reference(frames, 2))


def test_depth_to_space_inverts_space_to_depth():
    rng = np.random.default_rng(2)
    frames = rng.random((2, 5, 8, 12, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(DepthToSpace(4)(SpaceToDepth(4)(frames))), frames)
    patches = rng.random((2, 5, 2, 3, 48), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(SpaceToDepth(4)(DepthToSpace(4)(patches))), patches)


def test_patch_layers_accept_any_number_of_frames():
    inputs = keras.Input((None, 8, 8, 1))
    model = keras.Model(inputs, DepthToSpace(2)(SpaceToDepth(2)(inputs)))
    assert model.output_shape == (None, None, 8, 8, 1)
    for time in (1, 6):
        frames = np.random.default_rng(time).random((2, time, 8, 8, 1), dtype=np.float32)
        np.testing.assert_array_equal(np.asarray(model(frames)), frames)


def test_space_to_depth_rejects_frames_not_divisible_by_patch_size():
    with pytest.raises(ValueError, match=r"patch_size=4.*6x8"):
        SpaceToDepth(4)(np.zeros((1, 2, 6, 8, 1), np.float32))


def test_depth_to_space_rejects_channels_not_divisible():
    with pytest.raises(ValueError, match=r"patch_size\*\*2=4.*6 channels"):
        DepthToSpace(2)(np.zeros((1, 2, 4, 4, 6), np.float32))


def test_patch_layers_reject_wrong_rank():
    with pytest.raises(ValueError, match=r"expected frames of shape .*got shape \(4, 8\)"):
        SpaceToDepth(2)(np.zeros((4, 8), np.float32))


@pytest.mark.parametrize("layer_class", [SpaceToDepth, DepthToSpace])
@pytest.mark.parametrize("patch_size", [0, -2, 2.0, True])
def test_patch_layers_reject_bad_patch_size(layer_class, patch_size):
    with pytest.raises(ValueError, match=rf"patch_size must be an integer >= 1, got {patch_size!r}"):
        layer_class(patch_size)


@pytest.mark.parametrize("kernel_size", [(2, 3, 3), (3, 1, 1), (3, 2, 2)])
def test_causal_conv3d_matches_hand_computed_reference(kernel_size):
    layer = CausalConv3D(2, kernel_size, kernel_initializer=keras.initializers.Constant(0.25), bias_initializer="ones")
    frames = np.random.default_rng(3).random((2, 4, 5, 4, 3), dtype=np.float32)
    result = np.asarray(layer(frames))
    kernel = np.full((*kernel_size, 3, 2), 0.25)
    np.testing.assert_allclose(result, _causal_conv_reference(frames, kernel, np.ones(2)), rtol=1e-5, atol=1e-6)


def test_causal_conv3d_matches_reference_with_random_weights():
    layer = CausalConv3D(3, (3, 3, 3), activation="sigmoid")
    frames = np.random.default_rng(4).random((1, 5, 4, 4, 2), dtype=np.float32)
    result = np.asarray(layer(frames))
    kernel, bias = (np.asarray(w) for w in layer.weights)
    reference = 1 / (1 + np.exp(-_causal_conv_reference(frames, kernel, bias)))
    np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-6)


def test_causal_conv3d_output_ignores_later_frames():
    layer = CausalConv3D(4, (3, 3, 3))
    frames = np.random.default_rng(5).random((2, 6, 5, 5, 2), dtype=np.float32)
    changed = frames.copy()
    changed[:, 4:] += 1.0
    before, after = np.asarray(layer(frames)), np.asarray(layer(changed))
    np.testing.assert_allclose(after[:, :4], before[:, :4], atol=1e-6)
    assert np.abs(after[:, 4:] - before[:, 4:]).max() > 1e-3


def test_causal_conv3d_has_the_weights_of_the_conv3d_it_replaces():
    causal = CausalConv3D(5, (3, 3, 3))
    same = keras.layers.Conv3D(5, (3, 3, 3), padding="same")
    frames = np.zeros((1, 7, 6, 6, 4), np.float32)
    assert causal(frames).shape == same(frames).shape == (1, 7, 6, 6, 5)
    assert causal.count_params() == same.count_params() == 3 * 3 * 3 * 4 * 5 + 5
    assert causal.kernel_size == (3, 3, 3)
    assert CausalConv3D(1, 2).kernel_size == (2, 2, 2)


def test_causal_conv3d_accepts_any_number_of_frames():
    inputs = keras.Input((None, 4, 4, 2))
    model = keras.Model(inputs, CausalConv3D(3)(inputs))
    assert model.output_shape == (None, None, 4, 4, 3)
    assert model(np.zeros((2, 1, 4, 4, 2), np.float32)).shape == (2, 1, 4, 4, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filters": 0}, r"filters must be an integer >= 1, got 0"),
        ({"filters": 2, "kernel_size": (3, 3)}, r"kernel_size must be .*got \(3, 3\)"),
        ({"filters": 2, "kernel_size": (3, 0, 3)}, r"kernel_size must be .*got \(3, 0, 3\)"),
    ],
)
def test_causal_conv3d_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CausalConv3D(**kwargs)


@pytest.mark.parametrize(
    ("layer_cls", "init_kwargs", "output_shape", "trainable_weights"),
    [
        (SpaceToDepth, {"patch_size": 4, "name": "patches"}, (1, 3, 2, 2, 64), 0),
        (DepthToSpace, {"patch_size": 2}, (1, 3, 16, 16, 1), 0),
        (
            CausalConv3D,
            {"filters": 3, "kernel_size": (2, 3, 3), "activation": "sigmoid", "use_bias": False},
            (1, 3, 8, 8, 3),
            1,
        ),
    ],
)
def test_layer_builds_round_trips_its_config_and_saves(layer_cls, init_kwargs, output_shape, trainable_weights):
    run_layer_test(
        layer_cls, init_kwargs, (1, 3, 8, 8, 4), output_shape, expected_trainable_weights=trainable_weights, seed=6
    )


def test_layers_are_registered_for_saving():
    for layer_class in (SpaceToDepth, DepthToSpace, CausalConv3D, Conv3D, ConvLSTM2D):
        name = keras.saving.get_registered_name(layer_class)
        assert name == f"keras_convlstm>{layer_class.__name__}"
        assert keras.saving.get_registered_object(name) is layer_class


def _keras_and_ours(**settings) -> tuple[keras.layers.ConvLSTM2D, ConvLSTM2D]:
    """Keras's ConvLSTM2D and ours with ``settings`` and the same random weights (bias included), built for
    frames of 32x32x3."""
    keras.utils.set_random_seed(4)
    pair = (keras.layers.ConvLSTM2D, ConvLSTM2D)
    theirs, ours = (
        layer_class(4, 3, padding="same", bias_initializer="random_normal", **settings) for layer_class in pair
    )
    for layer in (theirs, ours):
        layer.build((None, 5, 32, 32, 3))
    ours.set_weights(theirs.get_weights())
    return theirs, ours


@pytest.mark.backends
@pytest.mark.parametrize(
    "settings",
    [{"return_sequences": True}, {"return_sequences": False}, {"return_sequences": True, "return_state": True}],
)
@pytest.mark.parametrize("initial_state", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_convlstm2d_computes_what_keras_computes(settings, initial_state, training):
    """Inference is Keras's own; a PyTorch training call, and a JAX one over 32x32 frames (with the kernel gradient
    of convolution.same_conv), runs cell.run_layer, and equals Keras's to float rounding."""
    from keras_convlstm import convolution

    theirs, ours = _keras_and_ours(**settings)
    rng = np.random.default_rng(5)
    frames = rng.random((2, 5, 32, 32, 3), dtype=np.float32)
    assert convolution.matmul_kernel_gradient((2, 32, 32, 3)) == (keras.backend.backend() == "jax")
    state = [rng.random((2, 32, 32, 4), dtype=np.float32) for _ in range(2)] if initial_state else None
    expected = theirs(frames, initial_state=state, training=training)
    got = ours(frames, initial_state=state, training=training)
    if not settings.get("return_state"):
        expected, got = [expected], [got]
    assert len(got) == len(expected)
    for value, reference in zip(got, expected, strict=True):
        assert tuple(value.shape) == tuple(reference.shape)
        np.testing.assert_allclose(to_numpy(value), to_numpy(reference), rtol=1e-5, atol=1e-6)


@pytest.mark.backends
def test_convlstm2d_in_bfloat16_on_small_frames_computes_what_keras_computes(monkeypatch):
    """On a CPU that multiplies bfloat16, a JAX training call over 16x16 bfloat16 frames runs cell.run_layer with
    convolution.same_conv_as_products, and equals Keras's layer to bfloat16 rounding."""
    from keras_convlstm import convolution

    cpu_multiplies_bfloat16(monkeypatch)
    calls = record_calls(monkeypatch, convolution, "same_conv_as_products")
    keras.utils.set_random_seed(4)
    theirs, ours = (
        layer_class(4, 3, padding="same", return_sequences=True, dtype="mixed_bfloat16")
        for layer_class in (keras.layers.ConvLSTM2D, ConvLSTM2D)
    )
    for layer in (theirs, ours):
        layer.build((None, 5, 16, 16, 3))
    ours.set_weights(theirs.get_weights())
    frames = np.random.default_rng(7).random((2, 5, 16, 16, 3), dtype=np.float32)
    expected = to_numpy(keras.ops.cast(theirs(frames, training=True), "float32"))
    got = to_numpy(keras.ops.cast(ours(frames, training=True), "float32"))
    # One product per frame, of [X_t, H_{t-1}]: 3 + 4 channels.
    assert calls == ([(2, 16, 16, 7)] * 5 if keras.backend.backend() == "jax" else [])
    np.testing.assert_allclose(got, expected, rtol=2**-6, atol=2**-6)


@pytest.mark.backends
@pytest.mark.parametrize(("size", "fused_on"), [(8, {"torch"}), (32, {"jax", "torch"})])
def test_convlstm2d_training_calls_run_the_fused_step_on_jax_and_pytorch_only(monkeypatch, size, fused_on):
    """PyTorch's training calls run cell.run_layer on any frames, JAX's where same_conv's products apply (on a CPU:
    32x32 float32 frames, not 8x8); inference and TensorFlow are Keras's own."""
    from keras_convlstm import convolution, layers

    if keras.backend.backend() == "jax" and not convolution.matmul_kernel_gradient((2, size, size, 3)):
        fused_on = fused_on - {"jax"}  # JAX off the CPU (or frames under 32x32): Keras's own cell

    calls = record_calls(monkeypatch, layers, "run_layer", argument=1)
    layer = ConvLSTM2D(4, 3, padding="same", return_sequences=True)
    frames = np.random.default_rng(8).random((2, 5, size, size, 3), dtype=np.float32)
    inference = to_numpy(layer(frames, training=False))
    assert calls == []
    training = to_numpy(layer(frames, training=True))
    assert calls == ([(2, 5, size, size, 3)] if keras.backend.backend() in fused_on else [])
    np.testing.assert_allclose(training, inference, rtol=1e-5, atol=1e-6)  # no dropout: the same function


def test_convlstm2d_reads_the_weights_keras_convlstm2d_saved(tmp_path):
    """Same class name, same paths in a weights file: a model saved with Keras's layer loads into ours."""
    frames = np.random.default_rng(6).random((2, 5, 8, 8, 3), dtype=np.float32)
    models = []
    for layer_class in (keras.layers.ConvLSTM2D, ConvLSTM2D):
        inputs = keras.Input((None, 8, 8, 3))
        models.append(keras.Model(inputs, layer_class(4, 3, padding="same", return_sequences=True)(inputs)))
    saved, loaded = models
    saved.save_weights(tmp_path / "keras.weights.h5")
    loaded.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_array_equal(to_numpy(loaded(frames)), to_numpy(saved(frames)))


@pytest.mark.backends
@pytest.mark.parametrize("unroll", [False, True])
def test_convlstm2d_training_call_keeps_the_unroll_setting_it_was_given(unroll):
    """A JAX training call over small frames unrolls Keras's loop for the call only, then restores ``unroll``."""
    layer = ConvLSTM2D(2, 3, padding="same", unroll=unroll)
    outputs = layer(np.ones((1, 3, 8, 8, 1), "float32"), training=True)
    assert tuple(outputs.shape) == (1, 8, 8, 2)
    assert layer.unroll is unroll


@pytest.mark.backends
@pytest.mark.parametrize(
    "settings",
    [
        {"filters": 1, "kernel_size": 3, "padding": "same", "activation": "sigmoid"},
        {"filters": 4, "kernel_size": (2, 3, 1), "padding": "same"},
        {"filters": 3, "kernel_size": 3},
    ],
)
def test_conv3d_computes_what_keras_computes_in_training(settings):
    """On JAX the training call is computed as matrix products (convolution.valid_conv_as_products)."""
    from keras_convlstm import convolution

    frames = np.random.default_rng(7).random((2, 5, 12, 10, 6), dtype=np.float32)
    ours, theirs = Conv3D(**settings, bias_initializer="random_normal"), keras.layers.Conv3D(**settings)
    for layer in (ours, theirs):
        layer.build(frames.shape)
    theirs.set_weights(ours.get_weights())
    assert convolution.products_apply(frames.shape, ours.kernel.shape) == (keras.backend.backend() == "jax")
    expected = to_numpy(theirs(frames))
    for training in (False, True):
        got = to_numpy(ours(frames, training=training))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-6)


def test_conv3d_reads_the_weights_keras_conv3d_saved(tmp_path):
    frames = np.random.default_rng(8).random((1, 4, 8, 8, 2), dtype=np.float32)
    inputs = keras.Input((None, 8, 8, 2))
    saved = keras.Model(inputs, keras.layers.Conv3D(3, 3, padding="same")(inputs))
    loaded = keras.Model(inputs, Conv3D(3, 3, padding="same")(inputs))
    saved.save_weights(tmp_path / "keras.weights.h5")
    loaded.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_array_equal(to_numpy(loaded(frames)), to_numpy(saved(frames)))
