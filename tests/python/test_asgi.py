"""ASGI on both sides of a CovetPy app (issue 14, seeds issue 15), through real sockets:

- pure ASGI middleware (``app.add_middleware(cls, **options)``) on the engine: headers added by wrapping
  ``send``, the body replaced, a 403 answered without the app, the path rewritten in the scope, the body read in
  the middleware and again by the handler, streaming through them, a middleware that raises (500), their order
  among ``@app.middleware("http")`` functions;
- ``app.mount(path, asgi_app)`` of a hand-written ASGI app (root_path/path as Starlette's Mount sets them);
- the app itself as an ASGI application under uvicorn (a real server process): routes, a streamed body, a
  WebSocket, lifespan startup/shutdown, and mounted under another ASGI app.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from covet import CovetPy, Request, Response, StreamingResponse, WebSocket
from covet.middleware.base import BaseHTTPMiddleware
from serverproc import fastapi_reference_python, free_port

Scope = dict[str, Any]


# -- pure ASGI middleware, written against the ASGI spec (as Starlette's documentation examples) --------------
class AddHeader:
    def __init__(self, app: Any, name: str = "x-asgi", value: str = "1") -> None:
        self.app, self.name, self.value = app, name.encode(), value.encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (self.name, self.value)]}
            await send(message)

        await self.app(scope, receive, send_with_header)


class ReplaceBody:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/replace"):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                body = b"replaced"
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


class Forbid:
    def __init__(self, app: Any, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"forbidden"})
            return
        await self.app(scope, receive, send)


class Rewrite:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/old/"):
            path = "/items/" + scope["path"][len("/old/"):]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


class ReadBody:
    """Reads the whole body (``more_body``), records its size in a header, and replays it to the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_size(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-body-size", str(len(body)).encode())]}
            await send(message)

        await self.app(scope, replay, send_size)


class Explode:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/explode":
            raise RuntimeError("middleware failure")
        await self.app(scope, receive, send)


class Order:
    def __init__(self, app: Any, log: list[str], name: str) -> None:
        self.app, self.log, self.name = app, log, name

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.log.append(self.name)
        await self.app(scope, receive, send)


def _app() -> CovetPy:
    app = CovetPy()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/replace")
    async def replace() -> dict[str, str]:
        return {"original": "body"}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(body, media_type="application/octet-stream")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(3):
                yield f"part{i};"
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/explode")
    async def explode() -> dict[str, str]:
        return {"never": "reached"}

    @app.get("/handler-error")
    async def handler_error() -> dict[str, str]:
        raise LookupError("handler failure")

    return app


@pytest.fixture
def asgi_client(make_client: Any) -> Any:
    app = _app()
    app.add_middleware(ReadBody)
    app.add_middleware(Rewrite)
    app.add_middleware(Explode)
    app.add_middleware(ReplaceBody)
    app.add_middleware(Forbid, prefix="/admin")
    app.add_middleware(AddHeader, name="x-asgi", value="yes")
    return make_client(app, raise_server_exceptions=False)


def test_header_added_by_wrapping_send(asgi_client: Any) -> None:
    r = asgi_client.get("/items/3")
    assert (r.status_code, r.json(), r.headers["x-asgi"]) == (200, {"item_id": 3}, "yes")


def test_unmatched_requests_go_through_the_middleware(asgi_client: Any) -> None:
    r = asgi_client.get("/nowhere")
    assert (r.status_code, r.json(), r.headers["x-asgi"]) == (404, {"detail": "Not Found"}, "yes")


def test_body_replaced(asgi_client: Any) -> None:
    r = asgi_client.get("/replace")
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"replaced", "8")


def test_short_circuit_without_the_app(asgi_client: Any) -> None:
    r = asgi_client.get("/admin/panel")
    assert (r.status_code, r.text, r.headers["x-asgi"]) == (403, "forbidden", "yes")


def test_path_rewritten_in_the_scope(asgi_client: Any) -> None:
    r = asgi_client.get("/old/42")
    assert (r.status_code, r.json()) == (200, {"item_id": 42})


def test_body_read_by_the_middleware_then_by_the_handler(asgi_client: Any) -> None:
    payload = bytes(range(256)) * 400  # 100 KiB: streamed by the engine, read in chunks through `receive`
    r = asgi_client.post("/echo", content=payload)
    assert (r.status_code, r.headers["x-body-size"], r.content == payload) == (200, str(len(payload)), True)


def test_streaming_through_the_middleware(asgi_client: Any) -> None:
    r = asgi_client.get("/stream")
    assert (r.status_code, r.text, r.headers["x-asgi"]) == (200, "part0;part1;part2;", "yes")
    assert "content-length" not in r.headers


def test_middleware_raising_is_a_500(asgi_client: Any) -> None:
    r = asgi_client.get("/explode")
    assert (r.status_code, r.text) == (500, "Internal Server Error")


def test_handler_exception_goes_up_through_the_middleware(asgi_client: Any, make_client: Any) -> None:
    # As Starlette's ServerErrorMiddleware (outermost): the 500 never passes through the ASGI middleware.
    r = asgi_client.get("/handler-error")
    assert (r.status_code, r.text, "x-asgi" in r.headers) == (500, "Internal Server Error", False)
    app = _app()
    app.add_middleware(AddHeader)
    with pytest.raises(LookupError, match="handler failure"):  # TestClient raises it again, as Starlette's
        make_client(app).get("/handler-error")

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception) -> Response:
        return Response(f"handled {type(exc).__name__}", status_code=500)

    r = make_client(app, raise_server_exceptions=False).get("/handler-error")
    assert (r.status_code, r.text) == (500, "handled LookupError")


def test_order_among_http_middleware_functions(make_client: Any) -> None:
    log: list[str] = []
    app = _app()
    app.add_middleware(Order, log=log, name="asgi-1")

    @app.middleware("http")
    async def http_2(request: Request, call_next: Any) -> Response:
        log.append("http-2")
        response: Response = await call_next(request)
        response.headers["x-http-2"] = "1"
        return response

    app.add_middleware(Order, log=log, name="asgi-3")

    async def base_4(request: Request, call_next: Any) -> Response:
        log.append("base-4")
        return await call_next(request)  # type: ignore[no-any-return]

    app.add_middleware(BaseHTTPMiddleware, dispatch=base_4)

    @app.middleware("http")
    async def http_0(request: Request, call_next: Any) -> Response:  # added last: outermost
        log.append("http-5")
        return await call_next(request)  # type: ignore[no-any-return]

    client = make_client(app)
    r = client.get("/items/1")
    assert (r.status_code, r.json(), r.headers["x-http-2"]) == (200, {"item_id": 1}, "1")
    assert log == ["http-5", "base-4", "asgi-3", "http-2", "asgi-1"]
    r = client.get("/stream")
    assert (r.status_code, r.text) == (200, "part0;part1;part2;")


def test_without_pure_asgi_middleware_the_app_is_served_as_before() -> None:
    app = _app()
    assert app.engine_app() is app
    app.add_middleware(AddHeader)
    assert app.engine_app() is not app


# -- app.mount of an ASGI application -------------------------------------------------------------------------
async def hand_written(scope: Scope, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    answer = json.dumps({"path": scope["path"], "root_path": scope["root_path"], "method": scope["method"],
                         "query": scope["query_string"].decode(), "body": body.decode()}).encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"x-mounted", b"1")]})
    await send({"type": "http.response.body", "body": answer[:10], "more_body": True})
    await send({"type": "http.response.body", "body": answer[10:]})


def test_mounted_asgi_app(make_client: Any) -> None:
    app = _app()
    app.mount("/legacy", hand_written, name="legacy")
    client = make_client(app)
    r = client.post("/legacy/a/b?x=1", content=b"hello")
    assert (r.status_code, r.headers["x-mounted"]) == (201, "1")
    assert r.json() == {"path": "/legacy/a/b", "root_path": "/legacy", "method": "POST", "query": "x=1",
                        "body": "hello"}
    assert client.get("/legacy/").json()["path"] == "/legacy/"
    r = client.get("/legacy", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "http://testserver/legacy/")
    assert client.get("/items/5").json() == {"item_id": 5}  # the app's own routes are unchanged
    assert "/legacy" not in json.dumps(client.get("/openapi.json").json()["paths"])


def test_a_scope_request_looks_up_one_header_as_the_engine_does() -> None:
    from covet.asgi.messages import ScopeRequest

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"Content-Type", b"application/json"), (b"x-a", b"1"), (b"X-A", b"2")]}
    native = ScopeRequest(scope, "/", b"{}", {})
    assert (native.header("content-type"), native.header("x-a"), native.header("x-b")) == ("application/json", "1",
                                                                                           None)
    # Case-insensitive in the name asked for too, and every value of a repeated header, as the engine's lookups.
    assert (native.header("Content-TYPE"), native.header_values("X-a"), native.header_values("x-b")) == (
        "application/json", ["1", "2"], [])


def test_mount_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError, match="ASGI application"):
        CovetPy().mount("/x", object())


# -- the app as an ASGI application, under uvicorn --------------------------------------------------------------
UVICORN_APP = textwrap.dedent('''
    import asyncio, json, os
    from contextlib import asynccontextmanager
    from covet import CovetPy, Request, StreamingResponse, WebSocket
    from covet.background import BackgroundTasks

    LOG = os.environ["LIFESPAN_LOG"]

    @asynccontextmanager
    async def lifespan(app):
        with open(LOG, "a") as f:
            f.write("startup\\n")
        yield {"greeting": "hello"}
        with open(LOG, "a") as f:
            f.write("shutdown\\n")

    app = CovetPy(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str = "none", request: Request = None):
        return {"item_id": item_id, "q": q, "greeting": request.state.greeting, "root_path": request.root_path,
                "url": str(request.url)}

    @app.post("/echo")
    async def echo(payload: dict, tasks: BackgroundTasks):
        tasks.add_task(lambda: open(LOG, "a").write("background\\n"))
        return payload

    @app.get("/stream")
    async def stream():
        async def chunks():
            for i in range(3):
                yield f"part{i};"
                await asyncio.sleep(0.01)
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/upload")
    async def upload(request: Request):
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom")

    @app.websocket("/ws/{room}")
    async def ws(websocket: WebSocket, room: str):
        await websocket.accept()
        async for message in websocket.iter_text():
            await websocket.send_text(f"{room}:{message}")

    @app.websocket("/deny")
    async def deny(websocket: WebSocket):
        await websocket.close(1008)

    async def outer(scope, receive, send):
        """Another ASGI app mounting the CovetPy app under /covet, as Starlette's Mount does."""
        if scope["type"] in ("http", "websocket") and scope["path"].startswith("/covet/"):
            await app({**scope, "root_path": scope.get("root_path", "") + "/covet"}, receive, send)
        else:
            await app(scope, receive, send)
''')


FAILING_APP = textwrap.dedent('''
    from contextlib import asynccontextmanager
    from covet import CovetPy

    @asynccontextmanager
    async def lifespan(app):
        raise RuntimeError("database unreachable")
        yield

    app = CovetPy(lifespan=lifespan)
''')

UNDER_FASTAPI = textwrap.dedent('''
    from fastapi import FastAPI
    from covet import CovetPy, Request

    covet_app = CovetPy()

    @covet_app.get("/items/{item_id}")
    async def item(item_id: int, request: Request):
        return {"item_id": item_id, "root_path": request.root_path, "path": request.url.path}

    app = FastAPI()
    app.mount("/covet", covet_app)

    @app.get("/")
    async def home():
        return {"served_by": "fastapi"}
''')


def _covet_path(tmp_path: Path) -> str:
    """PYTHONPATH for a child interpreter importing covet from this tree: the package sources, plus (when the
    compiled module lives elsewhere: an editable build dir, or another interpreter's venv) a sitecustomize that
    loads this interpreter's compiled `covet._native` first."""
    root = Path(__file__).resolve().parents[2] / "bindings" / "python"
    entries = [str(root)]
    try:
        import covet._native as compiled
    except ImportError:
        compiled = None
    so = getattr(compiled, "__file__", None)
    if so and Path(so).parent != root / "covet":
        preload = tmp_path / "preload"
        preload.mkdir(exist_ok=True)
        (preload / "sitecustomize.py").write_text(textwrap.dedent(f"""
            import importlib.util, sys
            spec = importlib.util.spec_from_file_location("covet._native", {so!r})
            module = importlib.util.module_from_spec(spec)
            sys.modules["covet._native"] = module
            spec.loader.exec_module(module)
        """))
        entries.append(str(preload))
    return os.pathsep.join([*entries, os.environ.get("PYTHONPATH", "")])


def _start_uvicorn(tmp_path: Path, source: str, target: str, python: str = sys.executable,
                   **env: str) -> tuple[subprocess.Popen[bytes], int]:
    (tmp_path / "uvapp.py").write_text(source)
    port = free_port()
    environ = {**os.environ, **env, "PYTHONPATH": _covet_path(tmp_path)}
    proc = subprocess.Popen([python, "-m", "uvicorn", target, "--app-dir", str(tmp_path), "--port", str(port),
                             "--lifespan", "on", "--log-level", "warning"],
                            env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, port


def _wait_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.communicate(timeout=5)[0].decode(errors="replace") if proc.poll() is not None else ""
                proc.kill()
                pytest.fail(f"uvicorn did not start: {out}")
            time.sleep(0.1)


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Any:
    pytest.importorskip("uvicorn")
    log = tmp_path / "lifespan.log"
    proc, port = _start_uvicorn(tmp_path, UVICORN_APP, "uvapp:outer", LIFESPAN_LOG=str(log))
    _wait_listening(proc, port)
    yield port, log, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _request(port: int, method: str, target: str, body: Any = b"",
             headers: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, body=body or None, headers=headers or {}, encode_chunked=isinstance(body, list))
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_under_uvicorn(uvicorn_server: Any) -> None:
    port, log, proc = uvicorn_server
    assert log.read_text() == "startup\n"
    status, headers, body = _request(port, "GET", "/items/7?q=x")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body) == {"item_id": 7, "q": "x", "greeting": "hello", "root_path": "",
                                "url": f"http://127.0.0.1:{port}/items/7?q=x"}
    # a body sent in chunks (more_body), and a background task run after the response
    status, headers, body = _request(port, "POST", "/echo", [b'{"a": ', b"[1, 2, ", b"3]}"],
                                     {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert (status, json.loads(body)) == (200, {"a": [1, 2, 3]})
    status, headers, body = _request(port, "GET", "/stream")
    assert (status, headers.get("transfer-encoding"), body) == (200, "chunked", b"part0;part1;part2;")
    # a large upload streamed to the handler (request.stream()) as it arrives
    status, _, body = _request(port, "POST", "/upload", [b"x" * 65536] * 40, {"Transfer-Encoding": "chunked"})
    assert (status, json.loads(body)) == (200, {"size": 65536 * 40})
    assert _request(port, "GET", "/boom")[::2] == (500, b"Internal Server Error")
    assert _request(port, "GET", "/nowhere")[::2] == (404, b'{"detail":"Not Found"}')
    assert _request(port, "DELETE", "/items/1")[0] == 405
    assert _request(port, "HEAD", "/items/1")[0] == 405  # FastAPI's: HEAD is not served on a GET route
    # mounted under another ASGI app: root_path extended, routes matched below it
    status, _, body = _request(port, "GET", "/covet/items/8")
    assert (status, json.loads(body)["root_path"], json.loads(body)["url"]) == (
        200, "/covet", f"http://127.0.0.1:{port}/covet/items/8")
    asyncio.run(_websockets(port))
    proc.terminate()
    assert proc.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful exit
    assert log.read_text() == "startup\nbackground\nshutdown\n"


async def _websockets(port: int) -> None:
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/lobby") as ws:
        await ws.send("hi")
        assert await ws.recv() == "lobby:hi"
        await ws.send("again")
        assert await ws.recv() == "lobby:again"
    async with websockets.connect(f"ws://127.0.0.1:{port}/covet/ws/mounted") as ws:
        await ws.send("x")
        assert await ws.recv() == "mounted:x"
    for path in ("/deny", "/no-such-socket"):
        with pytest.raises(websockets.exceptions.InvalidStatus) as denied:
            async with websockets.connect(f"ws://127.0.0.1:{port}{path}"):
                pass
        assert denied.value.response.status_code == 403


def test_lifespan_startup_failure_under_uvicorn(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    proc, _ = _start_uvicorn(tmp_path, FAILING_APP, "uvapp:app")
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode != 0
    assert "database unreachable" in out and "Application startup failed" in out


def test_mounted_under_fastapi(tmp_path: Path) -> None:
    """Under FastAPI's app.mount (Starlette's Mount), with FastAPI from the differential test's venv
    (serverproc.fastapi_reference_python: build/differential-venv, which tests/differential/venv.sh builds)."""
    python = str(fastapi_reference_python())
    proc, port = _start_uvicorn(tmp_path, UNDER_FASTAPI, "uvapp:app", python=python)
    try:
        _wait_listening(proc, port)
        status, _, body = _request(port, "GET", "/covet/items/5")
        assert (status, json.loads(body)) == (200, {"item_id": 5, "root_path": "/covet", "path": "/covet/items/5"})
        assert _request(port, "GET", "/covet/items/x")[0] == 422
        assert _request(port, "GET", "/covet/nowhere")[::2] == (404, b'{"detail":"Not Found"}')
        assert json.loads(_request(port, "GET", "/")[2]) == {"served_by": "fastapi"}
    finally:
        proc.kill()
        proc.wait()


def test_websocket_routes_beside_pure_asgi_middleware(native: Any, make_client: Any) -> None:
    """On the engine, WebSocket routes stay native (outside the ASGI middleware) and see the app."""
    if getattr(native, "__name__", "") == "fake_native":
        pytest.skip("WebSockets need the compiled engine")
    app = _app()
    app.add_middleware(AddHeader)
    app.state.prefix = "echo"

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{websocket.app.state.prefix}:{text}")
        await websocket.close()

    client = make_client(app)
    with client.websocket_connect("/ws") as session:
        session.send_text("hi")
        assert session.receive_text() == "echo:hi"
    assert client.get("/items/2").headers["x-asgi"] == "1"


def test_mounted_app_that_sends_nothing_is_a_500(make_client: Any) -> None:
    async def silent(scope: Scope, receive: Any, send: Any) -> None:
        return None

    app = _app()
    app.mount("/silent", silent)
    r = make_client(app, raise_server_exceptions=False).get("/silent/x")
    assert (r.status_code, r.text) == (500, "Internal Server Error")


FASTAPI_INSIDE = textwrap.dedent('''
    import sys
    from fastapi import FastAPI, Request as FastAPIRequest
    from covet import CovetPy

    legacy = FastAPI()

    @legacy.get("/hello/{number}")
    async def hello(number: int, request: FastAPIRequest):
        return {"number": number, "root_path": request.scope["root_path"], "url": str(request.url)}

    app = CovetPy()
    app.mount("/legacy", legacy)

    @app.get("/own")
    async def own():
        return {"own": True}

    app.run(port=int(sys.argv[1]), log_level="warning")
''')


def test_fastapi_app_mounted_on_the_engine(tmp_path: Path) -> None:
    """A FastAPI app (from the differential test's venv, as above) mounted in a CovetPy app served by the engine."""
    python = str(fastapi_reference_python())
    (tmp_path / "inside.py").write_text(FASTAPI_INSIDE)
    port = free_port()
    proc = subprocess.Popen([python, str(tmp_path / "inside.py"), str(port)],
                            env={**os.environ, "PYTHONPATH": _covet_path(tmp_path)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        _wait_listening(proc, port)
        status, _, body = _request(port, "GET", "/legacy/hello/4")
        assert (status, json.loads(body)) == (200, {"number": 4, "root_path": "/legacy",
                                                    "url": f"http://127.0.0.1:{port}/legacy/hello/4"})
        assert _request(port, "GET", "/legacy/hello/x")[0] == 422
        assert json.loads(_request(port, "GET", "/legacy/openapi.json")[2])["paths"].keys() == {"/hello/{number}"}
        assert json.loads(_request(port, "GET", "/own")[2]) == {"own": True}
    finally:
        proc.kill()
        proc.wait()
