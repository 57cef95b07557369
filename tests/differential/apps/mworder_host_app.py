"""Sample app: middleware order (issue 14) — TrustedHostMiddleware added FIRST (refusing the test's Host,
testserver), then a logging @app.middleware("http"): it is outside TrustedHost, so it runs for the refused requests
too and stamps their 400 (CovetPy runs TrustedHost in Python at that position instead of natively)."""

from __future__ import annotations

from typing import Any

from _framework import FastAPI, Request, TrustedHostMiddleware

app = FastAPI()
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com", "*.example.org"])


@app.middleware("http")
async def log_requests(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Logged"] = f"{request.method} {request.url.path} {response.status_code}"
    return response


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "world"}
