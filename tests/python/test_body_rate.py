"""The engine's request-body pace limits, set from Python (issue 12): ``min_body_rate`` (bytes/second,
averaged once ``min_body_rate_grace_ms`` has passed) and ``body_deadline_ms`` reach the native server
through ``NativeServer(...)`` keyword arguments, here through ``ThreadedWorker(app, **options)``.
A trickled upload is answered 408 by the engine (the handler never runs); a fast one reaches the app."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from covet import CovetPy, Request
from covet.serve import ThreadedWorker


def _app(calls: list[int]) -> CovetPy:
    app = CovetPy()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        body = await request.body()
        calls.append(len(body))
        return {"size": len(body)}

    return app


@pytest.fixture
def calls() -> list[int]:
    return []


@pytest.fixture
def server(native: Any, calls: list[int]) -> Iterator[ThreadedWorker]:
    if native.__name__ != "covet._native":
        pytest.skip("the pure-Python stand-in accepts the limits but does not enforce them")
    worker = ThreadedWorker(_app(calls), port=0, min_body_rate=1000, min_body_rate_grace_ms=1000).start()
    try:
        yield worker
    finally:
        worker.stop()


def _head(length: int) -> bytes:
    return (f"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or `timeout` passes)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def test_trickled_upload_is_answered_408_by_the_engine(server: ThreadedWorker, calls: list[int]) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_head(10_000) + b"x")
        start = time.monotonic()
        answered = b""
        while time.monotonic() - start < 5 and not answered:  # 10 bytes/s, far below 1000 bytes/s
            if select.select([sock], [], [], 0.1)[0]:
                answered = _read_all(sock, 2)
                break
            sock.send(b"x")
        elapsed = time.monotonic() - start
    assert answered.startswith(b"HTTP/1.1 408 "), answered
    assert b"Connection: close" in answered, answered
    assert b"minimum data rate of 1000 bytes/s" in answered and b"min_body_rate" in answered, answered
    assert 0.9 <= elapsed < 3.0, f"the 408 came after {elapsed:.2f} s (grace 1 s, sweep 250 ms)"
    assert calls == []  # the engine answered: the handler never saw the request


def test_upload_above_the_rate_reaches_the_handler(server: ThreadedWorker, calls: list[int]) -> None:
    body = b"y" * 6000  # 4000 bytes/s for 1.5 s: longer than the grace period, above the floor
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_head(len(body)))
        for i in range(0, len(body), 1000):
            sock.sendall(body[i:i + 1000])
            time.sleep(0.25)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.endswith(b'{"size":6000}'), answer
    assert calls == [6000]


def test_every_engine_limit_is_a_native_server_keyword(native: Any) -> None:
    """The compiled engine and the pure-Python stand-in take the same keywords, with the same defaults."""
    server = native.NativeServer(
        host="127.0.0.1", port=0, threads=1, max_url_bytes=4096, max_header_bytes=4096, max_headers=50,
        max_body_bytes=1 << 16, max_buffered_input=1 << 16, output_high_water=1 << 20, header_timeout_ms=1000,
        body_timeout_ms=1000, body_deadline_ms=60_000, min_body_rate=100, min_body_rate_grace_ms=2000,
        keep_alive_timeout_ms=1000, shutdown_timeout_ms=1000, max_connections=10, listen_backlog=64)
    del server


@pytest.mark.parametrize("option", ["body_timeout_ms", "body_deadline_ms", "min_body_rate_grace_ms", "header_timeout_ms"])
def test_negative_durations_are_refused_with_the_option_named(native: Any, option: str) -> None:
    with pytest.raises(ValueError, match=f"{option} must be a number of milliseconds >= 0"):
        native.NativeServer(port=0, **{option: -1})


def test_listen_backlog_must_be_positive(native: Any) -> None:
    with pytest.raises(ValueError, match="listen_backlog must be at least 1"):
        native.NativeServer(port=0, listen_backlog=0)
