"""Sessions on WebSocket routes, through real sockets (the compiled engine, a real `websockets` client):
``websocket.session`` is the session HTTP routes wrote (cookie and server-side), changes made to it are not saved
(as under Starlette: no response carries a cookie after the handshake), and a cross-origin handshake carrying the
session cookie (cross-site WebSocket hijacking) is refused with 403 before the endpoint runs; with a server-side store,
an open WebSocket closes (1008) when its session ends, in this worker or elsewhere."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import fake_native
import pytest

from covet import CovetPy, Request, WebSocket
from covet.middleware.sessions import SessionMiddleware
from covet.security import MemorySessionStore, login, logout, session_principal

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

    @app.post("/logout")
    async def do_logout(request: Request) -> dict[str, bool]:
        logout(request)
        return {"out": True}

    @app.websocket("/live")
    async def live(websocket: WebSocket) -> None:  # echoes until the client or the server closes
        await websocket.accept()
        principal = session_principal(websocket)
        await websocket.send_text(principal.id if principal else "-")
        while True:
            await websocket.send_text(await websocket.receive_text())

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

        # A prefix of its own: the tests look sessions up by user, and an earlier test's "alice" must not be found.
        return RedisSessionStore(_redis_url(), prefix=f"covet-test-ws:{os.getpid()}:{uuid.uuid4().hex[:8]}:")
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


def _login(port: int, user: str) -> str:
    _, cookie = _http(port, "GET", "/count")
    _, cookie = _http(port, "POST", f"/login?user={user}", cookie)
    assert cookie is not None
    return cookie


async def _live_close_code(port: int, ended: str, kept: str, end: Any, within: float) -> tuple[Any, str]:
    """Opens /live with the cookies `ended` and `kept`, runs `end()` (which ends the first one's session), and
    returns the close code the first one got within `within` seconds, and the other's echo after it."""
    async with websockets.connect(f"ws://127.0.0.1:{port}/live", additional_headers={"Cookie": ended}) as gone, \
            websockets.connect(f"ws://127.0.0.1:{port}/live", additional_headers={"Cookie": kept}) as stays:
        assert await gone.recv() == "alice" and await stays.recv() == "bob"
        await gone.send("before")
        assert await gone.recv() == "before"
        await asyncio.get_running_loop().run_in_executor(None, end)
        code = None
        try:
            await asyncio.wait_for(gone.recv(), within)
        except websockets.ConnectionClosed as closed:
            code = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else None
        await stays.send("still here")
        return code, await stays.recv()


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_logout_closes_the_sessions_open_websockets_at_once(serve_ws: Any, store: str) -> None:
    app, _ = _app(store=_store(store))
    port = serve_ws(app).port
    alice, bob = _login(port, "alice"), _login(port, "bob")
    code, echo = _run(_live_close_code(port, alice, bob, lambda: _http(port, "POST", "/logout", alice), 3))
    assert code == (1008, "session ended")
    assert echo == "still here"  # another session's WebSocket is untouched
    assert _http(port, "GET", "/peek", alice)[0] == {}  # and the session is gone for HTTP too


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_session_ended_elsewhere_closes_its_websockets_at_the_next_check(serve_ws: Any, store: str) -> None:
    """Another worker's logout, an OpenID back-channel logout or the store's expiry: the record just goes."""
    session_store = _store(store)
    app, _ = _app(store=session_store, websocket_check_interval=0.3)
    port = serve_ws(app).port
    alice, bob = _login(port, "alice"), _login(port, "bob")
    alice_id = next(sid for sid in _stored_ids(session_store) if _user_of(session_store, sid) == "alice")

    def end() -> None:  # from outside the worker: its own in-process hook does not run
        asyncio.run(session_store.delete(alice_id))

    code, echo = _run(_live_close_code(port, alice, bob, end, 3))
    assert code == (1008, "session ended")
    assert echo == "still here"


def _stored_ids(store: Any) -> list[str]:
    if isinstance(store, MemorySessionStore):
        return list(store.data)
    import redis

    client = redis.Redis.from_url(store.url)
    return [key.decode()[len(store.prefix):] for key in client.scan_iter(match=store.prefix + "*")]


def _user_of(store: Any, session_id: str) -> Optional[str]:
    data = asyncio.run(store.load(session_id))
    return data.get("_auth", {}).get("id") if data else None


def test_the_session_check_interval_must_be_positive() -> None:
    app = CovetPy()
    with pytest.raises(ValueError, match="seconds, > 0"):
        SessionMiddleware(app, secret_key=KEY, store=MemorySessionStore(), websocket_check_interval=0)
