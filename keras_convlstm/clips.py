"""Next-frame training data from a user's videos: decoded once into an on-disk cache of clips, split by video.

A source is one video: a video file (``.mp4``, ``.avi``, ``.mov`` through imageio's pyav or FFmpeg plugin,
``.gif`` through Pillow; see :func:`keras_convlstm.videos.video_plugin`), a folder of numbered ``.png`` /
``.jpg`` frames, or a ``.npy`` file of uint8 frames ``(time, height, width[, channels])``. A folder holding
several of these (video files, ``.npy`` files, sub-folders of frames; one level deep) is a set of videos::

    my_videos/street.mp4
    my_videos/radar_loop.gif
    my_videos/timelapse/frame_001.png, frame_002.png, ...

:func:`load_video_clips` converts every frame to grey or RGB and resizes it
(:func:`keras_convlstm.videos.convert_frame`), cuts each video into clips of ``clip_frames`` frames starting every
``stride`` frames, and writes all clips once to a uint8 ``.npy`` file in a cache folder, with a JSON file beside it
that names the videos. Training memory-maps that file through :class:`keras_convlstm.data.SequenceDataset`, which
reads one batch at a time, so a folder larger than memory trains; a second call with the same files and settings
reuses the cache. Clips of one video are near copies of each other, so :meth:`VideoClipSet.split` keeps every video
on one side of the split (a single video is split in time instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from keras_convlstm import data, files, videos
from keras_convlstm.checks import check_integer, check_size

FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")
NPY_EXTENSION = ".npy"
SOURCE_EXTENSIONS = (*videos.VIDEO_EXTENSIONS, NPY_EXTENSION)
DEFAULT_CACHE_FOLDER = "video-clips"  # under files.default_cache_dir()
PROGRESS_DELAY_S = 2.0  # the decoding progress bar appears after this many seconds
_CACHE_VERSION = 1  # bump when the cache layout changes: older caches are then rebuilt


def _natural_key(path: Path) -> list:
    """Sorts ``frame_2.png`` before ``frame_10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _visible(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _frame_files(folder: Path) -> list[Path]:
    frames = [entry for entry in _visible(folder) if entry.is_file() and entry.suffix.lower() in FRAME_EXTENSIONS]
    return sorted(frames, key=_natural_key)


def find_videos(path: str | os.PathLike) -> list[Path]:
    """The videos at ``path``: the file itself, a folder of frames, or every video in a folder.

    Args:
        path: a video file, a ``.npy`` file, a folder of ``.png`` / ``.jpg`` frames (one video), or a folder of
            video files, ``.npy`` files and sub-folders of frames (each one video; other files are ignored).

    Returns:
        The source of each video, sorted by name.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a file of another type, a folder that mixes frame images with video files, or a folder
            without any video.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video file or folder at {path}")
    if path.is_file():
        if path.suffix.lower() not in SOURCE_EXTENSIONS:
            raise ValueError(
                f"expected a video file ending in one of {SOURCE_EXTENSIONS} or a folder of videos or frames, "
                f"got {path}"
            )
        return [path]
    entries = _visible(path)
    video_files = [entry for entry in entries if entry.is_file() and entry.suffix.lower() in SOURCE_EXTENSIONS]
    if _frame_files(path):
        if video_files:
            raise ValueError(
                f"the folder {path} mixes frame images with video files ({video_files[0].name}): expected either "
                "the numbered frames of one video or a set of videos"
            )
        return [path]
    sources = video_files + [entry for entry in entries if entry.is_dir() and _frame_files(entry)]
    if not sources:
        raise ValueError(
            f"no video in the folder {path}: expected files ending in one of {SOURCE_EXTENSIONS} or sub-folders "
            f"of numbered {'/'.join(FRAME_EXTENSIONS)} frames"
        )
    return sorted(sources)


def _npy_frames(path: Path) -> np.ndarray:
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"could not read {path} as a .npy file of frames: {error}") from error
    one_video = frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] in (1, 3, 4))
    if frames.dtype != np.uint8 or not one_video:
        hint = "; a batch of sequences trains as it is (train --data FILE.npy)" if frames.ndim == 5 else ""
        raise ValueError(
            f"expected one video of uint8 frames (time, height, width[, 1, 3 or 4]) in {path}, got {frames.dtype} "
            f"{frames.shape}{hint}"
        )
    return frames


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ValueError(f"could not read the frame {path} as an image: {error}") from error


def iter_frames(
    source: str | os.PathLike, frame_size: int | tuple[int, int] | None = 64, channels: int = 1
) -> Iterator[np.ndarray]:
    """Decodes one video frame by frame, as grey or RGB frames of ``frame_size``.

    Args:
        source: a video file, a ``.npy`` file of uint8 frames ``(time, height, width[, channels])`` or a folder
            of numbered frames (see :func:`find_videos`).
        frame_size: ``(height, width)`` or one side for square frames; None keeps the video's size.
        channels: 1 (grey) or 3 (RGB).

    Yields:
        uint8 ``(height, width, channels)`` frames in [0, 255].

    Raises:
        ValueError: a file that cannot be decoded, or a bad argument (the message names the file or argument).
    """
    source = Path(source)
    size = None if frame_size is None else check_size(frame_size, "frame_size")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    grayscale = channels == 1
    if source.is_dir():
        frames = (videos.convert_frame(_read_image(path), path, size, grayscale) for path in _frame_files(source))
    elif source.suffix.lower() == NPY_EXTENSION:
        stored = _npy_frames(source)
        frames = (videos.convert_frame(np.asarray(frame), source, size, grayscale) for frame in stored)
    else:
        frames = videos.iter_video(source, size, grayscale)
    for frame in frames:
        yield frame[..., np.newaxis] if grayscale else frame


def _frames_of_one_size(source: Path, frame_size: list[int] | None, channels: int) -> Iterator[np.ndarray]:
    """:func:`iter_frames`, refusing a frame whose size differs from the first one's."""
    first = None
    for frame in iter_frames(source, frame_size, channels):
        first = frame.shape if first is None else first
        if frame.shape != first:
            raise ValueError(
                f"expected frames of one size in {source}, got {first[:2]} and {frame.shape[:2]}; "
                "pass frame_size to resize them"
            )
        yield frame


def read_frames(
    source: str | os.PathLike, frame_size: int | tuple[int, int] | None = 64, channels: int = 1
) -> np.ndarray:
    """Reads one whole video (see :func:`iter_frames`) as uint8 ``(time, height, width, channels)`` in [0, 255].

    Raises:
        ValueError: an undecodable or empty video, or frames of several sizes with ``frame_size=None``.
    """
    frames = list(_frames_of_one_size(Path(source), frame_size, channels))
    if not frames:
        raise ValueError(f"the video {source} holds no frame")
    return np.stack(frames)


@dataclasses.dataclass(frozen=True)
class VideoClipSet:
    """Clips cut from a user's videos, stored in a cache file, with the video each clip comes from.

    Attributes:
        clips: uint8 ``(num_clips, clip_frames, height, width, channels)`` in [0, 255], a read-only memory map of
            the cache file.
        videos: the name of each video (its path relative to the folder given, or the file name).
        video_frames: int64 ``(num_videos,)``: frames decoded from each video.
        video_index: int64 ``(num_clips,)``: the video of each clip, an index into ``videos``.
        starts: int64 ``(num_clips,)``: the first frame of each clip in its video.
        path: the cache file (``.npy``); the JSON file beside it (same name) describes it.
    """

    clips: np.ndarray
    videos: list[str]
    video_frames: np.ndarray
    video_index: np.ndarray
    starts: np.ndarray
    path: Path

    def __len__(self) -> int:
        return len(self.clips)

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation clip indices, with no video on both sides.

        Several videos: ``ceil(val_fraction * num_videos)`` whole videos (at least one, leaving at least one) drawn
        with ``seed`` validate (:func:`keras_convlstm.videos.split_by_group`). One video: its frames from
        ``round((1 - val_fraction) * frames)`` on validate and the clips that end before them train; clips that
        straddle the boundary are left out, so no frame is on both sides.

        Returns:
            ``(train_idx, val_idx)``: sorted int64 arrays, disjoint and non-empty.

        Raises:
            ValueError: ``val_fraction`` outside (0, 1), or a single video too short to give both sides a clip.
        """
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        if len(self.videos) > 1:
            return videos.split_by_group(self.video_index, test_fraction=val_fraction, seed=seed)
        clip_frames = self.clips.shape[1]
        boundary = round((1 - val_fraction) * int(self.video_frames[0]))
        train_idx = np.flatnonzero(self.starts + clip_frames <= boundary)
        val_idx = np.flatnonzero(self.starts >= boundary)
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise ValueError(
                f"the single video {self.videos[0]} ({self.video_frames[0]} frames) split in time at frame {boundary} "
                f"(val_fraction {val_fraction}) leaves {len(train_idx)} training and {len(val_idx)} validation clips "
                f"of {clip_frames} frames; add videos, or use shorter clips or a smaller stride"
            )
        return train_idx, val_idx

    def datasets(
        self, batch_size: int = 5, val_fraction: float = 0.1, seed: int = 0
    ) -> tuple[data.SequenceDataset, np.ndarray]:
        """Training batches streamed from the cache and the validation clips, split by :meth:`split`.

        Returns:
            ``(train, validation)``: a :class:`keras_convlstm.data.SequenceDataset` of shifted-frame batches
            (float32 ``(batch, clip_frames - 1, height, width, channels)``, shuffled with ``seed``) over the
            training clips, and the validation clips read into memory, uint8
            ``(num_validation, clip_frames, height, width, channels)``.
        """
        train_idx, val_idx = self.split(val_fraction, seed)
        train = data.SequenceDataset(self.clips, batch_size, indices=train_idx, seed=seed)
        return train, np.asarray(self.clips[val_idx])


def _source_files(source: Path) -> list[Path]:
    return _frame_files(source) if source.is_dir() else [source]


def source_fingerprint(path: str | os.PathLike) -> dict[str, object]:
    """What identifies the videos at ``path`` without reading them: ``{"path", "files", "bytes", "sha256"}``.

    ``sha256`` digests the name (relative to ``path``), size and modification time of every source file, in order:
    a file added, removed, renamed, rewritten or touched changes it.
    """
    root = Path(path).resolve()
    stats = []
    for source in find_videos(root):
        for file in _source_files(source):
            info = file.stat()
            stats.append([str(file.relative_to(root)) if root.is_dir() else file.name, info.st_size, info.st_mtime_ns])
    digest = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
    return {"path": str(root), "files": len(stats), "bytes": sum(stat[1] for stat in stats), "sha256": digest}


def _cache_key(path: Path, settings: dict) -> str:
    """A digest of the settings and of the videos' fingerprint."""
    record = {"version": _CACHE_VERSION, "settings": settings, "videos": source_fingerprint(path)}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _open_cache(npy_path: Path, json_path: Path, key: str) -> VideoClipSet | None:
    """The cached clips when both files are there, complete and made from ``key``; None otherwise."""
    if not (npy_path.is_file() and json_path.is_file()):
        return None
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
        clips = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if record.get("key") != key or list(clips.shape) != record.get("shape"):
        return None
    return _clip_set(clips, record, npy_path)


def _clip_set(clips: np.ndarray, record: dict, path: Path) -> VideoClipSet:
    clip_frames, stride = record["settings"]["clip_frames"], record["settings"]["stride"]
    frames = np.asarray([video["frames"] for video in record["videos"]], dtype=np.int64)
    starts = [videos.clip_starts(int(count), clip_frames, stride) for count in frames]
    return VideoClipSet(
        clips=clips,
        videos=[video["name"] for video in record["videos"]],
        video_frames=frames,
        video_index=np.repeat(np.arange(len(frames), dtype=np.int64), [len(part) for part in starts]),
        starts=np.concatenate(starts),
        path=path,
    )


def _decode_clips(
    sources: list[Path], root: Path, raw: Path, settings: dict, patch_size: int, verbose: bool
) -> tuple[list[dict], tuple[int, ...]]:
    """Decodes every source and appends its clips' bytes to ``raw``; returns a record per video and the shape."""
    clip_frames, stride = settings["clip_frames"], settings["stride"]
    records, first = [], None
    # Shown once decoding takes a while, and cleared when it ends: short reads and their errors print no bar.
    bar = tqdm(unit="frame", desc="decoding", disable=not verbose, delay=PROGRESS_DELAY_S, leave=False)
    with open(raw, "wb") as out, bar:
        for source in sources:
            name = source.name if source == root else str(source.relative_to(root))
            bar.set_postfix_str(name)
            video = []
            for frame in _frames_of_one_size(source, settings["frame_size"], settings["channels"]):
                video.append(frame)
                bar.update()
            if len(video) < clip_frames:
                raise ValueError(
                    f"the video {source} has {len(video)} frames, fewer than the {clip_frames} of one clip: expected "
                    "longer videos or a smaller clip_frames"
                )
            if first is None:
                first = (name, video[0].shape)
                height, width = first[1][:2]
                if height % patch_size or width % patch_size:
                    raise ValueError(
                        f"expected frames whose height and width are multiples of the model's patch size {patch_size}, "
                        f"got {height}x{width} in {source}; pass a frame_size such as {patch_size * 16}"
                    )
            elif video[0].shape != first[1]:
                raise ValueError(
                    f"expected videos of one frame size, got {first[1][:2]} in {first[0]} and {video[0].shape[:2]} "
                    f"in {source}; pass frame_size to resize them"
                )
            video = np.stack(video)
            starts = videos.clip_starts(len(video), clip_frames, stride)
            for start in starts:
                out.write(np.ascontiguousarray(video[start : start + clip_frames]).tobytes())
            records.append({"name": name, "frames": len(video), "clips": len(starts)})
    return records, (sum(record["clips"] for record in records), clip_frames, *first[1])


def load_video_clips(
    path: str | os.PathLike,
    clip_frames: int = 20,
    *,
    stride: int | None = None,
    frame_size: int | tuple[int, int] | None = 64,
    channels: int = 1,
    patch_size: int = 1,
    cache_dir: str | os.PathLike | None = None,
    verbose: bool = True,
) -> VideoClipSet:
    """Cuts a user's videos into next-frame training clips, decoding them once into a cache file.

    The cache (a uint8 ``.npy`` of the clips and a JSON file naming the videos) is keyed by the settings and by
    the path, size and modification time of every source file: the same call later reuses it without decoding;
    a changed file or setting makes a new one. Both files appear together or not at all.

    Args:
        path: a video file, a ``.npy`` file of frames, a folder of frames, or a folder of videos
            (see :func:`find_videos`).
        clip_frames: frames per clip, >= 2 (a model reads frames ``0..T-2`` and predicts ``1..T-1``).
        stride: frames between the starts of two clips of a video (default ``clip_frames``: no overlap; a smaller
            stride multiplies the cache size by about ``clip_frames / stride``).
        frame_size: ``(height, width)`` or one side for square frames; None keeps the videos' size (all videos
            must then share it). Frames are resized without keeping the aspect ratio.
        channels: 1 (grey, ITU-R 601 luma) or 3 (RGB).
        patch_size: the model's patch size; the frame height and width must be multiples of it.
        cache_dir: the folder of the cache files (default ``~/.keras/datasets/video-clips``).
        verbose: show a progress bar while decoding and say where the cache is.

    Returns:
        A :class:`VideoClipSet` whose ``clips`` memory-map the cache file; train with
        ``keras_convlstm.data.SequenceDataset(clip_set.clips, indices=train_idx)`` for the indices of
        :meth:`VideoClipSet.split`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: an unreadable file, a video shorter than ``clip_frames``, videos of several sizes with
            ``frame_size=None``, a frame size that is not a multiple of ``patch_size``, a folder without videos, or
            a bad argument. Each message names the file and what was expected.
        ImportError: an .mp4, .avi or .mov file without an FFmpeg plugin for imageio.
        OSError: the cache cannot be written (no cache file is left behind).
    """
    clip_frames = check_integer(clip_frames, "clip_frames", minimum=2)
    stride = clip_frames if stride is None else check_integer(stride, "stride")
    size = None if frame_size is None else list(check_size(frame_size, "frame_size"))
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    patch_size = check_integer(patch_size, "patch_size")
    if size is not None and (size[0] % patch_size or size[1] % patch_size):
        raise ValueError(
            f"frame_size must be a multiple of the model's patch size {patch_size}, got {size[0]}x{size[1]}"
        )
    root = Path(path)
    sources = find_videos(root)
    settings = {"clip_frames": clip_frames, "stride": stride, "frame_size": size, "channels": channels}
    key = _cache_key(root, settings)
    cache_dir = files.check_folder_path(
        files.default_cache_dir() / DEFAULT_CACHE_FOLDER if cache_dir is None else cache_dir
    )
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", root.resolve().name) or "videos"
    npy_path = cache_dir / f"{stem}-{key[:16]}.npy"
    json_path = npy_path.with_suffix(".json")
    cached = _open_cache(npy_path, json_path, key)
    if cached is not None:
        if verbose:
            print(f"using {len(cached)} cached clips of {len(cached.videos)} videos: {npy_path}")
        return cached
    created = not cache_dir.exists()
    try:
        with files.atomic_paths() as stage:
            staged = stage(npy_path)
            raw = staged.with_name(staged.name + ".raw")  # under the staged name: a later write removes leftovers
            try:
                records, shape = _decode_clips(sources, root, raw, settings, patch_size, verbose)
                with open(staged, "wb") as out, open(raw, "rb") as clip_bytes:
                    header = {"descr": np.dtype(np.uint8).str, "fortran_order": False, "shape": shape}
                    np.lib.format.write_array_header_1_0(out, header)
                    shutil.copyfileobj(clip_bytes, out, 1 << 24)
            finally:
                raw.unlink(missing_ok=True)
            record = {"key": key, "shape": list(shape), "settings": settings, "videos": records}
            files.write_json(stage(json_path), record)
    except BaseException:
        if created and cache_dir.is_dir() and not any(cache_dir.iterdir()):
            cache_dir.rmdir()
        raise
    clip_set = _clip_set(np.load(npy_path, mmap_mode="r", allow_pickle=False), record, npy_path)
    if verbose:
        print(f"wrote {len(clip_set)} clips of {len(records)} videos, uint8 {shape}: {npy_path}")
    return clip_set
