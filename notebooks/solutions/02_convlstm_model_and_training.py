"""Solutions to the exercises of notebook 02_convlstm_model_and_training.ipynb.

Each ``exercise_N()`` computes its answer and checks it with ``assert``; its docstring restates the exercise
and explains the answer. All of them run in seconds on a CPU.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_convlstm import cell, mnist_digits, models, synthetic

SLOW: set[str] = set()


def _reach(changed: np.ndarray, centre: int) -> int:
    """Largest row or column distance from ``centre`` of the True pixels of a ``(height, width)`` mask."""
    rows, cols = np.nonzero(changed)
    return int(np.abs(np.concatenate([rows, cols]) - centre).max())


def exercise_1() -> None:
    """Make the third ConvLSTM kernel of the keras.io network 3x3 instead of 1x1: how many parameters does it gain?

    A ConvLSTM2D layer has ``4 * filters * (k * k * (in_channels + filters) + 1)`` weights: four blocks
    (i, f, c, o), each a k x k convolution of the input and of the hidden state, plus a bias. The third layer
    reads 64 channels and has 64 filters, so going from k = 1 to k = 3 adds
    ``4 * 64 * (9 - 1) * (64 + 64) = 262,144`` weights: 746,689 becomes 1,008,833. The network gains 35 %
    parameters, all in a layer that then moves information one more pixel per step.
    """
    base = models.build_model("keras-example")
    wider = models.build_model("keras-example", kernel_sizes=(5, 3, 3))
    filters = in_channels = 64
    predicted = 4 * filters * (3 * 3 - 1 * 1) * (in_channels + filters)
    gained = wider.count_params() - base.count_params()
    print(f"parameters: {base.count_params():,} -> {wider.count_params():,} (+{gained:,}, predicted +{predicted:,})")
    assert gained == predicted == 262_144
    assert wider.count_params() == 1_008_833


def peephole_step(frame, hidden, cell_state, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co, activation="tanh"):
    """One ConvLSTM step with Shi et al.'s peepholes (their eq. 3, 'same' padding); Keras's kernel layout.

    Args:
        frame: ``(batch, height, width, in_channels)``.
        hidden, cell_state: ``(batch, height, width, filters)``.
        kernel: ``(kh, kw, in_channels, 4 * filters)``; recurrent_kernel: ``(kh, kw, filters, 4 * filters)``;
            bias: ``(4 * filters,)``; blocks in the order i, f, c, o.
        w_ci, w_cf, w_co: peephole weights ``(height, width, filters)``, multiplied element-wise.
        activation: the function that replaces tanh, as ``ConvLSTM2D``'s ``activation``.

    Returns:
        ``(hidden, cell_state)``, each ``(batch, height, width, filters)``.
    """
    phi = keras.activations.get(activation)
    gates = keras.ops.conv(frame, kernel, padding="same") + keras.ops.conv(hidden, recurrent_kernel, padding="same")
    input_gate, forget_gate, candidate, output_gate = keras.ops.split(gates + bias, 4, axis=-1)
    input_gate = keras.ops.sigmoid(input_gate + w_ci * cell_state)
    forget_gate = keras.ops.sigmoid(forget_gate + w_cf * cell_state)
    cell_state = forget_gate * cell_state + input_gate * phi(candidate)
    output_gate = keras.ops.sigmoid(output_gate + w_co * cell_state)  # peeks at the new cell state C_t
    return output_gate * phi(cell_state), cell_state


def exercise_2() -> None:
    """Add Shi et al.'s peepholes to the from-scratch step, and count what they cost in the keras.io network.

    ``peephole_step`` above adds ``W_ci o C_{t-1}`` to the input gate, ``W_cf o C_{t-1}`` to the forget gate
    and ``W_co o C_t`` to the output gate. Three checks: with zero peephole weights it equals
    ``cell.convlstm_step`` over a whole sequence; with 1x1 kernels it equals the equations written with NumPy;
    and non-zero peepholes change the result. In the paper the peephole weights are full tensors (one weight per
    pixel and channel, :math:`\\circ` being the element-wise product), so in the first layer of the keras.io
    network they would add ``3 * 64 * 64 * 64 = 786,432`` weights: more than the 746,689 of the whole network.
    They also tie the layer to one frame size. Keras's ``ConvLSTM2D`` has none.
    """
    rng = np.random.default_rng(2)
    filters, size, frames = 3, 8, 5
    kernel = rng.normal(0, 0.3, (3, 3, 1, 4 * filters)).astype("float32")
    recurrent = rng.normal(0, 0.3, (3, 3, filters, 4 * filters)).astype("float32")
    bias = rng.normal(0, 0.3, (4 * filters,)).astype("float32")
    sequence = rng.random((2, frames, size, size, 1), dtype=np.float32)
    zero = np.zeros((size, size, filters), "float32")
    h_keras = c_keras = h_ours = c_ours = np.zeros((2, size, size, filters), "float32")
    for t in range(frames):
        h_keras, c_keras = cell.convlstm_step(sequence[:, t], h_keras, c_keras, kernel, recurrent, bias)
        h_ours, c_ours = peephole_step(sequence[:, t], h_ours, c_ours, kernel, recurrent, bias, zero, zero, zero)
    difference = np.abs(keras.ops.convert_to_numpy(h_ours) - keras.ops.convert_to_numpy(h_keras)).max()
    assert difference <= 1e-6, difference

    # 1x1 kernels: every convolution is a per-pixel matrix product, easy to write with NumPy.
    w_ci, w_cf, w_co = (rng.normal(0, 1, (size, size, filters)).astype("float32") for _ in range(3))
    x, h, c = sequence[:, 0], rng.random((2, size, size, filters)), rng.random((2, size, size, filters))
    h, c = h.astype("float32"), c.astype("float32")
    k1, r1 = kernel[1:2, 1:2], recurrent[1:2, 1:2]
    i, f, g, o = np.split(x @ k1[0, 0] + h @ r1[0, 0] + bias, 4, axis=-1)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c_expected = sigmoid(f + w_cf * c) * c + sigmoid(i + w_ci * c) * np.tanh(g)
    h_expected = sigmoid(o + w_co * c_expected) * np.tanh(c_expected)
    h_peep, c_peep = peephole_step(x, h, c, k1, r1, bias, w_ci, w_cf, w_co)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c_peep), c_expected, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h_peep), h_expected, atol=1e-5)
    h_plain, _ = cell.convlstm_step(x, h, c, k1, r1, bias)
    assert np.abs(keras.ops.convert_to_numpy(h_peep) - keras.ops.convert_to_numpy(h_plain)).max() > 1e-3

    first_layer_peepholes = 3 * 64 * 64 * 64
    network = models.build_model("keras-example").count_params()
    print(f"peephole weights of layer 1: {first_layer_peepholes:,}; whole keras.io network: {network:,}")
    assert first_layer_peepholes == 786_432 > network


def exercise_3() -> None:
    """How far does information travel per step in a ``ConvLSTM2D`` with ``dilation_rate=2`` and 3x3 kernels?

    Measured as in the notebook: one filter, all kernels 0.5, one bright pixel in X_0 and blank frames after,
    and the pixels where H_t is not zero. Keras dilates only the input-to-state convolution (its
    ``recurrent_conv`` has no ``dilation_rate``), so reading X_0 jumps 2 pixels, leaving holes (only even
    offsets are reached in H_0), and every later step moves 1 pixel like an undilated 3x3 kernel, filling the
    holes: the radius is 2, 3, 4 after 1, 2, 3 steps, against 1, 2, 3 without dilation. Dilation widens the
    view of each input frame, not the speed at which the state itself can travel.
    """
    size, steps = 15, 3
    centre = size // 2
    layer = keras.layers.ConvLSTM2D(
        1,
        3,
        padding="same",
        dilation_rate=2,
        return_sequences=True,
        kernel_initializer=keras.initializers.Constant(0.5),
        recurrent_initializer=keras.initializers.Constant(0.5),
        unit_forget_bias=False,
    )
    frames = np.zeros((1, steps, size, size, 1), "float32")
    frames[0, 0, centre, centre] = 1.0
    reached = keras.ops.convert_to_numpy(layer(frames))[0, :, :, :, 0] != 0
    radii = [_reach(reached[t], centre) for t in range(steps)]
    print("dilation 2, 3x3: radius after 1, 2, 3 steps:", radii)
    assert radii == [2, 3, 4]
    offsets = np.abs(np.arange(size) - centre)
    first = reached[0]
    assert first[centre, centre + 2] and not first[centre, centre + 1]  # H_0 has holes at odd offsets
    assert reached[1][np.ix_(offsets <= 3, offsets <= 3)].all()  # one undilated step fills them


def exercise_4() -> None:
    """Why does ``activation="relu"`` in a recurrent cell risk exploding states?

    With tanh, ``H_t = o_t * tanh(C_t)`` is bounded by 1 whatever happens, and ``C_t = f_t C_{t-1} + i_t g_t``
    is not, but grows by less than 1 per step (``|i_t g_t| < 1``), so ``|C_t| < t`` after ``t`` steps. With relu
    nothing bounds ``H_t``: it feeds back through the state-to-state kernel into the candidate
    ``relu(W_hc * H_{t-1} + ...)``, so once that loop gains more than 1 per step the states grow geometrically.
    Below, the same cell and the same constant input run 30 steps: with tanh the largest ``|H_t|`` stays below 1
    (and ``|C_t|`` passes 1 but gains less than 1 per step), with relu it grows by a factor of about 3 per step.
    In the keras.io network BatchNormalization rescales each layer's output for the next layer, but not the state
    that a layer feeds back to itself, so large recurrent weights (a large learning rate) can still make it
    diverge.
    """
    steps = 30
    kernel = np.full((1, 1, 1, 4), 1.0, "float32")
    recurrent = np.full((1, 1, 1, 4), 2.0, "float32")
    frame = np.ones((1, 4, 4, 1), "float32")
    largest, largest_cell = {}, {}
    for activation in ("tanh", "relu"):
        hidden = cell_state = np.zeros((1, 4, 4, 1), "float32")
        largest[activation], largest_cell[activation] = [], []
        for _ in range(steps):
            hidden, cell_state = cell.convlstm_step(frame, hidden, cell_state, kernel, recurrent, activation=activation)
            largest[activation].append(float(np.abs(keras.ops.convert_to_numpy(hidden)).max()))
            largest_cell[activation].append(float(np.abs(keras.ops.convert_to_numpy(cell_state)).max()))
    growth = largest["relu"][-1] / largest["relu"][-2]
    print(f"max |H_30|: tanh {largest['tanh'][-1]:.3f}, relu {largest['relu'][-1]:.3g} (x{growth:.2f} per step)")
    assert max(largest["tanh"]) < 1.0
    # Under tanh C_t passes 1 but gains less than 1 per step.
    tanh_cell = np.array(largest_cell["tanh"])
    assert tanh_cell.max() > 1.0 and np.all(np.diff(tanh_cell) < 1.0) and np.all(tanh_cell < np.arange(1, steps + 1))
    assert largest["relu"][-1] > 1e10 and growth > 2.5


def exercise_5() -> None:
    """How far does the whole ``keras-example-causal`` network see, and how does it compare with the digits' speed?

    In a blank input, one bright pixel of frame 0 reaches the features of the last ConvLSTM layer at step ``t``
    up to ``3 + 2 t`` pixels away (along a row or a column), and the 3x3 output convolution adds one pixel more.
    Within one step a pixel passes the input kernels of the three ConvLSTM layers (radius 2, 1 and 0 for 5x5, 3x3
    and 1x1): 3 pixels. From step to step, the farthest-reaching path waits in the first layer, whose 5x5 state
    kernel moves it 2 pixels per step (the 3x3 and 1x1 layers move 1 and 0). A Moving MNIST digit moves 3.6
    pixels per frame, 2.5 to 3.6 along its faster axis (the axis reach is measured on), so one step of the stack
    (3 + 1 pixels) reaches where a digit goes next, but the network's memory follows a moving digit at only 2
    pixels per step. What to change first: work on 4x4 patches (space-to-depth), as Shi et al. and the
    ``cpu-fast`` preset do, where a 5x5 kernel moves the memory 8 pixels per step and every convolution has 16
    times fewer positions; a 9x9 first kernel on full frames would also keep pace (4 pixels per step) but costs
    3.2 times the first layer's weights.

    The features are measured rather than the output frame: the input is blank, so every feature is exactly 0
    except where the bright pixel reached, however faint; after the sigmoid, changes far below float32's
    resolution around 0.5 would round away.
    """
    keras.utils.set_random_seed(5)
    model = models.build_model("keras-example-causal")
    features = keras.Model(model.input, model.get_layer("conv_lstm_3").output)
    size, steps = 64, 4  # the network takes 64x64 frames
    centre = size // 2
    frames = np.zeros((1, steps, size, size, 1), "float32")
    frames[0, 0, centre, centre] = 1.0
    reached = np.abs(keras.ops.convert_to_numpy(features(frames, training=False))[0]).max(axis=-1) > 0
    radii = [_reach(reached[t], centre) for t in range(steps)]
    digit_step = synthetic.MOVING_MNIST_STEP * (64 - mnist_digits.MNIST_DIGIT_SIZE)
    print(f"reach of conv_lstm_3 at t = 0..{steps - 1}: {radii} px; a digit moves {digit_step:.1f} px per frame")
    assert radii == [3 + 2 * t for t in range(steps)]
