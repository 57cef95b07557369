"""root_path, as uvicorn's ``--root-path`` and Starlette's: an app behind a proxy that strips a path prefix sees it
in ``request.root_path``, ``scope``, ``url``, ``base_url`` and ``url_for``; ``CovetPy(root_path=...)`` also routes
paths that still carry the prefix. Real servers (the compiled engine), asked over real sockets."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine

from covet import CovetPy, Request, WebSocket
from covet._ws_client import WebSocketTestSession
from covet.server.serve import ThreadedWorker
from covet.server.supervisor import WorkerOptions, worker_command


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


def describe(request: Request) -> dict[str, Any]:
    return {"root_path": request.root_path, "scope_root_path": request.scope["root_path"],
            "scope_path": request.scope["path"], "path": request.path, "url": str(request.url),
            "base_url": str(request.base_url)}


def make_app(**options: Any) -> CovetPy:
    app = CovetPy(**options)

    @app.get("/")
    async def root(request: Request) -> dict[str, Any]:
        return describe(request)

    @app.get("/items/{item_id}", name="item")
    async def item(item_id: int, request: Request) -> dict[str, Any]:
        return {"item_id": item_id, **describe(request), "url_for": str(request.url_for("item", item_id=5))}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"root_path": websocket.root_path, "path": websocket.url.path,
                                   "url": str(websocket.url)})
        await websocket.close()

    return app


@pytest.fixture
def served() -> Iterator[Any]:
    workers: list[ThreadedWorker] = []

    def start(app: CovetPy, **server_options: Any) -> int:
        worker = ThreadedWorker(app, **server_options).start()
        workers.append(worker)
        return worker.port

    yield start
    for worker in workers:
        worker.stop()


def get(port: int, target: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, headers={"Host": "proxied.example"})
        response = conn.getresponse()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        parsed = json.loads(body) if headers.get("content-type", "").startswith("application/json") else body
        return response.status, headers, parsed
    finally:
        conn.close()


# ---- the server's root path (covet run --root-path, uvicorn's) --------------------------------------------------

def test_server_root_path_is_in_the_request_urls(served: Any) -> None:
    port = served(make_app(), root_path="/api/v1")
    status, _, body = get(port, "/items/3?q=1")
    assert status == 200
    assert body == {"item_id": 3, "root_path": "/api/v1", "scope_root_path": "/api/v1",
                    "scope_path": "/api/v1/items/3", "path": "/api/v1/items/3",
                    "url": "http://proxied.example/api/v1/items/3?q=1", "base_url": "http://proxied.example/api/v1/",
                    "url_for": "http://proxied.example/api/v1/items/5"}
    # routes match the path as received: the proxy stripped the prefix, so a path with it is another path
    assert get(port, "/api/v1/items/3")[0] == 404


def test_server_root_path_redirects_keep_the_prefix(served: Any) -> None:
    port = served(make_app(), root_path="/api/v1")
    status, headers, _ = get(port, "/items/3/")
    assert status == 307 and headers["location"] == "http://proxied.example/api/v1/items/3"


def test_docs_page_loads_the_schema_under_the_root_path(served: Any) -> None:
    port = served(make_app(), root_path="/api/v1")
    status, _, body = get(port, "/docs")
    assert status == 200
    assert b"'/api/v1/openapi.json'" in body or b'"/api/v1/openapi.json"' in body
    assert b"/api/v1/docs/oauth2-redirect" in body


def test_websocket_sees_the_root_path(served: Any) -> None:
    port = served(make_app(), root_path="/api/v1")
    with WebSocketTestSession(port, "/ws") as session:
        message = session.receive_json()
    assert message["root_path"] == "/api/v1" and message["path"] == "/api/v1/ws"
    assert message["url"].endswith("/api/v1/ws")


def test_without_a_root_path_nothing_changes(served: Any) -> None:
    port = served(make_app())
    status, _, body = get(port, "/items/3")
    assert status == 200 and body["root_path"] == "" and body["path"] == "/items/3"
    assert body["base_url"] == "http://proxied.example/" and body["url_for"] == "http://proxied.example/items/5"


@pytest.mark.parametrize("bad", ["api", "/api/", "/api?x=1"])
def test_a_bad_root_path_is_refused_with_the_fix(bad: str) -> None:
    with pytest.raises(ValueError, match=r"must be a path prefix starting with '/'.*use '/api'"):
        ThreadedWorker(make_app(), root_path=bad)
    with pytest.raises(ValueError, match=r"CovetPy\(root_path=...\)"):
        CovetPy(root_path=bad)


# ---- the app's root path (CovetPy(root_path=...), FastAPI's deprecated keyword) -----------------------------------

def test_app_root_path_routes_paths_with_and_without_the_prefix(served: Any) -> None:
    with pytest.warns(DeprecationWarning, match="--root-path"):
        app = make_app(root_path="/api/v1", root_path_in_servers=False)
    assert app.root_path == "/api/v1" and app.root_path_in_servers is False
    port = served(app)
    status, _, body = get(port, "/api/v1/items/3")
    assert status == 200 and body["path"] == "/api/v1/items/3" and body["root_path"] == "/api/v1"
    assert body["url_for"] == "http://proxied.example/api/v1/items/5"
    status, _, body = get(port, "/items/3")  # Starlette: a path without the prefix routes as it is
    assert status == 200 and body["url"] == "http://proxied.example/items/3"
    assert body["base_url"] == "http://proxied.example/api/v1/"
    assert get(port, "/api/v1/")[0] == 200
    status, headers, _ = get(port, "/api/v1")
    assert status == 307 and headers["location"] == "http://proxied.example/api/v1/"
    status, headers, _ = get(port, "/api/v1/items/3", method="DELETE")
    assert status == 405 and headers["allow"] == "GET"
    assert get(port, "/api/v1/nowhere")[0] == 404


def test_app_root_path_wins_over_the_servers(served: Any) -> None:
    with pytest.warns(DeprecationWarning):
        app = make_app(root_path="/app")
    port = served(app, root_path="/proxy")
    status, _, body = get(port, "/items/3")
    assert status == 200 and body["root_path"] == "/app" and body["path"] == "/proxy/items/3"


# ---- the command line -----------------------------------------------------------------------------------------

APP = textwrap.dedent("""
    from covet import CovetPy, Request

    app = CovetPy()

    @app.get("/where")
    async def where(request: Request):
        return {"root_path": request.root_path, "url": str(request.url)}
    """)


def run_covet(tmp_path: Path, *args: str, env: Optional[dict[str, str]] = None) -> ServerProcess:
    (tmp_path / "app.py").write_text(APP)
    return ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--host", "127.0.0.1", *args],
                         cwd=tmp_path, env=env)


@pytest.mark.parametrize("how", ["flag", "env", "workers"])
def test_covet_run_root_path(tmp_path: Path, how: str) -> None:
    port = free_port()
    args = ["--port", str(port)]
    env = None
    if how == "env":
        env = {"COVET_ROOT_PATH": "/api/v1"}
    else:
        args += ["--root-path", "/api/v1"]
    if how == "workers":
        args += ["--workers", "2"]
    with run_covet(tmp_path, *args, env=env) as server:
        for _ in range(4 if how == "workers" else 1):  # with workers: whichever worker answers has it
            status, _, body = get(port, "/where")
            assert status == 200 and body["root_path"] == "/api/v1", body
            assert body["url"] == "http://proxied.example/api/v1/where"
        server.stop()


def test_covet_run_refuses_a_bad_root_path(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    result = subprocess.run([sys.executable, "-m", "covet", "run", "app:app", "--root-path", "api/v1/"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("covet: --root-path must be a path prefix") and "'/api/v1'" in result.stderr


def test_worker_command_passes_the_root_path() -> None:
    command = worker_command(WorkerOptions(app="app:app", root_path="/api/v1"))
    assert command[command.index("--root-path") + 1] == "/api/v1"
    assert "--root-path" not in worker_command(WorkerOptions(app="app:app"))
