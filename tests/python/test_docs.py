"""The docs pages' routes (docs_url, redoc_url, swagger_ui_oauth2_redirect_url) and their bundled assets, over the
TestClient's real sockets; covet.openapi.docs's page functions (FastAPI's names and parameters). The pages rendering
in a browser: test_docs_ui.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from covet import CovetPy, Depends, HTTPException
from covet.openapi import docs
from covet.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html

STATIC = Path(docs.__file__).resolve().parent / "static"
ASSETS = "/_covet/docs"


def _paths(app: CovetPy) -> list[str]:
    return [route.path for route in app.routes]


def test_routes_registered_like_fastapi_and_left_out_of_the_schema() -> None:
    app = CovetPy()
    names = {route.path: route.name for route in app.routes}
    assert names == {
        "/openapi.json": "openapi",  # listed as in FastAPI (served, out of the schema)
        "/docs": "swagger_ui_html", "/docs/oauth2-redirect": "swagger_ui_redirect", "/redoc": "redoc_html",
        f"{ASSETS}/swagger-ui-bundle.js": "docs_asset_swagger_ui_bundle_js",
        f"{ASSETS}/swagger-ui.css": "docs_asset_swagger_ui_css", f"{ASSETS}/favicon.png": "docs_asset_favicon_png",
        f"{ASSETS}/redoc.standalone.js": "docs_asset_redoc_standalone_js",
    }
    assert all(getattr(route, "include_in_schema", None) is False for route in app.routes)
    assert all(route.methods == ("GET", "HEAD") for route in app.routes)  # Starlette's add_route: GET and HEAD


@pytest.mark.parametrize(("options", "paths"), [
    ({"openapi_url": None}, []),  # as FastAPI: no schema, no docs pages
    ({"docs_url": None, "redoc_url": None}, ["/openapi.json"]),
    ({"docs_url": None}, ["/openapi.json", "/redoc", *(f"{ASSETS}/{name}" for name in docs.DOCS_ASSETS)]),
    ({"swagger_ui_oauth2_redirect_url": None, "redoc_url": None},
     ["/openapi.json", "/docs", *(f"{ASSETS}/{name}" for name in docs.DOCS_ASSETS)]),
    ({"docs_url": "/api/docs", "swagger_ui_oauth2_redirect_url": "/api/docs/oauth2", "redoc_url": None,
      "docs_assets_url": "/assets/docs/"},
     ["/openapi.json", "/api/docs", "/api/docs/oauth2", *(f"/assets/docs/{name}" for name in docs.DOCS_ASSETS)]),
])
def test_which_routes(options: dict[str, Any], paths: list[str]) -> None:
    assert _paths(CovetPy(**options)) == paths


@pytest.mark.parametrize("bad", ["", "/", "assets"])
def test_docs_assets_url_must_be_a_path(bad: str) -> None:
    with pytest.raises(ValueError, match="docs_assets_url must be a path below '/'"):
        CovetPy(docs_assets_url=bad)


def test_swagger_ui_page(make_client) -> None:  # type: ignore[no-untyped-def]
    app = CovetPy(title="Shop <&>", swagger_ui_parameters={"deepLinking": False, "syntaxHighlight.theme": "obsidian"},
                  swagger_ui_init_oauth={"clientId": "docs", "usePkceWithAuthorizationCodeGrant": True})
    client = make_client(app)
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.text
    assert "<title>Shop &lt;&amp;&gt; - Swagger UI</title>" in page
    v = docs.SWAGGER_UI_VERSION
    assert f'<script src="{ASSETS}/swagger-ui-bundle.js?v={v}"></script>' in page
    assert f'href="{ASSETS}/swagger-ui.css?v={v}"' in page and f'href="{ASSETS}/favicon.png?v={v}"' in page
    assert "cdn" not in page and "https://" not in page  # nothing from another host
    assert 'url: "/openapi.json",' in page
    assert '"deepLinking": false,' in page and '"syntaxHighlight.theme": "obsidian",' in page
    assert '"dom_id": "#swagger-ui",' in page  # the defaults stay
    assert 'oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect",' in page
    assert 'ui.initOAuth({"clientId":"docs","usePkceWithAuthorizationCodeGrant":true});' in page


def test_redoc_and_oauth2_redirect_pages(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(CovetPy(title="Shop", openapi_url="/api/schema.json"))
    r = client.get("/redoc")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<redoc spec-url="/api/schema.json"></redoc>' in r.text
    assert f'<script src="{ASSETS}/redoc.standalone.js?v={docs.REDOC_VERSION}"></script>' in r.text
    assert "<title>Shop - ReDoc</title>" in r.text and "fonts.googleapis.com" not in r.text
    r = client.get("/docs/oauth2-redirect")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    script = (STATIC / "swagger-ui" / "oauth2-redirect.js").read_text()
    assert script in r.text and "window.opener.swaggerUIRedirectOauth2" in r.text


@pytest.mark.parametrize(("name", "file", "content_type"), [
    ("swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("swagger-ui.css", "swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    ("favicon.png", "swagger-ui/favicon-32x32.png", "image/png"),
    ("redoc.standalone.js", "redoc/redoc.standalone.js", "text/javascript; charset=utf-8"),
])
def test_assets_served_with_caching_headers(make_client, name: str, file: str,  # type: ignore[no-untyped-def]
                                            content_type: str) -> None:
    client = make_client(CovetPy())
    r = client.get(docs.docs_asset_url(name))  # with its ?v=
    assert r.status_code == 200
    assert r.content == (STATIC / file).read_bytes()
    assert r.headers["content-type"] == content_type
    assert r.headers["cache-control"] == "public, max-age=86400"
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(f"{ASSETS}/{name}", headers={"If-None-Match": if_none_match})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), if_none_match
        assert again.headers["cache-control"] == "public, max-age=86400"
    assert client.get(f"{ASSETS}/{name}", headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head(f"{ASSETS}/{name}")
    assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", etag)
    assert head.headers["content-length"] == str(len(r.content))


def test_the_apps_dependencies_do_not_guard_the_docs(make_client) -> None:  # type: ignore[no-untyped-def]
    def deny() -> None:
        raise HTTPException(status_code=403, detail="no")

    app = CovetPy(dependencies=[Depends(deny)])

    @app.get("/private")
    async def private() -> str:
        return "secret"

    client = make_client(app)
    assert client.get("/private").status_code == 403
    assert client.get("/docs").status_code == 200  # FastAPI's docs routes skip the app's dependencies too
    assert client.get(f"{ASSETS}/swagger-ui.css").status_code == 200


def test_page_functions_self_hosting() -> None:
    """FastAPI's self-hosting recipe: docs_url=None and a route of one's own with the asset URLs passed."""
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="API", swagger_js_url="/static/swagger-ui-bundle.js",
                               swagger_css_url="/static/swagger-ui.css", swagger_favicon_url="/static/f.png",
                               oauth2_redirect_url=None).body.decode()
    assert '<script src="/static/swagger-ui-bundle.js"></script>' in page
    assert 'href="/static/swagger-ui.css"' in page and 'href="/static/f.png"' in page
    assert "oauth2RedirectUrl" not in page and "initOAuth" not in page and ASSETS not in page
    redoc = get_redoc_html(openapi_url="/o.json", title="API", redoc_js_url="/static/redoc.js",
                           with_google_fonts=True).body.decode()
    assert '<script src="/static/redoc.js"></script>' in redoc and "fonts.googleapis.com" in redoc
    defaults = get_swagger_ui_html(openapi_url="/openapi.json", title="API").body.decode()
    assert f"{ASSETS}/swagger-ui-bundle.js?v=" in defaults
    assert get_swagger_ui_oauth2_redirect_html().media_type == "text/html"


def test_script_values_cannot_close_the_script() -> None:
    page = get_swagger_ui_html(openapi_url="/o.json?a=</script><script>alert(1)</script>", title="t",
                               swagger_ui_parameters={"x": "</script>"}).body.decode()
    assert page.count("</script>") == 2  # the bundle's and the configuration's, nothing injected
    assert "\\u003c/script\\u003e" in page


def test_vendored_versions_match_the_readme() -> None:
    readme = (STATIC / "README.md").read_text()
    assert f"| {docs.SWAGGER_UI_VERSION} |" in readme and f"| {docs.REDOC_VERSION} |" in readme
    for licence in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (STATIC / licence).stat().st_size > 0
