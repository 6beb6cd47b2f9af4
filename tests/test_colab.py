"""keras_convlstm.colab: Colab detection and the optional Google Drive folder, in faked Colab runtimes."""

import sys
import types

import pytest

from keras_convlstm import colab


def _fake_colab(monkeypatch) -> list[str]:
    """Installs fake ``google.colab`` modules whose ``drive.mount`` records its mount point."""
    mounted = []
    drive = types.SimpleNamespace(mount=mounted.append)
    package = types.ModuleType("google.colab")
    package.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", package)
    return mounted


def test_drive_folder_is_the_folder_itself_unless_asked_for():
    assert not colab.in_colab()
    assert colab.drive_folder("runs/x", use_google_drive=False) == "runs/x"


def test_drive_folder_outside_colab_says_so_and_keeps_the_folder(capsys):
    assert colab.drive_folder("runs/x", use_google_drive=True) == "runs/x"
    assert "only mounted in Colab" in capsys.readouterr().out


def test_drive_folder_in_colab_mounts_drive_once_asked(monkeypatch, capsys):
    mounted = _fake_colab(monkeypatch)
    assert colab.in_colab()
    assert colab.drive_folder("runs/x", use_google_drive=False) == "runs/x"
    assert mounted == []
    folder = colab.drive_folder("runs/x", use_google_drive=True)
    assert folder == "/content/drive/MyDrive/keras_convlstm/runs/x"
    assert mounted == ["/content/drive"]
    assert folder in capsys.readouterr().out


@pytest.mark.parametrize("folder", ["/abs/path", "../up"])
def test_drive_folder_wants_a_relative_folder_inside(folder, monkeypatch):
    _fake_colab(monkeypatch)
    with pytest.raises(ValueError, match="expected a relative folder"):
        colab.drive_folder(folder, use_google_drive=True)
