"""A Flask app (WSGI) through `covet run` (and gunicorn): routes, JSON, a multipart form with a file, a session
cookie, a streamed response and send_file (with a Range request)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import APPS, WSGI_SERVERS, Server, serve

DATA = APPS / "static" / "data.bin"


@pytest.fixture(scope="module", params=WSGI_SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    DATA.parent.mkdir(exist_ok=True)
    if not DATA.exists() or DATA.stat().st_size != 256 * 1024:
        DATA.write_bytes(os.urandom(256 * 1024))
    with serve(request.param, "flask_app:app") as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_routes_and_json(client: httpx.Client) -> None:
    assert client.get("/").text == "hello from flask"
    assert client.get("/users/7", params={"q": "é"}).json() == {"user_id": 7, "q": "é", "server": "HTTP/1.1"}
    assert client.get("/users/x").status_code == 404
    r = client.post("/json", json={"a": [1, 2]})
    assert r.json() == {"received": {"a": [1, 2]}, "length": len(b'{"a":[1,2]}')}


def test_form_with_upload(client: httpx.Client) -> None:
    upload = os.urandom(3 * 1024 * 1024)  # over the engine's whole-body limit (1 MiB): the body streams
    r = client.post("/form", data={"name": "Grace", "color": ["red", "blue"]},
                    files={"upload": ("u.bin", upload, "application/octet-stream")})
    assert r.json() == {"name": "Grace", "colors": ["red", "blue"], "upload_sha256": hashlib.sha256(upload).hexdigest()}


def test_session_cookie(client: httpx.Client) -> None:
    assert client.get("/me").status_code == 401
    assert client.get("/login/linus").json() == {"ok": True}
    assert "session" in client.cookies
    assert client.get("/me").json() == {"name": "linus"}


def test_streaming(client: httpx.Client) -> None:
    with client.stream("GET", "/stream", params={"n": "50"}) as r:
        assert r.status_code == 200 and "content-length" not in r.headers
        assert r.read().decode() == "".join(f"chunk {i} of /stream\n" for i in range(50))


def test_streaming_is_not_buffered(client: httpx.Client) -> None:
    with client.stream("GET", "/slow-stream") as r:
        started = time.monotonic()
        chunks = r.iter_text()
        assert next(chunks) == "first\n"
        assert time.monotonic() - started < 1.2, "the first chunk waited for the generator's next one"
        assert "".join(chunks) == "second\n"


def test_send_file(client: httpx.Client) -> None:
    data = DATA.read_bytes()
    r = client.get("/file")
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-disposition"] == "attachment; filename=data.bin"
    head = client.head("/file")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(data)))
    r = client.get("/file", headers={"range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    etag = client.get("/file").headers["etag"]
    assert client.get("/file", headers={"if-none-match": etag}).status_code == 304
