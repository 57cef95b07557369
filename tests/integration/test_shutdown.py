"""Graceful shutdown on SIGTERM: listeners close at once, in-flight requests finish, idle
connections are closed, the process exits 0; --shutdown-timeout-ms bounds the drain."""
import socket
import time

from covet_wire import HELLO, HOST, RawConn, WireError, build_request


# One connect attempt's patience. A SYN that reaches a listening socket at the moment it is shut down can be
# dropped by the kernel without an answer (Linux: the lookup found the listener, the state check then saw it
# closed: drop reason TCP_CLOSE, no RST); the client would only learn of it from the SYN's retransmission, 1 s
# later. Such an attempt proves nothing either way, so a new one (a new SYN, which meets no listener) follows.
CONNECT_ATTEMPT_TIMEOUT = 0.1


def wait_refused(port: int, within: float) -> float:
    """Seconds until a new connection to `port` is refused; fails if it never is."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < within:
        try:
            s = socket.create_connection((HOST, port), timeout=CONNECT_ATTEMPT_TIMEOUT)
        except ConnectionRefusedError:
            return time.monotonic() - start
        except TimeoutError as e:  # no answer to this SYN (see above): try a new connection
            last = e
            continue
        except OSError as e:
            last = e
        else:
            s.close()
            last = "connection accepted"
        time.sleep(0.02)
    raise AssertionError(f"new connections still not refused {within} s after SIGTERM (last: {last})")


def test_in_flight_request_completes_and_new_connections_are_refused(make_server):
    srv = make_server()
    with RawConn(srv.port) as c:
        c.send(build_request("GET", "/delayed?ms=1000"))
        time.sleep(0.3)
        srv.send_sigterm()
        wait_refused(srv.port, within=0.5)
        assert srv.alive(), "server exited while a request was still in flight"
        r = c.read_response(timeout=5)
        assert (r.status, r.body) == (200, b"delayed 1000"), r
    rc = srv.wait_exit(15)
    assert rc == 0, f"exit code {rc} after graceful shutdown; stderr:\n{srv.stderr_tail()}"


def test_pipelined_requests_in_flight_all_complete(make_server):
    srv = make_server()
    with RawConn(srv.port) as c:
        c.send(build_request("GET", "/delayed?ms=600") + build_request("GET", "/users/1")
               + build_request("GET", "/delayed?ms=100"))
        time.sleep(0.2)
        srv.send_sigterm()
        bodies = []
        try:
            for _ in range(3):
                bodies.append(c.read_response(timeout=5).body)
        except WireError:
            pass
        # The request being handled must complete; the queued ones may be answered or cut off
        # (the connection then closes), but never answered out of order.
        assert bodies[:1] == [b"delayed 600"], bodies
        assert bodies == [b"delayed 600", b'{"id":1}', b"delayed 100"][:len(bodies)], bodies
        closed, _ = c.wait_closed(5)
        assert closed, "connection not closed during shutdown"
    assert srv.wait_exit(15) == 0


def test_idle_keep_alive_connections_are_closed_and_exit_is_prompt(make_server):
    # Idle connections have no work in flight: shutdown closes them instead of waiting for the
    # (60 s) idle timeout or the (10 s) shutdown deadline.
    srv = make_server()
    conns = [RawConn(srv.port) for _ in range(5)]
    for i, c in enumerate(conns):
        assert c.get(f"/users/{i}").status == 200
    srv.send_sigterm()
    for c in conns:
        closed, extra = c.wait_closed(5)
        assert closed, "idle keep-alive connection not closed on shutdown"
        assert extra == b"", extra
        c.close()
    rc = srv.wait_exit(15)
    took = srv.stopped_at - srv.term_sent_at
    assert rc == 0, f"exit code {rc}; stderr:\n{srv.stderr_tail()}"
    assert took < 5, f"exit took {took:.1f} s with only idle connections"


def test_shutdown_timeout_bounds_the_drain(make_server):
    srv = make_server("--shutdown-timeout-ms", 500)
    c = RawConn(srv.port)
    try:
        c.send(build_request("GET", "/delayed?ms=6000"))
        time.sleep(0.2)
        srv.send_sigterm()
        rc = srv.wait_exit(15)
        took = srv.stopped_at - srv.term_sent_at
        assert took < 3, f"--shutdown-timeout-ms 500 but the exit took {took:.1f} s"
        assert rc == 0, f"exit code {rc} after the drain deadline; stderr:\n{srv.stderr_tail()}"
        closed, _ = c.wait_closed(2)
        assert closed, "in-flight connection left open after the process exited?"
    finally:
        c.close()


def test_half_sent_request_at_shutdown_does_not_block_exit(make_server):
    srv = make_server()
    c = RawConn(srv.port)
    try:
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")   # head never finished
        assert RawConn(srv.port).get("/plaintext").body == HELLO
        srv.send_sigterm()
        rc = srv.wait_exit(15)
        assert rc == 0, srv.stderr_tail()
        took = srv.stopped_at - srv.term_sent_at
        assert took < 11.5, f"exit took {took:.1f} s (beyond the 10 s default shutdown deadline)"
    finally:
        c.close()


def test_sigterm_under_load_exits_cleanly(make_server):
    srv = make_server()
    conns = [RawConn(srv.port) for _ in range(30)]
    for i, c in enumerate(conns):
        c.send(build_request("GET", f"/delayed?ms={200 + i * 10}") + build_request("GET", "/json"))
    time.sleep(0.1)
    srv.send_sigterm()
    # In-flight /delayed requests (at most 0.5 s) must be answered; bound the whole wait.
    deadline = time.monotonic() + 8
    unanswered = []
    for i, c in enumerate(conns):
        try:
            r = c.read_response(timeout=max(0.1, deadline - time.monotonic()))
            assert r.body == b"delayed %d" % (200 + i * 10), r
        except WireError as e:
            unanswered.append(f"conn {i}: {e}")
        c.close()
    rc = srv.wait_exit(15)
    assert rc == 0, f"exit code {rc}; stderr:\n{srv.stderr_tail()}"
    assert not unanswered, "in-flight requests not answered during shutdown:\n" + "\n".join(unanswered[:5])


def test_sigterm_right_after_the_banner(make_server):
    """The banner says the server is up; a SIGTERM at any moment after it must shut it down."""
    for _ in range(3):
        srv = make_server()
        srv.send_sigterm()
        rc = srv.wait_exit(5)
        assert rc == 0, f"exit code {rc}; stderr:\n{srv.stderr_tail()}"
