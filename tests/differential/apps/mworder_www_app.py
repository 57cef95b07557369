"""Sample app: middleware order (issue 14) — TrustedHostMiddleware allowing only www.testserver added FIRST, then
an @app.middleware("http") stamping responses: the www redirect (307) passes through it."""

from __future__ import annotations

from typing import Any

from _framework import FastAPI, Request, TrustedHostMiddleware

app = FastAPI()
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["www.testserver"])


@app.middleware("http")
async def stamp(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Stamp"] = str(response.status_code)
    return response


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "world"}
