"""Servers for the differential test: each sample app under FastAPI (uvicorn, from the pinned venv) and under
CovetPy (`python -m covet run`, from the interpreter running the tests), all started at once on free ports."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cases import APPS, CASES, REASON_CASES, Case

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APPS_DIR = HERE / "apps"
DEFAULT_FASTAPI_PYTHON = ROOT / "build" / "differential-venv" / "bin" / "python"
# DIFF_COVET_MODE=compat (run-compat.sh): the CovetPy side imports the apps with their FastAPI imports
# (DIFF_FRAMEWORK=fastapi) under the compatibility shim, `covet run --compat fastapi`; the default, native, imports
# them from covet.
COVET_MODE = os.environ.get("DIFF_COVET_MODE", "") or "native"
if COVET_MODE not in ("native", "compat"):
    raise RuntimeError(f"DIFF_COVET_MODE is {COVET_MODE!r}: expected 'native' (the default) or 'compat'")
COMPAT = COVET_MODE == "compat"


_ports_given: set[int] = set()


def _free_port() -> int:
    """A port free a moment ago and not handed to another server of this session: about fifty servers start
    before any has bound its port, and the kernel may offer a just-released port twice."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _ports_given:
            _ports_given.add(port)
            return port


class Server:
    def __init__(self, framework: str, app: str, command: Callable[[int], list[str]],
                 imports: str | None = None) -> None:  # imports: the app's DIFF_FRAMEWORK, when not `framework`
        self.framework, self.app, self._command = framework, app, command
        self.error: str | None = None  # why it is not serving, when it is not
        label = framework if imports is None else f"{framework}-{imports}"
        self.log = HERE.parent.parent / "build" / f"differential-{label}-{app}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # PYTHONHASHSEED fixed: FastAPI names a several-method route's operationId after list(route.methods)[0], a
        # set's first item, which depends on the hash seed ("GET" with seed 0, the declared first method covet uses
        # in routers_app); random seeds made routers/openapi pass or fail from run to run.
        self._env = {**os.environ, "DIFF_FRAMEWORK": imports or framework, "PYTHONDONTWRITEBYTECODE": "1",
                     "PYTHONHASHSEED": "0"}
        self._env.pop("PYTHONPATH", None)
        self._start()

    def _start(self) -> None:
        self.port = _free_port()
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(self._command(self.port), cwd=APPS_DIR, env=self._env, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, deadline: float) -> None:
        port_retries = 3  # another process (not one of ours) may take the port between the pick and the bind
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log_file.close()
                if port_retries and "Address already in use" in self.log.read_text():
                    port_retries -= 1
                    self._start()
                    continue
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        self.error = (f"{self.framework} server for {self.app} did not start (exit {self.proc.poll()}); "
                      f"its output ({self.log}):\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def _fastapi_python() -> Path:
    python = Path(os.environ.get("DIFF_FASTAPI_PYTHON", DEFAULT_FASTAPI_PYTHON))
    probe = subprocess.run([str(python), "-c", "import fastapi, uvicorn; print(fastapi.__version__)"],
                           capture_output=True, text=True) if python.exists() else None
    if probe is None or probe.returncode != 0:
        reason = (f"no FastAPI reference venv at {python}: run tests/differential/run.sh, which creates it from "
                  "tests/differential/requirements.txt (or point DIFF_FASTAPI_PYTHON at a python that has them)")
        if os.environ.get("DIFF_REQUIRE"):
            pytest.fail(reason)
        pytest.skip(reason)
    return python


def _server_options(app: str) -> list[str]:
    """The app module's optional ``SERVER_OPTIONS`` (a literal list of command-line options both servers take,
    such as ``["--root-path", "/api/v1"]``), read from its source: the app is not imported here."""
    tree = ast.parse((APPS_DIR / f"{app}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SERVER_OPTIONS"
                                                for t in node.targets):
            options = ast.literal_eval(node.value)
            assert isinstance(options, list) and all(isinstance(o, str) for o in options), options
            return options
    return []


def _apps_selected(session: pytest.Session) -> list[str]:
    """The apps the selected tests send cases to (all of them unless -k/-m/ids deselect some): only those start.
    A test using `servers` without a case (`c`) or reason (`status`) parameter needs them all."""
    by_id = {c.id: c for c in CASES}
    apps: set[str] = set()
    for item in session.items:
        if "servers" not in getattr(item, "fixturenames", ()):
            continue
        params = item.callspec.params if isinstance(item, pytest.Function) and hasattr(item, "callspec") else {}
        if isinstance(params.get("c"), Case):
            apps.add(params["c"].app)
        elif params.get("status") in REASON_CASES:
            apps.add(by_id[REASON_CASES[params["status"]]].app)
        else:
            return list(APPS)
    return [app for app in APPS if app in apps]


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Iterator[dict[tuple[str, str], Server]]:
    fastapi_python = _fastapi_python()
    started: dict[tuple[str, str], Server] = {}
    try:
        for app in _apps_selected(request.session):
            options = _server_options(app)
            started["fastapi", app] = Server("fastapi", app, lambda port, app=app, options=options: [
                str(fastapi_python), "-m", "uvicorn", f"{app}:app", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", *options])
            started["covet", app] = Server("covet", app, lambda port, app=app, options=options: [
                sys.executable, "-m", "covet", "run", f"{app}:app", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", *(["--compat", "fastapi"] if COMPAT else []), *options],
                imports="fastapi" if COMPAT else None)
        deadline = time.monotonic() + 60
        for server in started.values():
            server.wait_ready(deadline)
        yield started
    finally:
        for server in started.values():
            server.stop()
