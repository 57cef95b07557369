"""Differential cases of the interactive docs pages (apps/docs_app.py, apps/docsoff_app.py). The pages themselves
differ by design (CovetPy's load bundled assets, not a CDN: known_differences.py); which URLs answer, with which
status and content type, must not."""

from __future__ import annotations

from cases import Case, case

CASES: list[Case] = [
    case("docs/items", "GET", "/items/3"),
    case("docs/docs-moved", "GET", "/docs"),  # docs_url="/api/docs": nothing at /docs
    case("docs/redoc-off", "GET", "/redoc"),  # redoc_url=None
    case("docs/default-redirect-moved", "GET", "/docs/oauth2-redirect"),
    case("docs/swagger-ui", "GET", "/api/docs"),
    case("docs/oauth2-redirect", "GET", "/api/docs/oauth2-redirect"),
    case("docs/swagger-ui-head", "HEAD", "/api/docs"),  # Starlette's add_route answers HEAD on the docs pages
    case("docs/self-hosted-swagger-ui", "GET", "/self-hosted/docs"),
    case("docs/self-hosted-oauth2-redirect", "GET", "/self-hosted/oauth2-redirect"),
    case("docs/self-hosted-redoc", "GET", "/self-hosted/redoc"),
    case("docsoff/items", "GET", "/items/3"),
    case("docsoff/docs", "GET", "/docs"),
    case("docsoff/redoc", "GET", "/redoc"),
    case("docsoff/oauth2-redirect", "GET", "/docs/oauth2-redirect"),
]
