"""Restarts lose nothing: `covet run --workers 2 --reload` under continuous load (keep-alive clients, a new
connection per request, and bursts of connections that wait in the accept queue before they send), through
three SIGHUPs, a source change, and a broken source change (a syntax error: the running workers keep serving).
Every request must succeed, no connection may be refused, the worker PIDs change, and SIGTERM exits cleanly.

A request that fails on a *reused* keep-alive connection before any byte of the response arrived is retried
on a new connection, as HTTP clients do (the server may close an idle keep-alive connection at any time);
those retries are counted separately. Anything else is a failure.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine

APP = textwrap.dedent("""
    import os
    from covet import CovetPy

    VERSION = {version!r}
    app = CovetPy()

    @app.get("/")
    async def root():
        return {{"pid": os.getpid(), "version": VERSION}}
    """)


@pytest.fixture(scope="module", autouse=True)
def engine_shares_a_socket() -> None:
    require_compiled_engine("from covet.server.supervisor import engine_adopts_sockets, native_module\n"
                            "assert engine_adopts_sockets(native_module()), 'no ServerConfig.inherited_listener'",
                            "compiled engine that can adopt a listening socket (rebuild it)")

BURST_GAP = 0.05  # seconds between a burst's connects and its requests


class Load:
    """Client threads hammering the server until `stop()`; outcomes are counted in `stats`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stats: Counter[str] = Counter()
        self.errors: list[str] = []
        self.pids: set[int] = set()
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._keep_alive, daemon=True) for _ in range(2)]
        self._threads += [threading.Thread(target=self._new_connections, daemon=True)]
        self._threads += [threading.Thread(target=self._bursts, daemon=True)]

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _record(self, body: bytes) -> None:
        data = json.loads(body)
        with self._lock:
            self.stats["ok"] += 1
            self.pids.add(data["pid"])
            self.versions.add(data["version"])

    def _fail(self, kind: str, error: BaseException, client: str) -> None:
        with self._lock:
            self.stats[kind] += 1
            self.stats[f"{kind} ({client})"] += 1
            if len(self.errors) < 20:
                self.errors.append(f"{kind} ({client}): {error!r}")

    def _keep_alive(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read()
                assert response.status == 200, (response.status, body)
                self._record(body)
                if response.will_close:
                    conn.close()
                    conn = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if reused:  # closed while idle: a client retries on a new connection
                    with self._lock:
                        self.stats["keep-alive retry"] += 1
                else:
                    self._fail("failed", e, "keep-alive client")
            except ConnectionRefusedError as e:
                conn.close()
                conn = None
                self._fail("refused", e, "keep-alive client")
            except Exception as e:  # noqa: BLE001 - counted
                conn.close()
                conn = None
                self._fail("failed", e, "keep-alive client")
        if conn is not None:
            conn.close()

    def _one_request(self, sock: socket.socket) -> None:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data[:200]
        self._record(body)

    def _new_connections(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    self._one_request(sock)
            except ConnectionRefusedError as e:
                self._fail("refused", e, "new connections")
            except Exception as e:  # noqa: BLE001 - counted
                self._fail("failed", e, "new connections")

    def _bursts(self) -> None:
        """20 connections at once, left waiting (in the accept queue, or accepted) before they send."""
        while not self._stop.is_set():
            socks = []
            for _ in range(20):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=10))
                except ConnectionRefusedError as e:
                    self._fail("refused", e, "burst connect")
                except Exception as e:  # noqa: BLE001 - counted
                    self._fail("failed", e, "burst connect")
            self._stop.wait(BURST_GAP)
            for sock in socks:
                try:
                    self._one_request(sock)
                except Exception as e:  # noqa: BLE001 - counted
                    self._fail("failed", e, "burst request")
                finally:
                    sock.close()
            self._stop.wait(0.1)


def test_restarts_under_load_lose_nothing(tmp_path: Path) -> None:
    app_file = tmp_path / "app.py"
    app_file.write_text(APP.format(version="v1"))
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                            "--reload", "--reload-dir", str(tmp_path)], cwd=tmp_path, ready=r"2 worker\(s\) serving on")
    restarts = 0

    def restart(action: Callable[[], None]) -> None:
        nonlocal restarts
        restarts += 1
        action()
        server.wait_for(r"new worker\(s\) serving", restarts)
        time.sleep(0.7)  # load on the new generation while the old one drains

    with server:
        with Load(port) as load:
            time.sleep(0.7)
            first_pids = set(load.pids)
            assert len(first_pids) >= 1
            for _ in range(3):
                restart(lambda: os.kill(server.proc.pid, signal.SIGHUP))
            restart(lambda: app_file.write_text(APP.format(version="v2")))
            app_file.write_text(APP.format(version="v3") + "\ndef broken(:\n")
            server.wait_for(r"did not start")
            time.sleep(0.7)  # still serving, on the v2 workers
        assert load.stats["ok"] > 200, load.stats
        assert load.stats["failed"] == 0 and load.stats["refused"] == 0, (load.stats, load.errors, server.output())
        assert load.versions == {"v1", "v2"}, load.versions
        # Every generation served (the workers of one generation share the accept queue, so the kernel may
        # hand one of them all of a short window's connections: count generations, not workers).
        assert len(load.pids - first_pids) >= restarts, (load.pids, first_pids)
        assert "SyntaxError" in server.output()
        status = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status.request("GET", "/")
        assert json.loads(status.getresponse().read())["version"] == "v2"
        status.close()
        server.stop(timeout=30)
        # The broken generation's workers print their SyntaxError's traceback (the master may stop the second
        # one in mid-print when the first fails), and nothing else does: not the master, not a draining worker.
        tracebacks = server.output().split("Traceback (most recent call last):")[1:]
        assert 1 <= len(tracebacks) <= 2, server.output()
        for traceback in tracebacks:
            assert '/supervisor.py"' not in traceback and '/serve.py"' not in traceback, server.output()


def test_a_crashed_worker_is_replaced_and_queued_connections_wait_for_it(tmp_path: Path) -> None:
    """One worker under a master (--supervise): kill -9 it; connections made while no worker runs wait in the
    master's socket and are answered by the replacement."""
    (tmp_path / "app.py").write_text(APP.format(version="v1"))
    port = free_port()
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--supervise"],
                       cwd=tmp_path,
                       ready=r"1 worker\(s\) serving on") as server:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        pid = json.loads(conn.getresponse().read())["pid"]
        conn.close()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(5)]  # not refused
        answers = []
        for sock in waiting:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            sock.close()
            answers.append(json.loads(data.partition(b"\r\n\r\n")[2])["pid"])
        assert len(set(answers)) == 1 and answers[0] != pid
        server.wait_for("exited with signal SIGKILL")
        server.stop(timeout=30)
