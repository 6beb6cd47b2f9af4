"""A pytest plugin that records each test's wall-clock and CPU time, to size the suite for a slow machine.

Wall-clock time on shared cores says little about an idle machine; CPU time (user + system, of pytest and of the
processes it waited for: notebook kernels, command-line runs, benchmark scripts) changes much less with the load.
On an idle 2-core machine a test takes between half its CPU time (both cores busy throughout) and all of it (one
core busy), so the CPU time is a conservative estimate of its idle wall-clock time. Tests run as usual; at the end
the plugin prints the slowest tests and writes every record with the machine (CPU flags, oneDNN limit) as JSON.

Usage (from the repository root; the ISA limit makes a newer CPU compute like an AVX2-only one)::

    ONEDNN_MAX_CPU_ISA=AVX2 nice -n 19 python -m pytest -p benchmarks.suite_time tests/test_cli.py
    SUITE_TIME_OUT=benchmarks/results/suite_time.json ...     # where to write (default results/quick/)
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from benchmarks import common

NAME = "suite_time"
_RECORDS: dict[str, dict[str, float]] = {}
_START = pytest.StashKey[tuple]()


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Times set-up, call and tear-down of one test together (a module fixture counts in its first test)."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    yield
    _RECORDS[item.nodeid] = {"wall_s": time.perf_counter() - wall, "cpu_s": _cpu_seconds() - cpu}


def pytest_sessionstart(session):
    session.config.stash[_START] = (time.perf_counter(), _cpu_seconds(), os.getloadavg())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    wall_start, cpu_start, load_start = config.stash[_START]
    total = {"wall_s": time.perf_counter() - wall_start, "cpu_s": _cpu_seconds() - cpu_start}
    slowest = sorted(_RECORDS.items(), key=lambda item: -item[1]["cpu_s"])
    rows = [[nodeid, record["wall_s"], record["cpu_s"]] for nodeid, record in slowest[:20]]
    terminalreporter.write_sep("=", "wall-clock and CPU time (suite_time)")
    terminalreporter.write_line(common.describe_machine(common.machine_info()))
    terminalreporter.write_line(common.table(["test", "wall s", "CPU s"], rows))
    summary = f"{len(_RECORDS)} tests: {total['wall_s']:.0f} s wall-clock, {total['cpu_s']:.0f} s CPU"
    terminalreporter.write_line(summary)
    out = Path(os.environ.get("SUITE_TIME_OUT", common.RESULTS_DIR / "quick" / f"{NAME}.json"))
    results = {"total": total, "load_average_at_start": load_start, "tests": _RECORDS}
    command = " ".join(["python -m pytest", *config.invocation_params.args])
    path = common.save_results(NAME, out, quick=False, command=command, settings={}, results=results)
    terminalreporter.write_line(f"Results written to {path}")
