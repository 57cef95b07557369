"""Full-duplex request bodies and the disconnect watch (issue 15): a request body without a declared length (HTTP/1.1
chunked, an HTTP/2 stream without content-length) reaches the application from its first bytes, so an app may
answer each message before the body ends (a gRPC bidirectional stream, a chat); and an app waiting in
``receive()`` after its body hears ``http.disconnect`` as soon as the client goes away (the engine watches the
exchange: no timer).

Each case runs on real sockets against a `ThreadedWorker` in the engine modes and backends of the other tests:
the engine on the loop thread (threads=0, io_uring), on its own I/O thread on io_uring and on epoll (asio). The
servers use short body timeouts (a 300 ms rate grace, a 600 ms idle gap) so that the limits' policy shows quickly:
a body that stalls before any response is still answered 408; one whose response has started is not timed.
"""

from __future__ import annotations

import queue
import select
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from serverproc import require_compiled_engine, self_signed_cert

from covet import CovetPy, Request, StreamingResponse

Scope = dict[str, Any]
MODES = [(0, "uring"), (1, "uring"), (1, "asio")]
MODE_IDS = ["threads0-uring", "threads1-uring", "threads1-asio"]
TIMEOUTS = {"min_body_rate_grace_ms": 300, "body_timeout_ms": 600}


@pytest.fixture(scope="module", autouse=True)
def _compiled_engine() -> None:
    require_compiled_engine("import covet._native as n; n.NativeRequest.watch_disconnect",
                            "compiled engine with the disconnect watch")


class Recorder:
    def __init__(self) -> None:
        self.queues: dict[str, queue.Queue[Any]] = {}

    def put(self, key: str, value: Any) -> None:
        self.queues.setdefault(key, queue.Queue()).put(value)

    def get(self, key: str, timeout: float = 10.0) -> Any:
        return self.queues.setdefault(key, queue.Queue()).get(timeout=timeout)


def asgi_app(rec: Recorder) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        if path == "/echo":  # each body message is echoed at once; the response starts with the first one
            started = False
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                if not started:
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", b"application/octet-stream")]})
                    started = True
                if message.get("body"):
                    await send({"type": "http.response.body", "body": message["body"], "more_body": True})
                if not message.get("more_body", False):
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif path == "/wait-disconnect":  # the body, then nothing but waiting for the client to leave
            while (await receive()).get("more_body", False):
                pass
            rec.put("waiting", True)
            message = await receive()
            rec.put("disconnect", (message, time.monotonic()))
        elif path == "/whole":  # reads the whole body before answering
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    rec.put("whole-gone", True)
                    return
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(size).encode()})

    return app


@pytest.fixture(scope="module", params=MODES, ids=MODE_IDS)
def hosted(request: pytest.FixtureRequest) -> Iterator[Any]:
    from covet.serve import ThreadedWorker

    threads, backend = request.param
    rec = Recorder()
    worker = ThreadedWorker(asgi_app(rec), threads=threads, backend=backend, lifespan=False, **TIMEOUTS).start()
    worker.rec = rec  # type: ignore[attr-defined]
    yield worker
    worker.stop()


@pytest.fixture(scope="module", params=MODES, ids=MODE_IDS)
def native_app(request: pytest.FixtureRequest) -> Iterator[Any]:
    from covet.serve import ThreadedWorker

    app = CovetPy()

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        async def replies() -> Any:
            async for chunk in request.stream():
                if chunk:
                    yield chunk

        return StreamingResponse(replies(), media_type="application/octet-stream")

    threads, backend = request.param
    worker = ThreadedWorker(app, threads=threads, backend=backend, lifespan=False, **TIMEOUTS).start()
    yield worker
    worker.stop()


# -- helpers ------------------------------------------------------------------------------------------------------
def recv_until(sock: socket.socket, buf: bytearray, wanted: bytes, timeout: float = 3.0) -> None:
    """Reads into `buf` until it holds `wanted` (AssertionError naming what came after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while wanted not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} did not arrive within {timeout} s; got {bytes(buf)!r}"
        if select.select([sock], [], [], left)[0]:
            data = sock.recv(65536)
            assert data, f"the server closed the connection before {wanted!r}; got {bytes(buf)!r}"
            buf += data


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def http1_lock_step(port: int, pause: float = 0.0) -> None:
    """A chunked POST to an echo: each piece's echo must arrive before the next piece is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        buf = bytearray()
        for i in range(4):
            piece = b"message-%d;" % i
            sock.sendall(chunk(piece))
            recv_until(sock, buf, piece)
            if i == 0:
                assert buf.startswith(b"HTTP/1.1 200"), bytes(buf)
                if pause:
                    time.sleep(pause)  # the client waits: the body is idle, the response under way
        sock.sendall(b"0\r\n\r\n")
        recv_until(sock, buf, b"\r\n0\r\n\r\n")


class H2Client:
    """An h2c (prior knowledge) client on a plain socket, with the `h2` library."""

    def __init__(self, port: int, tls: Optional[ssl.SSLContext] = None) -> None:
        h2_connection = pytest.importorskip("h2.connection")
        h2_config = pytest.importorskip("h2.config")
        self.events = pytest.importorskip("h2.events")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
            assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.data: dict[int, bytearray] = {}
        self.headers: dict[int, dict[str, str]] = {}
        self.ended: set[int] = set()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def post(self, path: str) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [(":method", "POST"), (":path", path), (":scheme", "http"),
                                           (":authority", "localhost")], end_stream=False)
        self.flush()
        self.data[stream_id] = bytearray()
        return stream_id

    def pump(self, until: Any, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; data so far {self.data!r}"
            buffered = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not buffered and not select.select([self.sock], [], [], left)[0]:
                continue
            raw = self.sock.recv(65536)
            assert raw, "the server closed the connection"
            for event in self.conn.receive_data(raw):
                if isinstance(event, self.events.ResponseReceived):
                    self.headers[event.stream_id] = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, self.events.DataReceived):
                    self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, self.events.StreamEnded):
                    self.ended.add(event.stream_id)
            self.flush()

    def close(self) -> None:
        self.sock.close()


def h2_lock_step(port: int, tls: Optional[ssl.SSLContext] = None) -> None:
    client = H2Client(port, tls)
    try:
        sid = client.post("/echo")
        for i in range(4):
            piece = b"message-%d;" % i
            client.conn.send_data(sid, piece, end_stream=False)
            client.flush()
            client.pump(lambda piece=piece: piece in client.data[sid])
        assert client.headers[sid][":status"] == "200"
        client.conn.end_stream(sid)
        client.flush()
        client.pump(lambda: sid in client.ended)
        assert bytes(client.data[sid]) == b"".join(b"message-%d;" % i for i in range(4))
    finally:
        client.close()


# -- full duplex ------------------------------------------------------------------------------------------------
def test_http1_chunked_body_streams_to_an_asgi_app_message_by_message(hosted: Any) -> None:
    http1_lock_step(hosted.port)


def test_http2_body_without_length_streams_to_an_asgi_app_message_by_message(hosted: Any) -> None:
    h2_lock_step(hosted.port)


def test_http1_chunked_body_streams_to_request_stream(native_app: Any) -> None:
    http1_lock_step(native_app.port)


def test_http2_body_streams_to_request_stream(native_app: Any) -> None:
    h2_lock_step(native_app.port)


def test_a_small_chunked_body_that_came_whole_is_still_read(hosted: Any) -> None:
    with socket.create_connection(("127.0.0.1", hosted.port), timeout=5) as sock:
        sock.sendall(b"POST /whole HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunk(b"abc") + chunk(b"defg") + b"0\r\n\r\n")
        buf = bytearray()
        recv_until(sock, buf, b"\r\n\r\n7")
        assert buf.startswith(b"HTTP/1.1 200"), bytes(buf)


def test_an_idle_body_is_not_cut_once_the_response_has_started(hosted: Any) -> None:
    """The client waits for the server's reply before it sends more: longer than the rate grace and the idle
    gap of these servers, and the exchange goes on (the body is not timed once the response is under way)."""
    http1_lock_step(hosted.port, pause=1.0)


def test_a_stalled_body_with_no_response_started_gets_408(hosted: Any) -> None:
    with socket.create_connection(("127.0.0.1", hosted.port), timeout=5) as sock:
        sock.sendall(b"POST /whole HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"x"))
        buf = bytearray()
        recv_until(sock, buf, b"HTTP/1.1 408", timeout=5)
    assert hosted.rec.get("whole-gone", timeout=5) is True  # the app hears that its body will not come


def test_a_stalled_http2_body_with_no_response_started_gets_408(hosted: Any) -> None:
    client = H2Client(hosted.port)
    try:
        sid = client.post("/whole")
        client.conn.send_data(sid, b"x", end_stream=False)
        client.flush()
        client.pump(lambda: sid in client.headers, timeout=5)
        assert client.headers[sid][":status"] == "408"
    finally:
        client.close()
    assert hosted.rec.get("whole-gone", timeout=5) is True


def test_a_grpc_call_no_route_takes_is_unimplemented_while_its_http2_body_is_open(native_app: Any) -> None:
    """A gRPC stream to a method no route serves (its client waits for the answer before it sends more) is answered
    with grpc-status 12 at once, not 408 once its body stalls; the connection goes on."""
    client = H2Client(native_app.port)
    try:
        sid: int = client.conn.get_next_available_stream_id()
        client.conn.send_headers(sid, [(":method", "POST"), (":path", "/no.Such/Service"), (":scheme", "http"),
                                       (":authority", "localhost"), ("content-type", "application/grpc")])
        client.conn.send_data(sid, b"\x00\x00\x00\x00\x01x", end_stream=False)
        client.flush()
        client.pump(lambda: sid in client.headers, timeout=1)  # the body timeouts here are 0.3-0.6 s
        assert client.headers[sid][":status"] == "200"
        assert client.headers[sid]["grpc-status"] == "12"
        assert client.headers[sid]["grpc-message"] == "Method not found: /no.Such/Service"
        client.pump(lambda: sid in client.ended)
        after = client.post("/echo")
        client.conn.send_data(after, b"again", end_stream=True)
        client.flush()
        client.pump(lambda: after in client.ended)
        assert bytes(client.data[after]) == b"again"
    finally:
        client.close()


@pytest.fixture(scope="module")
def tls_hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ssl.SSLContext]]:
    from covet.serve import ThreadedWorker

    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"), san="IP:127.0.0.1")
    worker = ThreadedWorker(asgi_app(Recorder()), threads=1, lifespan=False, ssl_certfile=str(cert),
                            ssl_keyfile=str(key), **TIMEOUTS).start()
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2"])
    yield worker, context
    worker.stop()


def test_http2_over_tls_body_streams_message_by_message(tls_hosted: tuple[Any, ssl.SSLContext]) -> None:
    worker, context = tls_hosted
    h2_lock_step(worker.port, context)


# -- the disconnect watch -------------------------------------------------------------------------------------------
# Waited this long before the client leaves: a watch that polled (50 ms doubling to 1 s) would see it ~750 ms late.
WAIT_BEFORE_LEAVING = 0.8
PROMPT = 0.1


def test_http1_close_is_seen_as_http_disconnect_at_once(hosted: Any) -> None:
    sock = socket.create_connection(("127.0.0.1", hosted.port), timeout=5)
    try:
        sock.sendall(b"POST /wait-disconnect HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        assert hosted.rec.get("waiting") is True
        time.sleep(WAIT_BEFORE_LEAVING)
    finally:
        left = time.monotonic()
        sock.close()
    message, seen = hosted.rec.get("disconnect", timeout=5)
    assert message == {"type": "http.disconnect"}
    assert seen - left < PROMPT, f"http.disconnect came {seen - left:.3f} s after the client closed"


def test_http2_rst_stream_is_seen_as_http_disconnect_at_once(hosted: Any) -> None:
    client = H2Client(hosted.port)
    try:
        sid = client.post("/wait-disconnect")
        client.conn.send_data(sid, b"hi", end_stream=True)
        client.flush()
        assert hosted.rec.get("waiting") is True
        time.sleep(WAIT_BEFORE_LEAVING)
        left = time.monotonic()
        client.conn.reset_stream(sid)
        client.flush()
        message, seen = hosted.rec.get("disconnect", timeout=5)
        assert message == {"type": "http.disconnect"}
        assert seen - left < PROMPT, f"http.disconnect came {seen - left:.3f} s after the stream was reset"
    finally:
        client.close()

