"""Training: ``model.fit`` with the official callbacks plus checkpoints, resumption and stopping rules.

Files written under ``out_dir``:

- ``best.keras``: the model at its best monitored loss, replaced atomically (never half written), with
  ``best.json`` beside it recording the epoch and value so that a resumed run keeps comparing against it.
- ``backup/``: Keras ``BackupAndRestore`` state (weights, optimizer, epoch). A run that stops early (killed,
  interrupted) resumes from its last finished epoch when the same call is made again; the folder is removed
  when training ends normally. It is written after every other output of its epoch, so a kill can make a
  resumed run repeat an epoch, never skip one. A damaged backup falls back to its previous copy, or is set
  aside as ``backup.damaged-N`` (training then starts again).
- ``resume.json``: the settings of the run in progress (epochs, batch size, seed, batches per epoch, ...); a
  resumed call with other settings is refused. Removed when training ends.
- ``history.csv``: one row per epoch, kept across a resumed run (rows of repeated epochs are replaced).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from keras_convlstm.checks import check_integer, validate_frames
from keras_convlstm.data import ArrayDataset, SequenceDataset
from keras_convlstm.distribute import (
    CopyWeights,
    Distribution,
    replica_count,
    replicate,
    steps_without_empty_replicas,
)
from keras_convlstm.files import write_json, write_text
from keras_convlstm.precision import describe_hardware
from keras_convlstm.rollout import FrameStepper

TrainData = keras.utils.PyDataset | np.ndarray | tuple[np.ndarray, np.ndarray]


class LossThresholdStop(keras.callbacks.Callback):
    """Stops training at the end of the first epoch whose ``monitor`` value is below ``threshold``.

    Args:
        threshold: the value to get under, for example 0.001 for the moving-square demo's MSE.
        monitor: the log entry to watch ("loss", "val_loss", ...).
    """

    def __init__(self, threshold: float, monitor: str = "loss"):
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.threshold = threshold
        self.monitor = monitor
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.threshold:
            self.stopped_epoch = epoch
            self.model.stop_training = True


class TimeLimit(keras.callbacks.Callback):
    """Stops training after the first batch that ends ``seconds`` after ``fit`` started.

    The epoch in progress is cut short and then closed as usual (validation, checkpoints, logs).

    Args:
        seconds: the wall-clock budget, counted from the start of ``fit``.
    """

    def __init__(self, seconds: float):
        super().__init__()
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds!r}")
        self.seconds = seconds
        self.started = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if time.perf_counter() - self.started >= self.seconds:
            self.model.stop_training = True


class BestModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's ``ModelCheckpoint(save_best_only=True, mode="min")`` made atomic, resumable and finite-only.

    Keras decides, as usual, whether ``monitor`` improved and saves the model, but into a hidden staging file
    beside ``path`` that is then renamed into place, so ``path`` always holds a complete model. The best value and
    its epoch go to ``path`` with suffix ``.json``; a resumed run reads them back (as Keras's
    ``initial_value_threshold``), so an epoch after resumption only replaces the checkpoint when it is truly better.
    Epochs whose value is missing or not finite are skipped (Keras would save on a missing value).

    Args:
        path: destination ``.keras`` file.
        monitor: the log entry to minimise.
        resume: continue from the best value recorded beside ``path`` (False: start from infinity).
        saved_model: the model to save (None: the model being fitted), for example the frame model inside a
            :class:`ScheduledSamplingModel`, or the plain model whose replica is fitted under a distribution.
            It is what :attr:`model` returns to Keras's saving code.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        monitor: str = "val_loss",
        *,
        resume: bool = False,
        saved_model: keras.Model | None = None,
    ):
        self.path = Path(path)
        if self.path.suffix != ".keras":
            raise ValueError(f"checkpoint path must end in .keras, got {str(self.path)!r}")
        self.record_path = self.path.with_suffix(".json")
        best = math.inf
        if resume and self.record_path.exists() and self.path.exists():
            best = json.loads(self.record_path.read_text())["value"]
        self.staging_path = self.path.with_name(f".{self.path.name}.tmp-checkpoint.keras")
        self.staging_path.unlink(missing_ok=True)  # left by a run killed while saving
        super().__init__(
            self.staging_path, monitor=monitor, save_best_only=True, mode="min", initial_value_threshold=best
        )
        self.saved_model = saved_model

    @property
    def model(self) -> keras.Model:
        """The model Keras's saving code writes: ``saved_model`` when given, else the model being fitted."""
        fitted = super().model  # on JAX, reading it also syncs the fitted state into the shared variables
        return fitted if self.saved_model is None else self.saved_model

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        try:
            super().on_epoch_end(epoch, logs)
            if self.staging_path.exists():
                os.replace(self.staging_path, self.path)
                write_json(self.record_path, {"monitor": self.monitor, "value": float(self.best), "epoch": epoch + 1})
        finally:
            self.staging_path.unlink(missing_ok=True)


class EpochSync(keras.callbacks.Callback):
    """Tells datasets which epoch starts, so their shuffling and generated data depend on it alone.

    A resumed run then reads exactly the batches the interrupted run would have read.
    """

    def __init__(self, datasets: Sequence[object]):
        super().__init__()
        self.datasets = [dataset for dataset in datasets if hasattr(dataset, "set_epoch")]

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(epoch)


@dataclasses.dataclass(frozen=True)
class ScheduledSampling:
    """Trains a frame model on its own predictions, as it will be used in a rollout.

    After ``context`` true input frames, each later input frame of a training sequence is replaced, with
    probability ``p``, by the model's prediction of it from the step before (Bengio et al. 2015, "Scheduled
    Sampling"; PredRNN trains the same way). ``p`` grows linearly with the optimizer step from 0 at ``start_step``
    to 1 at ``ramp_end_step``, then stays 1: the model then trains exactly as it is evaluated, 10 true frames in
    and its own predictions after. Gradients flow through the fed-back predictions. Validation always feeds back
    (``p = 1``), so ``val_loss`` measures the rollout. :func:`train` fits a :class:`ScheduledSamplingModel`, whose
    draws at each step are seeded by ``seed`` and the step, so a resumed run draws the same inputs.

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
    """The model that :func:`train` fits for scheduled sampling: ``model`` unrolled on its own predictions.

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
        _check_scheduled_sampling(model, schedule)
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


def as_dataset(data: TrainData, batch_size: int, *, shuffle: bool, seed: int) -> keras.utils.PyDataset:
    """Wraps training or validation data in a seeded, epoch-aware ``PyDataset``.

    Args:
        data: a ``PyDataset`` (used as is), sequences ``(batch, time, height, width, channels)`` (uint8 or float
            in [0, 1]; trained on shifted frames), or an ``(inputs, targets)`` pair of arrays.
        batch_size: sequences per batch (ignored for a ``PyDataset``).
        shuffle: shuffle the order every epoch.
        seed: the shuffling seed.
    """
    if isinstance(data, keras.utils.PyDataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        for name, part in zip(("inputs", "targets"), data, strict=True):
            if np.ndim(part) == 5:  # frames get the checks that files get: finite, [0, 1] or uint8
                validate_frames(np.asarray(part), name=name)
        return ArrayDataset(data[0], data[1], batch_size=batch_size, shuffle=shuffle, seed=seed)
    if isinstance(data, np.ndarray):
        return SequenceDataset(data, batch_size=batch_size, shuffle=shuffle, seed=seed)
    raise TypeError(
        "expected a keras.utils.PyDataset, an array of sequences (batch, time, height, width, channels) or an "
        f"(inputs, targets) tuple of arrays, got {type(data).__name__}"
    )


def train(
    model: keras.Model,
    train_data: TrainData,
    val_data: TrainData | None = None,
    *,
    epochs: int = 20,
    batch_size: int = 5,
    out_dir: str | os.PathLike = "runs/train",
    seed: int = 0,
    steps_per_epoch: int | None = None,
    patience: int = 10,
    lr_patience: int = 5,
    loss_threshold: float | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    scheduled_sampling: ScheduledSampling | None = None,
    distribution: Distribution | None = None,
    synchronized_batchnorm: bool = False,
    verbose: int | str = 2,
) -> keras.callbacks.History:
    """Trains ``model`` with the official recipe's callbacks; calling it again after an interruption resumes.

    The official example's EarlyStopping (patience 10) and ReduceLROnPlateau (patience 5) watch ``val_loss``
    (``loss`` without validation data). Added: an atomic best-model checkpoint, BackupAndRestore, TerminateOnNaN,
    an optional loss-threshold stop and a CSV history. Shuffling and generated data are functions of ``seed`` and
    the epoch; seed model initialisation with ``keras.utils.set_random_seed(seed)`` before building the model.

    Args:
        model: a compiled model.
        train_data: see :func:`as_dataset`.
        val_data: same forms, or None.
        epochs: total number of epochs (a resumed run runs only the ones left).
        batch_size: sequences per batch for array data.
        out_dir: folder for ``best.keras``, ``backup/`` and ``history.csv``.
        seed: shuffling seed.
        steps_per_epoch: batches per epoch (None: the whole dataset).
        patience: EarlyStopping patience in epochs.
        lr_patience: ReduceLROnPlateau patience in epochs.
        loss_threshold: stop once the epoch's training loss is below it (None: never).
        callbacks: extra Keras callbacks.
        scheduled_sampling: train a sequence-to-sequence model on its own predictions (see
            :class:`ScheduledSampling`): ``fit`` then runs on a :class:`ScheduledSamplingModel` around ``model``,
            which trains ``model``'s weights and leaves ``model`` itself unchanged; None trains with teacher
            forcing, as the official example does.
        distribution: data-parallel training, from :func:`keras_convlstm.distribute.data_parallel` (a
            ``tf.distribute`` strategy on TensorFlow, a ``keras.distribution.DataParallel`` on JAX). A replica
            of ``model`` is created and fitted under it; ``model`` receives its weights after every epoch, and
            the checkpoints are plain models. ``batch_size`` stays the global batch, split across devices.
        synchronized_batchnorm: under a distribution, all-reduce BatchNormalization statistics across replicas
            (TensorFlow only); False normalises each replica's share of the batch with its own statistics.
        verbose: ``model.fit`` verbosity (2: one line per epoch); when non-zero, the compute precision of a
            :class:`~keras_convlstm.models.ConvLSTMModel` and the hardware it was chosen for are printed first.

    Returns:
        The Keras ``History`` of the epochs run in this call.
    """
    epochs, batch_size = check_integer(epochs, "epochs"), check_integer(batch_size, "batch_size")
    out_dir = Path(out_dir)
    backup_dir = out_dir / "backup"
    history_csv = out_dir / "history.csv"
    resuming = backup_dir.exists() and _usable_backup(backup_dir, verbose=bool(verbose))
    if scheduled_sampling is not None:
        _check_scheduled_sampling(model, scheduled_sampling)
    if resuming:
        _keep_history_before(history_csv, _completed_epochs(backup_dir))

    train_set = as_dataset(train_data, batch_size, shuffle=True, seed=seed)
    val_set = None if val_data is None else as_dataset(val_data, batch_size, shuffle=False, seed=seed)
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "steps_per_epoch": steps_per_epoch,
        "train_batches": len(train_set),
        "val_batches": None if val_set is None else len(val_set),
        "scheduled_sampling": None if scheduled_sampling is None else dataclasses.asdict(scheduled_sampling),
        "replicas": 1 if distribution is None else replica_count(distribution),
        "synchronized_batchnorm": synchronized_batchnorm,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_same_run(out_dir / RESUME_SETTINGS, settings, resuming)
    monitor = "loss" if val_set is None else "val_loss"
    scope = contextlib.nullcontext if distribution is None else distribution.scope
    trained, validation_steps = model, None  # trained: the frame model whose weights fit updates
    if distribution is not None:
        trained = replicate(model, distribution, synchronized_batchnorm=synchronized_batchnorm)
        replicas = replica_count(distribution)
        steps_per_epoch = steps_per_epoch or steps_without_empty_replicas(train_set, replicas, "training data")
        validation_steps = (
            None if val_set is None else steps_without_empty_replicas(val_set, replicas, "validation data")
        )
    fitted = trained
    if scheduled_sampling is not None:
        with scope():
            fitted = ScheduledSamplingModel(trained, scheduled_sampling)
            fitted.compile(optimizer=trained.optimizer, loss=trained.loss, jit_compile=trained.jit_compile)
    all_callbacks = [
        EpochSync([train_set] if val_set is None else [train_set, val_set]),
        *([] if trained is model else [CopyWeights(trained, model)]),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=lr_patience),
        BestModelCheckpoint(out_dir / "best.keras", monitor=monitor, resume=resuming, saved_model=model),
        keras.callbacks.CSVLogger(str(history_csv), append=resuming),
    ]
    if loss_threshold is not None:
        all_callbacks.append(LossThresholdStop(loss_threshold))
    # The backup of an epoch is written after every output of that epoch (checkpoint, history row): a kill
    # before it makes a resumed run repeat the whole epoch, never skip one. The caller's callbacks run after it.
    all_callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True))
    all_callbacks += list(callbacks)
    if verbose and hasattr(model, "config"):
        print(f"training {model.name} in {model.config.precision} on {describe_hardware()}", flush=True)
    with scope():
        history = fitted.fit(
            train_set,
            validation_data=val_set,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            shuffle=False,  # the datasets shuffle as a function of (seed, epoch); Keras's own order is unseeded
            callbacks=all_callbacks,
            verbose=verbose,
        )
    if not backup_dir.exists():  # finished: nothing left to resume
        (out_dir / RESUME_SETTINGS).unlink(missing_ok=True)
    return history


RESUME_SETTINGS = "resume.json"
BACKUP_WEIGHTS = "latest.weights.h5"
BACKUP_METADATA = "training_metadata.json"


def _backup_problem(weights: Path, metadata: Path) -> str | None:
    """Why the weights and epoch record of a ``BackupAndRestore`` folder cannot be read back, or None."""
    import h5py

    try:
        with h5py.File(weights, "r"):
            pass
        epoch = json.loads(metadata.read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    if not isinstance(epoch, int) or epoch < 0:
        return f"{metadata.name} records epoch {epoch!r}, expected a whole number >= 0"
    return None


def _usable_backup(backup_dir: Path, *, verbose: bool) -> bool:
    """Checks an interrupted run's backup before Keras reads it; falls back to its previous copy when needed.

    A backup whose latest files are damaged (a full disk, a size limit, a kill mid-write) but whose previous
    copy (``*.bkp``, kept by ``double_checkpoint``) is whole is restored from that copy. When neither can be
    read, the folder is set aside as ``backup.damaged-N`` and training starts again from its first epoch.

    Returns:
        Whether training resumes from ``backup_dir``.
    """
    weights, metadata = backup_dir / BACKUP_WEIGHTS, backup_dir / BACKUP_METADATA
    problem = _backup_problem(weights, metadata)
    if problem is None:
        return True
    previous_weights, previous_metadata = Path(f"{weights}.bkp"), Path(f"{metadata}.bkp")
    if _backup_problem(previous_weights, previous_metadata) is None:
        os.replace(previous_weights, weights)
        os.replace(previous_metadata, metadata)
        if verbose:
            print(f"the last backup in {backup_dir} is damaged ({problem}); resuming from the one before it")
        return True
    number = 1
    while (aside := backup_dir.with_name(f"{backup_dir.name}.damaged-{number}")).exists():
        number += 1
    os.replace(backup_dir, aside)
    if verbose:
        print(f"the backup in {backup_dir} is damaged ({problem}); set aside as {aside}, starting from epoch 1")
    return False


def _check_same_run(path: Path, settings: dict, resuming: bool) -> None:
    """Refuses to resume an interrupted run with other settings; records the settings of a new run."""
    if resuming and path.exists():
        saved = json.loads(path.read_text())
        changed = {key: (saved.get(key), value) for key, value in settings.items() if saved.get(key) != value}
        if changed:
            described = ", ".join(f"{key} {was!r} -> {now!r}" for key, (was, now) in changed.items())
            raise ValueError(
                f"{path.parent} holds an interrupted run with other settings ({described}); call train with the "
                "same settings to resume it, or choose another out_dir"
            )
    write_json(path, settings)


def _completed_epochs(backup_dir: Path) -> int:
    return json.loads((backup_dir / BACKUP_METADATA).read_text())["epoch"]


def _keep_history_before(history_csv: Path, epochs: int) -> None:
    """Drops the rows of ``history.csv`` for epochs ``>= epochs``: those a resumed run is about to repeat."""
    if not history_csv.exists():
        return
    lines = history_csv.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < epochs]
    if kept != lines:
        write_text(history_csv, "".join(kept))


def _check_scheduled_sampling(model: keras.Model, scheduled_sampling: ScheduledSampling) -> None:
    if not isinstance(scheduled_sampling, ScheduledSampling):
        raise TypeError(f"scheduled_sampling must be a ScheduledSampling, got {type(scheduled_sampling).__name__}")
    kind = getattr(getattr(model, "config", None), "kind", None)
    if kind != "seq2seq":
        raise ValueError(
            "scheduled sampling trains a sequence-to-sequence ConvLSTMModel (from build_model) on its own "
            f"predictions; got a {kind or type(model).__name__!r} model"
        )
