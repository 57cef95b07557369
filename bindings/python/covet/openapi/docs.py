"""The interactive API docs pages: Swagger UI (``/docs``) and ReDoc (``/redoc``), FastAPI's functions and names.

Unlike FastAPI, whose pages load Swagger UI and ReDoc from a CDN, the default asset URLs point at copies bundled in
the package (``covet/openapi/static/``, vendored from the npm registry by ``scripts/vendor-docs-assets.sh``) that the
app serves under ``docs_assets_url`` (default ``/_covet/docs``): the pages work offline and behind firewalls. To
host the assets elsewhere, pass ``swagger_js_url`` / ``swagger_css_url`` / ``redoc_js_url`` as with FastAPI.
"""

from __future__ import annotations

import functools
import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from covet import encoders
from covet.responses import HTMLResponse, Response

__all__ = [
    "DOCS_ASSETS",
    "DOCS_ASSETS_URL",
    "REDOC_VERSION",
    "SWAGGER_UI_VERSION",
    "docs_asset_response",
    "docs_asset_url",
    "get_redoc_html",
    "get_swagger_ui_html",
    "get_swagger_ui_oauth2_redirect_html",
    "swagger_ui_default_parameters",
]

# The vendored versions (scripts/vendor-docs-assets.sh rewrites these two lines); they are the ``?v=`` of the
# default asset URLs, so that a browser fetches the new files after an update instead of its cached copy.
SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.4"

# Where a CovetPy app serves the bundled assets by default (CovetPy(docs_assets_url=...) changes it).
DOCS_ASSETS_URL = "/_covet/docs"

_STATIC = Path(__file__).resolve().parent / "static"

# The bundled assets: URL name under the assets prefix -> (file under static/, Content-Type, version).
DOCS_ASSETS: Mapping[str, tuple[str, str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8", SWAGGER_UI_VERSION),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8", SWAGGER_UI_VERSION),
    "favicon.png": ("swagger-ui/favicon-32x32.png", "image/png", SWAGGER_UI_VERSION),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", "text/javascript; charset=utf-8", REDOC_VERSION),
}

# Cached for a day, revalidated with the ETag after that; the ?v= of the URLs changes with the vendored version.
_ASSET_CACHE_CONTROL = "public, max-age=86400"


def docs_asset_url(name: str, prefix: str = DOCS_ASSETS_URL) -> str:
    """The URL of bundled asset `name` (a key of `DOCS_ASSETS`) served under `prefix`."""
    try:
        version = DOCS_ASSETS[name][2]
    except KeyError:
        raise ValueError(f"no bundled docs asset {name!r}; the assets are {sorted(DOCS_ASSETS)}") from None
    return f"{prefix.rstrip('/')}/{name}?v={version}"


swagger_ui_default_parameters: dict[str, Any] = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
}
"""Swagger UI's configuration on every page (FastAPI's defaults); ``swagger_ui_parameters`` entries override
these and add others (https://swagger.io/docs/open-source-tools/swagger-ui/usage/configuration/)."""


def _script_json(value: Any) -> str:
    """`value` as JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = encoders.dumps(value).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def get_swagger_ui_html(
    *,
    openapi_url: str,
    title: str,
    swagger_js_url: str = docs_asset_url("swagger-ui-bundle.js"),
    swagger_css_url: str = docs_asset_url("swagger-ui.css"),
    swagger_favicon_url: str = docs_asset_url("favicon.png"),
    oauth2_redirect_url: Optional[str] = None,
    init_oauth: Optional[Mapping[str, Any]] = None,
    swagger_ui_parameters: Optional[Mapping[str, Any]] = None,
) -> HTMLResponse:
    """The Swagger UI page for the schema at `openapi_url` (what a CovetPy app serves at ``docs_url``).

    As FastAPI's ``fastapi.openapi.docs.get_swagger_ui_html``, except that the asset URLs default to the copies
    bundled with CovetPy (served by the app under ``/_covet/docs``) instead of a CDN, and that `title` and the
    URLs are escaped. `oauth2_redirect_url` is a path on this origin (Swagger UI's ``oauth2RedirectUrl``);
    `init_oauth` is passed to ``ui.initOAuth()``; `swagger_ui_parameters` update
    `swagger_ui_default_parameters`."""
    parameters = {**swagger_ui_default_parameters, **(swagger_ui_parameters or {})}
    config = "".join(f"    {_script_json(key)}: {_script_json(value)},\n" for key, value in parameters.items())
    if oauth2_redirect_url:
        config += f"    oauth2RedirectUrl: window.location.origin + {_script_json(oauth2_redirect_url)},\n"
    init = f"ui.initOAuth({_script_json(dict(init_oauth))});\n" if init_oauth else ""
    page = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{_attr(swagger_css_url)}">
<link rel="icon" href="{_attr(swagger_favicon_url)}">
<title>{html.escape(title)}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{_attr(swagger_js_url)}"></script>
<script>
const ui = SwaggerUIBundle({{
    url: {_script_json(openapi_url)},
{config}    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}});
{init}</script>
</body>
</html>
"""
    return HTMLResponse(page)


def get_redoc_html(
    *,
    openapi_url: str,
    title: str,
    redoc_js_url: str = docs_asset_url("redoc.standalone.js"),
    redoc_favicon_url: str = docs_asset_url("favicon.png"),
    with_google_fonts: bool = False,
) -> HTMLResponse:
    """The ReDoc page for the schema at `openapi_url` (what a CovetPy app serves at ``redoc_url``).

    As FastAPI's ``fastapi.openapi.docs.get_redoc_html``, except that the script defaults to the copy bundled with
    CovetPy and `with_google_fonts` defaults to False (FastAPI: True), so that the page loads nothing from other
    hosts; ReDoc then uses the browser's fonts."""
    fonts = ('<link href="https://fonts.googleapis.com/css?family=Montserrat:300,400,700|Roboto:300,400,700" '
             'rel="stylesheet">\n') if with_google_fonts else ""
    page = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
{fonts}<link rel="icon" href="{_attr(redoc_favicon_url)}">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript to show the API documentation.</noscript>
<redoc spec-url="{_attr(openapi_url)}"></redoc>
<script src="{_attr(redoc_js_url)}"></script>
</body>
</html>
"""
    return HTMLResponse(page)


@functools.cache
def _oauth2_redirect_page() -> str:
    script = (_STATIC / "swagger-ui" / "oauth2-redirect.js").read_text(encoding="utf-8")
    if "</script" in script.lower():
        raise RuntimeError("covet/openapi/static/swagger-ui/oauth2-redirect.js contains '</script': it cannot be "
                           "inlined; re-vendor it with scripts/vendor-docs-assets.sh")
    return f"""<!doctype html>
<html lang="en-US">
<head>
<title>Swagger UI: OAuth2 Redirect</title>
</head>
<body>
<script>
{script}
</script>
</body>
</html>
"""


def get_swagger_ui_oauth2_redirect_html() -> HTMLResponse:
    """The page Swagger UI's OAuth2 flows (authorization code, implicit) redirect back to (served at
    ``swagger_ui_oauth2_redirect_url``): it hands the result to the docs window and closes. Its script is
    swagger-ui-dist's own ``oauth2-redirect.js`` of the bundled version."""
    return HTMLResponse(_oauth2_redirect_page())


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


@functools.cache
def _load_asset(name: str) -> _Asset:
    relative, media_type, _ = DOCS_ASSETS[name]
    path = _STATIC / relative
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise RuntimeError(f"the bundled docs asset {path} cannot be read ({exc}): the covet package is incomplete; "
                           "reinstall it, or restore it with scripts/vendor-docs-assets.sh") from exc
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    return _Asset(body, media_type, etag)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison against each entity tag listed, or ``*``."""
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def docs_asset_response(name: str, if_none_match: Optional[str] = None) -> Response:
    """The response for bundled asset `name` (a key of `DOCS_ASSETS`): 200 with the file, its Content-Type, an
    ``ETag`` and ``Cache-Control``, or 304 when `if_none_match` (the request's ``If-None-Match``) names its ETag.
    The file is read once, on the first request for it."""
    asset = _load_asset(name)
    headers = {"etag": asset.etag, "cache-control": _ASSET_CACHE_CONTROL}
    if if_none_match and _etag_matches(if_none_match, asset.etag):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, headers=headers, media_type=asset.media_type)
