"""NativeResponder.early_hint (103 Early Hints) and send_trailers (a stream ended with trailer fields) over real
sockets: HTTP/1.1 (and 1.0, which gets neither) on both engines and both backends, HTTP/2 on the compiled one
with the `h2` client (gRPC's shape: DATA, then trailing HEADERS with END_STREAM)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

import fake_native
import pytest


def _exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def _handle(route_id: int, _request: Any, responder: Any) -> None:
    if route_id == 0:
        responder.early_hint([("Link", "</style.css>; rel=preload; as=style")])
        responder.early_hint([("Link", "</app.js>; rel=preload; as=script")])
        responder.send(200, [("Content-Type", "text/plain")], b"hello")
        with pytest.raises(RuntimeError, match="before the response"):
            responder.early_hint([("Link", "</late.css>")])
    else:
        responder.start_stream(200, [("Content-Type", "application/grpc")])
        responder.write(b"\x00\x00\x00\x00\x02hi")
        responder.send_trailers([("grpc-status", "0"), ("grpc-message", "fine")])
        with pytest.raises(RuntimeError, match="start_stream"):
            responder.send_trailers([("grpc-status", "1")])


def _serve(server: Any, client: Callable[[], Any]) -> Any:
    """Runs the blocking `client` in a thread while the loop answers the engine's requests."""
    loop = asyncio.new_event_loop()

    def ready() -> None:
        for route_id, request, responder in server.take():
            _handle(route_id, request, responder)

    loop.add_reader(server.fileno(), ready)
    try:
        return loop.run_until_complete(loop.run_in_executor(None, client))
    finally:
        loop.remove_reader(server.fileno())
        loop.close()


@pytest.fixture(params=["uring", "asio"])
def server(request: pytest.FixtureRequest, native: Any) -> Any:
    if native is fake_native and request.param == "asio":
        pytest.skip("one backend in the stand-in")
    options = {} if native is fake_native else {"backend": request.param}
    s = native.NativeServer(port=0, threads=1, shutdown_timeout_ms=2000, **options)
    s.add_route("GET", "/hints", 0)
    s.add_route("GET", "/grpc", 1)
    if native is not fake_native:
        s.http2 = True
    s.start()
    yield s
    s.stop()
    s.wait()


def test_early_hints_and_chunked_trailers_over_http1(server: Any) -> None:
    raw = (b"GET /hints HTTP/1.1\r\nHost: t\r\n\r\n"
           b"GET /grpc HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    out = _serve(server, lambda: _exchange(server.port, raw))
    hints = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
             b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload; as=script\r\n\r\n")
    assert out.startswith(hints + b"HTTP/1.1 200 OK\r\n"), out
    assert out.count(b"HTTP/1.1 103") == 2 and b"\r\n\r\nhello" in out
    # the stream: its one chunk, the last chunk and the trailer section (which ends the response)
    assert out.endswith(b"7\r\n\x00\x00\x00\x00\x02hi\r\n0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n"), out


def test_http10_clients_get_no_interim_responses(server: Any, native: Any) -> None:
    out = _serve(server, lambda: _exchange(server.port, b"GET /hints HTTP/1.0\r\nHost: t\r\n\r\n"))
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nhello") and b" 103 " not in out
    if native is fake_native:
        return  # the stand-in streams chunked to HTTP/1.0 clients too
    out = _serve(server, lambda: _exchange(server.port, b"GET /grpc HTTP/1.0\r\nHost: t\r\n\r\n"))
    assert out.endswith(b"\r\n\r\n\x00\x00\x00\x00\x02hi"), out  # until-close body: no trailer section


def test_http2_interim_headers_and_trailing_headers(server: Any, native: Any) -> None:
    if native is fake_native:
        pytest.skip("HTTP/2 needs the compiled engine")
    h2 = pytest.importorskip("h2")
    import h2.config
    import h2.connection
    import h2.events

    def client() -> dict[int, list[Any]]:
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        events: dict[int, list[Any]] = {1: [], 3: []}
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            for stream_id, path in ((1, "/hints"), (3, "/grpc")):
                conn.send_headers(stream_id, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                                              (":path", path), ("te", "trailers")], end_stream=True)
            s.sendall(conn.data_to_send())
            ended: set[int] = set()
            while ended != {1, 3}:
                data = s.recv(65536)
                assert data, "the server closed the connection"
                for event in conn.receive_data(data):
                    if isinstance(event, (h2.events.InformationalResponseReceived, h2.events.ResponseReceived,
                                          h2.events.TrailersReceived, h2.events.DataReceived)):
                        events[event.stream_id].append(event)
                    if isinstance(event, h2.events.StreamEnded):
                        ended.add(event.stream_id)
                s.sendall(conn.data_to_send())
        return events

    events = _serve(server, client)

    def fields(event: Any) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in event.headers]

    hints = events[1]
    assert [type(e).__name__ for e in hints] == ["InformationalResponseReceived", "InformationalResponseReceived",
                                                 "ResponseReceived", "DataReceived"]
    assert fields(hints[0]) == [(b":status", b"103"), (b"link", b"</style.css>; rel=preload; as=style")]
    assert fields(hints[1]) == [(b":status", b"103"), (b"link", b"</app.js>; rel=preload; as=script")]
    assert (b":status", b"200") in fields(hints[2]) and hints[3].data == b"hello"
    grpc = events[3]
    assert [type(e).__name__ for e in grpc] == ["ResponseReceived", "DataReceived", "TrailersReceived"]
    assert grpc[1].data == b"\x00\x00\x00\x00\x02hi"
    assert fields(grpc[2]) == [(b"grpc-status", b"0"), (b"grpc-message", b"fine")]


def test_bad_fields_are_refused(server: Any, native: Any) -> None:
    errors: list[str] = []

    def handle(_route_id: int, _request: Any, responder: Any) -> None:
        for call in (lambda: responder.early_hint([("Link", "a\r\nb")]),):
            try:
                call()
            except ValueError as exc:
                errors.append(str(exc))
        responder.start_stream(200, [])
        try:
            responder.send_trailers([("bad name", "x")])
        except ValueError as exc:
            errors.append(str(exc))
        responder.end()

    loop = asyncio.new_event_loop()

    def ready() -> None:
        for route_id, request, responder in server.take():
            handle(route_id, request, responder)

    loop.add_reader(server.fileno(), ready)
    try:
        out = loop.run_until_complete(loop.run_in_executor(
            None, lambda: _exchange(server.port, b"GET /grpc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")))
    finally:
        loop.remove_reader(server.fileno())
        loop.close()
    assert out.endswith(b"0\r\n\r\n") and len(errors) == 2, errors
