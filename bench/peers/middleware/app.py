"""The middleware-cost benchmark's app (bench/middleware_cost.sh): the same source under FastAPI and CovetPy
(BENCH_FRAMEWORK=fastapi|covet), with CORS and GZip added when BENCH_MIDDLEWARE=1."""

from __future__ import annotations

import os

if os.environ.get("BENCH_FRAMEWORK") == "fastapi":
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.middleware.gzip import GZipMiddleware
    from fastapi.responses import PlainTextResponse
else:
    from covet import CovetPy as FastAPI
    from covet import PlainTextResponse
    from covet.middleware.cors import CORSMiddleware
    from covet.middleware.gzip import GZipMiddleware

app = FastAPI()
if os.environ.get("BENCH_MIDDLEWARE") == "1":
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"], allow_credentials=True)

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(64))  # ~3.6 KB


@app.get("/json")
async def json() -> dict:
    return {"message": "Hello, World!"}


@app.get("/text")
async def text() -> PlainTextResponse:
    return PlainTextResponse(TEXT)
