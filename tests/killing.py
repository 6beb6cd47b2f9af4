"""Kills a training process at a chosen moment, as a user's Ctrl-C cannot: SIGKILL, no clean-up (used by tests)."""

import signal
import subprocess


def kill_after_line(command: list[str], line: str, env: dict[str, str], timeout: float = 300) -> int:
    """Runs ``command``, sends SIGKILL as soon as it prints ``line`` (stripped), and returns its exit status.

    The status is ``-signal.SIGKILL`` when the line came, else the command's own status once it ended.
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    with process.stdout:
        for printed in process.stdout:
            if printed.strip() == line:
                process.send_signal(signal.SIGKILL)
                break
    return process.wait(timeout=timeout)
