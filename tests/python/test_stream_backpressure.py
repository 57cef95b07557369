"""Streamed responses with back-pressure and client-disconnect detection, on the compiled engine and real
sockets: a producer goes no faster than its client reads (HTTP/1.1 and HTTP/2), and stops — its generator's
``finally:`` runs — when the client goes away, which ``request.is_disconnected()`` then reports."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fake_native
import pytest

from covet import CovetPy, Request
from covet.responses import StreamingResponse

h2_connection = pytest.importorskip("h2.connection")
h2_events = pytest.importorskip("h2.events")
h2_config = pytest.importorskip("h2.config")

LIMIT = 256 * 1024  # stream_send_buffer of the test server
ITEM = b"x" * (16 * 1024)


def _app(state: dict[str, Any]) -> CovetPy:
    app = CovetPy()

    @app.get("/endless")
    async def endless() -> StreamingResponse:
        async def produce() -> AsyncIterator[bytes]:
            try:
                while True:
                    state["produced"] = state.get("produced", 0) + len(ITEM)
                    yield ITEM
            finally:
                state["closed_at"] = time.monotonic()

        return StreamingResponse(produce(), media_type="application/octet-stream")

    @app.get("/endless-sync")
    def endless_sync() -> StreamingResponse:
        def produce() -> Iterator[bytes]:
            try:
                while True:
                    state["produced"] = state.get("produced", 0) + len(ITEM)
                    yield ITEM
            finally:
                state["closed_at"] = time.monotonic()

        return StreamingResponse(produce(), media_type="application/octet-stream")

    @app.get("/ticks")
    async def ticks(request: Request) -> StreamingResponse:
        async def produce() -> AsyncIterator[bytes]:
            try:
                for i in range(1000):
                    if await request.is_disconnected():
                        state["saw_disconnect"] = True
                        return
                    yield f"tick {i}\n".encode()
                    await asyncio.sleep(0.05)
            finally:
                state["closed_at"] = time.monotonic()

        return StreamingResponse(produce(), media_type="text/plain")

    return app


@pytest.fixture(params=[0, 1], ids=["loop-thread", "io-thread"])
def server(request: pytest.FixtureRequest, native: Any) -> Any:
    if native is fake_native:
        pytest.skip("back-pressure needs the compiled engine")
    from covet.serve import ThreadedWorker

    state: dict[str, Any] = {}
    worker = ThreadedWorker(_app(state), threads=request.param, stream_send_buffer=LIMIT).start()
    worker.state = state  # type: ignore[attr-defined]
    yield worker
    worker.stop()


def _kernel_slack() -> int:
    """What the kernel may hold between the server's write and the client's read: the server socket's send
    buffer (autotuned up to tcp_wmem's maximum) and the client's receive buffer."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem = int(f.read().split()[2])
    except OSError:
        wmem = 4 * 1024 * 1024
    return wmem + 256 * 1024


def _slow_client(port: int, path: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def _wait_stable(state: dict[str, Any], key: str, quiet: float = 0.4, timeout: float = 10) -> int:
    """`state[key]` once it stopped growing for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = state.get(key, 0), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = state.get(key, 0)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return int(now)
    raise AssertionError(f"{key} kept growing: {state.get(key)}")


@pytest.mark.parametrize("path", ["/endless", "/endless-sync"])
def test_http1_producer_waits_for_a_slow_client(server: Any, path: str) -> None:
    sock = _slow_client(server.port, path)
    try:
        received = 0
        for _ in range(3):  # a client that reads a little, then pauses
            for _ in range(8):
                received += len(sock.recv(16 * 1024))
            produced = _wait_stable(server.state, "produced")
            assert produced - received <= LIMIT + _kernel_slack() + len(ITEM), (produced, received)
        # The producer is paused, not racing ahead: a stalled client stalls it for good.
        time.sleep(0.5)
        assert server.state["produced"] == produced
        # Reading resumes it.
        deadline = time.monotonic() + 5
        while server.state["produced"] == produced and time.monotonic() < deadline:
            received += len(sock.recv(256 * 1024))
        assert server.state["produced"] > produced
    finally:
        sock.close()
    _wait_for(lambda: "closed_at" in server.state)


def _wait_for(cond: Any, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("path", ["/endless", "/endless-sync"])
def test_http1_disconnect_closes_the_generator(server: Any, path: str) -> None:
    sock = _slow_client(server.port, path)
    sock.recv(4096)
    _wait_stable(server.state, "produced", quiet=0.2)
    gone = time.monotonic()
    sock.close()
    _wait_for(lambda: "closed_at" in server.state)  # within a second: the generator's finally ran
    assert server.state["closed_at"] - gone < 1.0


def test_is_disconnected_turns_true(server: Any) -> None:
    sock = _slow_client(server.port, "/ticks")
    received = b""
    while b"tick 0" not in received:  # the head and the first chunk may come in separate segments
        data = sock.recv(4096)
        assert data, f"the connection closed before the first tick: {received!r}"
        received += data
    time.sleep(0.1)
    sock.close()
    _wait_for(lambda: "closed_at" in server.state)
    assert server.state.get("saw_disconnect") is True


def _h2_get(port: int, path: str) -> tuple[socket.socket, Any, int]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                  (":authority", "localhost")], end_stream=True)
    sock.sendall(conn.data_to_send())
    return sock, conn, int(stream_id)


def _h2_read(sock: socket.socket, conn: Any, stream_id: int, budget: int, ack: bool) -> int:
    """Reads DATA of `stream_id` until `budget` bytes came (or 0.3 s of silence); acknowledges them (opening
    the flow-control window) when `ack`."""
    got = 0
    sock.settimeout(0.3)
    try:
        while got < budget:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2_events.DataReceived) and event.stream_id == stream_id:
                    got += len(event.data)
                    if ack:
                        conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            sock.sendall(conn.data_to_send())
    except socket.timeout:
        pass
    return got


def test_http2_producer_waits_for_the_flow_control_window(server: Any) -> None:
    sock, conn, stream_id = _h2_get(server.port, "/endless")
    try:
        # The client never opens its window past the initial 64 KiB: the rest waits in the server, bounded.
        received = _h2_read(sock, conn, stream_id, 1 << 30, ack=False)
        produced = _wait_stable(server.state, "produced")
        assert produced - received <= LIMIT + 2 * len(ITEM), (produced, received)
        # Opening the window resumes the producer.
        conn.acknowledge_received_data(received, stream_id)
        sock.sendall(conn.data_to_send())
        received += _h2_read(sock, conn, stream_id, 4 * LIMIT, ack=True)
        assert server.state["produced"] > produced
    finally:
        sock.close()
    _wait_for(lambda: "closed_at" in server.state)


def test_http2_reset_closes_the_generator(server: Any) -> None:
    sock, conn, stream_id = _h2_get(server.port, "/endless")
    try:
        _h2_read(sock, conn, stream_id, 1 << 30, ack=False)
        _wait_stable(server.state, "produced", quiet=0.2)
        assert "closed_at" not in server.state
        conn.reset_stream(stream_id)
        sock.sendall(conn.data_to_send())
        _wait_for(lambda: "closed_at" in server.state)
    finally:
        sock.close()


def test_http2_is_disconnected_on_connection_loss(server: Any) -> None:
    sock, conn, stream_id = _h2_get(server.port, "/ticks")
    assert _h2_read(sock, conn, stream_id, 6, ack=True) >= 6
    sock.close()
    _wait_for(lambda: "closed_at" in server.state)
    assert server.state.get("saw_disconnect") is True

