"""covet._native over real sockets: the bridge between native worker threads and the Python loop."""
from __future__ import annotations

import asyncio
import errno
import socket

import pytest

native = pytest.importorskip("covet._native")


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def run_with_loop(server, handle, client):
    """Runs `client` (a blocking function) in a thread while the asyncio loop serves `take()` batches."""
    loop = asyncio.new_event_loop()
    batches: list[int] = []

    def ready() -> None:
        items = server.take()
        batches.append(len(items))
        for route_id, req, resp in items:
            handle(route_id, req, resp)

    loop.add_reader(server.fileno(), ready)
    try:
        return loop.run_until_complete(loop.run_in_executor(None, client)), batches
    finally:
        loop.remove_reader(server.fileno())
        loop.close()


@pytest.fixture
def server():
    s = native.NativeServer(port=0, threads=1, shutdown_timeout_ms=2000)
    yield s
    s.stop()
    s.wait()


def test_python_routes_constant_routes_and_native_errors(server):
    server.add_route("GET", "/users/{id:int}", 7)
    server.add_constant_route("GET", "/health", 200, "application/json", b'{"ok":true}', [("X-Const", "1")])
    server.start()
    assert server.backend in ("uring", "asio")

    def handle(route_id, req, resp):
        body = f"{route_id} {req.method} {req.path} {req.query_string} {req.params['id']}".encode()
        resp.send(200, [("Content-Type", "text/plain"), ("X-Seen", dict(req.headers)["X-Tag"])], body)

    raw = (b"GET /users/42?a=b HTTP/1.1\r\nHost: t\r\nX-Tag: yes\r\n\r\n"
           b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
           b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
           b"GET /users/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    out, _ = run_with_loop(server, handle, lambda: exchange(server.port, raw))
    parts = out.split(b"HTTP/1.1 ")[1:]
    assert [p[:3] for p in parts] == [b"200", b"200", b"405", b"404"]
    assert parts[0].endswith(b"7 GET /users/42 a=b 42") and b"X-Seen: yes" in parts[0]
    assert parts[1].endswith(b'{"ok":true}') and b"X-Const: 1" in parts[1]


def test_pipelined_requests_arrive_in_one_batch_and_answer_in_order(server):
    server.add_route("GET", "/n/{i:int}", 1)
    server.start()
    raw = b"".join(b"GET /n/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(20))
    raw += b"GET /n/99 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

    def handle(_rid, req, resp):
        resp.send(200, [], req.params["i"].encode())

    out, batches = run_with_loop(server, handle, lambda: exchange(server.port, raw))
    bodies = [p.rsplit(b"\r\n\r\n", 1)[1] for p in out.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [str(i).encode() for i in range(20)] + [b"99"]
    # Pipelined requests wait for the one before to be answered: each batch holds one request.
    assert sum(batches) == 21


def test_request_is_unusable_after_answer_and_double_answer_is_refused(server):
    server.add_route("POST", "/echo", 1)
    server.start()
    errors: list[str] = []

    def handle(_rid, req, resp):
        body = req.body
        resp.send(200, [("Content-Type", "application/octet-stream")], body)
        for action in (lambda: req.body, lambda: resp.send(200, [], b"again")):
            try:
                action()
            except RuntimeError as e:
                errors.append(str(e))
        assert resp.answered

    raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    out, _ = run_with_loop(server, handle, lambda: exchange(server.port, raw))
    assert out.endswith(b"\r\n\r\nhello")
    assert len(errors) == 2 and all("already been answered" in e for e in errors)


def test_streamed_response(server):
    server.add_route("GET", "/s", 1)
    server.start()

    def handle(_rid, _req, resp):
        resp.start_stream(200, [("Content-Type", "text/plain")])
        for part in (b"a", b"bb", b"ccc"):
            resp.write(part)
        resp.end()

    out, _ = run_with_loop(server, handle,
                           lambda: exchange(server.port, b"GET /s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert b"Transfer-Encoding: chunked" in out
    assert out.endswith(b"1\r\na\r\n2\r\nbb\r\n3\r\nccc\r\n0\r\n\r\n")


def test_bad_headers_from_python_are_refused(server):
    server.add_route("GET", "/h", 1)
    server.start()
    raised: list[Exception] = []

    def handle(_rid, _req, resp):
        try:
            resp.send(200, [("X-Evil", "a\r\nInjected: 1")], b"")
        except ValueError as e:
            raised.append(e)
            resp.send(500, [], b"refused")

    out, _ = run_with_loop(server, handle,
                           lambda: exchange(server.port, b"GET /h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert raised and b"Injected" not in out and out.startswith(b"HTTP/1.1 500")


def test_route_conflicts_and_bad_options_raise_value_error():
    s = native.NativeServer(port=0)
    s.add_route("GET", "/u/{id}", 1)
    with pytest.raises(ValueError, match=r"/u/\{name\}.*/u/\{id\}|/u/\{id\}.*/u/\{name\}"):
        s.add_route("GET", "/u/{name}", 2)
    with pytest.raises(ValueError):
        s.add_route("FETCH", "/x", 3)
    with pytest.raises(ValueError):
        native.NativeServer(backend="kqueue")


def test_port_in_use_is_refused_unless_shared():
    a = native.NativeServer(port=0, threads=1, shutdown_timeout_ms=500)
    a.start()
    try:
        b = native.NativeServer(port=a.port, threads=1)
        with pytest.raises(native.ListenError, match="Address already in use") as refused:
            b.start()
        # A typed error: an OSError with the errno, and the engine's message naming the address and the fix.
        assert isinstance(refused.value, OSError) and refused.value.errno == errno.EADDRINUSE
        assert refused.value.strerror.startswith(f"cannot listen on 127.0.0.1:{a.port} (another process")
        embedded = native.NativeServer(port=a.port, threads=0)  # the embedded engine reports it the same way
        with pytest.raises(native.ListenError) as refused:
            embedded.start()
        assert refused.value.errno == errno.EADDRINUSE
        c = native.NativeServer(port=a.port, threads=1, shared_port=True, shutdown_timeout_ms=500)
        c.start()  # a pre-forked worker joins the port
        c.stop()
        c.wait()
    finally:
        a.stop()
        a.wait()
