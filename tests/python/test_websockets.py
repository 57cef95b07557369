"""WebSocket routes from Python (`@app.websocket`, Starlette's WebSocket API) on the compiled engine, in
both engine modes (on the loop thread, and with an I/O thread), driven by the `websockets` client."""

from __future__ import annotations

import asyncio
from typing import Any

import fake_native
import pytest

from covet import CovetPy, Depends, WebSocket, WebSocketDisconnect

websockets = pytest.importorskip("websockets")


def _app() -> CovetPy:
    app = CovetPy()

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if "text" in message:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str, name: str = "anon") -> None:
        await websocket.accept()
        await websocket.subscribe(room)
        await websocket.send_json({"joined": room, "name": name, "scheme": websocket.url.scheme})
        async for text in websocket.iter_text():
            if text == "bye":
                await websocket.close(4000, "bye")
                return
            await websocket.publish(room, f"{name}: {text}")

    @app.websocket("/items/{item_id}")
    async def typed(websocket: WebSocket, item_id: int) -> None:
        await websocket.accept()
        await websocket.send_json({"item_id": item_id})

    def token(websocket: WebSocket) -> str:
        return websocket.headers.get("x-token", "none")

    @app.websocket("/dep")
    async def with_dependency(websocket: WebSocket, tok: str = Depends(token)) -> None:
        await websocket.accept()
        await websocket.send_text(tok)
        data = await websocket.receive_json()
        await websocket.send_json({"got": data})

    @app.websocket("/fails")
    async def fails(websocket: WebSocket) -> None:
        await websocket.accept()
        raise RuntimeError("boom")

    @app.websocket("/disconnect")
    async def disconnect(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            app.state.disconnect_code = exc.code

    @app.websocket("/small", max_size=1024)
    async def small(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    @app.websocket("/guarded")
    async def guarded(websocket: WebSocket) -> None:
        token = websocket.query_params.get("token")
        if token is None:
            await websocket.close(1008, "no token")  # before accept(): HTTP 403
            return
        if token == "teapot":
            from covet.responses import PlainTextResponse

            await websocket.send_denial_response(
                PlainTextResponse("no tea here", status_code=418, headers={"X-Why": "teapot"}))
            return
        if token == "boom":
            raise RuntimeError("failed before accepting")  # HTTP 500, as uvicorn
        if token == "forgot":
            return  # neither accepted nor closed: HTTP 500, as uvicorn
        await websocket.accept(subprotocol="chat.v2", headers=[(b"x-session", b"s1")])
        await websocket.send_text(f"hello {token} {websocket.selected_subprotocol}")

    @app.get("/publish/{room}")
    async def publish(room: str, text: str) -> dict[str, Any]:
        return {"sent_to": app.publish(room, text)}

    return app


@pytest.fixture(params=[0, 1], ids=["loop-thread", "io-thread"])
def server(request: pytest.FixtureRequest, native: Any) -> Any:
    if native is fake_native:  # the stand-in has no WebSockets
        pytest.skip("WebSockets need the compiled engine")
    from covet.serve import ThreadedWorker

    app = _app()
    worker = ThreadedWorker(app, threads=request.param).start()
    yield worker
    worker.stop()


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_echo_text_and_binary_with_and_without_compression(server: Any) -> None:
    async def go() -> None:
        for compression in ("deflate", None):
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo", compression=compression) as ws:
                extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
                assert (extensions is not None) == (compression is not None)
                await ws.send("héllo")
                assert await ws.recv() == "héllo"
                blob = bytes(range(256)) * 2000
                await ws.send(blob)
                assert await ws.recv() == blob

    _run(go())


def test_path_and_query_parameters_and_broadcast_to_a_room(server: Any) -> None:
    async def go() -> None:
        base = f"ws://127.0.0.1:{server.port}/rooms"
        a = await websockets.connect(f"{base}/r1?name=a")
        b = await websockets.connect(f"{base}/r1?name=b")
        c = await websockets.connect(f"{base}/r2?name=c")
        import json

        assert json.loads(await a.recv()) == {"joined": "r1", "name": "a", "scheme": "ws"}
        await b.recv(), await c.recv()
        await a.send("hi")
        assert await a.recv() == "a: hi" and await b.recv() == "a: hi"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.recv(), 0.3)
        await b.send("bye")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await b.recv()
        assert closed.value.rcvd.code == 4000 and closed.value.rcvd.reason == "bye"
        for ws in (a, c):
            await ws.close()

    _run(go())


def test_app_publish_from_an_http_route_reaches_subscribers(server: Any) -> None:
    import http.client
    import json

    async def go() -> None:
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/rooms/news")
        await ws.recv()

        def get() -> dict[str, Any]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/publish/news?text=extra")
            return json.loads(conn.getresponse().read())  # type: ignore[no-any-return]

        await asyncio.get_running_loop().run_in_executor(None, get)
        assert await ws.recv() == "extra"
        await ws.close()

    _run(go())


def test_typed_path_parameter_and_validation_refuses_with_403(server: Any) -> None:
    async def go() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/items/42") as ws:
            assert await ws.recv() == '{"item_id":42}'
        # Invalid parameters close with 1008 before accept(): the handshake is refused, as under uvicorn.
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{server.port}/items/abc")
        assert refused.value.response.status_code == 403

    _run(go())


def test_dependencies_and_json(server: Any) -> None:
    async def go() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/dep", additional_headers={"X-Token": "t1"}) as ws:
            assert await ws.recv() == "t1"
            await ws.send('{"a": [1, 2]}')
            assert await ws.recv() == '{"got":{"a":[1,2]}}'

    _run(go())


def test_a_failing_handler_closes_with_1011_and_the_server_goes_on(server: Any) -> None:
    async def go() -> None:
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/fails")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1011
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ok:
            await ok.send("still here")
            assert await ok.recv() == "still here"

    _run(go())


def test_client_close_raises_websocket_disconnect_with_its_code(server: Any) -> None:
    async def go() -> None:
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/disconnect")
        await ws.close(4321, "done")
        for _ in range(50):
            if getattr(server.app.state, "disconnect_code", None) is not None:
                break
            await asyncio.sleep(0.05)
        assert server.app.state.disconnect_code == 4321

    _run(go())


def test_max_size_closes_with_1009(server: Any) -> None:
    async def go() -> None:
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/small", max_size=None)
        await ws.send("x" * 2000)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1009

    _run(go())


def test_unknown_path_is_refused_with_404(server: Any) -> None:
    async def go() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{server.port}/nope")
        assert refused.value.response.status_code == 404

    _run(go())


def test_a_websocket_route_needs_a_websocket_parameter() -> None:
    app = CovetPy()
    with pytest.raises(TypeError, match="annotated `WebSocket`"):
        app.add_websocket_route("/x", lambda: None)
    with pytest.raises(TypeError, match="unknown options"):
        app.add_websocket_route("/y", lambda websocket: None, max_sise=3)


def test_testclient_websocket_connect_like_starlette(native: Any) -> None:
    if native is fake_native:  # the stand-in has no WebSockets
        pytest.skip("WebSockets need the compiled engine")
    from covet.testing import TestClient

    with TestClient(_app()) as client:
        with client.websocket_connect("/rooms/r9?name=t") as ws:
            assert ws.receive_json() == {"joined": "r9", "name": "t", "scheme": "ws"}
            ws.send_text("hello")
            assert ws.receive_text() == "t: hello"
            ws.send_text("bye")
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 4000
        with client.websocket_connect("ws://testserver/echo") as ws:
            ws.send_bytes(b"\x00\x01" * 40000)
            assert ws.receive_bytes() == b"\x00\x01" * 40000
        with pytest.raises(WebSocketDisconnect, match="HTTP 404"):
            client.websocket_connect("/nope")


def test_the_handler_decides_the_handshake_accept_deny_close(server: Any) -> None:
    """The 101 goes out when the endpoint accepts (its subprotocol and headers in it); closing first refuses with
    403, a denial response goes out as it is, and an endpoint that fails or returns first gets 500."""
    import http.client

    async def go() -> None:
        base = f"ws://127.0.0.1:{server.port}/guarded"
        async with websockets.connect(f"{base}?token=t", subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response.headers["X-Session"] == "s1"
            assert await ws.recv() == "hello t chat.v2"
        for query, status in (("", 403), ("?token=boom", 500), ("?token=forgot", 500)):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(base + query)
            assert refused.value.response.status_code == status, query
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ok:  # the server goes on
            await ok.send("still here")
            assert await ok.recv() == "still here"

    _run(go())

    # The denial response as an HTTP client sees it, then the connection closes.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/guarded?token=teapot", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    response = conn.getresponse()
    assert (response.status, response.getheader("x-why"), response.read()) == (418, "teapot", b"no tea here")
    assert response.getheader("connection") == "close"
    conn.close()


def test_testclient_sees_the_close_code_of_a_refusal(native: Any) -> None:
    if native is fake_native:
        pytest.skip("WebSockets need the compiled engine")
    from covet.testing import TestClient

    with TestClient(_app()) as client:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/guarded"):
                pass
        assert (refused.value.code, refused.value.reason) == (1008, "no token")
        with pytest.raises(RuntimeError, match="failed before accepting"):
            client.websocket_connect("/guarded?token=boom")
        with client.websocket_connect("/guarded?token=x", subprotocols=["chat.v2"]) as ws:
            assert ws.accepted_subprotocol == "chat.v2"
            assert ws.receive_text() == "hello x chat.v2"


def test_trusted_host_middleware_checks_websocket_handshakes(native: Any) -> None:
    """Starlette's TrustedHostMiddleware sees websocket scopes too: a handshake with a Host not allowed is refused
    with its 400 (under uvicorn, through the denial-response extension), an allowed one goes through."""
    if native is fake_native:
        pytest.skip("WebSockets need the compiled engine")
    from covet.middleware.trustedhost import TrustedHostMiddleware
    from covet.serve import ThreadedWorker

    app = CovetPy()
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com"])

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("in")

    worker = ThreadedWorker(app, threads=1).start()
    try:
        async def go() -> None:
            # the socket goes to 127.0.0.1; the Host header is the URI's
            to = {"host": "127.0.0.1", "port": worker.port}
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"ws://evil.test:{worker.port}/ws", **to)
            assert refused.value.response.status_code == 400
            assert refused.value.response.body == b"Invalid host header"
            async with websockets.connect(f"ws://example.com:{worker.port}/ws", **to) as ok:
                assert await ok.recv() == "in"

        _run(go())
    finally:
        worker.stop()
