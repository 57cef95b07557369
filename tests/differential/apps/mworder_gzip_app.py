"""Sample app: middleware order (issue 14) — GZipMiddleware added FIRST, then an @app.middleware("http") that looks
at the response and reads/replaces its body: it is outside GZip, so it sees the compressed bytes (CovetPy runs GZip
in Python at that position instead of natively)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from _framework import FastAPI, GZipMiddleware, PlainTextResponse, Request, Response, StreamingResponse

app = FastAPI()
app.add_middleware(GZipMiddleware, minimum_size=400, compresslevel=5)

LARGE = "order " * 300


async def _read(response: Any) -> bytes:
    """The whole body of a response from call_next: FastAPI gives a stream, CovetPy the response itself."""
    iterator = getattr(response, "body_iterator", None)
    if iterator is None:
        return bytes(response.body)
    if hasattr(iterator, "__aiter__"):
        return b"".join([chunk async for chunk in iterator])
    return b"".join(iterator)


@app.middleware("http")
async def inspect_body(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Seen-Encoding"] = response.headers.get("content-encoding", "none")
    if request.url.path != "/read":
        return response
    body = await _read(response)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    headers["X-Seen-Gzip-Magic"] = "yes" if body[:2] == b"\x1f\x8b" else "no"
    return Response(content=body, status_code=response.status_code, headers=headers)


@app.get("/large")
async def large() -> PlainTextResponse:
    return PlainTextResponse(LARGE)


@app.get("/read")
async def read() -> PlainTextResponse:
    return PlainTextResponse(LARGE)


@app.get("/small")
async def small() -> dict:
    return {"small": True}


async def _parts() -> AsyncIterator[str]:
    for i in range(6):
        yield f"part {i} " * 20


@app.get("/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(_parts(), media_type="text/plain")


@app.get("/image")
async def image() -> Response:
    return Response(b"\x89PNG" + b"\0" * 900, media_type="image/png")
