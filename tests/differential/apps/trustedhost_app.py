"""Sample app: TrustedHostMiddleware refusing the test's Host (testserver) — 400 on every route."""

from __future__ import annotations

from _framework import FastAPI, TrustedHostMiddleware

app = FastAPI()
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com", "*.example.org"])


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "world"}
