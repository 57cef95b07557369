"""Bursts of refused requests, shared by the native (tests/integration) and Python (tests/python) suites.

A burst opens N connections, sends on each a request the server must refuse with one status, and keeps them
open without reading (what a misbehaving client or scanner does). The checks after it are what an operator
relies on: every connection got the right refusal, a normal request on a new connection is answered at once,
and the server still exits cleanly on SIGTERM.
"""
from __future__ import annotations

import resource
import select
import socket
import time
from dataclasses import dataclass

from covet_wire import RawConn, WireError

HEADER_TIMEOUT_MS = 1000  # the servers under test run with this header timeout, so 408 bursts are quick

# status -> what the client sends (each refused before the app sees it).
PAYLOADS: dict[int, bytes] = {
    400: b"GET / HTTP/1.1\r\nHost: burst\r\nno colon here\r\n\r\n",
    408: b"GET / HTTP/1.1\r\nHost: burst\r\n",  # a head that never ends: refused at the header timeout
    # A path no route serves: a Python route (even a 405 for POST, as FastAPI's) streams a large body to its handler.
    413: b"POST /upload HTTP/1.1\r\nHost: burst\r\nContent-Length: 100000000\r\n\r\n",
    414: b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: burst\r\n\r\n",
    431: b"GET / HTTP/1.1\r\nHost: burst\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
    501: b"BREW / HTTP/1.1\r\nHost: burst\r\n\r\n",
    505: b"GET / HTTP/3.0\r\nHost: burst\r\n\r\n",
}
STATUSES = sorted(PAYLOADS)
SIZES = (100, 500, 2000)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


@dataclass
class Burst:
    sockets: list[socket.socket]
    status: int

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets.clear()


def open_burst(port: int, status: int, count: int) -> Burst:
    raise_fd_limit(count + 512)
    payload = PAYLOADS[status]
    burst = Burst([], status)
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(payload)
            burst.sockets.append(s)
    except BaseException:
        burst.close()
        raise
    return burst


def wait_for_refusals(burst: Burst, timeout: float) -> None:
    """Waits until every connection of the burst holds the expected status line, peeking (not reading) so the
    clients still look like clients that never read. Raises AssertionError naming what was seen instead."""
    expected = f"HTTP/1.1 {burst.status} ".encode()
    pending = {s.fileno(): s for s in burst.sockets}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    wrong: dict[bytes, int] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(50):
            s = pending.get(fd)
            if s is None:
                continue
            try:
                head = s.recv(len(expected), socket.MSG_PEEK)
            except OSError as e:
                head = f"<{e.__class__.__name__}>".encode()
            if len(head) < len(expected) and head and not head.startswith(b"<"):
                continue  # the status line is still arriving
            if head != expected:
                wrong[head[:20]] = wrong.get(head[:20], 0) + 1
            del pending[fd]
            poller.unregister(fd)
    assert not wrong, f"expected {burst.status} on every connection, also got {wrong}"
    assert not pending, f"{len(pending)} of {len(burst.sockets)} connections got no {burst.status} within {timeout} s"


def normal_request(port: int, timeout: float, path: str = "/") -> tuple[int, float]:
    """One GET `path` on a new connection: (status, seconds)."""
    start = time.monotonic()
    with RawConn(port, timeout) as conn:
        status = conn.get(path).status
    return status, time.monotonic() - start


def assert_served_promptly(port: int, path: str = "/", limit: float = 0.1, attempts: int = 3) -> None:
    """A normal request is answered within `limit` seconds. A server that stopped serving fails every attempt
    (each waits 2 s); a few attempts keep one scheduling hiccup of a busy test machine from failing the run."""
    seen = []
    for _ in range(attempts):
        try:
            status, took = normal_request(port, timeout=2.0, path=path)
        except (OSError, WireError) as e:
            seen.append(repr(e))
            continue
        seen.append(f"{status} in {took * 1000:.1f} ms")
        if status == 200 and took <= limit:
            return
    raise AssertionError(f"a normal request was not answered within {limit * 1000:.0f} ms: {seen}")


def run_burst_checks(port: int, status: int, count: int, path: str = "/") -> None:
    """Burst, refusals seen, served during the burst, burst closed, served after it."""
    burst = open_burst(port, status, count)
    try:
        wait_for_refusals(burst, timeout=HEADER_TIMEOUT_MS / 1000 + 10)
        assert_served_promptly(port, path)
    finally:
        burst.close()
    assert_served_promptly(port, path)
