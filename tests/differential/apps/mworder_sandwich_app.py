"""Sample app: middleware order (issue 14) — an @app.middleware("http") added first, then GZipMiddleware, then
another one: GZip runs between two Python middleware (in Python in CovetPy). The inner one passes responses on as
a stream (FastAPI's BaseHTTPMiddleware), so GZip compresses even a body under minimum_size; the outer one sees the
compressed response."""

from __future__ import annotations

from typing import Any

from _framework import FastAPI, GZipMiddleware, PlainTextResponse, Request

app = FastAPI()


@app.middleware("http")
async def inner(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Inner"] = "yes"
    return response


app.add_middleware(GZipMiddleware, minimum_size=1000)


@app.middleware("http")
async def outer(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Seen-Encoding"] = response.headers.get("content-encoding", "none")
    return response


@app.get("/small")
async def small() -> dict:
    return {"small": True}


@app.get("/empty")
async def empty() -> PlainTextResponse:
    return PlainTextResponse("")
