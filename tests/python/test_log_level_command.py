"""`covet log-level`: an operator changes log levels of a running `covet run --workers 2` group, per logger, without
a restart; every worker takes them within a second, a worker started later (a rolling restart) starts with them,
and a wrong level is refused with the accepted ones."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from serverproc import ServerProcess, free_port, get, require_compiled_engine

APP = textwrap.dedent("""
    import logging, os
    from covet import CovetPy

    app = CovetPy()
    db = logging.getLogger("myapp.db")
    web = logging.getLogger("myapp.web")

    @app.get("/work")
    async def work():
        db.debug("db debug from %d", os.getpid())
        web.debug("web debug from %d", os.getpid())
        return {"pid": os.getpid()}
    """)


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


def covet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "covet", *args], capture_output=True, text=True, timeout=60)


def debug_pids(server: ServerProcess, logger: str) -> set[str]:
    return set(re.findall(rf"{logger} debug from (\d+)", server.output()))


def until_both_workers_log(server: ServerProcess, port: int, logger: str, deadline: float) -> set[str]:
    """Requests until debug lines of `logger` came from two worker processes (or the deadline)."""
    while len(pids := debug_pids(server, logger)) < 2 and time.monotonic() < deadline:
        for _ in range(8):
            assert get(port, "/work")[0] == 200
        time.sleep(0.05)
    return pids


def test_log_level_reaches_every_worker_and_later_ones(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port, pid_file = free_port(), tmp_path / "covet.pid"
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                        "--pid-file", str(pid_file), "--log-level", "info"], cwd=tmp_path,
                       ready=r"2 worker\(s\) serving on") as server:
        for _ in range(20):
            assert get(port, "/work")[0] == 200
        assert not debug_pids(server, "db"), "debug lines before any level was set"

        done = covet("log-level", "debug", "myapp.db", "--pid-file", str(pid_file))
        assert done.returncode == 0, done.stderr
        assert "myapp.db=debug" in done.stdout
        pids = until_both_workers_log(server, port, "db", time.monotonic() + 10)
        assert len(pids) == 2, f"debug lines from {pids} only: every worker must take the level"
        assert not debug_pids(server, "web"), "only the named logger changes"

        # A rolling restart: the new generation's workers start with the level.
        assert covet("reload", "--pid-file", str(pid_file)).returncode == 0
        before = debug_pids(server, "db")
        deadline = time.monotonic() + 10
        while not (debug_pids(server, "db") - before) and time.monotonic() < deadline:
            assert get(port, "/work")[0] == 200
        assert debug_pids(server, "db") - before, "a worker started after the change must log at debug too"

        # Back to info: the debug lines stop (within a second for each worker).
        assert covet("log-level", "info", "myapp.db", "--pid-file", str(pid_file)).returncode == 0
        time.sleep(1.5)
        mark = len(server.output())
        for _ in range(20):
            assert get(port, "/work")[0] == 200
        time.sleep(0.2)
        assert "db debug from" not in server.output()[mark:]

        bad = covet("log-level", "loud", "--pid-file", str(pid_file))
        assert bad.returncode == 2 and "debug, info, warning, error or critical" in bad.stderr
        trace = covet("log-level", "trace", "myapp.db", "--pid-file", str(pid_file))
        assert trace.returncode == 2 and "trace" in trace.stderr  # only the engine's logger has trace
        assert covet("log-level", "trace", "covet.engine", "--pid-file", str(pid_file)).returncode == 0
