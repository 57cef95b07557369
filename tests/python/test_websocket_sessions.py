"""Sessions on WebSocket routes, through real sockets (the compiled engine, a real `websockets` client):
``websocket.session`` is the session HTTP routes wrote (cookie and server-side), changes made to it are not saved
(as under Starlette: no response carries a cookie after the handshake), and a cross-origin handshake carrying the
session cookie (cross-site WebSocket hijacking) is refused with 403 before the endpoint runs."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
from collections.abc import Iterator
from typing import Any, Optional

import fake_native
import pytest

from covet import CovetPy, Request, WebSocket
from covet.middleware.sessions import SessionMiddleware
from covet.security import MemorySessionStore, login, session_principal

websockets = pytest.importorskip("websockets")

KEY = "ws-session-key-" + "k" * 24


def _app(**options: Any) -> tuple[CovetPy, list[str]]:
    app = CovetPy()
    app.add_middleware(SessionMiddleware, secret_key=KEY, https_only=False, **options)
    endpoint_runs: list[str] = []

    @app.get("/count")
    async def count(request: Request) -> dict[str, int]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @app.get("/peek")
    async def peek(request: Request) -> dict[str, Any]:
        return {k: v for k, v in request.session.items() if k != "_auth"}

    @app.post("/login")
    async def do_login(request: Request, user: str) -> dict[str, str]:
        login(request, user, roles=["chat"])
        return {"user": user}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        endpoint_runs.append(websocket.headers.get("origin", ""))
        await websocket.accept()
        principal = session_principal(websocket)
        await websocket.send_json({"session": {k: v for k, v in websocket.session.items() if k != "_auth"},
                                   "user": principal.id if principal else None})
        websocket.session["n"] = 1000  # not saved: no response carries a cookie after the handshake
        await websocket.send_json({"n": websocket.session["n"]})

    return app, endpoint_runs


@pytest.fixture
def serve_ws(native: Any) -> Iterator[Any]:
    if native is fake_native:  # the stand-in has no WebSockets
        pytest.skip("WebSockets need the compiled engine")
    from covet.serve import ThreadedWorker

    workers: list[Any] = []

    def start(app: CovetPy) -> Any:
        worker = ThreadedWorker(app, threads=1).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _http(port: int, method: str, path: str, cookie: Optional[str] = None) -> tuple[Any, Optional[str]]:
    """The JSON answer and the session cookie it set (``session=...``), if any."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        body = json.loads(response.read())
        set_cookie = [v for k, v in response.getheaders() if k.lower() == "set-cookie" and v.startswith("session=")]
        return body, set_cookie[0].split(";", 1)[0] if set_cookie else None
    finally:
        connection.close()


async def _ws_messages(port: int, cookie: Optional[str], origin: Optional[str] = None) -> list[Any]:
    headers = {"Cookie": cookie} if cookie else {}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers,
                                  origin=origin) as ws:
        return [json.loads(await ws.recv()), json.loads(await ws.recv())]


async def _ws_refusal(port: int, cookie: str, origin: str) -> Any:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{port}/ws", additional_headers={"Cookie": cookie}, origin=origin)
    return refused.value.response


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def _store(kind: Optional[str]) -> Any:
    if kind == "memory":
        return MemorySessionStore()
    if kind == "redis":  # scripts/services.sh start (or COVET_TEST_REDIS_URL); skipped without one
        from test_security_sessions import _redis_url

        from covet.security import RedisSessionStore

        return RedisSessionStore(_redis_url(), prefix=f"covet-test-ws:{os.getpid()}:")
    return None


@pytest.mark.parametrize("store", [None, "memory", "redis"], ids=["cookie", "server-side", "redis"])
def test_the_websocket_sees_the_http_session_and_its_changes_are_not_saved(serve_ws: Any, store: Any) -> None:
    app, runs = _app(store=_store(store))
    port = serve_ws(app).port
    _, cookie = _http(port, "GET", "/count")
    assert cookie is not None
    _, cookie = _http(port, "POST", "/login?user=alice", cookie)  # login() gives a new id/cookie
    assert cookie is not None
    body, cookie2 = _http(port, "GET", "/count", cookie)
    assert body == {"n": 2} and cookie2 is not None
    first, second = _run(_ws_messages(port, cookie2))
    assert first == {"session": {"n": 2}, "user": "alice"}
    assert second == {"n": 1000}
    assert _http(port, "GET", "/peek", cookie2)[0] == {"n": 2}  # the WebSocket's change was not saved
    # no cookie: an empty session, not an error
    assert _run(_ws_messages(port, None)) == [{"session": {}, "user": None}, {"n": 1000}]
    assert len(runs) == 2


def test_a_cross_origin_handshake_with_the_session_cookie_is_refused_before_the_endpoint(serve_ws: Any) -> None:
    app, runs = _app(allowed_origins=["https://app.example.com"])
    port = serve_ws(app).port
    _, cookie = _http(port, "GET", "/count")
    assert cookie is not None
    for evil in ("https://evil.example", "null", f"http://127.0.0.1:{port + 1}", "http://127.0.0.1"):
        response = _run(_ws_refusal(port, cookie, evil))
        assert response.status_code == 403
        assert b"cross-origin WebSocket handshake with a session cookie" in response.body
        assert f"Origin {evil} ".encode() in response.body
    assert runs == []  # the endpoint never ran
    # the page's own origin (the Host it connected to), an allowed one, and no Origin (not a browser) pass
    for good in (f"http://127.0.0.1:{port}", "https://app.example.com", "HTTPS://App.Example.com/", None):
        assert _run(_ws_messages(port, cookie, good))[0]["session"] == {"n": 1}
    # another origin without the session cookie is not hijacking anything: it connects, with no session
    assert _run(_ws_messages(port, None, "https://evil.example"))[0] == {"session": {}, "user": None}
    assert len(runs) == 5
    # the server still serves HTTP
    assert _http(port, "GET", "/count", cookie)[0] == {"n": 2}


def test_allowed_origins_must_be_a_list() -> None:
    app = CovetPy()
    with pytest.raises(TypeError, match="list of origins"):
        app.add_middleware(SessionMiddleware, secret_key=KEY, allowed_origins="https://app.example.com")
