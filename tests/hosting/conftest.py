"""Real apps that no one here wrote (Starlette, FastAPI, Litestar, Django, Flask, Channels, connect-python),
pinned in requirements.txt and installed by run.sh into build/hosting-venv, each served by a reference server
(uvicorn for ASGI, gunicorn for WSGI: proof that the test itself is right) and by `covet run` (the point), in a
subprocess on a free port, and spoken to through real sockets (httpx, websockets, grpcio).

The tests run with the hosting venv's python: `sys.executable -m covet run` is the covet under test (run.sh links
the tree's package into that venv), `sys.executable -m uvicorn` / `-m gunicorn` the references."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
ROOT = HERE.parents[1]
LOGS = ROOT / "build" / "hosting-logs"
sys.path.insert(0, str(APPS))  # the tests import the apps' generated protobuf modules (greet/)
sys.path.append(str(ROOT / "tests" / "python"))  # shared helpers (tracecollector); appended: this conftest first

from serverproc import self_signed_cert  # noqa: E402

ASGI_SERVERS = ["uvicorn", "covet"]
WSGI_SERVERS = ["gunicorn", "covet"]
H2C_SERVERS = ["hypercorn", "covet"]  # gRPC needs HTTP/2 (prior knowledge, h2c) and trailers: not uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(server: str, target: str, port: int, certs: Path | None) -> list[str]:
    host = ["127.0.0.1", str(port)]
    cert, key = (str(certs / "cert.pem"), str(certs / "key.pem")) if certs else ("", "")
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", target, "--host", host[0], "--port", host[1],
                "--log-level", "warning", *(["--ssl-certfile", cert, "--ssl-keyfile", key] if certs else [])]
    if server == "gunicorn":  # threads: the gthread worker, as a Flask/Django deployment runs it
        return [sys.executable, "-m", "gunicorn", target, "--bind", ":".join(host), "--workers", "1",
                "--threads", "4", "--log-level", "warning", *(["--certfile", cert, "--keyfile", key] if certs else [])]
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", target, "--bind", ":".join(host), "--log-level", "warning",
                *(["--certfile", cert, "--keyfile", key] if certs else [])]
    if server == "granian":  # one worker, as the bench runs it; no TLS here
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", host[0], "--port", host[1],
                "--workers", "1", "--log-level", "warning", target]
    if server == "covet":
        return [sys.executable, "-m", "covet", "run", target, "--host", host[0], "--port", host[1],
                "--log-level", "warning", *(["--ssl-certfile", cert, "--ssl-keyfile", key] if certs else [])]
    raise AssertionError(server)


_covet_checked: list[str] = []


def _require_covet() -> None:
    """The covet side needs covet importable in this venv with its compiled engine (run.sh links it in)."""
    if not _covet_checked:
        probe = subprocess.run([sys.executable, "-c", "import covet._native, covet; print(covet.__file__)"],
                               capture_output=True, text=True)
        _covet_checked.append("" if probe.returncode == 0 else probe.stderr.strip()[-500:])
    if _covet_checked[0]:
        reason = (f"{sys.executable} cannot import covet with its engine ({_covet_checked[0]}): run "
                  "tests/hosting/run.sh, which links the tree's covet package into build/hosting-venv")
        if os.environ.get("HOSTING_REQUIRE"):
            pytest.fail(reason)
        pytest.skip(reason)


def _answers_http(port: int, tls: bool) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # a loaded machine: a slow answer
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            s = context.wrap_socket(raw) if tls else raw
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(5) == b"HTTP/"
    except OSError:
        return False


class Server:
    """`server` (uvicorn | gunicorn | covet) serving `target` (module:attribute in tests/hosting/apps)."""

    def __init__(self, server: str, target: str, env: dict[str, str] | None = None,
                 certs: Path | None = None, args: tuple[str, ...] = ()) -> None:
        self.name, self.target, self.port, self.tls = server, target, free_port(), certs is not None
        self.url = f"https://localhost:{self.port}" if certs else f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = LOGS / f"{target.replace(':', '.')}-{server}.log"
        self._log_file = self.log.open("w")
        full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
        full_env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen([*_command(server, target, self.port, certs), *args], cwd=APPS, env=full_env,
                                     stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(time.monotonic() + 30)

    def _wait_ready(self, deadline: float) -> None:
        """Ready once an HTTP request gets any HTTP response (a listening socket is not enough: covet's supervisor
        listens before its worker serves); a traceback or a worker exit in the log fails at once."""
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _answers_http(self.port, self.tls):
                return
            log = self.output()
            if "Traceback (most recent call last)" in log or "exited with code" in log:
                break
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"{self.name} serving {self.target} did not start (exit {self.proc.poll()}); its output "
                    f"({self.log}):\n{self.output()}")

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log_file.close()


@contextlib.contextmanager
def serve(server: str, target: str, env: dict[str, str] | None = None,
          certs: Path | None = None, args: tuple[str, ...] = ()) -> Iterator[Server]:
    """`certs`: a directory with cert.pem and key.pem: serve HTTPS (the url is https://localhost:PORT); `args`:
    more command-line arguments for the server (after the defaults: a repeated option wins)."""
    if server == "covet":
        _require_covet()
    running = Server(server, target, env, certs, args)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def django_db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated sqlite database with a superuser (admin / hosting-pass-123), for both Django servings."""
    env = {**os.environ, "HOSTING_DJANGO_DB": str(tmp_path_factory.mktemp("django") / "db.sqlite3"),
           "DJANGO_SUPERUSER_PASSWORD": "hosting-pass-123", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    manage = [sys.executable, str(APPS / "manage.py")]
    for step in (["migrate", "--noinput", "-v", "0"],
                 ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"]):
        done = subprocess.run(manage + step, cwd=APPS, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"manage.py {step[0]} failed:\n{done.stdout}{done.stderr}"
    return {"HOSTING_DJANGO_DB": env["HOSTING_DJANGO_DB"]}


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for localhost (cert.pem, key.pem)."""
    d = tmp_path_factory.mktemp("certs")
    self_signed_cert(d, san="DNS:localhost")
    return d
