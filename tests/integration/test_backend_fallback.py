"""io_uring refused (Docker's seccomp profile, kernel.io_uring_disabled): the server must fall back to
the Asio/epoll backend, say why, and serve normally."""
import os
import pathlib
import socket
import subprocess

import pytest

from covet_proc import free_port, hello_binary

DENY = os.environ.get("COVET_DENY_URING_BIN") or str(
    pathlib.Path(__file__).resolve().parents[2] / "build" / "tests" / "deny_io_uring")


def run_denied(errno_name, extra_env):
    if not os.path.exists(DENY):
        pytest.skip(f"{DENY} not built")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "COVET_BACKEND"}
    env.update(extra_env)
    proc = subprocess.Popen([DENY, "--errno", errno_name, str(hello_binary()), "--port", str(port), "--threads", "1",
                             "--log-level", "info"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    banner = proc.stdout.readline()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    return banner, data, err, proc.returncode


@pytest.mark.parametrize("errno_name, reason", [("EPERM", "Operation not permitted"),
                                                ("ENOSYS", "Function not implemented")])
def test_auto_falls_back_to_asio_when_io_uring_is_refused(errno_name, reason):
    banner, data, err, rc = run_denied(errno_name, {})
    assert "backend=asio" in banner, banner
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"Hello, World!"), data
    assert f"io_uring_setup: {reason}" in err, err
    assert rc == 0


def test_requested_uring_falls_back_with_a_warning():
    banner, data, err, rc = run_denied("EPERM", {"COVET_BACKEND": "uring"})
    assert "backend=asio" in banner, banner
    assert data.endswith(b"Hello, World!"), data
    assert "io_uring was requested but is unavailable" in err, err
    assert rc == 0
