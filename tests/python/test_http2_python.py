"""Python handlers over HTTP/2 (h2c prior knowledge), on the compiled engine: several streams of one
connection in the application at once, including after the client has gone."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import fake_native
import pytest

from covet import CovetPy, Request

h2_connection = pytest.importorskip("h2.connection")
h2_events = pytest.importorskip("h2.events")
h2_config = pytest.importorskip("h2.config")


def _app(state: dict[str, Any]) -> CovetPy:
    app = CovetPy()

    @app.get("/late/{ms}")
    async def late(ms: int, request: Request) -> dict[str, Any]:
        await asyncio.sleep(ms / 1000)
        # Read the request only now: its bytes must still be there although the client has gone and
        # another stream of the same connection finished first.
        value = request.headers.get("x-probe")
        state.setdefault("seen", []).append(value)
        return {"probe": value, "version": request.http_version}

    return app


@pytest.fixture(params=[0, 1], ids=["loop-thread", "io-thread"])
def server(request: pytest.FixtureRequest, native: Any) -> Any:
    if native is fake_native:  # the stand-in speaks neither TLS nor HTTP/2
        pytest.skip("HTTP/2 needs the compiled engine")
    from covet.serve import ThreadedWorker

    state: dict[str, Any] = {}
    worker = ThreadedWorker(_app(state), threads=request.param).start()
    worker.state = state  # type: ignore[attr-defined]
    yield worker
    worker.stop()


def _open(port: int) -> tuple[socket.socket, Any]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _get(conn: Any, sock: socket.socket, path: str, probe: str) -> int:
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                  (":authority", "localhost"), ("x-probe", probe)], end_stream=True)
    sock.sendall(conn.data_to_send())
    return int(stream_id)


def test_streams_answered_out_of_order_on_one_connection(server: Any) -> None:
    sock, conn = _open(server.port)
    slow, fast = _get(conn, sock, "/late/300", "slow"), _get(conn, sock, "/late/10", "fast")
    done: dict[int, bytes] = {}
    order: list[int] = []
    deadline = time.monotonic() + 5
    while len(order) < 2 and time.monotonic() < deadline:
        for event in conn.receive_data(sock.recv(65536)):
            if isinstance(event, h2_events.DataReceived):
                done[event.stream_id] = done.get(event.stream_id, b"") + event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2_events.StreamEnded):
                order.append(event.stream_id)
        sock.sendall(conn.data_to_send())
    sock.close()
    assert order == [fast, slow]
    assert done[fast] == b'{"probe":"fast","version":"2"}' and done[slow] == b'{"probe":"slow","version":"2"}'


def test_requests_outlive_a_client_that_left_mid_stream(server: Any) -> None:
    sock, conn = _open(server.port)
    _get(conn, sock, "/late/150", "first")
    _get(conn, sock, "/late/400", "second")
    time.sleep(0.05)
    sock.close()  # both streams are still in the application
    deadline = time.monotonic() + 5
    while len(server.state.get("seen", [])) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(server.state["seen"]) == ["first", "second"]
    sock, conn = _open(server.port)  # and the server goes on
    _get(conn, sock, "/late/1", "again")
    body = b""
    while not body.endswith(b"}"):
        for event in conn.receive_data(sock.recv(65536)):
            if isinstance(event, h2_events.DataReceived):
                body += event.data
        sock.sendall(conn.data_to_send())
    sock.close()
    assert body == b'{"probe":"again","version":"2"}'
