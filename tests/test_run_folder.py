"""Run folders: fingerprints, the decision for a run already there, and a lock that a second process meets."""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from keras_convlstm import run_folder

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}

# Holds a run folder in another process until its standard input closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from keras_convlstm import run_folder

    with run_folder.claim(sys.argv[1], "auto"):
        print("held", flush=True)
        sys.stdin.readline()
    """
)


@contextlib.contextmanager
def held_by_another_process(folder: Path):
    """Yields the process that holds ``folder``; it lets go when the block ends, unless the block killed it."""
    command = [sys.executable, "-c", HOLDER, str(folder)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV) as holder:
        assert holder.stdout.readline().strip() == "held"
        try:
            yield holder
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)


def test_a_fingerprint_is_the_files_size_and_sha256_and_its_path_is_not_compared(tmp_path):
    data = np.arange(1000, dtype=np.uint8)
    np.save(tmp_path / "a.npy", data)
    (tmp_path / "copy").mkdir()
    np.save(tmp_path / "copy" / "a.npy", data)
    raw = (tmp_path / "a.npy").read_bytes()
    first = run_folder.fingerprint(tmp_path / "copy" / ".." / "a.npy")
    assert first == {"path": str(tmp_path / "a.npy"), "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert run_folder.differences({"data": first}, {"data": run_folder.fingerprint(tmp_path / "copy" / "a.npy")}) == []

    data[500] += 1  # one byte
    np.save(tmp_path / "copy" / "a.npy", data)
    other = run_folder.fingerprint(tmp_path / "copy" / "a.npy")
    assert other["bytes"] == first["bytes"]
    assert run_folder.differences({"data": first, "epochs": 3}, {"epochs": 4, "data": other}) == [
        "epochs 3 -> 4",
        f"data {tmp_path / 'a.npy'} ({len(raw)} bytes, sha256 {first['sha256'][:12]}) -> "
        f"{tmp_path / 'copy' / 'a.npy'} ({len(raw)} bytes, sha256 {other['sha256'][:12]})",
    ]
    assert run_folder.differences({"loss": "mse"}, {"seed": 1}) == ["seed (absent) -> 1", "loss 'mse' -> (absent)"]


def test_an_array_fingerprint_follows_its_values_not_its_memory_layout():
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 4, 1), dtype=np.uint8)
    expected = {"shape": [2, 3, 4, 4, 1], "dtype": "uint8", "sha256": hashlib.sha256(frames.tobytes()).hexdigest()}
    assert run_folder.array_fingerprint(frames) == expected
    assert run_folder.array_fingerprint(np.asfortranarray(frames)) == expected
    assert run_folder.array_fingerprint(frames.astype(np.float32))["sha256"] != expected["sha256"]


def folder_holding(folder: Path, kind: str) -> dict[str, bytes]:
    """Fills ``folder`` as a run of ``kind`` leaves it, beside a file of the user's; returns its files' bytes.

    ``kind``: "nothing" (no folder), "unstarted" (stopped before its first epoch ended), "finished",
    "interrupted".
    """
    outputs = {
        "nothing": [],
        "unstarted": ["run.json", "history.csv"],
        "finished": ["run.json", "best.keras", "best.json", "history.csv", "model.keras"],
        "interrupted": ["run.json", "best.keras", "history.csv"],
    }[kind]
    if kind == "nothing":
        return {}
    folder.mkdir(parents=True)
    for name in [*outputs, "notes.txt"]:
        (folder / name).write_text(f"{name} of the first run")
    (folder / "run.json").write_text(json.dumps({"epochs": 3}))
    (folder / "history.csv").write_text("epoch,loss\n" + ("0,0.5\n" if kind != "unstarted" else ""))
    if kind == "interrupted":
        (folder / "backup").mkdir()
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


@pytest.mark.parametrize(
    ("kind", "existing_run", "outcome"),
    [
        *[(kind, policy, "start") for kind in ("nothing", "unstarted") for policy in ("refuse", "auto", "overwrite")],
        *[(kind, "resume", "nothing to resume in {folder}: no epoch") for kind in ("nothing", "unstarted")],
        ("finished", "refuse", "{folder} holds a finished run (run.json, best.keras, best.json, history.csv, "),
        ("finished", "resume", "nothing to resume in {folder}: its run finished"),
        ("finished", "auto", "start"),
        ("finished", "overwrite", "start"),
        ("interrupted", "refuse", "{folder} holds an interrupted run (run.json, best.keras, history.csv, backup): "),
        ("interrupted", "resume", "resume"),
        ("interrupted", "auto", "resume"),
        ("interrupted", "overwrite", "start"),
    ],
)
def test_what_a_call_does_with_the_run_already_in_its_folder(tmp_path, kind, existing_run, outcome):
    folder = tmp_path / "run"
    before = folder_holding(folder, kind)
    files = lambda: {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}  # noqa: E731
    if outcome not in ("start", "resume"):
        with pytest.raises(OSError) as error:
            with run_folder.claim(folder, existing_run):
                pass
        assert str(error.value).startswith(outcome.format(folder=folder))
        assert (files() if folder.exists() else {}) == before  # nothing written, nothing deleted
        return

    with run_folder.claim(folder, existing_run) as run:
        assert run.resumes == (outcome == "resume")
        assert run.state == {"nothing": "empty", "unstarted": "empty"}.get(kind, kind)
        assert run.start({"epochs": 3}) == (outcome == "resume")
    after = files()
    assert json.loads(after.pop("run.json")) == {"epochs": 3}
    if outcome == "resume":  # everything stays for the run to continue
        assert after == {name: value for name, value in before.items() if name != "run.json"}
        assert (folder / "backup").is_dir()
    else:  # a fresh start deletes the outputs of the run it replaces; the user's file stays
        assert after == {name: value for name, value in before.items() if name == "notes.txt"}
        assert not (folder / "backup").exists()


def test_a_resumed_run_with_other_settings_changes_nothing(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"epochs": 3, "loss": "mse"}))
    with run_folder.claim(tmp_path, "resume") as run:
        with pytest.raises(ValueError, match=r"other settings \(epochs 3 -> 4; loss 'mse' -> 'bce'\): call again"):
            run.start({"epochs": 4, "loss": "bce"})
    assert json.loads((tmp_path / "run.json").read_text()) == {"epochs": 3, "loss": "mse"}
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(ValueError, match=r"run.json cannot be read \(JSONDecodeError\)"):
        with run_folder.claim(tmp_path, "resume"):
            pass


def test_a_claim_that_fails_leaves_no_folder_and_the_lock_goes_with_the_block(tmp_path):
    folder = tmp_path / "new" / "run"
    with pytest.raises(ValueError, match="a check"):
        with run_folder.claim(folder, "refuse") as run:
            assert (folder / "run.lock").read_text() == f"{os.getpid()}\n"
            raise ValueError("a check failed before the first write")
    assert list(tmp_path.iterdir()) == []
    with run_folder.claim(folder, "refuse") as run:
        run.start({"epochs": 1})
    assert sorted(path.name for path in folder.iterdir()) == ["run.json"]
    with pytest.raises(ValueError, match="existing_run must be one of 'auto', 'refuse', 'resume', 'overwrite'"):
        with run_folder.claim(folder, "replace"):
            pass


def test_a_second_process_is_refused_while_the_first_holds_the_folder_and_a_kill_frees_it(tmp_path):
    folder = tmp_path / "run"
    with held_by_another_process(folder) as holder:
        with pytest.raises(BlockingIOError, match=rf"{folder} is in use: process {holder.pid} is writing to it"):
            with run_folder.claim(folder, "overwrite"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert (folder / "run.lock").exists()  # left by the kill, no longer locked
    with run_folder.claim(folder, "refuse") as run:
        run.start({"epochs": 1})
    assert not (folder / "run.lock").exists()

    with held_by_another_process(folder) as holder:
        pass  # lets go normally: its lock file goes with it
    assert holder.returncode == 0 and not (folder / "run.lock").exists()
