"""Starlette's own features through `covet run` (and uvicorn, the reference): routing, lifespan state,
middleware, forms, streaming, gzip, background tasks, redirects and a WebSocketEndpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import ASGI_SERVERS, Server, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol


@pytest.fixture(scope="module", params=ASGI_SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, "starlette_app:app") as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_routes_lifespan_state_and_middleware(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.json() == {"greeting": "hello from lifespan", "path": "/"}
    assert r.headers["x-app"] == "starlette"
    r = client.get("/users/42", params={"q": "a b"})
    assert r.json() == {"user_id": 42, "type": "int", "q": "a b"}
    assert client.get("/users/abc").status_code == 404
    r = client.get("/old")
    assert r.status_code == 307 and r.headers["location"] == "/"


def test_form_and_body(client: httpx.Client) -> None:
    r = client.post("/submit", data={"name": "Ada", "tag": ["x", "y"]})
    assert r.json() == {"name": "Ada", "tags": ["x", "y"]}
    body = bytes(range(256)) * 400  # 100 KiB, more than one read
    r = client.post("/api/echo", content=body)
    assert r.status_code == 200 and r.content == body[::-1] and r.headers["x-length"] == str(len(body))
    assert client.get("/api/echo").status_code == 405


def test_streaming_gzip_and_background_task(client: httpx.Client) -> None:
    with client.stream("GET", "/stream") as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        assert "".join(r.iter_text()) == "".join(f"line {i}\n" for i in range(5))
    r = client.get("/big", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.text == "x" * 20000
    r = client.get("/later")
    assert (r.status_code, r.text) == (202, "accepted")
    deadline = time.monotonic() + 5  # the task runs after the response went out: poll for it
    while "task" not in client.get("/done").json():
        assert time.monotonic() < deadline, "the background task did not run"
        time.sleep(0.05)


def test_stream_is_not_buffered(client: httpx.Client) -> None:
    """Through BaseHTTPMiddleware and GZipMiddleware (no accept-encoding: passed through) to the socket."""
    with client.stream("GET", "/slow-stream", headers={"accept-encoding": "identity"}) as r:
        started = time.monotonic()
        parts = r.iter_bytes()
        assert next(parts) == b"first\n"
        assert time.monotonic() - started < 1.2, "the first part waited for the next one"
        assert b"".join(parts) == b"second\n"


def test_declared_content_length(server: Server, client: httpx.Client) -> None:
    """The Content-Length an app declares goes out as declared (uvicorn's behaviour), also through
    BaseHTTPMiddleware's re-streamed body, and HEAD (Starlette answers it for GET routes) gets GET's headers."""
    r = client.get("/big", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.text == "x" * 20000
    assert "transfer-encoding" not in r.headers and int(r.headers["content-length"]) < 1000
    get, head = client.get("/users/1"), client.head("/users/1")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))


def test_websocket_endpoint(server: Server) -> None:
    with connect(server.ws_url + "/ws?name=ada", open_timeout=10, subprotocols=[Subprotocol("chat.v1")]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.recv(timeout=10) == "welcome ada"
        ws.send("hi")
        assert ws.recv(timeout=10) == "echo: hi"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


def test_websocket_denied_before_accept(server: Server) -> None:
    with pytest.raises(InvalidStatus) as denied:
        connect(server.ws_url + "/ws?token=bad", open_timeout=10)
    assert denied.value.response.status_code == 403
    with connect(server.ws_url + "/ws", open_timeout=10) as ws:  # no subprotocol asked, none chosen
        assert ws.subprotocol is None and ws.recv(timeout=10) == "welcome anonymous"
