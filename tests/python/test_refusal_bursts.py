"""Bursts of refused requests against a Python app (issue 12, defect 1), in both engine modes and on both backends.

A Python worker in the embedded engine mode (threads=0, the default of `covet run` and `app.run()`) used to stop
serving for good after such a burst: the io_uring kernel runs only a bounded amount of deferred work per
io_uring_enter and signals the ring's eventfd only when its work list becomes non-empty, so the event loop
slept with work pending. Each case runs a real worker process: a burst of 100, 500 or 2,000 connections refused
with one status and kept open unread, every refusal seen, a normal request answered within 100 ms during and
after the burst, then exit code 0 within 5 s of SIGTERM.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    if os.environ.get("COVET_NATIVE", "").strip() == "fake":
        pytest.skip("COVET_NATIVE=fake: these tests need the compiled engine")
    probe = subprocess.run([sys.executable, "-c", "import covet._native"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        reason = f"{sys.executable} cannot import covet's compiled engine: {probe.stderr.strip()[-300:]}"
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail(reason)
        pytest.skip(reason)


class Worker:
    def __init__(self, threads: int, backend: str) -> None:
        env = dict(os.environ, COVET_BACKEND=backend)
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(threads)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.port = 0
        self.placement = ""
        started = threading.Event()

        def pump() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                match = SERVING.search(line)
                if match:
                    self.port, self.placement = int(match.group(1)), match.group(3)
                    started.set()
            started.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not started.wait(30) or not self.port:
            self.proc.kill()
            raise AssertionError("the worker did not start:\n" + "".join(self.log[-30:]))

    def stop(self) -> float:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the worker ignored SIGTERM for 15 s:\n" + "".join(self.log[-30:]))
        self._pump.join(2)
        took = time.monotonic() - start
        assert rc == 0, f"exit code {rc} after SIGTERM:\n" + "".join(self.log[-30:])
        return took


@pytest.fixture
def worker(request: pytest.FixtureRequest) -> Iterator[Worker]:
    threads, backend = request.param
    w = Worker(threads, backend)
    yield w
    if w.proc.poll() is None:
        w.proc.kill()
        w.proc.wait()


MODES = [(0, "uring"), (1, "uring"), (0, "asio"), (1, "asio")]


@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("worker", MODES, indirect=True, ids=[f"threads{t}-{b}" for t, b in MODES])
def test_refusal_burst_then_served_and_clean_exit(worker: Worker, status: int, count: int) -> None:
    threads = 0 if worker.placement.startswith("on the event-loop thread") else 1
    try:
        run_burst_checks(worker.port, status, count)
    except AssertionError as error:
        raise AssertionError(f"{error}\nworker log:\n" + "".join(worker.log[-20:])) from None
    took = worker.stop()
    assert took < SHUTDOWN_LIMIT, f"SIGTERM took {took:.1f} s (engine {worker.placement}, threads={threads})"
