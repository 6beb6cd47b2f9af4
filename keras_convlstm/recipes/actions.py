"""The actions recipe: which way does a digit move? Video classification through a KTH-style video folder.

Owns the recipe's settings (:class:`ActionSettings`, :data:`QUICK`, :data:`FULL`), the folder writer
(:func:`write_action_folder`), its data (:class:`ActionData`) and its steps, each callable alone:
:func:`build_data`, :func:`build_model`, :func:`train`, :func:`evaluate`, :func:`write_pictures`,
:func:`summarize`; :func:`run` chains them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_convlstm import animation, mnist_digits, synthetic, training, videos, viz
from keras_convlstm.frames import to_float_frames
from keras_convlstm.models import build_model as build_preset
from keras_convlstm.recipes import common

NAME = "actions"
PRESET = "classifier"
FILES = ("confusion_matrix.png", "example.png", "history.png")


@dataclasses.dataclass(frozen=True)
class ActionSettings:
    """Settings of the actions recipe.

    Attributes:
        num_people: people (groups) in the video folder; a person-wise split holds out whole people.
        clips_per_person: clips per person, spread evenly over the classes.
        epochs: most epochs (early stopping on the validation loss).
        frame_size: ``(height, width)`` of the frames.
        digit_size: digit side in pixels.
        num_frames: frames per clip.
        filters: ConvLSTM2D filters per layer, or None for the preset's (32, 32).
        learning_rate: Adam's learning rate, or None for the preset's.
        num_classes: 4 or 8 directions.
        digit_source: MNIST digit source of :func:`~keras_convlstm.mnist_digits.load_mnist_digits`.
        batch_size: clips per batch.
        test_fraction: share of the people held out for testing.
        validation_fraction: share of the other people held out for validation.
    """

    num_people: int
    clips_per_person: int
    epochs: int
    frame_size: tuple[int, int]
    digit_size: int
    num_frames: int
    filters: tuple[int, ...] | None = None
    learning_rate: float | None = None
    num_classes: int = 4
    digit_source: str = "auto"
    batch_size: int = 16
    test_fraction: float = 0.25
    validation_fraction: float = 0.1

    def __post_init__(self) -> None:
        common.check_settings(
            self, ("num_people", "clips_per_person", "epochs", "digit_size", "num_frames", "num_classes", "batch_size")
        )


# The preset (2 x ConvLSTM2D 32, 3x3) on 60x80 frames, 15-frame clips, 28-pixel digits, 24 people x 100 clips,
# up to 20 epochs.
FULL = ActionSettings(num_people=24, clips_per_person=100, epochs=20, frame_size=(60, 80), digit_size=28, num_frames=15)
# 32x32 frames, 14-pixel digits, 10-frame clips, filters (8, 8), learning rate 3e-3, 16 people x 44 clips,
# 4 epochs.
QUICK = ActionSettings(
    num_people=16,
    clips_per_person=44,
    epochs=4,
    frame_size=(32, 32),
    digit_size=14,
    num_frames=10,
    filters=(8, 8),
    learning_rate=3e-3,
)


@dataclasses.dataclass(frozen=True, eq=False)
class ActionData:
    """The loaded video folder, its labels in direction order and a person-wise split.

    Attributes:
        folder: the clips, uint8 ``(clips, num_frames, height, width, 1)``, with their sources and groups.
        directions: class names in direction order (right, down, left, up, ...).
        labels: int ``(clips,)`` indices into ``directions``.
        train_idx, val_idx, test_idx: clip indices; no person is in two of them.
    """

    folder: videos.VideoClips
    directions: list[str]
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray


def choose_settings(quick: bool = False, **overrides: object) -> ActionSettings:
    """:data:`QUICK` or :data:`FULL` with the overrides that are not None (fields of :class:`ActionSettings`)."""
    return common.choose(QUICK, FULL, quick, **overrides)


def write_action_folder(
    root: str | os.PathLike,
    num_people: int,
    clips_per_person: int,
    *,
    num_classes: int = 4,
    num_frames: int = 15,
    image_size: int | tuple[int, int] = (60, 80),
    digit_size: int = 28,
    seed: int = 0,
    digit_source: str = "auto",
) -> Path:
    """Writes a KTH-style folder of moving-digit action GIFs: ``root/<direction>/personNN_<direction>_K.gif``.

    Each "person" draws its digits from its own share of the MNIST digits (digit ``i`` belongs to person
    ``i mod num_people``), so a person-wise split also holds out the digits.

    Args:
        root: folder to create.
        num_people: number of people (groups).
        clips_per_person: clips per person, spread evenly over the classes.
        num_classes: 4 or 8 directions.
        num_frames: frames per clip.
        image_size: frame side or ``(height, width)``.
        digit_size: digit side in pixels.
        seed: base seed; person ``p`` uses ``SeedSequence([seed, p])``.
        digit_source: MNIST digit source of :func:`~keras_convlstm.mnist_digits.load_mnist_digits`.

    Returns:
        ``root``.
    """
    root = Path(root)
    digits, _ = mnist_digits.load_mnist_digits(digit_source, "all", verbose=False)
    names = synthetic.ACTION_DIRECTIONS[num_classes]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for person in range(num_people):
        clips, labels = synthetic.generate_moving_digit_actions(
            clips_per_person,
            num_classes,
            num_frames,
            image_size,
            digit_size,
            seed=np.random.SeedSequence([seed, person]),
            digits=np.ascontiguousarray(digits[person::num_people]),
        )
        for index, (clip, label) in enumerate(zip(clips, labels, strict=True)):
            animation.save_gif(
                clip,
                root / names[label] / f"person{person + 1:02d}_{names[label]}_{index}.gif",
                100,
                scale=1,
                annotate=False,
            )
    return root


def build_data(settings: ActionSettings, out_dir: str | os.PathLike, seed: int = 0) -> ActionData:
    """Writes the clips as GIFs into ``out_dir/videos``, loads the folder and splits it by person.

    :func:`~keras_convlstm.videos.load_video_folder` reads the folder (grey frames);
    :func:`~keras_convlstm.videos.split_by_group` holds out ``test_fraction`` of the people, then
    ``validation_fraction`` of the others for validation.
    """
    root = write_action_folder(
        Path(out_dir) / "videos",
        settings.num_people,
        settings.clips_per_person,
        num_classes=settings.num_classes,
        num_frames=settings.num_frames,
        image_size=settings.frame_size,
        digit_size=settings.digit_size,
        seed=seed,
        digit_source=settings.digit_source,
    )
    folder = videos.load_video_folder(root, settings.num_frames, settings.frame_size, grayscale=True)
    # load_video_folder sorts the classes by name; relabel them in direction order (right, down, ...).
    directions = list(synthetic.ACTION_DIRECTIONS[settings.num_classes])
    labels = np.asarray([directions.index(folder.class_names[label]) for label in folder.labels])
    rest_idx, test_idx = videos.split_by_group(folder.groups, settings.test_fraction, seed=seed)
    fit_part, val_part = videos.split_by_group(folder.groups[rest_idx], settings.validation_fraction, seed=seed)
    return ActionData(folder, directions, labels, rest_idx[fit_part], rest_idx[val_part], test_idx)


def build_model(settings: ActionSettings, seed: int = 0) -> keras.Model:
    """The ``classifier`` preset (ConvLSTM2D layers, max-pool 5 stride 2, softmax) for the settings' clips.

    Calls ``keras.utils.set_random_seed(seed)`` first.
    """
    keras.utils.set_random_seed(seed)
    overrides = {
        name: value
        for name, value in (("filters", settings.filters), ("learning_rate", settings.learning_rate))
        if value is not None
    }
    return build_preset(
        PRESET,
        image_size=settings.frame_size,
        input_frames=settings.num_frames,
        num_classes=settings.num_classes,
        **overrides,
    )


def train(
    model: keras.Model,
    clips: ActionData,
    settings: ActionSettings,
    out_dir: str | os.PathLike,
    seed: int = 0,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Trains on the training people with early stopping on the validation people; writes ``out_dir/run/``."""
    folder, labels = clips.folder, clips.labels
    return training.train(
        model,
        (folder.clips[clips.train_idx], labels[clips.train_idx]),
        (folder.clips[clips.val_idx], labels[clips.val_idx]),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        out_dir=Path(out_dir) / "run",
        seed=seed,
        verbose=verbose,
    )


def evaluate(model: keras.Model, clips: ActionData) -> tuple[np.ndarray, np.ndarray]:
    """The predicted class of every held-out clip and the confusion matrix.

    Returns:
        ``(predicted, counts)``: int ``(test clips,)`` and int ``(classes, classes)``, rows the true class.
    """
    test_clips = to_float_frames(clips.folder.clips[clips.test_idx])
    predicted = model.predict(test_clips, batch_size=32, verbose=0).argmax(axis=-1)
    counts = videos.confusion_matrix(clips.labels[clips.test_idx], predicted, len(clips.directions))
    return predicted, counts


def write_pictures(
    clips: ActionData, predicted: np.ndarray, counts: np.ndarray, out_dir: str | os.PathLike
) -> list[str]:
    """Writes ``confusion_matrix.png``, ``example.png`` (the first held-out clip) and ``history.png``.

    ``history.png`` is drawn from ``out_dir/run/history.csv``, written by :func:`train`.

    Returns:
        The file names written.
    """
    out_dir = common.recipe_folder(out_dir)
    directions, first = clips.directions, clips.test_idx[0]
    viz.plot_confusion_matrix(counts, directions, title="Held-out people", path=out_dir / "confusion_matrix.png")
    viz.plot_frames(
        clips.folder.clips[first],
        ncols=clips.folder.clips.shape[1],
        title=f"{clips.folder.sources[first]}: {directions[clips.labels[first]]}, predicted {directions[predicted[0]]}",
        path=out_dir / "example.png",
    )
    viz.plot_history(out_dir / "run" / "history.csv", path=out_dir / "history.png")
    return list(FILES)


def summarize(
    model: keras.Model,
    settings: ActionSettings,
    clips: ActionData,
    counts: np.ndarray,
    history: keras.callbacks.History,
) -> dict:
    """The recipe's summary: settings, split sizes, held-out people, accuracy beside chance, confusion matrix."""
    accuracy = float(np.trace(counts) / counts.sum())
    folder, test_idx = clips.folder, clips.test_idx
    return {
        "settings": {
            "num_classes": settings.num_classes,
            "class_names": clips.directions,
            "frame_size": list(settings.frame_size),
            "num_frames": settings.num_frames,
            "digit_size": settings.digit_size,
            "filters": list(model.config.filters),
            "people": settings.num_people,
            "clips_per_person": settings.clips_per_person,
            "epochs": settings.epochs,
        },
        "clips": {"train": len(clips.train_idx), "validation": len(clips.val_idx), "test": len(test_idx)},
        "test_people": sorted(set(folder.groups[test_idx].tolist())),
        "held_out_accuracy": round(accuracy, 4),
        "chance_accuracy": round(1 / settings.num_classes, 4),
        "per_class_accuracy": {
            name: round(float(counts[k, k] / max(1, counts[k].sum())), 4) for k, name in enumerate(clips.directions)
        },
        "confusion_matrix": counts.tolist(),
        "epochs_trained": len(history.history["loss"]),
        "files": list(FILES),
    }


def run(
    out_dir: str | os.PathLike,
    quick: bool = False,
    seed: int = 0,
    *,
    num_people: int | None = None,
    clips_per_person: int | None = None,
    epochs: int | None = None,
    num_classes: int | None = None,
    digit_source: str | None = None,
    verbose: int = 2,
) -> dict:
    """Video classification: which way does the digit move? A KTH-style pipeline that needs no download.

    Writes moving-digit clips as GIFs into a video folder (one sub-folder per direction, file names carrying
    a person id as KTH's do), loads it with :func:`~keras_convlstm.videos.load_video_folder`, holds out a
    quarter of the people with :func:`~keras_convlstm.videos.split_by_group` (and a tenth of the others for
    validation), trains the ``classifier`` preset (ConvLSTM2D layers, max-pool 5 stride 2, softmax) and
    reports the held-out accuracy and confusion matrix. Chance is ``1 / num_classes``.

    Args:
        out_dir: folder for the video folder, figures, run and ``summary.json``.
        quick: :data:`QUICK` instead of :data:`FULL` settings.
        seed: seed of the clips, the split and the weights.
        num_people, clips_per_person, epochs, num_classes, digit_source: override the chosen settings (None
            keeps them).
        verbose: ``model.fit`` verbosity.

    Returns:
        The summary written to ``summary.json`` (see :func:`summarize`).
    """
    started = time.perf_counter()
    out_dir = common.recipe_folder(out_dir)
    settings = choose_settings(
        quick,
        num_people=num_people,
        clips_per_person=clips_per_person,
        epochs=epochs,
        num_classes=num_classes,
        digit_source=digit_source,
    )
    clips = build_data(settings, out_dir, seed)
    model = build_model(settings, seed)
    history = train(model, clips, settings, out_dir, seed, verbose)
    predicted, counts = evaluate(model, clips)
    write_pictures(clips, predicted, counts, out_dir)
    return common.finish(out_dir, NAME, quick, seed, summarize(model, settings, clips, counts, history), started)
