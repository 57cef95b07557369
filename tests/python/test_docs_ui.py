"""/docs (Swagger UI) and /redoc (ReDoc) render in headless Chromium with no network beyond 127.0.0.1 — their
scripts and styles come from the covet package, not a CDN — and Swagger UI's "Try it out" works with the OAuth2
password flow (Authorize, then an authenticated request) against a real `covet run` server (docs_ui_app.py).

Needs Chromium (/usr/bin/chromium, or $COVET_CHROMIUM): skipped without it, failed instead under
COVET_REQUIRE_CHROMIUM=1. The screenshots go to pytest's tmp_path; COVET_DOCS_SCREENSHOTS=1 writes them to
docs/images/ (the ones docs/python.md shows) instead.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cdp import Chromium, Page, require_chromium
from serverproc import ServerProcess, require_compiled_engine

HERE = Path(__file__).resolve().parent
IMAGES = HERE.parent.parent / "docs" / "images"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    require_compiled_engine()
    with ServerProcess([sys.executable, "-m", "covet", "run", "docs_ui_app:app", "--port", "0"], cwd=HERE) as proc:
        yield proc


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    with Chromium.start(require_chromium("to render /docs and /redoc")) as browser:
        yield browser


def _screenshot_dir(tmp_path: Path) -> Path:
    return IMAGES if os.environ.get("COVET_DOCS_SCREENSHOTS") == "1" else tmp_path


# ReDoc's menu shows "API docs by Redocly" with this image (in redoc.standalone.js, unconditionally); offline it fails
# and ReDoc hides it (its onError): the only request that leaves 127.0.0.1, allowed here and nowhere else.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _no_failures(page: Page, allowed: tuple[str, ...] = ()) -> None:
    prefixes = tuple(f"{url}: " for url in allowed)
    failed = [f for f in page.failed if not f.startswith(prefixes)]
    assert failed == [], f"requests failed: {failed}"
    console = [c for c in page.console if not c.startswith(prefixes)]
    assert console == [], f"console errors: {console}"


def test_swagger_ui_renders_offline(server: ServerProcess, chromium: Chromium, tmp_path: Path) -> None:
    page = chromium.page()
    page.goto(f"http://127.0.0.1:{server.port}/docs")
    page.wait_for("document.querySelectorAll('.opblock').length >= 3", what="Swagger UI's operations")
    paths = page.evaluate("[...document.querySelectorAll('.opblock-summary-path')].map(e => e.dataset.path)")
    assert sorted(paths) == ["/items/{item_id}", "/token", "/users/me"]
    assert page.evaluate("document.querySelector('.info .title').textContent").startswith("Docs UI sample")
    assert page.evaluate("document.title") == "Docs UI sample - Swagger UI"
    assert page.evaluate("!!document.querySelector('button.authorize')"), "no Authorize button (securitySchemes)"
    # Every resource the page loaded came from this server (the bundled assets), none from elsewhere.
    origins = page.evaluate("[...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).origin))]")
    assert origins == [f"http://127.0.0.1:{server.port}"]
    _no_failures(page)
    page.screenshot(_screenshot_dir(tmp_path) / "swagger-ui.png")


def test_redoc_renders_offline(server: ServerProcess, chromium: Chromium, tmp_path: Path) -> None:
    page = chromium.page()
    page.goto(f"http://127.0.0.1:{server.port}/redoc")
    page.wait_for("document.querySelector('.api-content h1') && "
                  "document.querySelectorAll('[data-section-id^=\"operation/\"]').length >= 3",
                  what="ReDoc's operations")
    assert page.evaluate("document.querySelector('.api-content h1').textContent").startswith("Docs UI sample")
    menu = page.evaluate("document.querySelector('.menu-content').textContent")
    assert "Read Users Me" in menu and "Login" in menu and "Read Item" in menu
    urls = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert {url for url in urls if not url.startswith(f"http://127.0.0.1:{server.port}/")} <= {REDOC_LOGO}, urls
    _no_failures(page, allowed=(REDOC_LOGO,))
    # ReDoc removes its logo when the image fails to load (offline): the failure event may come a moment later.
    page.wait_for("!document.querySelector('img[alt=\"redocly logo\"]')", timeout=5, what="the logo gone (offline)")
    page.screenshot(_screenshot_dir(tmp_path) / "redoc.png")


def test_schema_is_generated_from_the_security_classes(server: ServerProcess) -> None:
    """What the Authorize dialog reads comes from OAuth2PasswordBearer / OAuth2PasswordRequestForm themselves."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/openapi.json", timeout=10) as answer:
        schema = json.load(answer)
    assert schema["components"]["securitySchemes"] == {
        "OAuth2PasswordBearer": {"type": "oauth2", "flows": {"password": {"tokenUrl": "token", "scopes": {}}}}}
    assert schema["paths"]["/users/me"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    form = schema["components"]["schemas"]["Body_login_token_post"]
    assert form["properties"]["password"] == {"type": "string", "format": "password", "title": "Password"}
    assert form["required"] == ["username", "password"]
    assert "application/x-www-form-urlencoded" in schema["paths"]["/token"]["post"]["requestBody"]["content"]


def test_try_it_out_with_oauth2_password_flow(server: ServerProcess, chromium: Chromium) -> None:
    page = chromium.page()
    page.goto(f"http://127.0.0.1:{server.port}/docs")
    page.wait_for("document.querySelectorAll('.opblock').length >= 3", what="Swagger UI's operations")

    # Authorize: the dialog of the OAuth2 password scheme (tokenUrl "token"), username and password, Authorize.
    page.click(".auth-wrapper button.authorize")
    page.wait_for("!!document.querySelector('.modal-ux #oauth_username')", what="the Authorize dialog")
    page.type_into(".modal-ux #oauth_username", "alice")
    page.type_into(".modal-ux #oauth_password", "wonderland")
    page.click(".modal-ux .auth-btn-wrapper button.authorize")
    page.wait_for("[...document.querySelectorAll('.modal-ux button')].some(b => b.textContent.trim() === 'Logout')",
                  what="the dialog to show Authorized (a Logout button)")
    page.click(".modal-ux button.btn-done")

    # Try it out: GET /users/me, which Swagger UI now sends with Authorization: Bearer <the token>.
    block = "#operations-default-read_users_me_users_me_get"
    page.click(f"{block} .opblock-summary-control")
    page.wait_for(f"!!document.querySelector('{block} button.try-out__btn')", what="the Try it out button")
    page.click(f"{block} button.try-out__btn")
    page.wait_for(f"!!document.querySelector('{block} button.execute')", what="the Execute button")
    page.click(f"{block} button.execute")
    body = page.wait_for(f"""(() => {{
        const live = document.querySelector('{block} .live-responses-table .response .response-col_status');
        const code = document.querySelector('{block} .live-responses-table .response-col_description pre');
        return live && code ? live.textContent.trim() + ' ' + code.textContent : '';
    }})()""", what="the live response of GET /users/me")
    assert body.startswith("200 "), body
    assert '"username": "alice"' in body and '"full_name": "Alice Liddell"' in body, body
    curl = page.evaluate(f"document.querySelector('{block} .curl-command').textContent")
    assert "Authorization: Bearer " in curl, curl
    _no_failures(page)
