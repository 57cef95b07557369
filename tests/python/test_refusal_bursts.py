"""Bursts of refused requests against a Python app (issue 12, defect 1), in both engine modes and on both backends.

A Python worker in the embedded engine mode (threads=0, the default of `covet run` and `app.run()`) used to stop
serving for good after such a burst: the io_uring kernel runs only a bounded amount of deferred work per
io_uring_enter and signals the ring's eventfd only when its work list becomes non-empty, so the event loop
slept with work pending. Each case runs a real worker process: a burst of 100, 500 or 2,000 connections refused
with one status and kept open unread, every refusal seen, a normal request answered within 100 ms during and
after the burst, then exit code 0 within 5 s of SIGTERM.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverproc import ServerProcess, require_compiled_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from refusal_burst import HEADER_TIMEOUT_MS, SIZES, STATUSES, run_burst_checks  # noqa: E402

SHUTDOWN_LIMIT = 5.0
SERVER = f"""
import sys
from covet import CovetPy
from covet.serve import serve, configure_logging

app = CovetPy()

@app.get("/")
async def root():
    return {{"ok": True}}

configure_logging("info")
sys.exit(serve(app, "127.0.0.1", 0, int(sys.argv[1]), header_timeout_ms={HEADER_TIMEOUT_MS}, max_connections=10000))
"""
SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+) \(engine backend (\w+), ([^,]+)")


@pytest.fixture(scope="module", autouse=True)
def native_engine_in_subprocesses() -> None:
    require_compiled_engine()


class Worker(ServerProcess):
    def __init__(self, threads: int, backend: str) -> None:
        super().__init__([sys.executable, "-c", SERVER, str(threads)], env={"COVET_BACKEND": backend}, ready=SERVING)
        self.placement = self.match.group(3)


@pytest.fixture
def worker(request: pytest.FixtureRequest) -> Iterator[Worker]:
    threads, backend = request.param
    with Worker(threads, backend) as w:
        yield w


MODES = [(0, "uring"), (1, "uring"), (0, "asio"), (1, "asio")]


@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("worker", MODES, indirect=True, ids=[f"threads{t}-{b}" for t, b in MODES])
def test_refusal_burst_then_served_and_clean_exit(worker: Worker, status: int, count: int) -> None:
    threads = 0 if worker.placement.startswith("on the event-loop thread") else 1
    try:
        run_burst_checks(worker.port, status, count)
    except AssertionError as error:
        raise AssertionError(f"{error}\nworker log:\n" + worker.output(20)) from None
    took = worker.stop()
    assert took < SHUTDOWN_LIMIT, f"SIGTERM took {took:.1f} s (engine {worker.placement}, threads={threads})"
