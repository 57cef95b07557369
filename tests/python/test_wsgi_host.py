"""WSGI apps (PEP 3333) hosted on the engine by covet.wsgi.WsgiHost, through real sockets: the environ, streamed
request bodies, streamed and single-body responses, wsgi.file_wrapper, write(), errors, and the thread pool.

The apps are bare WSGI callables written here (real Flask and Django: tests/hosting). Each test serves its app on
the compiled engine, in both engine modes where the hand-off differs: the embedded engine (threads=0: the loop
thread does the I/O) and an I/O thread (threads=1).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from serverproc import require_compiled_engine

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


@pytest.fixture(scope="module", autouse=True)
def _compiled_engine() -> None:
    require_compiled_engine()


class WsgiServer:
    """`app` served by a WsgiHost through covet's ThreadedWorker (the Worker `covet run` uses, on a thread)."""

    def __init__(self, app: Any, threads: int = 4, engine_threads: int = 1, root_path: str = "",
                 **limits: Any) -> None:
        from covet.server.serve import ThreadedWorker
        from covet.wsgi import WsgiHost

        self.worker = ThreadedWorker(WsgiHost(app, threads=threads), threads=engine_threads, root_path=root_path,
                                     **limits)

    def __enter__(self) -> WsgiServer:
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()

    @property
    def port(self) -> int:
        return self.worker.port

    def connect(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict[str, str]] = None) -> tuple[int, dict[str, str], bytes]:
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


ENGINES = [pytest.param(0, id="embedded"), pytest.param(1, id="io-thread")]
# (engine threads, pool threads): the app in a pool, or inline on the loop thread (threads=0)
MODES = [pytest.param((0, 4), id="embedded-pool"), pytest.param((1, 4), id="io-thread-pool"),
         pytest.param((0, 0), id="embedded-inline"), pytest.param((1, 0), id="io-thread-inline")]


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Sends `request` and reads until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


# -- the environ ------------------------------------------------------------------------------------------------
def environ_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    keys = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
    keys["input"] = environ["wsgi.input"].read()
    keys["errors_is_stream"] = hasattr(environ["wsgi.errors"], "write")
    keys["file_wrapper"] = callable(environ["wsgi.file_wrapper"])
    body = repr(keys).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


@pytest.mark.parametrize("mode", MODES)
def test_environ(mode: tuple[int, int]) -> None:
    with WsgiServer(environ_app, threads=mode[1], engine_threads=mode[0], root_path="/app") as server:
        request = (b"POST /app/caf%C3%A9/a%2Fb?x=%20y&z HTTP/1.1\r\nHost: example.com:8081\r\n"
                   b"Content-Type: text/plain\r\nContent-Length: 5\r\nX-Multi: 1\r\nX-Multi: 2\r\n"
                   b"Cookie: a=1\r\nCookie: b=2\r\nX_Spoofed: evil\r\nConnection: close\r\n\r\nhello")
        raw = raw_exchange(server.port, request)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), raw
        env = eval(body.decode())  # noqa: S307 - the repr of str/bool/tuple values written above
        assert env["REQUEST_METHOD"] == "POST"
        assert env["SCRIPT_NAME"] == "/app"
        # PEP 3333: percent-decoded, the bytes as latin-1 (é's UTF-8 bytes are two latin-1 characters)
        assert env["PATH_INFO"] == "/caf\u00c3\u00a9/a/b"
        assert env["RAW_URI"] == "/app/caf%C3%A9/a%2Fb?x=%20y&z"
        assert env["QUERY_STRING"] == "x=%20y&z"
        assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
        assert env["input"] == b"hello"
        assert env["HTTP_X_MULTI"] == "1, 2"
        assert env["HTTP_COOKIE"] == "a=1; b=2"
        assert "HTTP_X_SPOOFED" not in env  # a name with "_" is dropped, as gunicorn does
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8081")
        assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
        assert env["wsgi.version"] == (1, 0) and env["wsgi.url_scheme"] == "http"
        assert env["wsgi.multithread"] is (mode[1] > 1) and env["wsgi.multiprocess"] is False
        assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True
        assert env["errors_is_stream"] and env["file_wrapper"]
        # No Host (HTTP/1.0): the server's address; a path outside the root path stays whole.
        raw = raw_exchange(server.port, b"GET /other HTTP/1.0\r\n\r\n")
        env = eval(raw.partition(b"\r\n\r\n")[2].decode())  # noqa: S307
        assert env["PATH_INFO"] == "/other" and env["SCRIPT_NAME"] == "/app"
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
        assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


@pytest.mark.parametrize("trusted", ["127.0.0.1", "192.0.2.7"], ids=["trusted-peer", "other-peer"])
def test_proxy_headers_only_from_a_trusted_peer(trusted: str) -> None:
    """X-Forwarded-For/-Proto set REMOTE_ADDR and wsgi.url_scheme when the peer is a trusted proxy, as gunicorn's
    forwarded_allow_ips does; from any other peer they are ignored."""
    with WsgiServer(environ_app, forwarded_allow_ips=trusted) as server:
        raw = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.1\r\n"
                                        b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
    env = eval(raw.partition(b"\r\n\r\n")[2].decode())  # noqa: S307 - the repr written by environ_app
    if trusted == "127.0.0.1":
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("198.51.100.1", "https")
    else:
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.1", "http")


def test_native_environ_matches_the_python_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine builds the environ in one call (NativeRequest.wsgi_environ); covet.wsgi.environ keeps the
    reference version for engines without it. Both give the same environ for the edge cases of paths, roots,
    hosts and headers."""
    from covet.wsgi import environ as environ_module

    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    build = environ_module.EnvironBuilder.build

    def both(self: Any, native: Any, streamed_input: Any) -> dict[str, Any]:
        shared = self.native
        assert shared is not None, "the compiled engine builds the environ natively"
        made = build(self, native, streamed_input)
        self.native = None  # the reference: read the request's attributes in Python
        try:
            reference = build(self, native, streamed_input)
        finally:
            self.native = shared
        pairs.append((made, reference))
        return made

    monkeypatch.setattr(environ_module.EnvironBuilder, "build", both)
    requests = [  # HTTP/1.1 ones close after the response
        b"GET /app HTTP/1.1\r\nHost: example.com\r\n",
        b"GET /app/ HTTP/1.1\r\nHost: [::1]:8080\r\n",
        b"GET /apple/x HTTP/1.1\r\nHost: [::1]\r\n",
        b"GET /app/%zz/%4/%2f%C3%A9%FF HTTP/1.1\r\nHost: h:\r\n",
        b"GET /app/raw\xe9?q=%20&r=\xe9 HTTP/1.1\r\nHost: h:x1\r\n",
        b"GET /x HTTP/1.1\r\nHost: h:\xb2\r\nX-Latin: caf\xe9\r\nX-Latin: b\r\nCookie: a=1\r\n"
        b"cookie: b=2\r\nX_Drop: 1\r\nUser-Agent: t\r\nX-UP-down: v\r\n",
        b"POST /app/form HTTP/1.1\r\nHost: a\r\nHost: b:1\r\nContent-Length: 2\r\nContent-Type: x/y\r\n",
        b"GET /app/x HTTP/1.0\r\n",
    ]
    with WsgiServer(environ_app, threads=0, engine_threads=0, root_path="/app") as server:
        for head in requests:
            close = b"Connection: close\r\n" if b"HTTP/1.1" in head else b""
            body = b"ab" if head.startswith(b"POST") else b""
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(head + close + b"\r\n" + body)
                while sock.recv(65536):
                    pass
    assert len(pairs) >= len(requests) - 1  # an engine may refuse the raw non-ASCII target (400)
    for made, reference in pairs:
        assert list(made) == list(reference)  # the same keys, in the same order
        for key, value in reference.items():
            if key == "wsgi.input":
                assert type(made[key]) is type(value)
            else:
                assert made[key] == value, key


# -- request bodies -----------------------------------------------------------------------------------------------
def upload_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    mode = environ["PATH_INFO"]
    pieces = 0
    if mode == "/read":
        while True:
            piece = stream.read(10_000)
            if not piece:
                break
            digest.update(piece)
            pieces += 1
    elif mode == "/lines":
        first = stream.readline()
        digest.update(first)
        for line in stream:
            digest.update(line)
            pieces += 1
    else:
        digest.update(stream.read())
    body = f"{type(stream).__name__} {pieces} {digest.hexdigest()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize("mode", MODES)
def test_large_upload_is_streamed_and_read_in_pieces(mode: tuple[int, int]) -> None:
    data = b"".join(b"line %d %s\n" % (i, b"x" * (i % 50)) for i in range(60_000))  # ~2.4 MB
    expected = hashlib.sha256(data).hexdigest()
    with WsgiServer(upload_app, threads=mode[1], engine_threads=mode[0]) as server:
        status, _, body = server.request("POST", "/read", data)
        kind, pieces, digest = body.decode().split()
        assert (status, kind, digest) == (200, "BodyInput", expected)
        assert int(pieces) == -(-len(data) // 10_000)
        status, _, body = server.request("POST", "/lines", data)
        kind, pieces, digest = body.decode().split()
        assert (status, kind, int(pieces), digest) == (200, "BodyInput", 59_999, expected)
        status, _, body = server.request("POST", "/all", data)
        assert body.decode().split()[2] == expected
        # A small body comes whole.
        status, _, body = server.request("POST", "/read", b"small")
        assert body.decode().split()[0] == "BytesIO"


def test_chunked_upload_without_length_reads_to_the_end() -> None:
    with WsgiServer(upload_app) as server:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"a" * 100_000, b"b" * 50_000)) + b"0\r\n\r\n"
        raw = raw_exchange(server.port, b"POST /all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                        b"Connection: close\r\n\r\n" + chunks)
        assert raw.startswith(b"HTTP/1.1 200")
        assert raw.split()[-1].decode() == hashlib.sha256(b"a" * 100_000 + b"b" * 50_000).hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_body_over_the_streamed_limit_is_refused_with_413(mode: tuple[int, int]) -> None:
    with WsgiServer(upload_app, threads=mode[1], engine_threads=mode[0], max_stream_body_bytes=200_000) as server:
        status, _, body = server.request("POST", "/read", b"x" * 1_000_000)  # over the limit by its Content-Length
        assert status == 413, body
        # Chunked, no length: refused as it arrives.
        chunk = b"y" * 50_000
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
        raw = raw_exchange(server.port, b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                        b"Connection: close\r\n\r\n" + chunks)
        assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
        assert server.request("POST", "/read", b"z" * 100_000)[0] == 200


# A request whose streamed body the engine refuses (it answers 413 itself) while the app is reading the request:
# with an I/O thread the refusal races the loop thread's reads of that request, which once read freed memory
# (a crash, about one run in three); now a read after the refusal fails cleanly and the client gets its 413.
@pytest.mark.parametrize("mode", [pytest.param((1, 4), id="io-thread-pool"), pytest.param((1, 0), id="io-thread-inline")])
def test_refused_uploads_do_not_crash_the_worker(mode: tuple[int, int]) -> None:
    with WsgiServer(upload_app, threads=mode[1], engine_threads=mode[0], max_stream_body_bytes=100_000) as server:
        chunk = b"y" * 40_000
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
        for _ in range(25):
            raw = raw_exchange(server.port, b"POST /read?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                            b"X-Pad: " + b"p" * 200 + b"\r\nConnection: close\r\n\r\n" + chunks)
            assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
        assert server.request("POST", "/read", b"z" * 50_000)[0] == 200


# -- responses ----------------------------------------------------------------------------------------------------
class Closing:
    """A response iterable recording that close() was called."""

    closed: list[str] = []

    def __init__(self, name: str, chunks: Iterable[bytes]) -> None:
        self.name = name
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        Closing.closed.append(self.name)


def response_app(environ: Environ, start_response: StartResponse) -> Any:
    path = environ["PATH_INFO"]
    if path == "/single":
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Custom", "caf\u00e9")])
        return Closing("single", [b"one body"])
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("stream", (b"part %d\n" % i for i in range(5)))
    if path == "/lazy":  # start_response called during the first iteration (a generator app)
        def gen() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b""
            yield b"lazy"
        return gen()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"then ")
        return [b"returned"]
    if path == "/length":  # more bytes than the declared Content-Length: only that many go out
        start_response("200 OK", [("Content-Length", "4")])
        return [b"abcdefgh"]
    if path == "/head":
        start_response("200 OK", [("Content-Length", "1234"), ("Content-Type", "text/plain")])
        return []
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/big-stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def big() -> Iterator[bytes]:
            for i in range(BIG_CHUNKS):
                RESPONSE_PROGRESS.append(i)
                yield bytes([i % 256]) * 65536
        return Closing("big", big())
    raise AssertionError(path)


RESPONSE_PROGRESS: list[int] = []
BIG_CHUNKS = 256  # 16 MiB: more than the socket buffers hold


@pytest.mark.parametrize("mode", MODES)
def test_responses(mode: tuple[int, int]) -> None:
    Closing.closed.clear()
    with WsgiServer(response_app, threads=mode[1], engine_threads=mode[0]) as server:
        status, headers, body = server.request("GET", "/single")
        assert (status, body, headers["content-length"]) == (201, b"one body", "8")
        assert headers["x-custom"].encode("latin-1") == "caf\u00e9".encode("latin-1")  # latin-1 on the wire
        status, headers, body = server.request("GET", "/stream")
        assert (status, body) == (200, b"".join(b"part %d\n" % i for i in range(5)))
        assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers
        assert server.request("GET", "/lazy")[2] == b"lazy"
        status, headers, body = server.request("GET", "/write")
        assert (status, body) == (200, b"written then returned")
        assert server.request("GET", "/length")[2] == b"abcd"
        status, headers, body = server.request("HEAD", "/head")
        assert (status, headers["content-length"], body) == (200, "1234", b"")
        status, headers, body = server.request("GET", "/empty")
        assert (status, body) == (204, b"")
        deadline = time.monotonic() + 5
        while len(Closing.closed) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(Closing.closed) == ["single", "stream"]


@pytest.mark.parametrize("mode", MODES)
def test_streamed_response_waits_for_a_slow_reader(mode: tuple[int, int]) -> None:
    RESPONSE_PROGRESS.clear()
    Closing.closed.clear()
    with WsgiServer(response_app, threads=mode[1], engine_threads=mode[0], stream_send_buffer=256 * 1024) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big-stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)
        # All 16 MiB produced only if nothing held the producer back (socket buffers take a few MiB).
        assert len(RESPONSE_PROGRESS) < BIG_CHUNKS - 64, len(RESPONSE_PROGRESS)
        received = 0
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
        sock.close()
        assert len(RESPONSE_PROGRESS) == BIG_CHUNKS and received > BIG_CHUNKS * 65536
        # The pool thread closes the iterable after the last bytes were handed over: it may come just after the
        # client saw the end (a clean-clone run found it not closed yet).
        deadline = time.monotonic() + 5
        while not Closing.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Closing.closed == ["big"]


def test_client_gone_mid_stream_stops_the_app_and_closes_its_iterable() -> None:
    RESPONSE_PROGRESS.clear()
    Closing.closed.clear()
    with WsgiServer(response_app, stream_send_buffer=128 * 1024) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big-stream HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset
        deadline = time.monotonic() + 5
        while not Closing.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert Closing.closed == ["big"]
        assert len(RESPONSE_PROGRESS) < BIG_CHUNKS


# -- wsgi.file_wrapper --------------------------------------------------------------------------------------------
class NoRead(io.FileIO):
    """A real file whose read() must not be called: the engine sends it from the file."""

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        raise AssertionError("the file was read in Python")


def file_app_for(path: Path) -> Callable[[Environ, StartResponse], Any]:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        what = environ["PATH_INFO"]
        wrapper = environ["wsgi.file_wrapper"]
        if what == "/file":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return wrapper(NoRead(path), 4096)
        if what == "/offset":  # from the file's current position; no more than the Content-Length
            f = NoRead(path)
            f.seek(1000)
            start_response("200 OK", [("Content-Length", "500")])
            return wrapper(f)
        start_response("200 OK", [])
        return wrapper(io.BytesIO(b"not a real file" * 1000), 1000)  # read and sent in blocks
    return app


@pytest.mark.parametrize("mode", MODES)
def test_file_wrapper_sends_a_real_file_from_the_file(tmp_path: Path, mode: tuple[int, int]) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    with WsgiServer(file_app_for(path), threads=mode[1], engine_threads=mode[0]) as server:
        status, headers, body = server.request("GET", "/file")
        assert (status, headers["content-length"], body == data) == (200, str(len(data)), True)
        status, headers, body = server.request("GET", "/offset")
        assert (status, body) == (200, data[1000:1500])
        status, headers, body = server.request("HEAD", "/file")
        assert (headers["content-length"], body) == (str(len(data)), b"")
        assert server.request("GET", "/bytesio")[2] == b"not a real file" * 1000


# -- errors -------------------------------------------------------------------------------------------------------
def error_app(environ: Environ, start_response: StartResponse) -> Any:
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise RuntimeError("boom before the response")
    if path == "/bad-status":
        start_response("OK", [])
        return [b"x"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Number", 5)])
        return [b"x"]
    if path == "/header-crlf":
        start_response("200 OK", [("X-Evil", "a\r\nInjected: yes")])
        return [b"x"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return [b"x"]
    if path == "/exc-info":  # an error handler replaces the response before anything was sent
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]
    if path == "/str-body":
        start_response("200 OK", [])
        return ["text, not bytes"]
    if path == "/no-start":
        return [b"x"]
    if path == "/raise-after-start":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen() -> Iterator[bytes]:
            yield b"first "
            yield b"second "
            raise RuntimeError("boom mid-stream")
        return gen()
    raise AssertionError(path)


@pytest.mark.parametrize("mode", MODES)
def test_errors(mode: tuple[int, int], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="covet")
    with WsgiServer(error_app, threads=mode[1], engine_threads=mode[0]) as server:
        cases = {
            "/raise": "boom before the response",
            "/bad-status": "bad status line 'OK'",
            "/bad-header": "the value of header 'X-Number' must be a str",
            "/header-crlf": "must not contain CR, LF",
            "/twice": "start_response() was called a second time without exc_info",
            "/str-body": "must be an iterable of bytes",
            "/no-start": "before calling start_response()",
        }
        for path, cause in cases.items():
            caplog.clear()
            status, _, body = server.request("GET", path)
            assert (status, body) == (500, b"Internal Server Error"), path
            deadline = time.monotonic() + 5
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.01)
            logged = "\n".join(r.getMessage() + "\n" + (logging.Formatter().formatException(r.exc_info)
                                                         if r.exc_info else "") for r in caplog.records)
            assert cause in logged and f"GET {path}" in logged, (path, logged)
        status, _, body = server.request("GET", "/exc-info")
        assert (status, body) == (503, b"replaced")
        # After the response started: the connection closes without the end of the body.
        connection = server.connect()
        connection.request("GET", "/raise-after-start")
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        connection.close()
        # The server still serves.
        assert server.request("GET", "/exc-info")[0] == 503


# -- the pool -----------------------------------------------------------------------------------------------------
def slow_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(0.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [threading.current_thread().name.encode()]


@pytest.mark.parametrize("engine_threads", ENGINES)
def test_slow_requests_run_in_parallel_on_the_pool(engine_threads: int) -> None:
    with WsgiServer(slow_app, threads=4, engine_threads=engine_threads) as server:
        results: list[bytes] = []

        def one() -> None:
            results.append(server.request("GET", "/")[2])

        started = time.monotonic()
        clients = [threading.Thread(target=one) for _ in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(10)
        elapsed = time.monotonic() - started
        assert len(results) == 4 and len(set(results)) == 4, results  # four different pool threads
        assert elapsed < 1.4, elapsed  # 4 x 0.5 s in parallel, not 2 s in a row


def test_keep_alive_connection_serves_many_requests() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    for engine_threads in (0, 1):
        with WsgiServer(app, threads=2, engine_threads=engine_threads) as server:
            connection = server.connect(timeout=5)
            for _ in range(200):
                connection.request("GET", "/")
                assert connection.getresponse().read() == b"ok"
            connection.close()


def test_host_arguments_are_checked() -> None:
    from covet.wsgi import WsgiHost

    with pytest.raises(TypeError, match="WSGI application"):
        WsgiHost("not an app")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0 \\(inline\\) or a positive integer"):
        WsgiHost(environ_app, threads=-1)


# -- HTTP/2 -------------------------------------------------------------------------------------------------------
def h2_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.3)
    data = environ["wsgi.input"].read()
    body = f"{environ['SERVER_PROTOCOL']} {environ['PATH_INFO']} {len(data)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def test_http2_streams_run_in_parallel_and_carry_bodies() -> None:
    h2_connection = pytest.importorskip("h2.connection")
    h2_events = pytest.importorskip("h2.events")
    h2_config = pytest.importorskip("h2.config")
    with WsgiServer(h2_app, threads=2) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        conn = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
        conn.initiate_connection()

        def request(path: str, body: bytes) -> int:
            stream_id = int(conn.get_next_available_stream_id())
            conn.send_headers(stream_id, [(":method", "POST" if body else "GET"), (":path", path),
                                          (":scheme", "http"), (":authority", "localhost")], end_stream=not body)
            if body:  # DATA frames without a content-length header
                conn.send_data(stream_id, body, end_stream=True)
            return stream_id

        slow, fast = request("/slow", b""), request("/fast", b"x" * 5000)
        sock.sendall(conn.data_to_send())
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
        assert done[fast] == b"HTTP/2 /fast 5000" and done[slow] == b"HTTP/2 /slow 0"


# -- covet run ----------------------------------------------------------------------------------------------------
RUN_APP = '''
import pathlib, threading, time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        pathlib.Path("slow-started").touch()
        time.sleep(1.0)
    body = "|".join([environ["SCRIPT_NAME"], environ["PATH_INFO"], str(environ["wsgi.multithread"]),
                     threading.current_thread().name]).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
'''


def test_covet_run_serves_a_wsgi_app(tmp_path: Path) -> None:
    from serverproc import ServerProcess

    (tmp_path / "wsgiapp.py").write_text(RUN_APP)
    command = [sys.executable, "-m", "covet", "run", "wsgiapp:app", "--port", "0", "--wsgi-threads", "3",
               "--root-path", "/r", "--limit-concurrency", "1"]
    with ServerProcess(command, cwd=tmp_path) as proc:
        assert "wsgi app hosted" in proc.output()
        server = _Remote(proc.port)
        status, _, body = server.request("GET", "/r/x%20y")
        assert status == 200
        script_name, path_info, multithread, thread = body.decode().split("|")
        assert (script_name, path_info, multithread) == ("/r", "/x y", "True")
        assert thread.startswith("covet-wsgi-")
        # --limit-concurrency 1: while one request runs, the next is refused with 503 without reaching the app.
        slow: list[int] = []
        runner = threading.Thread(target=lambda: slow.append(server.request("GET", "/slow")[0]))
        runner.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "slow-started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.request("GET", "/")[0] == 503
        runner.join(10)
        assert slow == [200]
        time.sleep(0.1)  # the count drops on the loop thread just after the answer went out
        assert server.request("GET", "/")[0] == 200
        assert proc.stop() < 5


class _Remote:
    def __init__(self, port: int) -> None:
        self.port = port

    request = WsgiServer.request
    connect = WsgiServer.connect


def test_covet_run_wsgi_threads_0_runs_the_app_on_the_loop_thread(tmp_path: Path) -> None:
    from serverproc import ServerProcess

    (tmp_path / "wsgiapp.py").write_text(RUN_APP)
    command = [sys.executable, "-m", "covet", "run", "wsgiapp:app", "--port", "0", "--wsgi-threads", "0"]
    with ServerProcess(command, cwd=tmp_path) as proc:
        status, _, body = _Remote(proc.port).request("GET", "/a")
        assert status == 200
        _, path_info, multithread, thread = body.decode().split("|")
        assert (path_info, multithread) == ("/a", "False")  # no pool: one request at a time, on the loop thread
        assert not thread.startswith("covet-wsgi-")
        assert proc.stop() < 5
