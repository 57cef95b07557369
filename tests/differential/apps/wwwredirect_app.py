"""Sample app: TrustedHostMiddleware allowing only www.testserver: testserver is redirected there (www_redirect)."""

from __future__ import annotations

from _framework import FastAPI, TrustedHostMiddleware

app = FastAPI()
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["www.testserver"])


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "world"}
