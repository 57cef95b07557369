"""An idle io_uring worker returns its receive buffers to the kernel (issue 18, memory): the kernel takes the
provided buffers round-robin, so after a few thousand reads all 1024 of 8 KiB (8 MiB) are resident, and stayed
so for the life of the process. After 2 s without a received byte the worker drops their pages; the next reads
fault them in again and are answered as before.

Each case runs a real server process (its memory measured on its own), in both engine modes (threads=0: the
engine on the event loop's thread; threads=1: its own I/O thread).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest
from serverproc import ServerProcess, require_compiled_engine

SERVER = """
import sys
from covet import CovetPy
from covet.serve import serve, configure_logging

app = CovetPy()

@app.get("/ping")
async def ping():
    return {"ok": True}

configure_logging("info")
sys.exit(serve(app, "127.0.0.1", 0, int(sys.argv[1])))
"""

READS = 3000  # more than the ring's 1024 buffers: every buffer is used at least twice
RELEASED = 4 << 20  # of the up to 8 MiB the buffers hold once all are used


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


class Server(ServerProcess):
    def __init__(self, threads: int) -> None:
        super().__init__([sys.executable, "-c", SERVER, str(threads)], env={"COVET_BACKEND": "uring"})

    def requests(self, count: int) -> None:
        """`count` GETs on one keep-alive connection, each answered before the next is sent: one read each."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            for _ in range(count):
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
                answer = b""
                while not answer.endswith(b'{"ok":true}'):
                    chunk = sock.recv(65536)
                    assert chunk, answer
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200 "), answer


@pytest.fixture(params=[0, 1], ids=["threads0", "threads1"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(request.param) as s:
        yield s
        s.stop(expect=None)
    if s.fell_back_to_epoll():
        pytest.skip("io_uring is not available here: the case ran on epoll")


def test_an_idle_worker_returns_its_receive_buffers(server: Server) -> None:
    server.requests(READS)
    busy = server.memory("RssAnon")
    deadline = time.monotonic() + 6  # released within 2 s of idleness and a 250 ms sweep
    while server.memory("RssAnon") > busy - RELEASED and time.monotonic() < deadline:
        time.sleep(0.25)
    idle = server.memory("RssAnon")
    assert busy - idle >= RELEASED, f"resident anonymous memory went from {busy >> 10} KiB to {idle >> 10} KiB"
    # The buffers are used again, and answer as before (their pages faulted in afresh).
    server.requests(READS)
    assert server.memory("RssAnon") > idle + RELEASED // 2
