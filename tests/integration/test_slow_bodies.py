"""Request bodies that trickle in (issue 12): the idle gap between body bytes never trips when a byte
comes every second, so a minimum data rate (--min-body-rate, averaged after --min-body-rate-grace-ms)
and a whole-body deadline (--body-deadline-ms) end them. Many such uploads at once must all end soon
after the grace period, with a 408 that names the limit, while ordinary requests are served at once.

The server runs with a 100 bytes/s floor after a 1 s grace and a long idle-gap timeout (30 s), so
only the new limits can end the trickles within the time asserted here."""
from __future__ import annotations

import select
import selectors
import socket
import statistics
import time

import pytest

from covet_wire import HELLO, HOST, RawConn, assert_server_healthy, build_request
from tls_certs import DATA, END_HEADERS, END_STREAM, HEADERS, NO_ERROR, RST_STREAM, RawH2, frame

RATE, GRACE_S = 100, 1.0
SERVER_ARGS = ["--min-body-rate", RATE, "--min-body-rate-grace-ms", int(GRACE_S * 1000),
               "--body-timeout-ms", 30000, "--max-connections", 2000]
# The sweep runs every 250 ms; a loaded machine (sanitizer builds, parallel jobs) gets some slack.
ENDED_WITHIN = GRACE_S + 3.0
UPLOADS = 200


def plaintext_latencies(port: int, n: int = 5) -> list[float]:
    """Seconds for n GET /plaintext requests, each on a fresh connection."""
    times = []
    for _ in range(n):
        start = time.monotonic()
        with RawConn(port, timeout=2) as c:
            r = c.get("/plaintext")
        times.append(time.monotonic() - start)
        assert (r.status, r.body) == (200, HELLO), r
    return times


class Trickle:
    """One HTTP/1.1 upload that sends its head, then one body byte a second."""

    def __init__(self, port: int, chunked: bool):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.chunked = chunked
        headers = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", "100000")]
        self.sock.sendall(build_request("POST", "/echo", headers) + self.piece())
        self.sock.setblocking(False)
        self.received = bytearray()
        self.ended_at: float | None = None
        self.reset = False

    def piece(self) -> bytes:
        return b"1\r\nx\r\n" if self.chunked else b"x"

    def drip(self) -> None:
        try:
            self.sock.send(self.piece())
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            pass  # ended (or ending): the read side tells

    def on_readable(self, now: float) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data, self.reset = b"", True
        if data:
            self.received += data
        else:
            self.ended_at = now

    def status(self) -> int | None:
        if not self.received.startswith(b"HTTP/1.1 "):
            return None
        return int(self.received[9:12])


@pytest.mark.covet_timeout(30)
def test_many_trickled_uploads_all_end_while_others_are_served(server):
    start = time.monotonic()
    uploads = [Trickle(server.port, chunked=i % 2 == 1) for i in range(UPLOADS)]
    opened = time.monotonic() - start
    sel = selectors.DefaultSelector()
    for u in uploads:
        sel.register(u.sock, selectors.EVENT_READ, u)
    try:
        # While every upload is open (within the grace period): ordinary requests are not held up.
        during = plaintext_latencies(server.port)
        next_drip = start + 1.0
        deadline = start + opened + ENDED_WITHIN
        while any(u.ended_at is None for u in uploads) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_drip:
                for u in uploads:
                    if u.ended_at is None:
                        u.drip()
                next_drip += 1.0
            for key, _ in sel.select(timeout=max(0.0, min(next_drip, deadline) - now)):
                key.data.on_readable(time.monotonic())
        open_ = [u for u in uploads if u.ended_at is None]
        assert not open_, (f"{len(open_)} of {UPLOADS} trickled uploads still open "
                           f"{time.monotonic() - start:.1f} s after they started")
        statuses = [u.status() for u in uploads]
        # The server closes right after its 408; a drip that crosses the close may turn the FIN into
        # a reset before the 408 is read, so "closed without a response" is an ending too, but rare.
        answered = [s for s in statuses if s is not None]
        assert all(s == 408 for s in answered), sorted(set(answered))
        assert len(answered) >= UPLOADS * 0.9, f"only {len(answered)} of {UPLOADS} uploads saw the 408"
        latest = max(u.ended_at for u in uploads) - start
        assert latest >= GRACE_S - 0.05, f"an upload ended after {latest:.2f} s, before the grace period"
        one = next(bytes(u.received) for u in uploads if u.status() == 408)
        assert b"Connection: close" in one, one
        assert b"minimum data rate of 100 bytes/s" in one and b"min_body_rate" in one, one
    finally:
        for u in uploads:
            sel.unregister(u.sock)
            u.sock.close()
        sel.close()
    after = plaintext_latencies(server.port)
    assert statistics.median(during) < 0.1, f"GET /plaintext took {during} s while the uploads trickled"
    assert statistics.median(after) < 0.1, f"GET /plaintext took {after} s after the uploads"
    assert max(during + after) < 1.0, f"a GET /plaintext took {max(during + after):.2f} s"
    assert_server_healthy(server)


def test_fast_upload_is_not_cut(server):
    """A body sent in pieces above the floor, over longer than the grace period, is served."""
    body = b"0123456789" * 60  # 600 bytes in 2 s: 300 bytes/s
    with RawConn(server.port, timeout=5) as c:
        c.send(build_request("POST", "/echo", [("Content-Length", str(len(body)))]))
        for i in range(0, len(body), 75):
            c.send(body[i:i + 75])
            time.sleep(0.25)
        r = c.read_response("POST")
    assert (r.status, r.body) == (200, body), r


@pytest.mark.covet_timeout(30)
def test_trickled_http2_streams_get_408_and_a_reset_while_the_connection_serves(server):
    """h2c: each stream whose body trickles gets 408, then RST_STREAM(NO_ERROR); the connection and
    its other streams go on."""
    streams = 20
    with RawH2(server.port, timeout=5) as c:
        c.handshake()
        ids = []
        for _ in range(streams):
            sid = c.new_stream_id()
            c.send(frame(HEADERS, END_HEADERS, sid, c.encode(c.request_headers("/echo", "POST"))) +
                   frame(DATA, 0, sid, b"x"))
            ids.append(sid)
        start = time.monotonic()
        answered: dict[int, int] = {}
        reset: dict[int, int] = {}
        next_drip = start + 1.0
        while (len(answered) < streams or len(reset) < streams) and time.monotonic() < start + ENDED_WITHIN:
            if time.monotonic() >= next_drip:
                c.send(b"".join(frame(DATA, 0, sid, b"x") for sid in ids if sid not in reset))
                next_drip += 1.0
            f = c.read_frame(max(0.01, min(next_drip, start + ENDED_WITHIN) - time.monotonic()))
            if f is None:
                assert not c.closed, f"the server closed the connection; frames: {c.frames[-5:]}"
                continue
            if f.headers is not None and f.stream_id in ids:
                answered[f.stream_id] = int(dict(f.headers)[":status"])
            if f.type == RST_STREAM and f.stream_id in ids:
                reset[f.stream_id] = f.error_code
        assert len(answered) == streams, f"{streams - len(answered)} streams got no response: {c.frames[-5:]}"
        assert set(answered.values()) == {408}, answered
        assert len(reset) == streams and set(reset.values()) == {NO_ERROR}, reset
        elapsed = time.monotonic() - start
        assert elapsed >= GRACE_S - 0.05, f"streams were refused after {elapsed:.2f} s, before the grace period"
        body = b"".join(f.payload for f in c.frames if f.type == DATA and f.stream_id == ids[0])
        assert b"minimum data rate of 100 bytes/s" in body, body
        # The same connection serves a new request at once.
        t0 = time.monotonic()
        sid = c.get("/plaintext")
        r = c.response(sid)
        assert (r.status, r.body) == (200, HELLO), r
        assert time.monotonic() - t0 < 0.5
    assert_server_healthy(server)


def test_body_deadline_ends_a_fast_but_long_upload(make_server):
    """--body-deadline-ms: the whole body must arrive in time, however fast it is coming."""
    srv = make_server("--body-deadline-ms", 1000, "--min-body-rate", 0)
    with RawConn(srv.port, timeout=5) as c:
        c.send(build_request("POST", "/echo", [("Content-Length", "1000000")]))
        start = time.monotonic()
        try:
            # ~20 KB/s, well above any rate floor, until the server answers.
            while time.monotonic() - start < 4 and not select.select([c.sock], [], [], 0.1)[0]:
                c.send(b"y" * 2000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        ended = time.monotonic() - start
        try:
            r = c.read_response("POST", timeout=2)
        except AssertionError:
            r = None  # the close overtook the 408 (our writes crossed it): ending is what counts
        if r is not None:
            assert r.status == 408, r
            assert b"body deadline of 1000 ms" in r.body, r
            closed, _ = c.wait_closed(2)
            assert closed, "the server did not close after its 408"
        assert 0.9 <= ended < 1.0 + 2.5, f"the upload ended after {ended:.2f} s (deadline 1 s)"
    assert_server_healthy(srv)
