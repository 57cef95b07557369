"""``app.run()`` in a real process: serving, SIGTERM/SIGINT, graceful shutdown, exit code 0."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from serverproc import ServerProcess

APP = textwrap.dedent(
    """
    import asyncio, sys
    from covet import CovetPy

    app = CovetPy()

    @app.on_event("startup")
    def up():
        print("startup", flush=True)

    @app.on_event("shutdown")
    async def down():
        print("shutdown", flush=True)

    @app.get("/hello")
    async def hello():
        return {"hello": "world"}

    @app.get("/slow")
    async def slow():
        print("slow started", flush=True)
        await asyncio.sleep(0.8)
        return "slow done"

    if __name__ == "__main__" and sys.argv[1:] == ["cli-worker"]:  # how `covet run` starts each worker
        from covet.cli import main
        sys.argv[0] = __file__
        rc = main(["_worker", "app:app", "--port", "0", "--app-dir", __file__.rsplit("/", 1)[0]])
        print("run returned", flush=True)
        sys.exit(rc)
    elif __name__ == "__main__":
        app.run(host="127.0.0.1", port=0, log_level="info")
        print("run returned", flush=True)
    """
)


class AppProcess(ServerProcess):
    def __init__(self, script: Path, *args: str) -> None:
        super().__init__([sys.executable, str(script), *args], timeout=20)

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def wait_for_output(self, text: str, timeout: float = 10) -> None:
        self.wait_for(re.escape(text), timeout=timeout)


@pytest.fixture
def app_process(engine_prelude, tmp_path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    script = tmp_path / "app.py"
    script.write_text(engine_prelude + APP)
    procs: list[AppProcess] = []

    def start(*args: str) -> AppProcess:
        p = AppProcess(script, *args)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully_with_exit_code_0(app_process, sig: int) -> None:  # type: ignore[no-untyped-def]
    p = app_process()
    assert p.get("/hello") == (200, b'{"hello":"world"}')
    result: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: result.update(r=p.get("/slow")))
    slow.start()
    p.wait_for_output("slow started")
    os.kill(p.proc.pid, sig)  # while /slow is in flight
    slow.join(10)
    assert result["r"] == (200, b'"slow done"')  # the in-flight request finished
    assert p.wait_exit(15) == 0
    out = "".join(p.stdout)
    assert out.index("startup") < out.index("shutdown") < out.index("run returned")
    assert "Traceback" not in "".join(p.stderr)


def test_the_command_line_worker_serves_the_app(app_process) -> None:  # type: ignore[no-untyped-def]
    p = app_process("cli-worker")  # covet.cli's worker entry point -> covet.serve.serve_worker
    assert p.get("/hello") == (200, b'{"hello":"world"}')
    os.kill(p.proc.pid, signal.SIGTERM)
    assert p.wait_exit(15) == 0
    assert "shutdown" in "".join(p.stdout)


LEAN_APP = textwrap.dedent(
    """
    from covet import CovetPy, PlainTextResponse
    from covet.testing import TestClient

    app = CovetPy()

    @app.get("/plaintext")
    async def plaintext():
        return PlainTextResponse("Hello, World!")

    @app.get("/users/{user_id}")
    async def user(user_id: int, limit: int = 10, name: str = ""):
        return {"id": user_id, "limit": limit, "name": name}

    with TestClient(app) as client:
        assert client.get("/plaintext").text == "Hello, World!"
        assert client.get("/users/5?limit=3&name=x").json() == {"id": 5, "limit": 3, "name": "x"}
        # (pydantic-core alone is the JSON encoder when orjson is not installed)
        print("pydantic loaded while serving:", "pydantic" in sys.modules)
        r = client.get("/users/5?limit=many")
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "int_parsing", r.text
        print("pydantic loaded for the 422:", "pydantic" in sys.modules)
    """
)


def test_an_app_without_models_does_not_import_pydantic(engine_prelude, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Start-up time and memory: pydantic is imported only when something needs it."""
    script = tmp_path / "lean.py"
    script.write_text(engine_prelude + LEAN_APP)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pydantic loaded while serving: False" in out.stdout
    assert "pydantic loaded for the 422: True" in out.stdout


def _root_app(engine_prelude: str, tmp_path: Path, main: str) -> Path:
    """tmp_path/app.py: an app answering GET / with "hi", whose ``__main__`` runs the one line `main`."""
    script = tmp_path / "app.py"
    script.write_text(engine_prelude + textwrap.dedent("""
        import sys
        from covet import CovetPy
        app = CovetPy()
        @app.get("/")
        async def root():
            return "hi"
        if __name__ == "__main__":
            {main}
        """).format(main=main))
    return script


def _cli_worker(port: int, app_dir: Path, *options: str) -> str:
    """The line that runs the app as `covet run`'s worker process on 127.0.0.1:port."""
    args = ["_worker", "app:app", "--host", "127.0.0.1", "--port", str(port), *options, "--app-dir", str(app_dir)]
    return f"from covet.cli import main; sys.exit(main({args!r}))"


@pytest.mark.parametrize("entry", ["app.run", "cli-worker"])
def test_a_taken_port_is_a_one_line_error(engine_prelude, native, tmp_path, entry: str) -> None:  # type: ignore[no-untyped-def]
    if native.__name__ != "covet._native":
        pytest.skip("the stand-in engine does not bind sockets")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = (f'app.run(host="127.0.0.1", port={port})' if entry == "app.run" else
               _cli_worker(port, tmp_path))
        script = _root_app(engine_prelude, tmp_path, run)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_max_connections_holds_extra_connections_until_one_closes(engine_prelude, native, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if native.__name__ != "covet._native":
        pytest.skip("the stand-in engine does not bind sockets")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = _root_app(engine_prelude, tmp_path, _cli_worker(port, tmp_path, "--max-connections", "1"))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                first = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the worker did not start"
                time.sleep(0.02)
        first.sendall(request)
        assert first.recv(4096).startswith(b"HTTP/1.1 200")
        second = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        second.sendall(request)
        with pytest.raises(socket.timeout):  # held: the worker is at its one connection
            second.recv(4096)
        first.close()
        second.settimeout(5)
        assert second.recv(4096).startswith(b"HTTP/1.1 200")  # served once the first one closed
        second.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_the_supervisor_passes_max_connections_to_its_workers() -> None:
    from covet.server.supervisor import WorkerOptions, worker_command

    command = worker_command(WorkerOptions(app="main:app", max_connections=123))
    assert command[command.index("--max-connections") + 1] == "123"
