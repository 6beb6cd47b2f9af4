"""Training: ``model.fit`` with the official callbacks plus checkpoints, resumption and stopping rules.

Files written under ``out_dir``, a run folder (:mod:`keras_convlstm.run_folder`: one writer at a time, a run
already there is resumed, replaced or refused as ``existing_run`` says):

- ``run.json``: the settings of the run (epochs, batch size, seed, batches per epoch, data fingerprints, ... and
  the caller's own); a resumed call with other settings is refused, naming each one that differs.
- ``best.keras``: the model at its best monitored loss, replaced atomically (never half written), with
  ``best.json`` beside it recording the epoch and value so that a resumed run keeps comparing against it.
- ``backup/``: Keras ``BackupAndRestore`` state (weights, optimizer, epoch). A run that stops early (killed,
  interrupted) resumes from its last finished epoch when the same call is made again; the folder is removed
  when training ends normally. It is written after every other output of its epoch, so a kill can make a
  resumed run repeat an epoch, never skip one. A damaged backup falls back to its previous copy, or is set
  aside as ``backup.damaged-N`` and training starts again (:mod:`keras_convlstm.backups`).
- ``history.csv``: one row per epoch, kept across a resumed run (rows of repeated epochs are replaced). A resumed
  run also reads it to give EarlyStopping and ReduceLROnPlateau the counters they had when the run stopped.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import signal
import threading
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from keras_convlstm.backups import completed_epochs, usable_backup
from keras_convlstm.checks import check_integer
from keras_convlstm.data import ArrayDataset, SequenceDataset
from keras_convlstm.distribute import (
    CopyWeights,
    Distribution,
    replica_count,
    replicate,
    steps_without_empty_replicas,
)
from keras_convlstm.files import write_json, write_text
from keras_convlstm.frames import validate_frames
from keras_convlstm.precision import describe_hardware
from keras_convlstm.run_folder import RunFolder, array_fingerprint, claim
from keras_convlstm.scheduled_sampling import (
    ScheduledSampling,
    ScheduledSamplingModel,
    check_context,
    check_scheduled_sampling,
)

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


class InterruptLatch(keras.callbacks.Callback):
    """Stops training between two batches on Ctrl-C (or another signal), at once on the second one.

    Python's own handler raises ``KeyboardInterrupt`` wherever the main thread happens to be: inside a library's
    broad ``except`` the exception is lost and training goes on; inside TensorFlow's input pipeline or a finalizer
    the unwinding can leave native state half torn down, and the process may then crash instead of exiting. While
    :meth:`installed` is active the latch's handler only records the first signal; the next batch end, validation
    batch end or epoch start raises it, where Keras expects a callback to raise. A second signal raises at once,
    for a batch that never ends. A signal recorded after the last of those points is raised when the block exits.

    Args:
        interruptions: the exception each handled signal raises, e.g.
            ``{signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}``.
    """

    def __init__(self, interruptions: Mapping[int, type[KeyboardInterrupt]]):
        super().__init__()
        self.interruptions = dict(interruptions)
        self.pending: type[KeyboardInterrupt] | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[InterruptLatch]:
        """Handles the signals inside the ``with`` block, in the main thread only.

        A signal ignored on entry stays ignored: a shell starts a background job (``command &``) with SIGINT
        ignored, so that Ctrl-C in the terminal leaves it running.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        handled = [signum for signum in self.interruptions if signal.getsignal(signum) is not signal.SIG_IGN]
        previous = {signum: signal.signal(signum, self._handle) for signum in handled}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self._raise_pending(0)

    def _handle(self, signum: int, frame: object) -> None:
        if self.pending is not None:
            raise self.pending
        self.pending = self.interruptions[signum]

    def _raise_pending(self, step: int, logs: dict | None = None) -> None:
        if self.pending is not None:
            raise self.pending

    on_train_batch_end = on_test_batch_end = on_epoch_begin = _raise_pending


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
            :class:`~keras_convlstm.scheduled_sampling.ScheduledSamplingModel`, or the plain model whose replica is
            fitted under a distribution. It is what :attr:`model` returns to Keras's saving code.
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


class RestorePlateauCounters(keras.callbacks.Callback):
    """Gives the ``EarlyStopping`` and ``ReduceLROnPlateau`` of a resumed run the counters of the interrupted one.

    ``BackupAndRestore`` restores weights, optimizer and epoch, but those two callbacks start every ``fit`` with
    fresh counters (epochs without improvement, best value, cooldown), so a run resumed near a plateau would stop
    or lower its learning rate later than the run it continues. At the start of ``fit`` (after their own reset,
    so place it after them) this replays each finished epoch's logged values through them. They see a stand-in
    model whose learning rate is the one logged for that epoch: the real optimizer, restored by the backup, is
    left alone.

    Args:
        callbacks: the ``EarlyStopping`` and ``ReduceLROnPlateau`` instances of the run.
        epochs: the logs of the finished epochs, in order: rows of the run's ``history.csv`` as numbers
            (``{"epoch": 0.0, "learning_rate": 0.001, "loss": ..., "val_loss": ...}``).
    """

    def __init__(self, callbacks: Sequence[keras.callbacks.Callback], epochs: Sequence[dict[str, float]]):
        super().__init__()
        self.callbacks = list(callbacks)
        self.epochs = list(epochs)

    def on_train_begin(self, logs: dict | None = None) -> None:
        for callback in self.callbacks:
            model = callback.model
            for row in self.epochs:
                logs = {name: value for name, value in row.items() if name != "epoch"}
                stand_in = _LoggedModel(logs.get("learning_rate", math.nan))
                callback.set_model(stand_in)
                callback.on_epoch_end(int(row["epoch"]), logs)
            callback.set_model(model)


class _LoggedModel:
    """What EarlyStopping and ReduceLROnPlateau read of a model, set to a logged epoch's values."""

    def __init__(self, learning_rate: float):
        self.optimizer = types.SimpleNamespace(learning_rate=learning_rate)
        self.stop_training = False


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
    out_dir: str | os.PathLike | RunFolder = "runs/train",
    existing_run: str | None = None,
    settings: Mapping[str, object] | None = None,
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
    A resumed run ends as the uninterrupted run would have: same batches, same draws, and the stopping and
    learning-rate counters restored from ``history.csv``. Every check runs before the first file is written.

    Args:
        model: a compiled model.
        train_data: see :func:`as_dataset`.
        val_data: same forms, or None.
        epochs: total number of epochs (a resumed run runs only the ones left).
        batch_size: sequences per batch for array data.
        out_dir: the run folder (``run.json``, ``best.keras``, ``backup/``, ``history.csv``), locked while this
            call writes it; or a :class:`~keras_convlstm.run_folder.RunFolder` that the caller already holds
            (from :func:`~keras_convlstm.run_folder.claim`), to write more files under the same lock.
        existing_run: what to do with a run already in ``out_dir`` (None: ``"auto"``, which resumes an
            interrupted run and replaces a finished one; ``"refuse"``, ``"resume"``, ``"overwrite"``: see
            :mod:`keras_convlstm.run_folder`). A held ``RunFolder`` carries its own, so leave it None then.
        settings: the caller's own settings (JSON values, names other than train's), recorded in ``run.json``
            beside train's and compared when the run resumes: the command line records its preset and the
            fingerprint of its data file there.
        seed: shuffling seed.
        steps_per_epoch: batches per epoch, at most the batches of ``train_data`` (None: all of them).
        patience: EarlyStopping patience in epochs.
        lr_patience: ReduceLROnPlateau patience in epochs.
        loss_threshold: stop once the epoch's training loss is below it (None: never).
        callbacks: extra Keras callbacks.
        scheduled_sampling: train a sequence-to-sequence model on its own predictions (see
            :class:`~keras_convlstm.scheduled_sampling.ScheduledSampling`; its ``context`` must be shorter than the
            input sequences): ``fit`` then runs on a
            :class:`~keras_convlstm.scheduled_sampling.ScheduledSamplingModel` around ``model``, which trains
            ``model``'s weights and leaves ``model`` itself unchanged; None trains with teacher forcing, as the
            official example does.
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

    Raises:
        ValueError: a bad argument, data or schedule that do not fit, or a resumed run with other settings.
        FileExistsError, FileNotFoundError, BlockingIOError: ``out_dir`` holds a run that ``existing_run``
            does not allow to touch, holds nothing to resume, or is being written by another process.
    """
    epochs, batch_size = check_integer(epochs, "epochs"), check_integer(batch_size, "batch_size")
    seed, patience = check_integer(seed, "seed", minimum=0), check_integer(patience, "patience", minimum=0)
    if steps_per_epoch is not None:
        check_integer(steps_per_epoch, "steps_per_epoch")
    if scheduled_sampling is not None:
        check_scheduled_sampling(model, scheduled_sampling)
    if isinstance(out_dir, RunFolder) and existing_run is not None:
        raise ValueError("existing_run must be None for a RunFolder: it was decided when the folder was claimed")

    train_set = as_dataset(train_data, batch_size, shuffle=True, seed=seed)
    val_set = None if val_data is None else as_dataset(val_data, batch_size, shuffle=False, seed=seed)
    if steps_per_epoch is not None and steps_per_epoch > len(train_set):
        raise ValueError(
            f"steps_per_epoch={steps_per_epoch} is more than the {len(train_set)} batches of the training data: "
            f"give at most {len(train_set)} (None: all of them)"
        )
    if scheduled_sampling is not None:
        for name, dataset in (("training", train_set), ("validation", val_set)):
            if dataset is not None:
                check_context(scheduled_sampling, dataset, name)
    own = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "steps_per_epoch": steps_per_epoch,
        "train_data": _describe_data(train_data),
        "val_data": None if val_data is None else _describe_data(val_data),
        "train_batches": len(train_set),
        "val_batches": None if val_set is None else len(val_set),
        "patience": patience,
        "lr_patience": lr_patience,
        "loss_threshold": loss_threshold,
        "scheduled_sampling": None if scheduled_sampling is None else dataclasses.asdict(scheduled_sampling),
        "replicas": 1 if distribution is None else replica_count(distribution),
        "synchronized_batchnorm": synchronized_batchnorm,
    }
    repeated = sorted(set(own) & set(settings or {}))
    if repeated:
        raise ValueError(f"settings must not repeat what train records itself, got {', '.join(repeated)}")
    record = {**(settings or {}), **own}  # the caller's first: its data come before what train derives from them
    validation_steps = None
    if distribution is not None:
        replicas = replica_count(distribution)
        steps_per_epoch = steps_per_epoch or steps_without_empty_replicas(train_set, replicas, "training data")
        validation_steps = (
            None if val_set is None else steps_without_empty_replicas(val_set, replicas, "validation data")
        )
    monitor = "loss" if val_set is None else "val_loss"
    scope = contextlib.nullcontext if distribution is None else distribution.scope
    trained = model  # the frame model whose weights fit updates
    if distribution is not None:
        trained = replicate(model, distribution, synchronized_batchnorm=synchronized_batchnorm)
    fitted = trained
    if scheduled_sampling is not None:
        with scope():
            fitted = ScheduledSamplingModel(trained, scheduled_sampling)
            fitted.compile(optimizer=trained.optimizer, loss=trained.loss, jit_compile=trained.jit_compile)

    # Every check has passed: the run folder is claimed (unless the caller holds it) and written from here on.
    held = contextlib.nullcontext(out_dir) if isinstance(out_dir, RunFolder) else claim(out_dir, existing_run or "auto")
    with held as run:
        resuming = run.start(record)
        backup_dir, history_csv = run.path / "backup", run.path / "history.csv"
        resuming = resuming and usable_backup(backup_dir, verbose=bool(verbose))
        finished_epochs = []
        if resuming:
            completed = completed_epochs(backup_dir)
            _keep_history_before(history_csv, completed)
            finished_epochs = _history_rows(history_csv, completed)
        plateau = [
            keras.callbacks.EarlyStopping(monitor=monitor, patience=patience),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=lr_patience),
        ]
        history_log = keras.callbacks.CSVLogger(str(history_csv), append=resuming)
        all_callbacks = [
            EpochSync([train_set] if val_set is None else [train_set, val_set]),
            *([] if trained is model else [CopyWeights(trained, model)]),
            keras.callbacks.TerminateOnNaN(),
            *plateau,
            *([RestorePlateauCounters(plateau, finished_epochs)] if finished_epochs else []),
            BestModelCheckpoint(run.path / "best.keras", monitor=monitor, resume=resuming, saved_model=model),
            history_log,
        ]
        if loss_threshold is not None:
            all_callbacks.append(LossThresholdStop(loss_threshold))
        # The backup of an epoch is written after every output of that epoch (checkpoint, history row): a kill
        # before it makes a resumed run repeat the whole epoch, never skip one. The caller's callbacks run after it.
        all_callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True))
        all_callbacks += list(callbacks)
        if verbose and hasattr(model, "config"):
            print(f"training {model.name} in {model.config.precision} on {describe_hardware()}", flush=True)
        try:
            with scope():
                return fitted.fit(
                    train_set,
                    validation_data=val_set,
                    epochs=epochs,
                    steps_per_epoch=steps_per_epoch,
                    validation_steps=validation_steps,
                    shuffle=False,  # the datasets shuffle by (seed, epoch); Keras's own order is unseeded
                    callbacks=all_callbacks,
                    verbose=verbose,
                )
        finally:  # fit stopped by an error or Ctrl-C does not end its callbacks: the history file stays open
            if history_log.csv_file is not None:
                history_log.csv_file.close()


def _history_rows(history_csv: Path, epochs: int) -> list[dict[str, float]]:
    """The logs of epochs ``0 .. epochs - 1`` in ``history.csv``, as numbers (values Keras left out are skipped).

    Raises:
        ValueError: the file lacks some of those epochs, so the stopping counters cannot be restored.
    """
    rows = []
    if history_csv.exists():
        with open(history_csv, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows.append({name: float(value) for name, value in row.items() if value not in ("NA", "", None)})
    logged = [int(row["epoch"]) for row in rows]
    if logged != list(range(epochs)):
        raise ValueError(
            f"{history_csv} logs epochs {logged}, expected 0 to {epochs - 1}: the run was backed up after {epochs} "
            "epochs, and without their logs the EarlyStopping and ReduceLROnPlateau counters cannot be restored; "
            "overwrite the run to train it again"
        )
    return rows


def _describe_data(data: TrainData) -> object:
    """What ``run.json`` records of training or validation data: array fingerprints, else the dataset's class."""
    if isinstance(data, np.ndarray):
        return array_fingerprint(data)
    if isinstance(data, tuple):
        return [array_fingerprint(np.asarray(part)) for part in data]
    return type(data).__name__


def _keep_history_before(history_csv: Path, epochs: int) -> None:
    """Drops the rows of ``history.csv`` for epochs ``>= epochs``: those a resumed run is about to repeat."""
    if not history_csv.exists():
        return
    lines = history_csv.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < epochs]
    if kept != lines:
        write_text(history_csv, "".join(kept))
