"""Per-route abuse limits (``@app.post(..., max_body_size=, timeout=)``) against a real ``covet run`` over real
sockets: a body over the route's limit is refused with 413 by the engine before the handler runs (with a declared
Content-Length, before the body is read), a route may allow more than the server's ``--limit-max-body``, a
handler past its time limit is cancelled and answered 503 while the server keeps serving, and the limits are
checked when the route is declared. The C++ side (covet::RouteLimits) is tested in tests/app/route_limits_test.cpp.
"""

from __future__ import annotations

import http.client
import socket
import sys
import textwrap
import time
from typing import Optional

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine

APP = textwrap.dedent("""
    import asyncio, time
    from covet import CovetPy, Request

    app = CovetPy()
    calls = {"login": 0}

    @app.post("/login", max_body_size=256)
    async def login(request: Request):
        calls["login"] += 1
        return {"size": len(await request.body())}

    @app.post("/upload", max_body_size=3_000_000)
    async def upload(request: Request):
        return {"size": len(await request.body())}

    @app.post("/stream-in", max_body_size=100_000)
    async def stream_in(request: Request):
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @app.post("/default")
    async def default(request: Request):
        return {"size": len(await request.body())}

    @app.get("/calls")
    async def get_calls():
        return calls

    @app.get("/slow", timeout=0.3)
    async def slow(seconds: float):
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/slow-sync", timeout=0.3)
    def slow_sync(seconds: float):
        time.sleep(seconds)
        return {"slept": seconds}
    """)


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("route_limits")
    (tmp / "app.py").write_text(APP)
    port = free_port()
    # The server's own body limit is 1 MB: /upload allows 3 MB, /login 256 bytes.
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--limit-max-body",
                        "1M"], cwd=tmp) as proc:
        yield proc, port


def post(port: int, path: str, body: bytes, headers: Optional[dict[str, str]] = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def get(port: int, path: str) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def test_a_body_over_the_routes_limit_is_413_and_never_reaches_the_handler(server) -> None:  # type: ignore[no-untyped-def]
    _, port = server
    assert post(port, "/login", b"x" * 256) == (200, '{"size":256}')
    # Declared lengths: refused by the engine as the head arrives, before the body is read.
    status, text = post(port, "/login", b"x" * 257)
    assert status == 413 and "larger than this route's limit" in text, text
    status, text = post(port, "/login", b"x" * 200_000)
    assert status == 413 and "larger than this route's limit" in text, text
    assert get(port, "/calls")[1] == '{"login":1}'  # only the first reached the handler
    # The other routes keep the server's limit.
    assert post(port, "/default", b"x" * 1000)[0] == 200
    assert post(port, "/default", b"x" * 1_500_000)[0] == 413


def test_a_route_may_allow_more_than_the_server(server) -> None:  # type: ignore[no-untyped-def]
    _, port = server
    assert post(port, "/upload", b"u" * 2_500_000) == (200, '{"size":2500000}')
    assert post(port, "/upload", b"u" * 3_000_001)[0] == 413


def test_a_chunked_body_read_with_stream_is_held_to_the_routes_limit(server) -> None:  # type: ignore[no-untyped-def]
    """No declared length: the engine streams it, and request.stream() stops it at the route's limit with 413."""
    _, port = server

    def chunked(total: int) -> tuple[int, str]:
        def body():  # type: ignore[no-untyped-def]
            for _ in range(total // 10_000):
                yield b"c" * 10_000
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            conn.request("POST", "/stream-in", body=body(), encode_chunked=True)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    assert chunked(90_000) == (200, '{"size":90000}')
    status, text = chunked(300_000)
    assert status == 413 and "this route's limit of 100000 bytes" in text, text


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server) -> None:  # type: ignore[no-untyped-def]
    """The client announces 10 MB and sends nothing more: the 413 comes at once, and the connection closes."""
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        start = time.monotonic()
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 413"), data[:200]
        assert time.monotonic() - start < 5


def test_a_handler_past_its_time_limit_is_cancelled_and_answered_503(server) -> None:  # type: ignore[no-untyped-def]
    _, port = server
    assert get(port, "/slow?seconds=0.01")[:2] == (200, '{"slept":0.01}')
    for path in ("/slow?seconds=5", "/slow-sync?seconds=1"):
        start = time.monotonic()
        status, text, headers = get(port, path)
        assert status == 503 and "time limit of 0.3 s" in text, (path, text)
        assert headers.get("retry-after") == "1"
        assert time.monotonic() - start < 2.5, path
    assert get(port, "/slow-sync?seconds=0.01")[0] == 200  # the server goes on serving


@pytest.mark.parametrize(("options", "message"), [
    ({"max_body_size": 0}, "max_body_size must be a positive number of bytes"),
    ({"max_body_size": "1M"}, "max_body_size must be a positive number of bytes"),
    ({"timeout": -1}, "timeout must be a positive number of seconds"),
    ({"max_body_size": True}, "max_body_size must be a positive number of bytes"),
])
def test_bad_limits_are_refused_when_the_route_is_declared(options: dict[str, object], message: str) -> None:
    from covet import CovetPy

    app = CovetPy()
    with pytest.raises(ValueError, match=message):
        app.post("/x", **options)(lambda: None)  # type: ignore[arg-type]
