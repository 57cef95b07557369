"""The design doc's examples (examples/python/*.py) as real processes, as a user would run them.

Each example is started both as ``python examples/python/X.py --port N`` and as
``python -m covet run X:app --app-dir examples/python --port N``, asked over real sockets, then stopped with
SIGTERM (exit code 0). The processes use this interpreter (`sys.executable`) and whatever `covet` it imports
(the installed package); without its compiled engine these tests skip, or fail under COVET_REQUIRE_NATIVE=1.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from serverproc import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
START_TIMEOUT = 30.0  # seconds for a process to answer its first request
STOP_TIMEOUT = 20.0   # seconds for a graceful shutdown after SIGTERM


@pytest.fixture(scope="module", autouse=True)
def native_engine_in_subprocesses() -> None:
    if os.environ.get("COVET_NATIVE", "").strip() == "fake":
        pytest.skip("COVET_NATIVE=fake: these tests need the compiled engine")
    probe = subprocess.run([sys.executable, "-c", "import covet._native, covet.cli, pydantic"], cwd=EXAMPLES,
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        error = (probe.stderr.strip().splitlines() or ["no error output"])[-1]
        reason = f"{sys.executable} cannot import covet's compiled engine: {error}"
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail(reason)
        pytest.skip(reason)


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", (self.headers, self.body)
        return json.loads(self.body)


class ExampleProcess:
    """One example served by a child process (in its own session, so that `covet run`'s workers go too)."""

    def __init__(self, command: list[str], log_dir: Path) -> None:
        self.command = command
        self.log_path = log_dir / "server.log"
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        for _ in range(3):  # another process may take the free port before the child binds it
            self.port = free_port()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen([*self.command, "--port", str(self.port)], cwd=EXAMPLES,
                                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_until_answering():
                return
            if "Address already in use" not in self.log():
                break
        raise AssertionError(f"{self.command} did not start serving; exit code {self.proc and self.proc.poll()}, "
                             f"output:\n{self.log()}")

    def _wait_until_answering(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.request("GET", "/")
                return True
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                time.sleep(0.02)  # poll again: the child is still starting
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, json_body: Any = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {}
            body: Optional[bytes] = None
            if json_body is not None:
                body = json.dumps(json_body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def terminate(self) -> int:
        """SIGTERM, then the exit code of a graceful shutdown."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit {STOP_TIMEOUT}s after SIGTERM; output:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the child's own session: it and its workers
        except ProcessLookupError:
            pass
        self.proc.wait()


LAUNCHERS: dict[str, Callable[[str], list[str]]] = {
    "script": lambda name: [sys.executable, str(EXAMPLES / f"{name}.py"), "--host", "127.0.0.1"],
    "covet-run": lambda name: [sys.executable, "-m", "covet", "run", f"{name}:app", "--app-dir", str(EXAMPLES),
                               "--host", "127.0.0.1"],
}


@pytest.fixture(params=sorted(LAUNCHERS))
def serve_example(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], ExampleProcess]]:
    """``serve_example("python_first")`` → a started process; it must be stopped with `stop`."""
    started: list[ExampleProcess] = []

    def start(name: str) -> ExampleProcess:
        process = ExampleProcess(LAUNCHERS[request.param](name), tmp_path)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            process.kill()


def stop(process: ExampleProcess) -> None:
    assert process.terminate() == 0, process.log()
    log = process.log()
    assert "Traceback" not in log, log
    assert "shutting down" in log, log


def test_python_first_process(serve_example: Callable[[str], ExampleProcess]) -> None:
    p = serve_example("python_first")
    r = p.get("/users/1")
    assert (r.status, r.json()) == (200, {"id": 1, "name": "Ada", "email": "ada@example.com", "active": True,
                                          "role": "admin"})
    assert (p.get("/users/4").status, p.get("/users/4").json()) == (404, {"detail": "User not found"})
    r = p.request("POST", "/users", {"name": "Dee", "email": "dee@example.com"})
    created = {"id": 4, "name": "Dee", "email": "dee@example.com", "active": True, "role": "member"}
    assert (r.status, r.json()) == (201, created)
    assert p.get("/users/4").json() == created
    r = p.request("POST", "/users", {"email": "eve@example.com"})
    assert r.status == 422
    assert r.json()["detail"] == [{"type": "missing", "loc": ["body", "name"], "msg": "Field required",
                                   "input": {"email": "eve@example.com"}}]
    r = p.get("/users/ada")
    assert r.status == 422 and r.json()["detail"][0]["loc"] == ["path", "user_id"]
    stop(p)


def test_type_safety_process(serve_example: Callable[[str], ExampleProcess]) -> None:
    p = serve_example("type_safety")
    r = p.get("/users")
    assert r.status == 200
    assert r.json() == [
        {"id": 1, "name": "Ada", "email": "ada@example.com", "active": True},
        {"id": 2, "name": "Bob", "email": "bob@example.com", "active": False},
        {"id": 3, "name": "Cy", "email": "cy@example.com", "active": True},
    ]
    assert [u["id"] for u in p.get("/users?limit=1&offset=1").json()] == [2]
    assert [u["id"] for u in p.get("/users?active=true").json()] == [1, 3]
    assert [u["id"] for u in p.get("/users?active=false&offset=1").json()] == []
    r = p.get("/users?limit=many&active=maybe")
    assert r.status == 422
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [("int_parsing", ["query", "limit"]),
                                                                   ("bool_parsing", ["query", "active"])]
    stop(p)


def test_fastapi_migration_process(serve_example: Callable[[str], ExampleProcess]) -> None:
    p = serve_example("fastapi_migration")
    assert (p.get("/items/5").status, p.get("/items/5").json()) == (200, {"item_id": 5, "q": None})
    assert p.get("/items/5?q=search").json() == {"item_id": 5, "q": "search"}
    r = p.get("/items/five")
    assert r.status == 422
    assert r.json() == {"detail": [{
        "type": "int_parsing",
        "loc": ["path", "item_id"],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": "five",
    }]}
    assert p.get("/nothing").status == 404
    stop(p)
