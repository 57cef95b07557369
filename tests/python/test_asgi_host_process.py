"""``covet run module:app`` with ASGI 3 applications written here (no framework), in real processes: detection, the
lifespan (a failed startup stops ``covet run`` with the app's message and a non-zero exit; an app without lifespan
support is served anyway), the same options as CovetPy apps (workers, root path), and the refusal of what cannot be
hosted (an ASGI 2 class) with a message naming the fix."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from serverproc import ServerProcess, require_compiled_engine

APP = textwrap.dedent('''
    import json, os

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            message = await receive()
            if os.environ.get("FAIL_STARTUP"):
                await send({"type": "lifespan.startup.failed", "message": "database unreachable: check DB_URL"})
                return
            scope["state"]["pid"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        body = json.dumps({"path": scope["path"], "root_path": scope["root_path"], "state": scope["state"],
                           "pid": os.getpid()}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def no_lifespan(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    class Asgi2:
        def __init__(self, scope):
            self.scope = scope

        async def __call__(self, receive, send):
            pass
''')


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_compiled_engine()
    path = tmp_path_factory.mktemp("asgi_apps")
    (path / "bare.py").write_text(APP)
    return path


def run(app_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "covet", "run", *args, "--app-dir", str(app_dir), "--port", "0"]


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_covet_run_serves_a_bare_asgi_app_with_its_lifespan_state_and_root_path(app_dir: Path) -> None:
    with ServerProcess(run(app_dir, "bare:app", "--workers", "2", "--root-path", "/api")) as server:
        server.wait_for(r"serving on", count=2)
        assert "asgi3 app hosted" in server.output()
        for _ in range(6):
            status, body = get(server.port, "/items")  # the proxy in front stripped /api
            assert status == 200
            seen = json.loads(body)
            assert seen["path"] == "/api/items" and seen["root_path"] == "/api"
            assert seen["state"] == {"pid": seen["pid"]}  # each worker's own lifespan state
        server.stop()


def test_an_app_without_lifespan_support_is_served_anyway(app_dir: Path) -> None:
    with ServerProcess(run(app_dir, "bare:no_lifespan")) as server:
        assert get(server.port, "/")[1] == b"served"
        assert "lifespan' protocol appears unsupported" in server.output()
        server.stop()


def test_a_failed_startup_stops_covet_run_with_the_apps_message(app_dir: Path) -> None:
    result = subprocess.run(run(app_dir, "bare:app"), env={**__import__("os").environ, "FAIL_STARTUP": "1"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "database unreachable: check DB_URL" in result.stderr
    assert "startup failed" in result.stderr


def test_an_asgi2_class_is_refused_with_the_fix(app_dir: Path) -> None:
    result = subprocess.run(run(app_dir, "bare:Asgi2"), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ASGI 2" in result.stderr and "guarantee_single_callable" in result.stderr
    assert "Traceback" not in result.stderr
