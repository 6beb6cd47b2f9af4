"""Predicts frames with a model built, loaded or shipped on the current Keras backend (used by test_backends.py).

Run as a script (``python tests/backend_probe.py BACKEND SOURCE FRAMES OUT [SOURCE FRAMES OUT ...]``) it is a fresh
process on the backend named by ``KERAS_BACKEND`` that predicts with each source in turn; outside TensorFlow it cannot
import TensorFlow at all, as on a machine that lacks it.
"""

import json
import sys


def predict(source: str, frames_file: str, out_file: str) -> None:
    """Writes ``outputs`` (one pass) and ``rollout`` (3 frames) of a model to ``out_file`` (.npz).

    ``source`` is a ``.keras`` file (loaded with ``safe_mode=True``), ``pretrained:NAME`` (loaded in float32; one
    pass only: its weights are what is compared, and every preset's rollout is checked on each backend in
    test_rollout.py), or the JSON keyword arguments of ``build_model``; a built model trains one epoch on the frames
    and is saved beside ``out_file``.
    """
    import keras
    import numpy as np

    from keras_convlstm import pretrained
    from keras_convlstm.models import build_model
    from keras_convlstm.rollout import predict_rollout

    frames = np.load(frames_file)
    if source.endswith(".keras"):
        model = keras.saving.load_model(source, safe_mode=True)
    elif source.startswith("pretrained:"):
        model = pretrained.load_pretrained(source.split(":", 1)[1], precision="float32")
    else:
        keras.utils.set_random_seed(0)
        model = build_model(**json.loads(source))
        model.fit(frames[:, :-1], frames[:, 1:], epochs=1, verbose=0)
        model.save(out_file.replace(".npz", ".keras"))
    predictions = {"outputs": keras.ops.convert_to_numpy(model(frames, training=False))}
    if not source.startswith("pretrained:"):
        predictions["rollout"] = predict_rollout(model, frames, 3)
    np.savez(out_file, **predictions, backend=keras.backend.backend())


if __name__ == "__main__":  # backend_probe.py BACKEND SOURCE FRAMES OUT [SOURCE FRAMES OUT ...]
    if sys.argv[1] != "tensorflow":
        sys.modules["tensorflow"] = None  # any import of TensorFlow fails from here on
    jobs = sys.argv[2:]
    for start in range(0, len(jobs), 3):
        predict(*jobs[start : start + 3])
