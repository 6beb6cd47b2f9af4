"""keras_convlstm: next-frame video prediction with Convolutional LSTMs in Keras 3.

Data (the official Moving MNIST file and generators), models (the keras.io example, its causal fix, Shi et al.
2015 and smaller presets), an exact linear-time rollout, metrics with their conventions, training, evaluation
against baselines, and pictures. Public modules, one concern each (every one but ``cli`` is imported here):

- data: ``data`` (official file, splits, shifted frames, datasets), ``synthetic`` (generated movies, MNIST
  digits), ``videos`` (labelled video folders), ``checks`` (argument and frame checks), ``files`` (cache folder,
  atomic writes);
- models: ``cell``, ``layers``, ``models``, ``causality`` (does an output read its own target?), ``losses``,
  ``precision``, ``pretrained``;
- running them: ``rollout``, ``training``, ``distribute``, ``metrics``, ``evaluation``, ``viz``, ``colab``,
  ``recipes``, and ``cli`` (the command line, ``python -m keras_convlstm``).
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _quiet_native_start_up():
    """Sends file descriptor 2 to /dev/null while Keras loads its backend, when ``TF_CPP_MIN_LOG_LEVEL=3``.

    TensorFlow's native libraries log at load time (absl, oneDNN, CUDA probing) before that setting applies;
    a user who asked for level 3 asked for silence. Python's own messages are unaffected once loading ends.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3" or "keras" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _quiet_native_start_up():
    import keras  # noqa: F401

from keras_convlstm import (  # noqa: E402
    causality,
    cell,
    checks,
    colab,
    data,
    distribute,
    evaluation,
    files,
    layers,
    losses,
    metrics,
    models,
    precision,
    pretrained,
    recipes,
    rollout,
    synthetic,
    training,
    videos,
    viz,
)
from keras_convlstm.causality import check_causal  # noqa: E402
from keras_convlstm.data import (  # noqa: E402
    create_shifted_frames,
    download_moving_mnist,
    load_moving_mnist,
    load_or_generate_moving_mnist,
    split_dataset,
)
from keras_convlstm.evaluation import evaluate  # noqa: E402
from keras_convlstm.models import ModelConfig, build_model, get_preset, list_presets  # noqa: E402
from keras_convlstm.precision import resolve_precision  # noqa: E402
from keras_convlstm.pretrained import list_pretrained, load_pretrained  # noqa: E402
from keras_convlstm.rollout import official_rollout, predict_frames, predict_next_frames  # noqa: E402
from keras_convlstm.synthetic import generate_moving_mnist, load_mnist_digits  # noqa: E402
from keras_convlstm.training import ScheduledSampling, train  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ModelConfig",
    "ScheduledSampling",
    "build_model",
    "causality",
    "cell",
    "check_causal",
    "checks",
    "colab",
    "create_shifted_frames",
    "data",
    "distribute",
    "download_moving_mnist",
    "evaluate",
    "evaluation",
    "files",
    "generate_moving_mnist",
    "get_preset",
    "layers",
    "list_presets",
    "list_pretrained",
    "losses",
    "load_mnist_digits",
    "load_moving_mnist",
    "load_or_generate_moving_mnist",
    "load_pretrained",
    "metrics",
    "models",
    "official_rollout",
    "predict_frames",
    "precision",
    "predict_next_frames",
    "pretrained",
    "recipes",
    "resolve_precision",
    "rollout",
    "split_dataset",
    "synthetic",
    "train",
    "training",
    "videos",
    "viz",
]
