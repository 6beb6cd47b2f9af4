"""Labelled video folders for ConvLSTM video classification: loading, clip cutting and person-wise splits.

A video folder holds one sub-folder per class, each with video files (``.avi``, ``.mp4``, ``.mov`` or ``.gif``)::

    root/boxing/person01_boxing_d1_uncomp.avi
    root/boxing/person02_boxing_d1_uncomp.avi
    root/walking/person01_walking_d1_uncomp.avi

This is the layout of the KTH actions set (6 classes, 25 people; Schuldt et al. 2004) once its zip files are
unpacked into one folder per class. :func:`load_video_folder` reads every video, converts it to grey or RGB,
resizes it and cuts it into clips of a fixed number of frames. Clips of one video are highly correlated, and a
person appears in many videos, so a fair test set holds out whole people: :func:`split_by_group` splits by the
group id that :func:`load_video_folder` reads from each file name (``person01`` for KTH).

Videos are read with ``imageio.v3``: GIFs through Pillow (always available), ``.avi``, ``.mp4`` and ``.mov``
through the ``pyav`` plugin (``pip install av``) or, failing that, the ``imageio-ffmpeg`` plugin
(``pip install imageio-ffmpeg``). Both wheels bundle FFmpeg, so nothing else is downloaded at run time. The
readers (:func:`iter_video`, :func:`convert_frame`, :func:`clip_starts`) also serve :mod:`keras_convlstm.clips`,
which turns any videos into next-frame training data.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from keras_convlstm.checks import check_integer, check_size

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".gif")
FFMPEG_EXTENSIONS = (".avi", ".mp4", ".mov")
# KTH names files "person<id>_<action>_d<scenario>_uncomp.avi": the person is the group.
KTH_GROUP_PATTERN = r"^(person\d+)_"
# imageio plugin name -> the Python module that provides it.
_FFMPEG_PLUGINS = {"pyav": "av", "FFMPEG": "imageio_ffmpeg"}


@dataclasses.dataclass
class VideoClips:
    """Fixed-length clips cut from a labelled video folder.

    Attributes:
        clips: uint8 ``(num_clips, num_frames, height, width, channels)`` in [0, 255]; channels 1 (grey) or 3.
        labels: int64 ``(num_clips,)``: index of the clip's class in ``class_names``.
        groups: ``(num_clips,)`` strings: the group id of the clip's video (see :func:`load_video_folder`).
        sources: ``(num_clips,)`` strings: the path of the clip's video, relative to the folder root.
        class_names: the class sub-folder names, sorted; ``labels`` index into it.
        skipped: videos (relative paths) shorter than one clip, which gave no clip.
    """

    clips: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    class_names: list[str]
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.clips)

    def subset(self, indices: np.ndarray) -> VideoClips:
        """The clips at ``indices`` (for example one side of :func:`split_by_group`), same classes."""
        return VideoClips(
            self.clips[indices],
            self.labels[indices],
            self.groups[indices],
            self.sources[indices],
            list(self.class_names),
            list(self.skipped),
        )


def video_plugin(path: str | os.PathLike) -> str | None:
    """The imageio plugin used to read ``path``: "pillow" for GIFs, "pyav" or "FFMPEG" for .avi and .mp4.

    Raises:
        ValueError: the extension is not one of :data:`VIDEO_EXTENSIONS`.
        ImportError: an .avi or .mp4 file while neither the ``av`` nor the ``imageio-ffmpeg`` package is
            installed; the message names both.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise ValueError(f"expected a video file ending in one of {VIDEO_EXTENSIONS}, got {str(path)!r}")
    if suffix not in FFMPEG_EXTENSIONS:
        return "pillow"
    for plugin, module in _FFMPEG_PLUGINS.items():
        if importlib.util.find_spec(module) is not None:
            return plugin
    raise ImportError(
        f"reading {suffix} videos such as {str(path)!r} needs an FFmpeg plugin for imageio: install the pyav "
        "plugin (pip install av) or the imageio-ffmpeg plugin (pip install imageio-ffmpeg); neither the 'av' "
        "nor the 'imageio_ffmpeg' module is installed. GIF files need neither."
    )


def convert_frame(
    frame: np.ndarray, path: str | os.PathLike, size: tuple[int, int] | None, grayscale: bool
) -> np.ndarray:
    """One decoded frame as grey or RGB, resized: the conversion every video reader of the package applies.

    Grey is Pillow's ``convert("L")`` (ITU-R 601 luma: 0.299 R + 0.587 G + 0.114 B); resizing is Pillow's
    bilinear filter (with antialiasing when shrinking).

    Args:
        frame: uint8 ``(height, width)`` or ``(height, width, 1 | 3 | 4)``.
        path: the file the frame comes from, named in errors.
        size: output ``(height, width)``; None keeps the frame's size.
        grayscale: one grey channel (True) or three RGB channels (False).

    Returns:
        uint8 ``(height, width)`` (grey) or ``(height, width, 3)`` (RGB).

    Raises:
        ValueError: a frame that is not 8-bit or not one of those shapes (the message names ``path``).
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected 8-bit frames in {path}, got dtype {frame.dtype}")
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    if frame.ndim == 2:
        image = Image.fromarray(frame, mode="L")
    elif frame.ndim == 3 and frame.shape[-1] in (3, 4):
        image = Image.fromarray(frame, mode="RGB" if frame.shape[-1] == 3 else "RGBA")
    else:
        raise ValueError(f"expected frames of shape (height, width[, 1, 3 or 4]) in {path}, got {frame.shape}")
    image = image.convert("L" if grayscale else "RGB")
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(image)


def iter_video(
    path: str | os.PathLike,
    image_size: int | tuple[int, int] | None = (60, 80),
    grayscale: bool = True,
    frame_step: int = 1,
) -> Iterator[np.ndarray]:
    """Decodes one video file frame by frame, each converted with :func:`convert_frame`.

    Args:
        path: an ``.avi``, ``.mp4``, ``.mov`` or ``.gif`` file (see :func:`video_plugin` for what each needs).
        image_size: output ``(height, width)`` or one side for square frames; None keeps the size.
        grayscale: one grey channel (True) or three RGB channels (False).
        frame_step: keep every ``frame_step``-th frame (2 halves the frame rate).

    Yields:
        uint8 ``(height, width)`` (grey) or ``(height, width, 3)`` (RGB) frames in [0, 255].

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unknown extension, or a file that cannot be decoded (the message names it).
        ImportError: an .avi, .mp4 or .mov file without an FFmpeg plugin.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    plugin = video_plugin(path)
    size = None if image_size is None else check_size(image_size, "image_size")
    frame_step = check_integer(frame_step, "frame_step")
    try:
        for index, frame in enumerate(iio.imiter(path, plugin=plugin)):
            if index % frame_step == 0:
                yield convert_frame(frame, path, size, grayscale)
    except (OSError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"could not decode the video {path} with the imageio {plugin!r} plugin: {error}"
        ) from error


def read_video(
    path: str | os.PathLike,
    image_size: int | tuple[int, int] | None = (60, 80),
    grayscale: bool = True,
    frame_step: int = 1,
) -> np.ndarray:
    """Reads one video file, converted to grey or RGB and resized (see :func:`convert_frame`).

    Args:
        path: an ``.avi``, ``.mp4``, ``.mov`` or ``.gif`` file (see :func:`video_plugin` for what each needs).
        image_size: output ``(height, width)`` or one side for square frames; None keeps the size.
        grayscale: one grey channel (True) or three RGB channels (False).
        frame_step: keep every ``frame_step``-th frame (2 halves the frame rate).

    Returns:
        uint8 ``(time, height, width, channels)`` in [0, 255].

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unknown extension, or a file that cannot be decoded (the message names it).
        ImportError: an .avi, .mp4 or .mov file without an FFmpeg plugin.
    """
    frames = list(iter_video(path, image_size, grayscale, frame_step))
    if not frames:
        raise ValueError(f"the video {path} holds no frame")
    video = np.stack(frames)
    return video[..., np.newaxis] if grayscale else video


def clip_starts(num_frames_in_video: int, num_frames: int, stride: int | None = None) -> np.ndarray:
    """First frames of the clips of ``num_frames`` frames cut every ``stride`` frames from a video.

    Args:
        num_frames_in_video: frames in the video.
        num_frames: frames per clip.
        stride: frames between the starts of two clips; default ``num_frames`` (clips do not overlap).

    Returns:
        int64 ``(num_clips,)`` with ``num_clips = (num_frames_in_video - num_frames) // stride + 1`` (empty
        when the video is shorter than one clip); frames left over at the end are dropped.
    """
    num_frames = check_integer(num_frames, "num_frames")
    stride = num_frames if stride is None else check_integer(stride, "stride")
    return np.arange(0, max(num_frames_in_video - num_frames + 1, 0), stride, dtype=np.int64)


def cut_clips(video: np.ndarray, num_frames: int, stride: int | None = None) -> np.ndarray:
    """Cuts a video into clips of ``num_frames`` consecutive frames starting every ``stride`` frames.

    Frames left over at the end (fewer than a clip) are dropped; a video shorter than one clip gives none.

    Args:
        video: ``(time, ...)`` frames.
        num_frames: frames per clip.
        stride: frames between the starts of two clips; default ``num_frames`` (clips do not overlap).

    Returns:
        ``(num_clips, num_frames, ...)`` with ``num_clips = (time - num_frames) // stride + 1`` (0 when
        ``time < num_frames``); the dtype of ``video``.
    """
    video = np.asarray(video)
    if video.ndim < 1:
        raise ValueError(f"expected a video of shape (time, ...), got a scalar of shape {video.shape}")
    starts = clip_starts(len(video), num_frames, stride)
    if len(starts) == 0:
        return np.empty((0, num_frames, *video.shape[1:]), dtype=video.dtype)
    return np.stack([video[start : start + num_frames] for start in starts])


def group_of(filename: str, group_pattern: str | None = KTH_GROUP_PATTERN) -> str:
    """The group id in a video file name: the first capture group of ``group_pattern`` (``re.search``).

    A name that does not match (or ``group_pattern=None``) is its own group: its stem. For example
    ``group_of("person01_boxing_d1_uncomp.avi") == "person01"``; for UCF101 names such as
    ``v_ApplyEyeMakeup_g08_c01.avi`` pass ``group_pattern=r"_(g\\d+)_c\\d+"``.
    """
    if group_pattern is not None:
        match = re.search(group_pattern, Path(filename).name)
        if match is not None:
            return match.group(1) if match.groups() else match.group(0)
    return Path(filename).stem


def load_video_folder(
    root: str | os.PathLike,
    num_frames: int = 15,
    image_size: int | tuple[int, int] | None = (60, 80),
    grayscale: bool = True,
    *,
    stride: int | None = None,
    frame_step: int = 1,
    max_clips_per_video: int | None = None,
    group_pattern: str | None = KTH_GROUP_PATTERN,
    verbose: bool = False,
) -> VideoClips:
    """Loads a labelled video folder (one sub-folder per class) as fixed-length clips.

    The defaults follow the KTH classification setting: clips of 15 frames, 60x80 grey frames. Classes are the
    sub-folder names in sorted order; hidden entries and files of other types are ignored.

    Args:
        root: the folder with one sub-folder per class.
        num_frames: frames per clip.
        image_size: ``(height, width)`` of the frames, or one side for squares; None keeps each video's size
            (all videos must then share it).
        grayscale: grey frames with one channel (True) or RGB frames with three (False).
        stride: frames between the starts of two clips of a video (default ``num_frames``: no overlap).
        frame_step: keep every ``frame_step``-th frame of a video before cutting clips.
        max_clips_per_video: keep at most this many clips of each video (the first ones); None keeps all.
        group_pattern: regular expression whose first capture group is the group id in a file name (default:
            the KTH person, ``person01``); see :func:`group_of`.
        verbose: print one line per class.

    Returns:
        A :class:`VideoClips`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        ValueError: no class sub-folder, a class sub-folder without videos, an undecodable video, videos of
            different sizes with ``image_size=None``, or no video long enough for one clip.
        ImportError: .avi or .mp4 files without an FFmpeg plugin (see :func:`video_plugin`).
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no video folder at {root}: expected a folder with one sub-folder per class")
    if not root.is_dir():
        raise NotADirectoryError(f"expected a folder with one sub-folder per class, got the file {root}")
    num_frames = check_integer(num_frames, "num_frames")
    if max_clips_per_video is not None:
        max_clips_per_video = check_integer(max_clips_per_video, "max_clips_per_video")
    class_dirs = sorted(
        entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )
    if not class_dirs:
        raise ValueError(
            f"expected one sub-folder per class in {root} (e.g. {root}/boxing/person01_boxing_d1.avi), "
            "found no sub-folder"
        )
    clips, labels, groups, sources, skipped = [], [], [], [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            entry
            for entry in class_dir.iterdir()
            if entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS and not entry.name.startswith(".")
        )
        if not files:
            raise ValueError(
                f"the class folder {class_dir} holds no video file ending in one of {VIDEO_EXTENSIONS}"
            )
        count = 0
        for path in files:
            video_clips = cut_clips(read_video(path, image_size, grayscale, frame_step), num_frames, stride)
            relative = str(path.relative_to(root))
            if len(video_clips) == 0:
                skipped.append(relative)
                continue
            video_clips = video_clips[:max_clips_per_video]
            clips.append(video_clips)
            labels += [label] * len(video_clips)
            groups += [group_of(path.name, group_pattern)] * len(video_clips)
            sources += [relative] * len(video_clips)
            count += len(video_clips)
        if verbose:
            print(f"{class_dir.name}: {len(files)} videos, {count} clips")
    if not clips:
        raise ValueError(
            f"no video in {root} has the {num_frames} frames of one clip ({len(skipped)} videos skipped)"
        )
    shapes = sorted({part.shape[2:] for part in clips})
    if len(shapes) > 1:
        raise ValueError(
            f"expected videos of one frame size, got sizes {shapes}; pass image_size to resize them"
        )
    return VideoClips(
        np.concatenate(clips),
        np.asarray(labels, dtype=np.int64),
        np.asarray(groups, dtype=str),
        np.asarray(sources, dtype=str),
        [class_dir.name for class_dir in class_dirs],
        skipped,
    )


def split_by_group(
    groups: np.ndarray,
    test_fraction: float = 0.25,
    seed: int = 0,
    *,
    test_groups: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits examples into train and test indices so that no group (person) is on both sides.

    Args:
        groups: ``(num_examples,)`` group ids, e.g. :attr:`VideoClips.groups`.
        test_fraction: share of the distinct groups held out, in (0, 1): ``ceil(fraction * num_groups)``
            groups drawn with ``np.random.default_rng(seed)``, at least one and leaving at least one.
        seed: seed of the draw.
        test_groups: the held-out groups by name instead of a random draw (e.g. KTH's test people); every name
            must occur in ``groups``.

    Returns:
        ``(train_idx, test_idx)``: sorted int64 arrays, disjoint, covering every example.

    Raises:
        ValueError: fewer than two groups, a ``test_fraction`` outside (0, 1), or unknown ``test_groups``.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) == 0:
        raise ValueError(f"expected groups as a non-empty 1-D array, got shape {groups.shape}")
    names = np.unique(groups)
    if len(names) < 2:
        raise ValueError(f"expected at least 2 distinct groups to split, got {names.tolist()}")
    if test_groups is None:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        count = min(max(1, math.ceil(test_fraction * len(names))), len(names) - 1)
        held_out = np.random.default_rng(seed).permutation(names)[:count]
    else:
        unknown = sorted(set(test_groups) - set(names.tolist()))
        if unknown or not test_groups or len(set(test_groups)) == len(names):
            raise ValueError(
                f"test_groups must be a non-empty proper subset of the groups {names.tolist()}, "
                f"got {test_groups} (unknown: {unknown})"
            )
        held_out = np.asarray(test_groups)
    is_test = np.isin(groups, held_out)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def confusion_matrix(true_labels: np.ndarray, predicted_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        true_labels: int ``(num_examples,)`` in ``[0, num_classes)``.
        predicted_labels: int ``(num_examples,)`` in ``[0, num_classes)``.
        num_classes: number of classes.

    Returns:
        int64 ``(num_classes, num_classes)``: ``[i, j]`` counts examples of class ``i`` predicted as ``j``.
    """
    true_labels = np.asarray(true_labels)
    predicted_labels = np.asarray(predicted_labels)
    num_classes = check_integer(num_classes, "num_classes")
    if true_labels.shape != predicted_labels.shape or true_labels.ndim != 1:
        raise ValueError(
            "expected true and predicted labels of one 1-D shape, "
            f"got {true_labels.shape} and {predicted_labels.shape}"
        )
    for name, values in (("true_labels", true_labels), ("predicted_labels", predicted_labels)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} must be in [0, {num_classes}), got values {values.min()} to {values.max()}"
            )
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true_labels.astype(np.intp), predicted_labels.astype(np.intp)), 1)
    return counts
