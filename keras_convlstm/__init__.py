"""keras_convlstm: next-frame video prediction with Convolutional LSTMs in Keras 3.

Data (the official Moving MNIST file and generators), models (the keras.io example, its causal fix, Shi et al.
2015 and smaller presets), an exact linear-time rollout, metrics with their conventions, training, evaluation
against baselines, and pictures. Modules: ``data``, ``synthetic``, ``cell``, ``layers``, ``models``, ``rollout``,
``training``, ``losses``, ``evaluation``, ``metrics``, ``viz``, ``pretrained``, ``precision``, ``recipes``,
``cli``.
"""

from keras_convlstm import (
    cell,
    data,
    evaluation,
    layers,
    losses,
    metrics,
    models,
    precision,
    pretrained,
    rollout,
    synthetic,
    training,
    viz,
)
from keras_convlstm.data import (
    create_shifted_frames,
    download_moving_mnist,
    load_moving_mnist,
    split_dataset,
)
from keras_convlstm.evaluation import evaluate
from keras_convlstm.models import ModelConfig, build_model, get_preset, list_presets
from keras_convlstm.precision import resolve_precision
from keras_convlstm.pretrained import list_pretrained, load_pretrained
from keras_convlstm.rollout import official_rollout, predict_frames, predict_next_frames
from keras_convlstm.synthetic import generate_moving_mnist, load_mnist_digits
from keras_convlstm.training import ScheduledSampling, train

__version__ = "0.1.0"

__all__ = [
    "ModelConfig",
    "ScheduledSampling",
    "build_model",
    "cell",
    "create_shifted_frames",
    "data",
    "download_moving_mnist",
    "evaluate",
    "evaluation",
    "generate_moving_mnist",
    "get_preset",
    "layers",
    "list_presets",
    "list_pretrained",
    "losses",
    "load_mnist_digits",
    "load_moving_mnist",
    "load_pretrained",
    "metrics",
    "models",
    "official_rollout",
    "predict_frames",
    "precision",
    "predict_next_frames",
    "pretrained",
    "resolve_precision",
    "rollout",
    "split_dataset",
    "synthetic",
    "train",
    "training",
    "viz",
]
