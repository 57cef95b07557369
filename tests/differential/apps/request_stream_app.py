"""Sample app: ``request.stream()`` as Starlette's — the body's chunks then ``b""``, the whole body once after
``body()``, ``RuntimeError("Stream consumed")`` when the body is read again after the stream ran to its end.
Chunk sizes are the server's business (uvicorn's reads, covet's 64 KiB slices): the answers only describe them."""

from __future__ import annotations

import hashlib

from _framework import FastAPI, Request

app = FastAPI()


def _describe(chunks: list[bytes]) -> dict:
    body = b"".join(chunks)
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(), "last_is_empty": chunks[-1] == b"",
            "empty_before_last": any(not c for c in chunks[:-1]), "all_bytes": all(type(c) is bytes for c in chunks)}


@app.post("/chunks")
async def chunks(request: Request) -> dict:
    return _describe([chunk async for chunk in request.stream()])


@app.post("/body-then-stream")
async def body_then_stream(request: Request) -> dict:
    body = await request.body()
    got = [chunk async for chunk in request.stream()]
    return {"whole_then_empty": got == [body, b""], **_describe(got)}


async def _again(request: Request, how: str) -> dict:
    first = [chunk async for chunk in request.stream()]
    try:
        if how == "stream":
            [chunk async for chunk in request.stream()]
        elif how == "body":
            await request.body()
        else:
            await request.json()
    except RuntimeError as exc:
        return {"error": type(exc).__name__, "message": str(exc), **_describe(first)}
    return {"error": None}


@app.post("/stream-then-stream")
async def stream_then_stream(request: Request) -> dict:
    return await _again(request, "stream")


@app.post("/stream-then-body")
async def stream_then_body(request: Request) -> dict:
    return await _again(request, "body")


@app.post("/stream-then-json")
async def stream_then_json(request: Request) -> dict:
    return await _again(request, "json")


@app.post("/stream-then-body-unhandled")
async def stream_then_body_unhandled(request: Request) -> dict:
    async for _ in request.stream():
        pass
    return {"size": len(await request.body())}  # RuntimeError: a 500


@app.post("/first-chunk-then-body")
async def first_chunk_then_body(request: Request) -> dict:
    async for chunk in request.stream():  # a small body comes in one message: the stream is then at its end
        first = chunk
        break
    try:
        rest = await request.body()
    except RuntimeError as exc:
        return {"error": str(exc)}
    return {"first_and_rest": len(first) + len(rest)}  # a large body: the rest after the first chunk
