"""Fixtures for the black-box integration tests of the `hello` example server.

Environment:
  COVET_HELLO_BIN         path of the server binary (default build/examples/native/hello/hello)
  COVET_BACKEND           run only this backend (default: every test against uring AND asio)
  COVET_REQUIRE_SERVER=1  fail instead of skip when the binary is missing (for CI)

A test module may set SERVER_ARGS (extra command-line flags) and SERVER_THREADS for its
module-scoped `server`; tests that need their own flags use `make_server(*flags, threads=N)`.
Every server must exit with code 0 within 15 s of SIGTERM at teardown.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import covet_proc  # noqa: E402
from covet_proc import ServerProcess  # noqa: E402

DEFAULT_TEST_TIMEOUT = 60.0


def _backends() -> list[str]:
    env = os.environ.get("COVET_BACKEND", "").strip()
    return [env] if env else ["uring", "asio"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "covet_timeout(seconds): watchdog limit for one integration test (default 60)")


@pytest.fixture(scope="session")
def hello_bin() -> Path:
    path = covet_proc.hello_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        msg = f"hello server binary not found at {path} (build it, or set COVET_HELLO_BIN)"
        if os.environ.get("COVET_REQUIRE_SERVER"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module", params=_backends())
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(request, hello_bin, backend):
    """One server per module and backend, started with the module's SERVER_ARGS."""
    srv = ServerProcess(hello_bin, backend, getattr(request.module, "SERVER_ARGS", ()),
                        threads=getattr(request.module, "SERVER_THREADS", 2))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def make_server(hello_bin, backend):
    """Factory for servers with special flags, stopped (and checked for exit code 0) after the
    test unless the test stopped them itself."""
    started: list[ServerProcess] = []

    def factory(*args, threads: int = 2) -> ServerProcess:
        srv = ServerProcess(hello_bin, backend, args, threads=threads)
        started.append(srv)
        return srv.start()

    yield factory
    errors = []
    for srv in started:
        if srv.proc is not None and not srv.stopped:
            try:
                srv.stop()
            except AssertionError as e:
                errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


class WatchdogExpired(Exception):
    pass


@pytest.fixture(autouse=True)
def _watchdog(request):
    """Fail a test that runs too long instead of hanging the run (pytest-timeout style; every
    socket read also has its own timeout). Skipped when pytest-timeout is installed."""
    if request.config.pluginmanager.hasplugin("timeout"):
        yield
        return
    marker = request.node.get_closest_marker("covet_timeout")
    limit = float(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise WatchdogExpired(f"test exceeded its {limit:.0f} s watchdog")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_runtest_setup(item):
    item._covet_started = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the stderr of every server that was running during the test."""
    report = yield
    if report.failed:
        since = getattr(item, "_covet_started", 0.0)
        for srv in covet_proc.servers_active_since(since):
            state = "running" if srv.alive() else f"exited rc={srv.proc.returncode}"
            report.sections.append(
                (f"hello server stderr [{srv.describe()}; {state}]", srv.stderr_tail()))
    return report
