"""Sample app: served behind a proxy that strips ``/api/v1`` (the server's root path, uvicorn's ``--root-path``):
``request.scope["root_path"]``, ``request.url``, ``request.base_url`` and ``url_for`` carry the prefix, routes match
the path as received, redirects and 404/405 too."""

from __future__ import annotations

from _framework import FastAPI, Request

SERVER_OPTIONS = ["--root-path", "/api/v1"]  # both servers' command line (tests/differential/conftest.py)

app = FastAPI()


def _describe(request: Request) -> dict:
    return {
        "root_path": request.scope["root_path"],
        "scope_path": request.scope["path"],
        "url_path": request.url.path,
        "url": str(request.url),
        "base_url": str(request.base_url),
    }


@app.get("/")
async def root(request: Request) -> dict:
    return _describe(request)


@app.get("/items/{item_id}", name="item")
async def read_item(item_id: int, request: Request) -> dict:
    return {"item_id": item_id, **_describe(request), "url_for": str(request.url_for("item", item_id=5))}


@app.get("/users/")
async def list_users(request: Request) -> dict:
    return {"users": [], "next": str(request.url_for("item", item_id=1))}
