"""Sample app: ``FastAPI(root_path="/api/v1")`` (deprecated in FastAPI 0.165, still served): the scope's root_path
is the app's; a request path that already starts with it routes without it (Starlette's get_route_path), one
that does not routes as it is; ``url``/``base_url``/``url_for`` as Starlette builds them. The routes are
root_path_app's (`make_app`), plus ``/api/v1/literal``."""

from __future__ import annotations

from root_path_app import make_app

app = make_app(app_root_path="/api/v1")
