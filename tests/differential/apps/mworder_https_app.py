"""Sample app: middleware order (issue 14) — HTTPSRedirectMiddleware added FIRST, then an @app.middleware("http")
stamping responses: the redirect (307) passes through it (CovetPy runs HTTPSRedirect in Python at that position)."""

from __future__ import annotations

from typing import Any

from _framework import FastAPI, HTTPSRedirectMiddleware, Request

app = FastAPI()
app.add_middleware(HTTPSRedirectMiddleware)


@app.middleware("http")
async def stamp(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Stamp"] = f"{request.method} {response.status_code}"
    return response


@app.post("/submit")
async def submit() -> dict:
    return {"ok": True}
