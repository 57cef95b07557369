"""pytest setup for the short fault-injection run: a watchdog per test, and the report of each scenario
printed (``-s`` or on failure) and appended as JSON lines to $COVET_FAULT_REPORT when set."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `fault` importable however pytest is started

WATCHDOG_S = 150.0


class WatchdogExpired(Exception):
    pass


@pytest.fixture(autouse=True)
def _watchdog():
    """A hung scenario fails its test instead of hanging the run."""
    def on_alarm(signum, frame):
        raise WatchdogExpired(f"fault scenario exceeded its {WATCHDOG_S:.0f} s watchdog")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, WATCHDOG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def record():
    """Call with a scenario report: prints its line and appends it to $COVET_FAULT_REPORT."""
    from fault.scenarios import format_line

    def rec(report: dict) -> dict:
        print(format_line(report))
        path = os.environ.get("COVET_FAULT_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(report) + "\n")
        return report

    return rec
