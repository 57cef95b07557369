"""Sample app: served behind a proxy that strips ``/api/v1`` (the server's root path, uvicorn's ``--root-path``):
``request.scope["root_path"]``, ``request.url``, ``request.base_url`` and ``url_for`` carry the prefix, routes match
the path as received, redirects and 404/405 too.

`make_app` is also root_path_param_app's (``FastAPI(root_path="/api/v1")``): the same routes, the root path given
to the app instead of the server."""

from __future__ import annotations

import warnings
from typing import Optional

from _framework import FastAPI, Request

SERVER_OPTIONS = ["--root-path", "/api/v1"]  # both servers' command line (tests/differential/conftest.py)


def _describe(request: Request) -> dict:
    return {
        "root_path": request.scope["root_path"],
        "scope_path": request.scope["path"],
        "url_path": request.url.path,
        "url": str(request.url),
        "base_url": str(request.base_url),
    }


def make_app(app_root_path: Optional[str] = None) -> FastAPI:
    """The sample's routes; `app_root_path`: ``FastAPI(root_path=...)`` (and a route whose path starts with it)."""
    if app_root_path is None:
        app = FastAPI()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # FastAPI's FastAPIDeprecationWarning is one
            app = FastAPI(root_path=app_root_path, root_path_in_servers=False)

    @app.get("/")
    async def root(request: Request) -> dict:
        return _describe(request)

    @app.get("/items/{item_id}", name="item")
    async def read_item(item_id: int, request: Request) -> dict:
        return {"item_id": item_id, **_describe(request), "url_for": str(request.url_for("item", item_id=5))}

    @app.get("/users/")
    async def list_users(request: Request) -> dict:
        return {"users": [], "next": str(request.url_for("item", item_id=1))}

    if app_root_path is not None:
        @app.get(f"{app_root_path}/literal")
        async def literal(request: Request) -> dict:
            return {"literal": True, **_describe(request)}

    return app


app = make_app()
