"""Sample app: ``FastAPI(root_path="/api/v1")`` (deprecated in FastAPI 0.165, still served): the scope's root_path
is the app's; a request path that already starts with it routes without it (Starlette's get_route_path), one
that does not routes as it is; ``url``/``base_url``/``url_for`` as Starlette builds them."""

from __future__ import annotations

import warnings

from _framework import FastAPI, Request

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # FastAPI's FastAPIDeprecationWarning is one
    app = FastAPI(root_path="/api/v1", root_path_in_servers=False)


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


@app.get("/api/v1/literal")
async def literal(request: Request) -> dict:
    return {"literal": True, **_describe(request)}
