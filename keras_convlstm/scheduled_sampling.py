"""Scheduled sampling: training a sequence-to-sequence frame model on its own predictions, as a rollout uses it.

:class:`ScheduledSampling` holds the schedule (the true context frames, and the probability of feeding a
prediction back, which grows with the optimizer step); :class:`ScheduledSamplingModel` is the wrapper model that
:func:`keras_convlstm.training.train` fits in place of the frame model: it unrolls the frame model over
``(batch, time, height, width, channels)`` inputs, reading its own prediction wherever the schedule draws it, and
trains the frame model's weights. :func:`check_scheduled_sampling` and :func:`check_context` are the checks
``train`` runs before it writes anything.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_convlstm.checks import check_integer
from keras_convlstm.rollout import FrameStepper


@dataclasses.dataclass(frozen=True)
class ScheduledSampling:
    """Trains a frame model on its own predictions, as it will be used in a rollout.

    After ``context`` true input frames, each later input frame of a training sequence is replaced, with
    probability ``p``, by the model's prediction of it from the step before (Bengio et al. 2015, "Scheduled
    Sampling"; PredRNN trains the same way). ``p`` grows linearly with the optimizer step from 0 at ``start_step``
    to 1 at ``ramp_end_step``, then stays 1: the model then trains exactly as it is evaluated, 10 true frames in
    and its own predictions after. Gradients flow through the fed-back predictions. Validation always feeds back
    (``p = 1``), so ``val_loss`` measures the rollout. :func:`~keras_convlstm.training.train` fits a
    :class:`ScheduledSamplingModel`, whose draws at each step are seeded by ``seed`` and the step, so a resumed run
    draws the same inputs.

    Args:
        context: true frames read before feeding back starts.
        start_step: optimizer step where ``p`` starts to grow from 0.
        ramp_end_step: optimizer step where ``p`` reaches 1 (equal to ``start_step``: 1 from the start).
        seed: seed of the per-sequence, per-frame draws.
    """

    context: int = 10
    start_step: int = 0
    ramp_end_step: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_integer(self.context, "context")
        if not (isinstance(self.start_step, int) and isinstance(self.ramp_end_step, int)):
            raise ValueError("start_step and ramp_end_step must be integers")
        if not 0 <= self.start_step <= self.ramp_end_step:
            raise ValueError(
                f"expected 0 <= start_step <= ramp_end_step, got start_step={self.start_step}, "
                f"ramp_end_step={self.ramp_end_step}"
            )

    def probability(self, step):
        """The feed-back probability ``p`` at optimizer step ``step`` (an integer or a scalar tensor): float32."""
        step = keras.ops.cast(step, "float32")
        if self.ramp_end_step == self.start_step:
            return keras.ops.where(step >= self.start_step, 1.0, 0.0)
        return keras.ops.clip((step - self.start_step) / (self.ramp_end_step - self.start_step), 0.0, 1.0)

    def feed_back_mask(self, batch_size, time: int, step=None, seed: int | keras.random.SeedGenerator | None = None):
        """``(batch, time)`` booleans, true where input ``t`` is the model's own prediction.

        Args:
            batch_size: sequences in the batch (an integer or a scalar tensor).
            time: input frames per sequence.
            step: the optimizer step, which sets ``p``; None feeds back every frame after the context
                (validation, rollout) and draws nothing.
            seed: seed of the uniform draws, as ``keras.random`` takes it (None: ``self.seed``).
        """
        after_context = keras.ops.expand_dims(keras.ops.arange(time) >= self.context, 0)
        if step is None:
            return keras.ops.broadcast_to(after_context, (batch_size, time))
        draws = keras.random.uniform((batch_size, time), seed=self.seed if seed is None else seed)
        return keras.ops.logical_and(after_context, draws < self.probability(step))


class ScheduledSamplingModel(keras.Model):
    """The model that ``training.train`` fits for scheduled sampling: ``model`` unrolled on its own predictions.

    Its ``call`` runs the shared ``model`` frame by frame (:meth:`FrameStepper.unroll`) and, in training, reads
    the model's own prediction instead of the true frame wherever ``schedule`` draws it; in inference (validation)
    it feeds back every frame after the context. It has no weights of its own besides a step counter: training it
    trains ``model``'s weights with ``model``'s optimizer, and ``model`` itself stays a plain Keras model that
    saves and reloads as usual. The counter (a non-trainable variable, so ``BackupAndRestore`` saves and restores
    it) starts at the optimizer's step, sets ``p`` and seeds each step's draws: ``keras.random.uniform`` seeded
    with ``(schedule.seed, step)``, so a resumed run draws what the interrupted run would have drawn.

    Args:
        model: a compiled sequence-to-sequence model from ``build_model``.
        schedule: the :class:`ScheduledSampling` settings.
        **kwargs: ``keras.Model`` arguments (``name``).

    Input shape:
        ``(batch, time, height, width, channels)`` float32 frames in [0, 1], ``time`` fixed.

    Output shape:
        float32 ``(batch, time, height, width, channels)``: output ``t`` predicts frame ``t + 1``.
    """

    def __init__(self, model: keras.Model, schedule: ScheduledSampling, **kwargs):
        check_scheduled_sampling(model, schedule)
        kwargs.setdefault("name", f"{model.name}_on_its_predictions")
        super().__init__(**kwargs)
        self.frame_model = model
        self.schedule = schedule
        self.stepper = FrameStepper(model)
        first_step = int(model.optimizer.iterations)
        self.training_step = self.add_weight(
            shape=(), dtype="int32", initializer=keras.initializers.Constant(first_step), trainable=False, name="step"
        )
        self.seed_generator = keras.random.SeedGenerator(schedule.seed)
        self.built = True  # every weight exists: the frame model's and the counter

    def call(self, frames, training=None):
        frames = keras.ops.convert_to_tensor(frames, "float32")
        batch_size, time = keras.ops.shape(frames)[0], frames.shape[1]
        if not training:
            feed_back = self.schedule.feed_back_mask(batch_size, time)
        else:
            state = self.seed_generator.state
            state.assign(keras.ops.cast(keras.ops.stack([self.schedule.seed, self.training_step.value]), state.dtype))
            feed_back = self.schedule.feed_back_mask(
                batch_size, time, self.training_step.value, seed=self.seed_generator
            )
            self.training_step.assign(self.training_step.value + 1)
        return self.stepper.unroll(frames, feed_back, training=bool(training))


def check_scheduled_sampling(model: keras.Model, scheduled_sampling: object) -> None:
    """Refuses a schedule that is not a :class:`ScheduledSampling`, or a model that is not sequence-to-sequence.

    Args:
        model: the model to train on its own predictions: a ``ConvLSTMModel`` whose ``config.kind`` is
            ``"seq2seq"`` (from ``build_model``).
        scheduled_sampling: the schedule given for it.

    Raises:
        TypeError: ``scheduled_sampling`` is not a :class:`ScheduledSampling`.
        ValueError: ``model`` does not predict a frame at every step.
    """
    if not isinstance(scheduled_sampling, ScheduledSampling):
        raise TypeError(f"scheduled_sampling must be a ScheduledSampling, got {type(scheduled_sampling).__name__}")
    kind = getattr(getattr(model, "config", None), "kind", None)
    if kind != "seq2seq":
        raise ValueError(
            "scheduled sampling trains a sequence-to-sequence ConvLSTMModel (from build_model) on its own "
            f"predictions; got a {kind or type(model).__name__!r} model"
        )


def check_context(schedule: ScheduledSampling, dataset: keras.utils.PyDataset, name: str) -> None:
    """Refuses a scheduled-sampling context that leaves no input frame of ``dataset`` to feed back.

    Args:
        schedule: the scheduled-sampling settings.
        dataset: batches of ``(inputs, targets)``, inputs of shape ``(batch, time, height, width, channels)``;
            its first batch is read.
        name: what the dataset is, for the error ("training", "validation").

    Raises:
        ValueError: ``schedule.context`` is not below the inputs' ``time``.
    """
    frames = np.shape(dataset[0][0])[1]
    if schedule.context >= frames:
        raise ValueError(
            f"scheduled sampling feeds back the input frames after the first {schedule.context} (its context), but "
            f"the {name} inputs have {frames} frames (a sequence's last frame is only a target): nothing would be "
            f"fed back; choose a context below {frames}"
        )
