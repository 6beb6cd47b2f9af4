"""Owns the causality check: which output steps of a frame model read an input frame at or after their target.

A next-frame model's output step ``t`` predicts input frame ``t + 1``, so it may read input frames ``0..t`` only.
The keras.io network breaks that rule: its last ``Conv3D(3x3x3, padding="same")`` also reads frame ``t + 1``, the
target of output ``t``. :func:`check_causal` finds such leaks in any Keras model by experiment: it replaces one
input frame at a time by a very different frame and records which output steps change. It reads no layer types,
so it judges a model it has never seen (a plain ``keras.Sequential``, a custom layer, a saved file) as well as
the package's presets. :class:`CausalityReport` holds what it saw and prints a verdict for a notebook.

Example:
    >>> from keras_convlstm.models import build_model
    >>> report = check_causal(build_model("keras-example"))
    >>> report.causal, report.leaks
    (False, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)])
    >>> print(report)
    keras_example: NOT causal: 5 of 6 output steps read their target or a later input frame
    Leaks (output step <- input frame): 0 <- 1, 1 <- 2, 2 <- 3, 3 <- 4, 4 <- 5
    ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from keras_convlstm.checks import check_integer, check_size
from keras_convlstm.frames import FRAMES_LAYOUT
from keras_convlstm.models import ModelConfig

DEFAULT_FRAMES = 6


@dataclasses.dataclass(frozen=True, eq=False)
class CausalityReport:
    """What :func:`check_causal` measured, and the verdict drawn from it.

    Attributes:
        model_name: the name of the model checked.
        changes: float64 ``(output steps, input frames)``: the largest absolute change of output step ``t``
            (over its pixels and channels) when input frame ``s`` alone was replaced.
        scale: the largest absolute value of the outputs of the unchanged frames.
        tolerance: a change counts as a dependence when it exceeds ``tolerance * scale``.
        target_offset: output step ``t`` predicts input frame ``t + target_offset`` and may read input frames
            before it: ``0..t + target_offset - 1``.
    """

    model_name: str
    changes: np.ndarray
    scale: float
    tolerance: float
    target_offset: int

    @property
    def threshold(self) -> float:
        """The smallest change that counts as a dependence: ``tolerance * scale``."""
        return self.tolerance * self.scale

    @property
    def dependence(self) -> np.ndarray:
        """bool ``(output steps, input frames)``: True where output step ``t`` depends on input frame ``s``."""
        return self.changes > self.threshold

    @property
    def allowed(self) -> np.ndarray:
        """bool ``(output steps, input frames)``: True where input frame ``s`` comes before the target of ``t``."""
        steps, frames = self.changes.shape
        return np.arange(frames)[None, :] < np.arange(steps)[:, None] + self.target_offset

    @property
    def leaks(self) -> list[tuple[int, int]]:
        """``(output step, input frame)`` pairs where the output depends on its target or a later frame."""
        steps, frames = np.nonzero(self.dependence & ~self.allowed)
        return [(int(step), int(frame)) for step, frame in zip(steps, frames, strict=True)]

    @property
    def causal(self) -> bool:
        """True when no output step depends on an input frame at or after its target."""
        return not self.leaks

    def summary(self) -> str:
        """The verdict, the leaking pairs and the dependence table, as plain text."""
        steps, frames = self.changes.shape
        leaks = self.leaks
        leaking_steps = sorted({step for step, _ in leaks})
        if leaks:
            verdict = (
                f"{self.model_name}: NOT causal: {len(leaking_steps)} of {steps} output steps read their target "
                f"or a later input frame"
            )
        elif self.target_offset >= frames:
            verdict = f"{self.model_name}: causal by construction: every output step predicts a frame after every input"
        else:
            verdict = f"{self.model_name}: causal: no output step reads its target or a later input frame"
        offset = self.target_offset
        if offset >= frames:
            rule = f"Output step t predicts frame t + {offset}, after every input frame: it may read them all."
        else:
            last = "t" if offset == 1 else f"t + {offset - 1}"
            rule = f"Output step t predicts input frame t + {offset} and may read input frames 0..{last}."
        lines = [verdict]
        if leaks:
            lines.append("Leaks (output step <- input frame): " + ", ".join(f"{t} <- {s}" for t, s in leaks))
        lines += [
            rule,
            f"Input frames that move each output step (X allowed, ! leak, . no change above {self.tolerance:g} x "
            f"the largest output {self.scale:.3g}):",
        ]
        width = len(str(max(steps, frames) - 1))
        lines.append("output \\ input " + " ".join(str(frame).rjust(width) for frame in range(frames)))
        marks = np.where(self.dependence, np.where(self.allowed, "X", "!"), ".")
        for step in range(steps):
            lines.append(str(step).rjust(14) + " " + " ".join(mark.rjust(width) for mark in marks[step]))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _declared_input_shape(model: keras.Model) -> tuple:
    """The model's one input shape ``(batch, time, height, width, channels)``, Nones where it is not fixed."""
    try:
        shape = model.input_shape
    except AttributeError:  # a Sequential without an Input, or a subclassed model: nothing declared
        return (None,) * 5
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"expected a model with one input {FRAMES_LAYOUT}, got {len(shape)} inputs {shape}")
        shape = shape[0]
    if len(shape) != 5:
        raise ValueError(f"expected a model whose input is {FRAMES_LAYOUT}, got input shape {tuple(shape)}")
    return tuple(shape)


def _input_size(model: keras.Model, frames: int | None, frame_shape: Sequence[int] | None) -> tuple[int, ...]:
    """``(time, height, width, channels)`` of the probe: the model's own sizes, the arguments where it has none."""
    _, declared_time, *declared_frame = _declared_input_shape(model)
    if frames is not None:
        frames = check_integer(frames, "frames", minimum=2)
        if declared_time is not None and frames != declared_time:
            raise ValueError(f"model {model.name!r} reads exactly {declared_time} frames, got frames={frames}")
    time = frames or declared_time or DEFAULT_FRAMES
    if frame_shape is None:
        if None in declared_frame:
            raise ValueError(
                f"model {model.name!r} does not fix its frame size (input shape (batch, time, "
                f"{', '.join(map(str, declared_frame))})): pass frame_shape=(height, width, channels)"
            )
        return (time, *declared_frame)
    given = check_size(frame_shape, "frame_shape", axes=("height", "width", "channels"))
    for axis, want, got in zip(("height", "width", "channels"), declared_frame, given, strict=True):
        if want is not None and want != got:
            raise ValueError(f"model {model.name!r} expects frames of {axis} {want}, got frame_shape={given}")
    return (time, *given)


def _default_target_offset(model: keras.Model, frames: int, outputs: np.ndarray) -> int:
    """1 for outputs aligned with the inputs; ``frames`` for outputs that all follow the inputs."""
    config = getattr(model, "config", None)
    if isinstance(config, ModelConfig) and config.kind == "encoder_forecaster":
        return frames
    if outputs.ndim == 5 and outputs.shape[1] == frames:
        return 1
    raise ValueError(
        f"model {model.name!r} maps {frames} input frames to {outputs.shape[1]} output frames: pass "
        f"target_offset, the input index of the frame that output step 0 predicts (1 for next-frame outputs, "
        f"{frames} for a forecast that follows every input)"
    )


def check_causal(
    model: keras.Model,
    *,
    frames: int | None = None,
    frame_shape: Sequence[int] | None = None,
    target_offset: int | None = None,
    tolerance: float = 1e-5,
    seed: int = 0,
) -> CausalityReport:
    """Finds the output steps of a frame model that depend on an input frame at or after their target.

    One random sequence of frames uniform in [0, 1] is run through the model beside ``frames`` copies of it,
    copy ``s`` with input frame ``s`` replaced by its negative ``1 - x`` (every pixel moves, on average by 0.5).
    Output step ``t`` depends on input frame ``s`` when replacing that frame changes it by more than
    ``tolerance`` times the largest output value. A changed frame this large survives the rounding of bfloat16
    layers, whose 8 significant bits would hide a small nudge. The model runs as it predicts, in inference mode
    (``training=False``: BatchNormalization applies its moving statistics value by value, Dropout is off), and
    all copies share one batch, so a statistic taken over the batch would treat them alike.

    Where an output does not read a frame, a CPU computes it from exactly the same numbers (measured with
    TensorFlow: the change is exactly 0). The tolerance absorbs the float rounding that GPU convolution
    algorithms (FFT, Winograd) and non-deterministic reductions can spread between positions.

    Args:
        model: any Keras model with one input ``(batch, time, height, width, channels)`` and frames as output:
            ``(batch, time, height, width, channels)`` (output step ``t`` predicts input frame ``t + 1``),
            ``(batch, steps, height, width, channels)`` of frames that follow the inputs (pass
            ``target_offset``; known for the package's encoder-forecasters) or ``(batch, height, width,
            channels)`` (one frame, after the inputs).
        frames: frames of the probe sequence (>= 2); the model's own count if it fixes one, else 6.
        frame_shape: ``(height, width, channels)`` of the frames, needed only where the model's input shape
            leaves one of them undefined.
        target_offset: output step ``t`` predicts input frame ``t + target_offset`` (>= 1); None: 1 for
            outputs with as many steps as inputs, the number of input frames for the package's
            encoder-forecasters and for one-frame outputs, whose every output follows every input (causal by
            construction; the check then shows what each output reads).
        tolerance: relative size of the smallest change counted as a dependence (0: any change).
        seed: seed of the random frames.

    Returns:
        A :class:`CausalityReport`; ``report.causal`` is the verdict, ``report.leaks`` the leaking
        ``(output step, input frame)`` pairs, ``print(report)`` shows both and the dependence table.

    Raises:
        ValueError: a model without one 5-D input or without frames as output, sizes that contradict the model's
            input shape, bad arguments, or a model whose outputs do not change whatever frame is replaced
            (dead units: the check cannot see anything).
    """
    time, height, width, channels = _input_size(model, frames, frame_shape)
    if target_offset is not None:
        target_offset = check_integer(target_offset, "target_offset")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a number in [0, 1), got {tolerance!r}")

    sequence = np.random.default_rng(seed).random((time, height, width, channels), dtype=np.float32)
    batch = np.repeat(sequence[None], time + 1, axis=0)  # item 0 unchanged, item s + 1 with frame s replaced
    for frame in range(time):
        batch[frame + 1, frame] = 1.0 - batch[frame + 1, frame]
    outputs = keras.ops.convert_to_numpy(model(batch, training=False)).astype(np.float64)

    if outputs.ndim == 4 and outputs.shape[0] == time + 1:  # one predicted frame: one output step
        outputs = outputs[:, None]
        target_offset = target_offset or time
    if outputs.ndim != 5 or outputs.shape[0] != time + 1:
        raise ValueError(
            f"expected model {model.name!r} to output frames {FRAMES_LAYOUT} or one frame (batch, height, "
            f"width, channels), got output shape {outputs.shape} for input shape {batch.shape}"
        )
    if target_offset is None:
        target_offset = _default_target_offset(model, time, outputs)

    steps = outputs.shape[1]
    difference = np.abs(outputs[1:] - outputs[:1]).reshape(time, steps, -1)
    changes = difference.max(axis=-1).T  # (output steps, input frames)
    report = CausalityReport(
        model_name=model.name,
        changes=changes,
        scale=float(np.abs(outputs[0]).max()),
        tolerance=float(tolerance),
        target_offset=target_offset,
    )
    if not report.dependence.any():
        raise ValueError(
            f"no output of model {model.name!r} changed by more than {report.threshold:.3g} when an input frame "
            f"was replaced: the check cannot tell whether it is causal (dead units? try another seed)"
        )
    return report
