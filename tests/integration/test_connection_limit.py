"""--max-connections: connections over the limit wait in the listen backlog (no reset), and are
served as soon as a slot frees up.

One worker thread (--threads 1) so that the whole limit belongs to one listener: with several
SO_REUSEPORT listeners the kernel spreads connections over workers and a per-worker share of
the limit would make "the 5th connection" depend on the hash."""
import time

from covet_wire import HELLO, RawConn, build_request

LIMIT = 4


def open_served(port, n, first_id=0):
    conns = []
    for i in range(n):
        c = RawConn(port)
        r = c.get(f"/users/{first_id + i}")
        assert r.body == b'{"id":%d}' % (first_id + i), r
        conns.append(c)
    return conns


def assert_waiting(conn: RawConn, seconds: float, what: str) -> None:
    closed, extra = conn.wait_closed(seconds)
    assert not closed, (f"{what}: the server closed/reset it (reset={conn.reader.reset}) instead of "
                        f"leaving it in the backlog; bytes: {extra!r}")
    assert extra == b"", f"{what}: served although {LIMIT} connections were open: {extra!r}"


def test_connection_over_limit_waits_then_is_served(make_server):
    srv = make_server("--max-connections", LIMIT, threads=1)
    conns = open_served(srv.port, LIMIT)
    fifth = RawConn(srv.port)           # the kernel completes the handshake (backlog)
    fifth.send(build_request("GET", "/users/5"))
    assert_waiting(fifth, 1.0, "5th connection")

    conns[0].close()
    t0 = time.monotonic()
    r = fifth.read_response(timeout=5)
    assert (r.status, r.body) == (200, b'{"id":5}'), r
    assert time.monotonic() - t0 < 3, "5th connection served late after a slot freed up"

    # The other connections were not disturbed.
    for i, c in enumerate(conns[1:], start=1):
        assert c.get(f"/users/{i}").body == b'{"id":%d}' % i

    # Again at the limit (3 old + the 5th): a 6th waits until the 5th goes away.
    sixth = RawConn(srv.port)
    sixth.send(build_request("GET", "/users/6"))
    assert_waiting(sixth, 0.8, "6th connection")
    fifth.close()
    r = sixth.read_response(timeout=5)
    assert r.body == b'{"id":6}', r
    for c in conns[1:] + [sixth]:
        c.close()


def test_slots_are_released_however_connections_end(make_server):
    srv = make_server("--max-connections", LIMIT, threads=1)
    for i in range(10):
        # server closes after an error
        with RawConn(srv.port) as c:
            c.send(b"\x00\x01\x02\r\n\r\n")
            assert c.read_response().status == 400
            assert c.wait_closed(3)[0]
        # server closes after Connection: close
        with RawConn(srv.port) as c:
            r = c.request("GET", "/plaintext", [("Connection", "close")])
            assert r.body == HELLO
            assert c.wait_closed(3)[0]
        # client goes away without a word, mid-request and after a response
        c = RawConn(srv.port)
        c.send(b"GET /plain")
        c.close()
        c = RawConn(srv.port)
        assert c.get("/json").status == 200
        c.close()
    time.sleep(0.3)
    t0 = time.monotonic()
    conns = open_served(srv.port, LIMIT, first_id=100)
    assert time.monotonic() - t0 < 3, "connection slots leaked: new connections waited"
    for c in conns:
        c.close()
