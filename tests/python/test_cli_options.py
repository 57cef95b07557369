"""`covet run` options reach the engine: limits and timeouts by flag and by COVET_* variable (the flag wins),
uvicorn's flags accepted with their meaning or refused with one line (exit code 2). Real processes started as
a user would (``python -m covet run app:app ...``), asked over real sockets."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from covet.server.cli import parse_env_file
from covet.server.options import parse_duration_ms, parse_size
from serverproc import free_port

APP = textwrap.dedent("""
    import asyncio, os, time
    from covet import CovetPy, Request

    app = CovetPy()

    @app.get("/")
    async def root():
        return {"pid": os.getpid(), "greeting": os.environ.get("GREETING", "")}

    @app.post("/upload")
    async def upload(request: Request):
        return {"size": len(await request.body())}

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(0.6)
        return "slow"

    @app.get("/block")
    async def block():
        time.sleep(2.5)  # blocks the event loop, as a blocking driver's call in an async handler does
        return "unblocked"

    def make_app():
        return app
    """)

UPLOAD = b"x" * 1_500_000  # over the 1 MiB default, under 2M


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    if os.environ.get("COVET_NATIVE", "").strip() == "fake":
        pytest.skip("COVET_NATIVE=fake: these tests need the compiled engine")
    probe = subprocess.run([sys.executable, "-c", "import covet._native, covet.cli"], capture_output=True, text=True,
                           timeout=60)
    if probe.returncode != 0:
        reason = f"{sys.executable} cannot import covet's compiled engine: {probe.stderr.strip()[-300:]}"
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail(reason)
        pytest.skip(reason)


class Server:
    """``python -m covet run app:app ARGS`` in its own session, on a free port, once it answers."""

    def __init__(self, directory: Path, *args: str, app: str = "app:app",
                 env: Optional[dict[str, str]] = None) -> None:
        self.port = free_port()
        self.log_path = directory / f"server-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "covet", "run", app, "--port", str(self.port), *args],
                cwd=directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 30
        while True:
            try:
                self.request("GET", "/")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"the server did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: Optional[bytes] = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(20) == 0, self.log()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "app.py").write_text(APP)
    started: list[Server] = []

    def start(*args: str, app: str = "app:app", env: Optional[dict[str, str]] = None) -> Server:
        server = Server(tmp_path, *args, app=app, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def run_cli(tmp_path: Path, *args: str, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP)
    return subprocess.run([sys.executable, "-m", "covet", "run", "app:app", "--port", str(free_port()), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})})


# ---- the value syntax -----------------------------------------------------------------------------------

def test_sizes_and_durations() -> None:
    assert [parse_size(s) for s in ("512", "10K", "2M", "2MiB", "1g", "3 KB")] == \
        [512, 10240, 2 << 20, 2 << 20, 1 << 30, 3072]
    assert [parse_duration_ms(s) for s in ("1", "0.5", "500ms", "30s", "2m")] == [1000, 500, 500, 30000, 120000]
    for bad in ("", "1.5M", "-1", "ten"):
        with pytest.raises(ValueError):
            parse_size(bad)
    with pytest.raises(ValueError):
        parse_duration_ms("5h")


def test_env_file_syntax() -> None:
    text = textwrap.dedent("""\
        # comment
        export A=1
        B = two words  # trailing comment
        C='literal ${A}'
        D="line\\nbreak ${A} ${MISSING:-fallback}"
        E=${B}
        """)
    assert parse_env_file(text, environ={}) == {"A": "1", "B": "two words", "C": "literal ${A}",
                                                "D": "line\nbreak 1 fallback", "E": "two words"}
    with pytest.raises(ValueError, match="line 1"):
        parse_env_file("not a pair\n", environ={})


# ---- limits reach the engine ----------------------------------------------------------------------------

def test_limit_max_body_by_flag_and_by_environment(serve: Any) -> None:
    default = serve()
    assert default.request("POST", "/upload", UPLOAD)[0] == 413
    raised = serve("--limit-max-body", "2M")
    assert raised.request("POST", "/upload", UPLOAD) == (200, b'{"size":1500000}')
    from_env = serve(env={"COVET_LIMIT_MAX_BODY": "2M"})
    assert from_env.request("POST", "/upload", UPLOAD)[0] == 200
    flag_wins = serve("--limit-max-body", "1M", env={"COVET_LIMIT_MAX_BODY": "2M"})
    assert flag_wins.request("POST", "/upload", UPLOAD)[0] == 413
    for server in (default, raised, from_env, flag_wins):
        server.stop()


def _idle_close_after(port: int) -> float:
    """Seconds from a served keep-alive request until the server closes the idle connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        return _seconds_until_closed(s)


def _seconds_until_closed(s: socket.socket) -> float:
    start = time.monotonic()
    assert s.recv(65536) == b""  # closed by the server
    return time.monotonic() - start


def test_timeout_keep_alive_closes_idle_connections(serve: Any) -> None:
    server = serve("--timeout-keep-alive", "1")
    assert 0.7 < _idle_close_after(server.port) < 3.0
    server.stop()
    server = serve(env={"COVET_TIMEOUT_KEEP_ALIVE": "500ms"})
    assert 0.3 < _idle_close_after(server.port) < 2.0
    server.stop()


def test_a_request_that_came_while_a_handler_blocked_the_loop_is_answered(serve: Any) -> None:
    """An async handler that blocks the event loop also stops the engine, which runs on that loop: a request that
    came meanwhile, on a connection idle for longer than --timeout-keep-alive, is read and answered, not closed as
    idle by the engine's first timer tick after the block."""
    server = serve("--timeout-keep-alive", "1")  # (the margin between the first answer and the block)
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as waiting:
        waiting.sendall(request)
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200")  # idle from here
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as blocker:
            blocker.sendall(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(1.5)  # the handler blocks the loop for 2.5 s
            waiting.sendall(request)
            answer = waiting.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), f"closed as idle instead of answered: {answer!r}"
            assert blocker.recv(65536).startswith(b"HTTP/1.1 200")
        # Left idle now, it is closed on time.
        assert 0.7 < _seconds_until_closed(waiting) < 3.0
    server.stop()


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--limit-max-body", "12X"], {}, "--limit-max-body: expected a size in bytes"),
    (["--timeout-keep-alive", "soon"], {}, "--timeout-keep-alive: expected seconds"),
    ([], {"COVET_TIMEOUT_HEADER": "soon"}, "COVET_TIMEOUT_HEADER (environment): expected seconds"),
    (["--max-headers", "0"], {}, "--max-headers must be at least 1"),
    ([], {"COVET_WORKERS": "many"}, "COVET_WORKERS (environment): expected 'auto' or a positive number"),
    (["--limit-concurrency", "0"], {}, "--limit-concurrency must be at least 1"),
])
def test_bad_values_are_one_line_naming_the_flag(tmp_path: Path, args: list[str], env: dict[str, str],
                                                 message: str) -> None:
    result = run_cli(tmp_path, *args, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("covet: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---- uvicorn's flags ------------------------------------------------------------------------------------

def test_common_uvicorn_flags_are_accepted(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "settings.env").write_text("GREETING=hello from env-file\nCOVET_LIMIT_MAX_BODY=2M\n")
    log_file = tmp_path / "covet.log"
    (tmp_path / "logging.json").write_text(json.dumps({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file)}},
        "loggers": {"covet": {"handlers": ["file"], "level": "INFO"}},
    }))
    server = serve("--loop", "asyncio", "--http", "h11", "--ws", "websockets", "--no-access-log",
                   "--no-proxy-headers", "--root-path", "", "--env-file", "settings.env",
                   "--log-config", "logging.json", "--timeout-keep-alive", "5", "--backlog", "128",
                   "--timeout-graceful-shutdown", "3", "--factory", app="app:make_app")
    status, body = server.request("GET", "/")
    assert status == 200 and json.loads(body)["greeting"] == "hello from env-file"
    assert server.request("POST", "/upload", UPLOAD)[0] == 200  # COVET_* from the env file count too
    server.stop()
    assert "serving on http://127.0.0.1" in log_file.read_text()


@pytest.mark.parametrize(("flag", "equivalent"), [
    (["--ws", "none"], "remove them from the app"),  # --access-log is served now (test_json_logs.py)
])
def test_unsupported_uvicorn_flags_are_refused_with_the_equivalent(tmp_path: Path, flag: list[str],
                                                                   equivalent: str) -> None:
    result = run_cli(tmp_path, *flag)
    assert result.returncode == 2
    assert result.stderr.startswith(f"covet: {flag[0]}") and equivalent in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_loop_uvloop_needs_uvloop(tmp_path: Path, serve: Any) -> None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        result = run_cli(tmp_path, "--loop", "uvloop")
        assert result.returncode == 2 and "pip install uvloop" in result.stderr, result.stderr
    else:
        server = serve("--loop", "uvloop", "--log-level", "debug")
        assert "event loop: uvloop" in server.log()
        server.stop()


def test_limit_concurrency_answers_503_over_the_limit(serve: Any) -> None:
    server = serve("--limit-concurrency", "1")
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(server.request("GET", "/slow")[0])) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.15)
    for t in threads:
        t.join()
    assert sorted(results) == [200, 503]
    assert server.request("GET", "/slow")[0] == 200  # the slot is free again
    server.stop()


def test_limit_max_requests_replaces_the_worker_without_failing_a_request(serve: Any) -> None:
    server = serve("--limit-max-requests", "5", "--metrics")
    pids = set()
    for _ in range(40):
        status, body = server.request("GET", "/")
        assert status == 200
        pids.add(json.loads(body)["pid"])
        time.sleep(0.05)
    assert len(pids) >= 2, server.log()
    assert "reached --limit-max-requests" in server.log()
    # Each replacement is a restart the metrics name by its cause.
    status, text = server.request("GET", "/_metrics")
    assert status == 200
    restarts = sum(float(line.rpartition(" ")[2]) for line in text.decode().splitlines()
                   if line.startswith('covet_worker_restarts_total{cause="max_requests"}'))
    assert restarts >= len(pids) - 1, (restarts, pids)
    server.stop()
