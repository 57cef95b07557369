"""Sample app: streamed responses that go through the engine's back-pressure (bodies larger than the send
buffer, produced faster than read) and a handler that asks `request.is_disconnected()` while connected."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from _framework import FastAPI, Request, StreamingResponse

app = FastAPI()

_CHUNK = b"0123456789abcdef" * 4096  # 64 KiB


@app.get("/big")
def big() -> StreamingResponse:
    def produce() -> Iterator[bytes]:
        for _ in range(40):  # 2.5 MiB: more than the 1 MiB send buffer
            yield _CHUNK

    return StreamingResponse(produce(), media_type="application/octet-stream")


@app.get("/big-async")
async def big_async() -> StreamingResponse:
    async def produce() -> AsyncIterator[bytes]:
        for i in range(40):
            yield bytes([65 + i % 26]) * 65536

    return StreamingResponse(produce(), media_type="application/octet-stream")


@app.get("/ticks")
async def ticks(request: Request) -> StreamingResponse:
    async def produce() -> AsyncIterator[str]:
        for i in range(3):
            if await request.is_disconnected():
                return
            yield f"tick {i}\n"

    return StreamingResponse(produce(), media_type="text/plain")


@app.get("/disconnected")
async def disconnected(request: Request) -> dict[str, bool]:
    return {"disconnected": await request.is_disconnected()}


@app.get("/lines")
async def lines() -> AsyncIterator[dict[str, int]]:
    for i in range(2000):
        yield {"i": i, "square": i * i}
