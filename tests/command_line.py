"""What a user sees of a command's error output (used by tests)."""


def one_line_error(capsys) -> str:
    """The error a command printed, asserted to be one line without a traceback, as a terminal shows it.

    A transient progress bar (tqdm with ``leave=False``, shown for work that outlasts its delay, as on a busy
    machine) redraws its line with carriage returns and then clears it: only what follows the last ``\\r`` of a
    line stays on the screen.
    """
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    shown = [line.rsplit("\r", 1)[-1] for line in err.strip().split("\n")]
    assert len(shown) == 1, err
    return shown[0].strip()
