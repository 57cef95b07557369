"""`covet run --workers N` shares one listening socket among its workers (bound once by the master, so that
restarts never drop a connection). Every worker must get connections from it, on both engine backends: with
io_uring, a multishot accept on that socket kept one worker first in the socket's wait queue, and that worker
took every connection (the others idled; `--workers 2` served on one core); with Asio, epoll woke every idle worker
and the one scheduled first took the connection (34 of 40 in a CI run). Both now queue for turns: a single-shot
accept (io_uring), an EPOLLEXCLUSIVE waiter re-registered after each turn (Asio, src/net/accept_turns.hpp)."""
from __future__ import annotations

import http.client
import json
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine

APP = textwrap.dedent("""
    import os
    from covet import CovetPy
    app = CovetPy()

    @app.get("/")
    async def root():
        return {"pid": os.getpid()}
""")


def pid_of_new_connection(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        return int(json.loads(response.read())["pid"])
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["uring", "asio"])
def test_every_worker_takes_connections_from_the_shared_socket(tmp_path: Path, backend: str) -> None:
    require_compiled_engine()
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    command = [sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2"]
    with ServerProcess(command, cwd=tmp_path, ready=r"2 worker\(s\) serving on", env={"COVET_BACKEND": backend}):
        # One client opening connections one after another (an idle server: nothing else decides who accepts).
        sequential = Counter(pid_of_new_connection(port) for _ in range(40))
        assert len(sequential) == 2, f"one worker took every connection: {dict(sequential)}"
        assert min(sequential.values()) >= 8, f"the workers' shares are far apart: {dict(sequential)}"
        # Clients connecting at once.
        concurrent: Counter[int] = Counter()
        lock = threading.Lock()

        def client() -> None:
            for _ in range(10):
                pid = pid_of_new_connection(port)
                with lock:
                    concurrent[pid] += 1

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(concurrent.values()) == 60
        assert len(concurrent) == 2 and min(concurrent.values()) >= 10, dict(concurrent)
