"""Command line, the start-up banner, logging flags and a plain SIGTERM stop."""
import os

import pytest

from covet_proc import ServerProcess
from covet_wire import HELLO, RawConn, assert_server_healthy


def test_banner_names_requested_backend_and_threads(server, backend):
    # ServerProcess.start() already checked the exact banner format and the port.
    assert server.reported_backend == backend, server.banner
    assert server.reported_threads == 2, server.banner
    assert_server_healthy(server)


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_flag_is_reported(make_server, threads):
    srv = make_server(threads=threads)
    assert srv.reported_threads == threads, srv.banner
    assert_server_healthy(srv)


def test_defaults_without_threads_and_backend_flags(hello_bin):
    """No --threads/--backend: one thread per core, and auto picks a real backend."""
    srv = ServerProcess(hello_bin, None, threads=None)
    try:
        srv.start()
        cores = {os.cpu_count(), len(os.sched_getaffinity(0))}
        assert srv.reported_threads in cores, f"{srv.banner!r}: expected one thread per core {cores}"
        assert srv.reported_backend in ("uring", "asio"), srv.banner
        assert_server_healthy(srv)
    finally:
        if srv.alive():
            srv.stop()


def test_backend_auto_reports_the_chosen_backend(hello_bin):
    srv = ServerProcess(hello_bin, "auto")
    try:
        srv.start()
        assert srv.reported_backend in ("uring", "asio"), srv.banner
        assert_server_healthy(srv)
    finally:
        if srv.alive():
            srv.stop()


@pytest.mark.parametrize("log_args", [
    ("--access-log", "text", "--log-level", "debug"),
    ("--access-log", "json", "--log-level", "trace"),
    ("--access-log", "off", "--log-level", "off"),
    ("--log-level", "error"),
])
def test_logging_flags_serve_and_shut_down_cleanly(make_server, log_args):
    srv = make_server(*log_args)
    with RawConn(srv.port) as c:
        for i in range(50):
            r = c.get(f"/users/{i}")
            assert (r.status, r.body) == (200, b'{"id":%d}' % i), r
        r = c.get("/nope")
        assert r.status == 404, r
    took = srv.stop()
    assert took < 5, f"idle server took {took:.1f} s to exit after SIGTERM"


def test_idle_server_exits_zero_promptly_on_sigterm(make_server):
    srv = make_server()
    with RawConn(srv.port) as c:
        assert c.get("/plaintext").body == HELLO
    took = srv.stop()
    assert took < 3, f"server with no connections took {took:.1f} s to exit after SIGTERM"
