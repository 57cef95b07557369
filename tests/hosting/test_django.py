"""A Django project (sqlite, the admin, sessions, CSRF) through `covet run` as ASGI and as WSGI (and uvicorn /
gunicorn): the admin login page renders, a POST with its CSRF token logs the superuser in (302 + session
cookie), the session opens the admin index; plain and async views; a Django Channels consumer over WebSocket."""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ASGI_SERVERS, WSGI_SERVERS, Server, serve
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

SERVINGS = [("asgi", s) for s in ASGI_SERVERS] + [("wsgi", s) for s in WSGI_SERVERS]
TARGETS = {"asgi": "djproject.asgi:application", "wsgi": "djproject.wsgi:application"}


@pytest.fixture(scope="module", params=SERVINGS, ids=[f"{i}-{s}" for i, s in SERVINGS])
def server(request: pytest.FixtureRequest, django_db: dict[str, str]) -> Iterator[Server]:
    interface, name = request.param
    with serve(name, TARGETS[interface], env=django_db) as running:
        running.interface = interface  # type: ignore[attr-defined]
        yield running


def test_admin_login(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.get("/admin/")
        assert r.status_code == 302 and r.headers["location"] == "/admin/login/?next=/admin/"
        r = client.get("/admin/login/", params={"next": "/admin/"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "Django administration" in r.text
        assert "csrftoken" in client.cookies
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)
        assert token, r.text[:2000]
        form = {"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": "wrong", "next": "/admin/"}
        r = client.post("/admin/login/?next=/admin/", data=form)
        assert r.status_code == 200 and "Please enter the correct username and password" in r.text
        assert client.post("/admin/login/", data={**form, "csrfmiddlewaretoken": "x" * 64}).status_code == 403
        r = client.post("/admin/login/?next=/admin/", data={**form, "password": "hosting-pass-123"})
        assert r.status_code == 302 and r.headers["location"] == "/admin/"
        assert "sessionid" in r.cookies
        r = client.get("/admin/")
        assert r.status_code == 200 and "Site administration" in r.text and "Users" in r.text


def test_views(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.get("/hello/ada/", params={"q": "x y"})
        assert r.json() == {"hello": "ada", "q": "x y", "secure": False}
        assert client.get("/async/").json() == {"async": True, "method": "GET"}
        r = client.get("/hello/ada")  # CommonMiddleware's APPEND_SLASH
        assert r.status_code == 301 and r.headers["location"] == "/hello/ada/"
        assert client.get("/nowhere/").status_code == 404


def test_large_upload(server: Server) -> None:
    """3 MiB of file: over the engine's whole-body limit (1 MiB), so the body must stream to the app."""
    blob = os.urandom(3 * 1024 * 1024)
    r = httpx.post(server.url + "/upload/", data={"note": "big"}, files={"doc": ("doc.bin", blob)}, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["files"] == {"doc": hashlib.sha256(blob).hexdigest()} and r.json()["fields"] == {"note": "big"}


def test_channels_consumer(server: Server) -> None:
    if server.interface != "asgi":  # type: ignore[attr-defined]
        pytest.skip("WebSockets are ASGI's (Channels); the WSGI serving has none")
    with connect(server.ws_url + "/ws/room/lobby/", open_timeout=10) as a, \
            connect(server.ws_url + "/ws/room/lobby/", open_timeout=10) as b:
        assert json.loads(a.recv(timeout=10)) == {"joined": "lobby"}
        assert json.loads(b.recv(timeout=10)) == {"joined": "lobby"}
        a.send(json.dumps({"text": "hi all"}))
        for ws in (a, b):  # the group message reaches both consumers through the channel layer
            assert json.loads(ws.recv(timeout=10)) == {"room": "lobby", "text": "hi all"}
    with pytest.raises(InvalidStatus) as denied:
        connect(server.ws_url + "/ws/room/private/", open_timeout=10)
    assert denied.value.response.status_code == 403


@pytest.fixture(scope="module", params=SERVINGS, ids=[f"{i}-{s}" for i, s in SERVINGS])
def tls_server(request: pytest.FixtureRequest, django_db: dict[str, str], certs: Path) -> Iterator[Server]:
    interface, name = request.param
    with serve(name, TARGETS[interface], env=django_db, certs=certs) as running:
        yield running


def test_https(tls_server: Server, certs: Path) -> None:
    """Over TLS the app sees https (ASGI scope scheme, WSGI wsgi.url_scheme): Django's request.is_secure()."""
    trust = ssl.create_default_context(cafile=certs / "cert.pem")
    with httpx.Client(base_url=tls_server.url, verify=trust, timeout=10) as client:
        r = client.get("/hello/tls/")
        assert r.status_code == 200 and r.json() == {"hello": "tls", "q": None, "secure": True}
        r = client.get("/admin/login/")
        assert r.status_code == 200 and "Django administration" in r.text
