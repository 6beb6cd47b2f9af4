"""check_causal: the leaky presets and plain Keras models are flagged pair by pair, the causal ones pass."""

import keras
import numpy as np
import pytest
from harness import tiny_model

from keras_convlstm.causality import check_causal
from keras_convlstm.models import get_preset, list_presets

FRAMES = 6


def next_frame_leaks(frames: int, future_reach: int) -> list[tuple[int, int]]:
    """The pairs of a next-frame model whose output ``t`` reads inputs up to ``t + future_reach``."""
    return [(t, s) for t in range(frames) for s in range(t + 1, min(t + future_reach, frames - 1) + 1)]


def reads_up_to(frames: int, future_reach: int) -> np.ndarray:
    """bool ``(output steps, input frames)``: output ``t`` reads every input ``0..t + future_reach``."""
    return np.tril(np.ones((frames, frames), dtype=bool), k=future_reach)


def small(preset: str, **overrides) -> keras.Model:
    """The preset's tiny version (4 filters per ConvLSTM layer), on 16x16 frames, in float32, seeded."""
    return tiny_model(preset, **{"image_size": 16, "precision": "float32", **overrides})


def convlstm_then(last: keras.layers.Layer, frame_shape=(8, 8, 1)) -> keras.Model:
    """A plain functional Keras model: ConvLSTM2D (4 filters, 3x3) then ``last``, seeded."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, *frame_shape))
    features = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)(inputs)
    return keras.Model(inputs, last(features), name="plain")


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_is_judged_by_its_last_layer(preset):
    config = get_preset(preset)
    overrides = {"input_frames": 4, "output_frames": 3} if config.kind == "encoder_forecaster" else {}
    model = small(preset, **overrides)
    if config.kind == "classifier":
        with pytest.raises(ValueError, match=r"to output frames .* got output shape \(5, 6\)"):
            check_causal(model)
        return
    report = check_causal(model)
    frames = report.changes.shape[1]
    assert frames == (model.config.input_frames or FRAMES)
    if config.kind == "seq2seq":
        # A 'same' Conv3D of k_t frames reads k_t // 2 frames ahead; CausalConv3D and 1x1x1 convolutions none.
        reach = config.output_kernel_size[0] // 2 if config.output == "conv3d" else 0
        assert report.target_offset == 1
        np.testing.assert_array_equal(report.dependence, reads_up_to(frames, reach))
        assert report.leaks == next_frame_leaks(frames, reach)
        assert report.causal == (reach == 0)
    else:  # every output follows every input: each reads them all, and none can leak
        assert report.target_offset == frames
        assert report.dependence.all()
        assert report.causal and report.leaks == []
        assert "causal by construction" in str(report)


def test_keras_example_leaks_each_output_onto_its_target():
    report = check_causal(small("keras-example"))
    assert not report.causal
    assert report.leaks == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert report.changes.shape == (FRAMES, FRAMES) and report.changes.dtype == np.float64
    assert str(report).splitlines() == [
        "keras_example: NOT causal: 5 of 6 output steps read their target or a later input frame",
        "Leaks (output step <- input frame): 0 <- 1, 1 <- 2, 2 <- 3, 3 <- 4, 4 <- 5",
        "Output step t predicts input frame t + 1 and may read input frames 0..t.",
        "Input frames that move each output step (X allowed, ! leak, . no change above 1e-05 x the largest output "
        f"{report.scale:.3g}):",
        "output \\ input 0 1 2 3 4 5",
        "             0 X ! . . . .",
        "             1 X X ! . . .",
        "             2 X X X ! . .",
        "             3 X X X X ! .",
        "             4 X X X X X !",
        "             5 X X X X X X",
    ]


@pytest.mark.half_precision
def test_a_bfloat16_model_shows_the_same_leaks():
    report = check_causal(small("keras-example", precision="bfloat16"), frames=5)
    np.testing.assert_array_equal(report.dependence, reads_up_to(5, 1))
    assert report.leaks == [(0, 1), (1, 2), (2, 3), (3, 4)]
    causal = check_causal(small("keras-example-causal", precision="bfloat16"), frames=5)
    assert causal.causal
    np.testing.assert_array_equal(causal.dependence, reads_up_to(5, 0))


def test_a_plain_keras_model_with_a_same_conv3d_is_flagged():
    model = convlstm_then(keras.layers.Conv3D(1, (5, 3, 3), padding="same", activation="sigmoid"))
    report = check_causal(model)
    assert report.leaks == next_frame_leaks(FRAMES, 2)
    assert report.leaks[:3] == [(0, 1), (0, 2), (1, 2)]
    assert "NOT causal: 5 of 6 output steps" in str(report)


def test_a_plain_keras_model_with_a_one_frame_kernel_is_causal():
    report = check_causal(convlstm_then(keras.layers.Conv3D(1, (1, 3, 3), padding="same")), frames=4)
    assert report.causal and report.leaks == []
    np.testing.assert_array_equal(report.dependence, reads_up_to(4, 0))
    assert str(report).splitlines()[0] == "plain: causal: no output step reads its target or a later input frame"


def test_a_sequential_model_without_an_input_needs_the_frame_shape():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True),
            keras.layers.Conv3D(1, 3, padding="same"),
        ]
    )
    with pytest.raises(
        ValueError, match=r"does not fix its frame size .* pass frame_shape=\(height, width, channels\)"
    ):
        check_causal(model)
    assert check_causal(model, frame_shape=(8, 8, 1)).leaks == next_frame_leaks(FRAMES, 1)


def linear_look_ahead(weight: float) -> keras.Model:
    """``y_t = x_t + weight * x_{t+1}`` on 4x4 frames: a Conv3D whose time kernel is ``[0, 1, weight]``."""
    inputs = keras.Input((None, 4, 4, 1))
    conv = keras.layers.Conv3D(1, (3, 1, 1), padding="same", use_bias=False)
    model = keras.Model(inputs, conv(inputs), name="look_ahead")
    conv.set_weights([np.array([0.0, 1.0, weight], np.float32).reshape(3, 1, 1, 1, 1)])
    return model


def test_the_tolerance_separates_a_real_dependence_from_rounding_sized_changes():
    # Replacing x_{t+1} moves y_t by at most 1e-6, below 1e-5 x the largest output (about 1).
    faint = check_causal(linear_look_ahead(1e-6))
    assert faint.causal
    assert 0 < faint.changes[0, 1] <= 1e-6 < faint.threshold
    assert check_causal(linear_look_ahead(1e-6), tolerance=0).leaks == next_frame_leaks(FRAMES, 1)
    assert check_causal(linear_look_ahead(1e-3)).leaks == next_frame_leaks(FRAMES, 1)
    # Reading only its own input frame, each output depends on that frame alone.
    np.testing.assert_array_equal(check_causal(linear_look_ahead(0.0)).dependence, np.eye(FRAMES, dtype=bool))


def test_outputs_of_another_length_need_a_target_offset():
    # Output j copies input frame j + 3: a "forecast" of frames 3..5 that reads its own targets.
    inputs = keras.Input((FRAMES, 4, 4, 1))
    model = keras.Model(inputs, keras.layers.Cropping3D(((3, 0), (0, 0), (0, 0)))(inputs), name="copy_last_three")
    with pytest.raises(ValueError, match="maps 6 input frames to 3 output frames: pass target_offset"):
        check_causal(model)
    report = check_causal(model, target_offset=3)
    assert report.leaks == [(0, 3), (1, 4), (2, 5)]
    assert check_causal(model, target_offset=4).causal  # read as predicting frames 4..6, it only reads the past


def test_bad_models_and_arguments_are_refused():
    plain = convlstm_then(keras.layers.Conv3D(1, (1, 3, 3), padding="same"))
    with pytest.raises(ValueError, match="frames must be an integer >= 2, got 1"):
        check_causal(plain, frames=1)
    with pytest.raises(ValueError, match=r"expects frames of height 8, got frame_shape=\(16, 8, 1\)"):
        check_causal(plain, frame_shape=(16, 8, 1))
    with pytest.raises(ValueError, match=r"tolerance must be a number in \[0, 1\), got -1"):
        check_causal(plain, tolerance=-1)
    with pytest.raises(ValueError, match="target_offset must be an integer >= 1, got 0"):
        check_causal(plain, target_offset=0)
    with pytest.raises(ValueError, match="model 'shi2015_encoder_forecaster' reads exactly 4 frames, got frames=6"):
        check_causal(small("shi2015-encoder-forecaster", input_frames=4, output_frames=3), frames=6)
    first, second = keras.Input((None, 4, 4, 1)), keras.Input((None, 4, 4, 1))
    with pytest.raises(ValueError, match="expected a model with one input .* got 2 inputs"):
        check_causal(keras.Model([first, second], keras.layers.Add()([first, second])))
    frames = keras.Input((None, 4, 4, 1))
    blind = keras.layers.Conv3D(1, 3, padding="same", kernel_initializer="zeros", bias_initializer="ones")
    with pytest.raises(ValueError, match="no output of model 'blind' changed .* cannot tell whether it is causal"):
        check_causal(keras.Model(frames, blind(frames), name="blind"))
