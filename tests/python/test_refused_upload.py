"""A streamed upload that the engine refuses itself (over max_stream_body_bytes: it answers 413) while Python is
reading the request: with an I/O thread (threads=1) the refusal races the loop thread's reads of that request,
which once read freed memory (a segfault, often within a few dozen refusals). Now the engine's request stays
readable until the refusal, reads after it raise covet._native.RequestGone, and the runtimes (CovetPy's own
dispatcher, the ASGI host; the WSGI host in test_wsgi_host.py) drop such a request quietly: the client gets its
413 and the worker keeps serving. Real sockets, the compiled engine."""

from __future__ import annotations

import socket
from typing import Any

import pytest

pytest.importorskip("covet._native")

from covet import CovetPy, Request  # noqa: E402
from covet.serve import ThreadedWorker  # noqa: E402

LIMIT = 100_000
CHUNK = b"y" * 40_000
CHUNKED = b"".join(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) for _ in range(4)) + b"0\r\n\r\n"  # 160 KB: refused


def covet_app() -> CovetPy:
    app = CovetPy()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        size = 0
        async for piece in request.stream():
            size += len(piece)
        # Read after the body: the request may be gone by now (the engine refused the body and answered).
        return {"size": size, "query": request.url.query, "headers": len(request.headers)}

    return app


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("make", [covet_app, lambda: asgi_app], ids=["covet", "asgi"])
def test_refused_uploads_do_not_crash_the_worker(make: Any) -> None:
    worker = ThreadedWorker(make(), threads=1, lifespan=False, max_stream_body_bytes=LIMIT).start()
    try:
        head = (b"POST /upload?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Pad: " + b"p" * 200
                + b"\r\nConnection: close\r\n\r\n")
        for _ in range(25):
            raw = exchange(worker.port, head + CHUNKED)
            assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
        small = b"z" * 50_000
        raw = exchange(worker.port, b"POST /upload?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                                    b"Connection: close\r\n\r\n%s" % (len(small), small))
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    finally:
        worker.stop()
