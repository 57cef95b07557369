"""Header, body and keep-alive idle timeouts. Deadlines are checked by a periodic sweep of up to
1 s granularity, so "within" below means timeout + ~1.5 s."""
import select
import time

from covet_wire import (HELLO, RawConn, WireError, assert_server_healthy,
                        assert_standard_headers, build_request)

HEADER_MS, BODY_MS, IDLE_MS = 300, 300, 500
SERVER_ARGS = ["--header-timeout-ms", HEADER_MS, "--body-timeout-ms", BODY_MS,
               "--idle-timeout-ms", IDLE_MS]
SLACK = 1.5


def expect_408_and_close(server, conn: RawConn, since: float, limit: float) -> None:
    try:
        r = conn.read_response(timeout=limit + 1)
    except WireError as e:
        raise AssertionError(f"expected a 408 response: {e}") from None
    assert r.status == 408, r
    closed, extra = conn.wait_closed(2)
    elapsed = time.monotonic() - since
    assert closed, "server did not close the connection after 408"
    assert not extra, extra
    assert elapsed < limit, f"408 + close took {elapsed:.2f} s, expected under {limit:.2f} s"
    assert_server_healthy(server)


def test_slowloris_partial_head_gets_408_and_close(server):
    with RawConn(server.port) as c:
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        expect_408_and_close(server, c, time.monotonic(), HEADER_MS / 1000 + SLACK)


def test_slowloris_dripping_head_is_cut_off(server):
    """Bytes keep arriving (one every 100 ms) but the head never ends: the header timeout runs
    from the first byte of the head to its end, so a drip feed must not extend it."""
    with RawConn(server.port) as c:
        start = time.monotonic()
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        limit = HEADER_MS / 1000 + SLACK + 0.5
        while time.monotonic() - start < limit + 2:
            readable, _, _ = select.select([c.sock], [], [], 0.1)
            if readable:
                break
            try:
                c.send(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            raise AssertionError(
                f"server still reading a never-ending head {time.monotonic() - start:.1f} s after "
                f"its first byte (header timeout {HEADER_MS} ms)")
        elapsed = time.monotonic() - start
        assert elapsed < limit, f"drip-fed head was cut off only after {elapsed:.2f} s"
        try:
            r = c.read_response(timeout=2)
        except WireError as e:
            raise AssertionError(f"expected a 408 for the drip-fed head: {e}") from None
        assert r.status == 408, r
        closed, _ = c.wait_closed(2)
        assert closed
    assert_server_healthy(server)


def test_408_carries_standard_headers(server):
    with RawConn(server.port) as c:
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        r = c.read_response(timeout=HEADER_MS / 1000 + SLACK + 1)
    assert r.status == 408, r
    assert_standard_headers(r, routed=False)


def test_connection_that_sends_nothing_is_closed(server):
    with RawConn(server.port) as c:
        start = time.monotonic()
        closed, extra = c.wait_closed(max(HEADER_MS, IDLE_MS) / 1000 + SLACK + 0.5)
        elapsed = time.monotonic() - start
        assert closed, f"silent connection still open after {elapsed:.2f} s"
        # Nothing was asked, so closing silently is right; a 408 is tolerated.
        assert extra == b"" or extra.startswith(b"HTTP/1.1 408"), extra
    assert_server_healthy(server)


def test_idle_keep_alive_connection_is_closed(server):
    with RawConn(server.port) as c:
        assert c.get("/plaintext").body == HELLO
        start = time.monotonic()
        closed, extra = c.wait_closed(IDLE_MS / 1000 + SLACK + 0.5)
        elapsed = time.monotonic() - start
        assert closed, f"idle keep-alive connection still open after {elapsed:.2f} s"
        assert elapsed < IDLE_MS / 1000 + SLACK, f"idle close took {elapsed:.2f} s"
        assert elapsed >= IDLE_MS / 1000 - 0.1, f"closed after {elapsed:.2f} s, before the idle timeout"
        assert extra == b"" or extra.startswith(b"HTTP/1.1 408"), extra
    assert_server_healthy(server)


def test_active_keep_alive_connection_outlives_idle_timeout(server):
    with RawConn(server.port) as c:
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 4 * IDLE_MS / 1000:
            r = c.get(f"/users/{i}")
            assert r.body == b'{"id":%d}' % i, r
            i += 1
            time.sleep(IDLE_MS / 1000 * 0.4)


def test_long_running_handler_is_not_an_idle_connection(server):
    # The connection waits on the server, not on the client: no timeout applies.
    with RawConn(server.port) as c:
        r = c.get("/delayed?ms=1800", timeout=5)
        assert (r.status, r.body) == (200, b"delayed 1800"), r
        assert c.get("/plaintext").body == HELLO


def test_partial_content_length_body_gets_408_and_close(server):
    with RawConn(server.port) as c:
        c.send(build_request("POST", "/echo", [("Content-Length", "100")]) + b"0123456789")
        expect_408_and_close(server, c, time.monotonic(), BODY_MS / 1000 + SLACK)


def test_partial_chunked_body_gets_408_and_close(server):
    with RawConn(server.port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + b"10\r\nabc")
        expect_408_and_close(server, c, time.monotonic(), BODY_MS / 1000 + SLACK)


def test_partial_second_pipelined_request_gets_408(server):
    with RawConn(server.port) as c:
        c.send(build_request("GET", "/users/1") + b"GET /users/2 HTTP/1.1\r\nHo")
        r = c.read_response()
        assert r.body == b'{"id":1}', r
        expect_408_and_close(server, c, time.monotonic(), HEADER_MS / 1000 + SLACK)


def test_slow_but_complete_request_within_timeouts_is_served(server):
    with RawConn(server.port) as c:
        data = build_request("POST", "/echo", body=b"slow-but-fine")
        half = len(data) // 2
        c.send(data[:half])
        time.sleep(HEADER_MS / 1000 / 3)
        c.send(data[half:])
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, b"slow-but-fine"), r
