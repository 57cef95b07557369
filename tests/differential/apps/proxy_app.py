"""Sample app: behind a proxy (uvicorn's --proxy-headers, on by default, with 127.0.0.1 trusted — the differential
test's own address). X-Forwarded-Proto sets the scheme and X-Forwarded-For the client that ``request.url``,
``base_url``, ``url_for``, ``request.client`` and the scope show. The proxy_*_app.py apps serve it with other
--forwarded-allow-ips / --no-proxy-headers."""

from __future__ import annotations

from _framework import FastAPI, Request

app = FastAPI()


def _client(request: Request) -> list:
    """The client as the app sees it; the test's own ephemeral port (which differs run to run) as "peer"."""
    assert request.client is not None
    host, port = request.client
    return [host, "peer" if host == "127.0.0.1" and port != 0 else port]


@app.get("/where/{name}", name="where")
async def where(name: str, request: Request) -> dict:
    return {
        "url": str(request.url),
        "base_url": str(request.base_url),
        "url_for": str(request.url_for("where", name="next")),
        "scheme": request.url.scheme,
        "scope_scheme": request.scope["scheme"],
        "client": _client(request),
        "scope_client": _client(request) if tuple(request.scope["client"]) == tuple(request.client) else "differs",
        "forwarded_for_header": request.headers.get("x-forwarded-for"),
    }
