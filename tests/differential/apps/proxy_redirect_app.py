"""Sample app: HTTPSRedirectMiddleware behind a TLS-terminating proxy on 127.0.0.1 (trusted by default): a request
the proxy received over https (X-Forwarded-Proto: https) is served, a plain one redirected."""

from __future__ import annotations

from _framework import FastAPI, HTTPSRedirectMiddleware, Request

app = FastAPI()
app.add_middleware(HTTPSRedirectMiddleware)


@app.get("/page/{name}", name="page")
async def page(name: str, request: Request) -> dict:
    return {"url": str(request.url), "url_for": str(request.url_for("page", name="x"))}
