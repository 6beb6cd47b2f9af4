"""A pytest plugin that records each test's wall-clock and CPU time, to size the suite for a slow machine.

Wall-clock time on shared cores says little about an idle machine; CPU time (user + system, of pytest and of the
processes it waited for: notebook kernels, command-line runs, benchmark scripts) changes much less with the load.
On an idle 2-core machine a test takes between half its CPU time (both cores busy throughout) and all of it (one
core busy), so the CPU time is a conservative estimate of its idle wall-clock time. Tests run as usual; at the end
the plugin prints the slowest tests and writes every record with the machine (CPU flags, oneDNN limit) as JSON.
Under pytest-xdist (``make test`` runs two workers) each worker times its own tests and the main process adds them
up per worker: on an idle machine with one core per worker, the suite lasts about as long as its busiest worker's
CPU time.

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
_RECORDS: dict[str, dict] = {}
_TEST_START = pytest.StashKey[tuple]()
_SESSION_START = pytest.StashKey[tuple]()


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Starts the clocks of one test: set-up, call and tear-down count together (a module fixture in its first test)."""
    item.stash[_TEST_START] = (time.perf_counter(), _cpu_seconds())
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the times to the tear-down report, which pytest-xdist sends from its worker to the main process."""
    outcome = yield
    if call.when == "teardown":
        wall, cpu = item.stash[_TEST_START]
        record = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": _cpu_seconds() - cpu,
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        }
        outcome.get_result().user_properties.append((NAME, record))


def pytest_runtest_logreport(report):
    for key, record in report.user_properties:
        if key == NAME:
            _RECORDS[report.nodeid] = record


def pytest_sessionstart(session):
    session.config.stash[_SESSION_START] = (time.perf_counter(), os.getloadavg())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    wall_start, load_start = config.stash[_SESSION_START]
    workers: dict[str, float] = {}
    for record in _RECORDS.values():
        workers[record["worker"]] = workers.get(record["worker"], 0.0) + record["cpu_s"]
    total = {"wall_s": time.perf_counter() - wall_start, "cpu_s": sum(workers.values()), "cpu_s_per_worker": workers}
    slowest = sorted(_RECORDS.items(), key=lambda item: -item[1]["cpu_s"])
    rows = [[nodeid, record["wall_s"], record["cpu_s"]] for nodeid, record in slowest[:20]]
    terminalreporter.write_sep("=", "wall-clock and CPU time (suite_time)")
    terminalreporter.write_line(common.describe_machine(common.machine_info()))
    terminalreporter.write_line(common.table(["test", "wall s", "CPU s"], rows))
    per_worker = ", ".join(f"{worker} {seconds:.0f} s" for worker, seconds in sorted(workers.items()))
    summary = f"{len(_RECORDS)} tests: {total['wall_s']:.0f} s wall-clock, {total['cpu_s']:.0f} s CPU ({per_worker})"
    terminalreporter.write_line(summary)
    out = Path(os.environ.get("SUITE_TIME_OUT", common.RESULTS_DIR / "quick" / f"{NAME}.json"))
    results = {"total": total, "load_average_at_start": load_start, "tests": _RECORDS}
    command = " ".join(["python -m pytest", *config.invocation_params.args])
    path = common.save_results(NAME, out, quick=False, command=command, settings={}, results=results)
    terminalreporter.write_line(f"Results written to {path}")
