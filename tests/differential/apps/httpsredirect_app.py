"""Sample app: HTTPSRedirectMiddleware, every plain-HTTP request redirected to https:// (307)."""

from __future__ import annotations

from _framework import FastAPI, HTTPSRedirectMiddleware

app = FastAPI()
app.add_middleware(HTTPSRedirectMiddleware)


@app.post("/submit")
async def submit() -> dict:
    return {"ok": True}
