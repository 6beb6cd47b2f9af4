"""Data-parallel training with the engines that exist: ``tf.distribute`` on TensorFlow, ``keras.distribution`` on JAX.

:func:`data_parallel` returns the distribution that :func:`keras_convlstm.training.train` takes as
``distribution=``; ``train`` then creates the model's replica, its optimizer and its checkpoints under it, so the
caller never enters a strategy's scope. Each step splits the global batch across the devices, computes the
gradients on each share, and averages them before one update of the (mirrored) weights.

BatchNormalization: by default every device normalises with the statistics of its own share of the batch (Keras's
behaviour under ``tf.distribute`` and ``keras.distribution``); ``synchronized_batchnorm=True`` (TensorFlow only)
all-reduces them, which makes 2 replicas compute what 1 device computes on the whole batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import keras

from keras_convlstm.checks import check_integer

if TYPE_CHECKING:  # TensorFlow is imported only where it is the backend
    import tensorflow as tf

# What data_parallel returns and train takes: a TensorFlow strategy, or a Keras data-parallel distribution on JAX.
Distribution = Union["tf.distribute.Strategy", "keras.distribution.DataParallel"]


def use_local_devices(count: int) -> list[str]:
    """Makes ``count`` devices of this machine available to the backend and returns their names.

    The GPUs when there are at least ``count``; otherwise the CPU split into ``count`` logical devices, which shows
    and tests the data-parallel path but does not speed it up (they share the same cores).

    On TensorFlow call it before the first model is built (TensorFlow fixes its devices then). On JAX the CPU
    split is fixed when JAX starts: set ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` beforehand.

    Raises:
        ValueError: ``count`` is not a positive integer, or the backend has no data-parallel engine here.
        RuntimeError: it is too late to split the CPU, or there are not enough devices.
    """
    count = check_integer(count, "count")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if len(tf.config.list_physical_devices("GPU")) >= count:
            return [f"/gpu:{index}" for index in range(count)]
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = tf.config.get_logical_device_configuration(cpu)
        if logical is None or len(logical) != count:
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
            except RuntimeError as error:
                raise RuntimeError(
                    f"cannot split the CPU into {count} devices: TensorFlow has already set up its devices "
                    "(call use_local_devices or data_parallel before building any model)"
                ) from error
        return [f"/cpu:{index}" for index in range(count)]
    if backend == "jax":
        devices = keras.distribution.list_devices()
        if len(devices) < count:
            devices = keras.distribution.list_devices("cpu")
        if len(devices) < count:
            raise RuntimeError(
                f"JAX sees {len(devices)} device(s), {count} requested: start Python with "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={count} to split the CPU"
            )
        return list(devices[:count])
    raise ValueError(f"data-parallel training needs the TensorFlow or JAX backend, got {backend!r}")


def data_parallel(devices: int | None = None, *, multi_worker: bool = False) -> Distribution:
    """The distribution that :func:`~keras_convlstm.training.train` takes: data parallel over ``devices``.

    Args:
        devices: local devices to use (see :func:`use_local_devices`); None: every local device.
        multi_worker: several machines: on TensorFlow a ``MultiWorkerMirroredStrategy`` that reads the cluster
            from ``TF_CONFIG``; on JAX ``keras.distribution.initialize()`` (reads the coordinator from the
            environment) then ``DataParallel`` over every device of every process.

    Returns:
        A ``tf.distribute.Strategy`` on TensorFlow, a ``keras.distribution.DataParallel`` on JAX.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if multi_worker:
            return tf.distribute.MultiWorkerMirroredStrategy()
        names = None if devices is None else use_local_devices(devices)
        return tf.distribute.MirroredStrategy(names)
    if backend == "jax":
        if multi_worker:
            keras.distribution.initialize()
            return keras.distribution.DataParallel()
        names = keras.distribution.list_devices() if devices is None else use_local_devices(devices)
        return keras.distribution.DataParallel(devices=names)
    raise ValueError(f"data-parallel training needs the TensorFlow or JAX backend, got {backend!r}")


def replica_count(distribution: Distribution) -> int:
    """How many devices share each batch under ``distribution``."""
    if hasattr(distribution, "num_replicas_in_sync"):
        return int(distribution.num_replicas_in_sync)
    return int(distribution.device_mesh.devices.size)


def steps_without_empty_replicas(dataset: keras.utils.PyDataset, replicas: int, name: str = "data") -> int | None:
    """Batches of ``dataset`` to use so that every batch splits across the replicas.

    ``tf.distribute`` splits a batch unevenly but cannot leave a replica empty (recurrent layers fail on an empty
    batch); JAX shards a batch only in equal parts. A last batch that does not split is skipped (with shuffled
    data its sequences come back in other epochs' batches).

    Returns:
        ``len(dataset) - 1`` when the last batch does not split, else None (every batch).

    Raises:
        ValueError: the only batch does not split, or (JAX) the batch size is not a multiple of ``replicas``.
    """
    last = len(dataset[len(dataset) - 1][0])
    equal_parts = keras.backend.backend() == "jax"
    first = len(dataset[0][0])
    if equal_parts and len(dataset) > 1 and first % replicas:
        raise ValueError(f"the {name}'s batch of {first} must be a multiple of the {replicas} replicas on JAX")
    if (last % replicas == 0) if equal_parts else (last >= replicas):
        return None
    if len(dataset) == 1:
        needed = f"a multiple of {replicas}" if equal_parts else f"at least {replicas}"
        raise ValueError(
            f"the {name} has one batch of {last} sequence(s), which cannot be split across {replicas} replicas: "
            f"give it {needed} sequences, or use fewer devices"
        )
    return len(dataset) - 1


def replicate(model: keras.Model, distribution: Distribution, *, synchronized_batchnorm: bool = False) -> keras.Model:
    """A copy of compiled ``model`` created under ``distribution``: same config, weights, optimizer and loss.

    Args:
        model: a built, compiled Keras model (left untouched).
        distribution: from :func:`data_parallel`.
        synchronized_batchnorm: all-reduce BatchNormalization statistics across replicas (TensorFlow only).

    Returns:
        The replica to fit; its weights are mirrored (TensorFlow) or replicated (JAX) over the devices.
    """
    if synchronized_batchnorm and keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"synchronized_batchnorm needs the TensorFlow backend, got {keras.backend.backend()!r}: "
            "use per-replica statistics (synchronized_batchnorm=False)"
        )
    with distribution.scope():
        replica = model.__class__.from_config(model.get_config())
        replica.compile_from_config(model.get_compile_config())  # a new optimizer with the same settings
        replica.set_weights(model.get_weights())
        replica.optimizer.build(replica.trainable_variables)
        for layer in _all_layers(replica):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = synchronized_batchnorm
    return replica


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers += _all_layers(layer)
    return layers


class CopyWeights(keras.callbacks.Callback):
    """Copies the weights of ``source`` (a replica being fitted) into ``target`` after every epoch and at the end.

    The checkpoints then save ``target``: a plain model that loads and predicts without any distribution.
    """

    def __init__(self, source: keras.Model, target: keras.Model):
        super().__init__()
        self.source = source
        self.target = target

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.target.set_weights(self.source.get_weights())

    def on_train_end(self, logs: dict | None = None) -> None:
        self.target.set_weights(self.source.get_weights())
