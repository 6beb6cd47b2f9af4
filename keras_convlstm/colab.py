"""Google Colab: detect it, and keep a notebook's output folder in Google Drive across sessions.

A Colab runtime is erased when its session ends. With ``drive_folder(folder, use_google_drive=True)`` a
notebook writes under ``MyDrive/keras_convlstm/`` instead, so checkpoints and pictures survive; everywhere
else the folder is returned unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

DRIVE_MOUNT_POINT = "/content/drive"
DRIVE_SUBFOLDER = "MyDrive/keras_convlstm"


def in_colab() -> bool:
    """True inside a Google Colab runtime (its kernel imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def drive_folder(folder: str, *, use_google_drive: bool, verbose: bool = True) -> str:
    """The folder to write to: ``folder`` itself, or the same relative path inside Google Drive.

    Args:
        folder: a relative folder such as ``"runs/03_rollout_and_evaluation"``.
        use_google_drive: mount Google Drive (Colab asks for permission once) and return
            ``/content/drive/MyDrive/keras_convlstm/<folder>``; ignored, with a note, outside Colab.
        verbose: print where the files go when Google Drive is requested.

    Returns:
        The folder as a string.

    Raises:
        ValueError: ``folder`` is absolute or climbs out with ``..``.
    """
    if Path(folder).is_absolute() or ".." in Path(folder).parts:
        raise ValueError(f"expected a relative folder without '..' such as 'runs/notebook', got {folder!r}")
    if not use_google_drive:
        return folder
    if not in_colab():
        if verbose:
            print(f"Google Drive is only mounted in Colab; writing to {folder}")
        return folder
    from google.colab import drive  # available in Colab only

    drive.mount(DRIVE_MOUNT_POINT)
    kept = Path(DRIVE_MOUNT_POINT) / DRIVE_SUBFOLDER / folder
    if verbose:
        print(f"Writing to {kept} (kept in Google Drive across sessions)")
    return str(kept)
