"""`covet run --workers N --ops-port P`: the operations listener is one socket, bound by the master and shared by
every worker (like the app's listener), so a worker that dies loses no connection waiting in its accept queue.

With one SO_REUSEPORT socket per worker (before), the kernel hashed each new connection to one worker's queue, and
those queued on a worker that was SIGKILLed were reset: a Prometheus scrape or a Kubernetes probe failed. Here both
workers are stopped (SIGSTOP) while scrapes queue up, one is killed, and every scrape must still be answered.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from serverproc import ServerProcess, children, free_port, listening_inodes, require_compiled_engine, socket_inodes

APP = "from covet import CovetPy\napp = CovetPy()\n\n@app.get('/')\nasync def root():\n    return 'hi'\n"


def wait_until_stopped(pid: int, timeout: float = 10.0) -> None:
    """Until every thread of `pid` is stopped (state T in /proc/PID/task/TID/stat)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                states.append(Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0])
            except OSError:
                continue
        if states and all(state in ("T", "t") for state in states):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} did not stop within {timeout} s")


def send_health_check(port: int) -> socket.socket:
    """A connection with its request sent, not read: it waits in the listener's accept queue."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"GET /_health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    return s


def answer(s: socket.socket) -> bytes:
    data = b""
    with s:
        while chunk := s.recv(4096):
            data += chunk
    return data


@pytest.mark.parametrize("backend", ["uring", "asio"])
def test_a_killed_worker_loses_no_queued_ops_connection(tmp_path: Path, backend: str) -> None:
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'configure_ops')",
                            "compiled engine with metrics (rebuild it)")
    (tmp_path / "app.py").write_text(APP)
    port, ops = free_port(), free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                            "--ops-port", str(ops)], cwd=tmp_path, ready=r"2 worker\(s\) serving on",
                           env={"COVET_BACKEND": backend})
    with server:
        workers = children(server.proc.pid)
        assert len(workers) == 2, workers
        # One listening socket on the operations port, the master's, which both workers hold.
        listeners = listening_inodes(ops)
        assert len(listeners) == 1, f"one socket per worker (SO_REUSEPORT) instead of the master's: {listeners}"
        for pid in (server.proc.pid, *workers):
            assert listeners <= socket_inodes(pid), f"process {pid} does not hold the operations listener"

        # Nobody accepts while both workers are stopped: the scrapes wait in the accept queue. One worker dies.
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        for pid in workers:  # kill() returns before the stop: a running worker would accept what comes next
            wait_until_stopped(pid)
        try:
            waiting = [send_health_check(ops) for _ in range(16)]
            time.sleep(0.2)  # every connection is established and queued before the kill
            os.kill(workers[0], signal.SIGKILL)
        finally:
            os.kill(workers[1], signal.SIGCONT)
        server.wait_for(r"exited with signal SIGKILL")
        answers = []
        for s in waiting:
            try:
                answers.append(answer(s))
            except ConnectionResetError:
                answers.append(b"reset")
        lost = sum(not a.startswith(b"HTTP/1.1 200") for a in answers)
        # io_uring: the killed worker's one armed (single-shot) accept can still take one connection from the
        # shared queue while the dying process's ring is torn down, and that one is reset (seen once in a
        # clean-clone run). At most one per killed worker; accepting in user space after a poll would close that
        # gap (docs/operations.md). Before the shared socket, 8 of 16 were lost here.
        allowed = 1 if backend == "uring" else 0
        assert lost <= allowed, f"{lost} of {len(answers)} queued operations connections were lost: {answers}"
