"""HTTP/2 abuse over raw sockets: rapid reset, CONTINUATION floods, HPACK bombs, oversized
frames, too many concurrent streams, stalled TLS handshakes. Frames are built by hand
(tls_certs.RawH2) so the client can break the rules a library enforces.

Every test ends by checking that the server process is alive and that a fresh client is served,
over h2c and, where the module's server has TLS, over h2 and HTTP/1.1 as well.

Server limits under test (defaults): 100 concurrent streams, 16 KiB header list, 16 KiB frames,
200 client RST_STREAMs per second, 8 CONTINUATION frames per header block."""
import socket
import struct
import time

import pytest

import tls_certs
from covet_wire import HELLO, HOST, RawConn
from tls_certs import (CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, END_HEADERS, END_STREAM,
                       ENHANCE_YOUR_CALM, ERROR_NAMES, FRAME_SIZE_ERROR, GOAWAY, HEADERS, PING,
                       PROTOCOL_ERROR, REFUSED_STREAM, RST_STREAM, RawH2, assert_h2_served, cert_set,
                       client_hello_bytes, frame, rst_stream_frame, tls_args, tls_get)

# h2c and h2 (TLS) on the same port: the module's server has TLS, attacks run over h2c on a
# plain-port server started per test (cheap) unless a test needs TLS.
SERVER_ARGS = tls_certs.LazyArgs(tls_args)


@pytest.fixture
def h2c(make_server):
    return make_server()


def still_serving(srv, *, tls: bool = False) -> None:
    srv.assert_alive()
    assert_h2_served(srv.port, tls=tls)
    if tls:
        r, s = tls_get(srv.port, "/plaintext")
        s.close()
        assert (r.status, r.body) == (200, HELLO), r
    else:
        with RawConn(srv.port) as c:
            r = c.get("/plaintext")
            assert (r.status, r.body) == (200, HELLO), r


def err(code) -> str:
    return ERROR_NAMES.get(code, str(code))


# ---- rapid reset (CVE-2023-44487) -----------------------------------------------------------

@pytest.mark.covet_timeout(60)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_rapid_reset_flood_gets_goaway(server, h2c, tls):
    srv = server if tls else h2c
    n = 2000
    with RawH2(srv.port, tls=tls, ca=cert_set().ca, timeout=10) as c:
        c.handshake()
        block = c.encode(c.request_headers("/delayed?ms=5000"))
        batch = bytearray()
        for i in range(n):
            sid = 1 + 2 * i
            # the same header block each time: indexed from the dynamic table after the first
            batch += frame(HEADERS, END_HEADERS | END_STREAM, sid, block if i == 0 else c.encode(
                c.request_headers("/delayed?ms=5000")))
            batch += rst_stream_frame(sid, CANCEL)
            if len(batch) > 32768:
                if not c.send(bytes(batch)):
                    break
                batch.clear()
        if batch:
            c.send(bytes(batch))
        got = c.read_until(lambda f: f.type == GOAWAY, timeout=10)
        assert got is not None, (f"no GOAWAY after {n} HEADERS+RST_STREAM pairs "
                                 f"(closed={c.closed} reset={c.reset}); last frames: {c.frames[-8:]}")
        assert got.error_code == ENHANCE_YOUR_CALM, f"GOAWAY with {err(got.error_code)}: {got}"
        assert c.read_until_closed(5), "connection still open after the GOAWAY"
    still_serving(srv, tls=tls)


def test_moderate_resets_are_allowed(h2c):
    """A client that cancels a few streams (well under 200/s) keeps its connection."""
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        for _ in range(20):
            sid = c.get("/delayed?ms=2000")
            c.send(rst_stream_frame(sid, CANCEL))
        sid = c.get("/plaintext")
        r = c.response(sid)
        assert r.status == 200 and r.body == HELLO, (r, c.frames[-5:])
        assert c.goaway() is None, c.goaway()
    still_serving(h2c)


# ---- CONTINUATION floods (CVE-2024-27316 and friends) ---------------------------------------

@pytest.mark.parametrize("kind", ["empty", "headers"])
def test_continuation_flood_closes_connection(h2c, kind):
    with RawH2(h2c.port, timeout=10) as c:
        c.handshake()
        block = c.encode(c.request_headers("/plaintext"))
        c.send(frame(HEADERS, END_STREAM, 1, block))        # no END_HEADERS
        sent = 0
        for i in range(2000):
            payload = b"" if kind == "empty" else c.encode([(f"x-flood-{i}", "v" * 100)])
            if not c.send(frame(CONTINUATION, 0, 1, payload)):
                break
            sent += 1
        closed = c.read_until_closed(10)
        assert closed, f"server kept reading an unterminated header block ({sent} CONTINUATION frames)"
        # No response may have been produced for the never-finished header block.
        assert c.collect(1).status is None, c.collect(1)
        g = c.goaway()
        if g is not None:
            assert g.error_code != 0, f"GOAWAY NO_ERROR for a CONTINUATION flood: {g}"
    still_serving(h2c)


def test_nine_continuations_exceed_limit_eight_are_fine(h2c):
    """The limit is 8 CONTINUATION frames per block: 8 must work, more must not be served."""
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        block = c.encode(c.request_headers("/plaintext", extra=[("x-a", "1")]))
        # split the block into 9 consecutive pieces: HEADERS + 8 CONTINUATION
        step = max(1, len(block) // 9)
        pieces = [block[i * step:(i + 1) * step] for i in range(8)] + [block[8 * step:]]
        c.send(frame(HEADERS, END_STREAM, 1, pieces[0]))
        for i, p in enumerate(pieces[1:]):
            c.send(frame(CONTINUATION, END_HEADERS if i == 7 else 0, 1, p))
        r = c.response(1)
        assert r.status == 200 and r.body == HELLO, f"HEADERS + 8 CONTINUATION frames not served: {r}"
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        block = c.encode(c.request_headers("/plaintext"))
        c.send(frame(HEADERS, END_STREAM, 1, block[:1]))
        for i in range(20):
            c.send(frame(CONTINUATION, 0, 1, b""))
        c.send(frame(CONTINUATION, END_HEADERS, 1, block[1:]))
        c.read_until_closed(5)
        assert c.collect(1).status != 200, "a header block in 22 frames was served (limit: 8 CONTINUATIONs)"
    still_serving(h2c)


def test_continuation_on_other_stream_is_protocol_error(h2c):
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        block = c.encode(c.request_headers("/plaintext"))
        c.send(frame(HEADERS, END_STREAM, 1, block[:2]))
        c.send(frame(CONTINUATION, END_HEADERS, 3, block[2:]))
        g = c.read_until(lambda f: f.type == GOAWAY, 5)
        assert g is not None and g.error_code == PROTOCOL_ERROR, (g, c.frames)
    still_serving(h2c)


# ---- HPACK bombs and huge header lists --------------------------------------------------------

def _hpack_literal_incremental(name: bytes, value: bytes) -> bytes:
    """Literal header field with incremental indexing, new name, no Huffman (RFC 7541 6.2.1)."""
    def string(s: bytes) -> bytes:
        return _hpack_int(len(s), 7, 0) + s
    return b"\x40" + string(name) + string(value)


def _hpack_int(value: int, prefix_bits: int, first_byte_flags: int) -> bytes:
    max_prefix = (1 << prefix_bits) - 1
    if value < max_prefix:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | max_prefix])
    value -= max_prefix
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _assert_refused(c: RawH2, sid: int, what: str) -> None:
    r = c.response(sid, timeout=10)
    g = c.goaway()
    if r.status is not None:
        assert r.status == 431, f"{what}: expected 431, RST_STREAM or GOAWAY; got {r}"
    else:
        assert r.rst is not None or g is not None or c.closed, \
            f"{what}: the server neither answered nor refused the stream: {r}; frames {c.frames[-6:]}"


def test_hpack_bomb(h2c):
    """One 4 KiB header in the dynamic table, referenced 4000 times: about 16 MB of decoded
    headers from a block of ~8 KB. The server must refuse (431 / RST_STREAM / GOAWAY)."""
    with RawH2(h2c.port, timeout=10) as c:
        c.handshake()
        base = c.encode(c.request_headers("/plaintext"))
        big = _hpack_literal_incremental(b"x-bomb", b"A" * 4000)
        # after insertion the new entry is dynamic index 62 (the first dynamic slot)
        ref = _hpack_int(62, 7, 0x80)
        block = base + big + ref * 4000
        assert len(block) < 16384
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
        _assert_refused(c, 1, "HPACK bomb")
    still_serving(h2c)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_header_list_over_16k(server, h2c, tls):
    srv = server if tls else h2c
    with RawH2(srv.port, tls=tls, ca=cert_set().ca, timeout=10) as c:
        c.handshake()
        limit = c.server_settings.get(tls_certs.SETTINGS_MAX_HEADER_LIST_SIZE)
        assert limit is not None and limit <= 16384, \
            f"server does not advertise a SETTINGS_MAX_HEADER_LIST_SIZE <= 16 KiB: {c.server_settings}"
        # 20 headers of 1 KiB each = 20 KiB, sent as HEADERS + 2 CONTINUATION frames
        extra = [(f"x-big-{i}", "b" * 1000) for i in range(20)]
        block = c.encode(c.request_headers("/plaintext", extra=extra))
        third = len(block) // 3 + 1
        c.send(frame(HEADERS, END_STREAM, 1, block[:third]))
        c.send(frame(CONTINUATION, 0, 1, block[third:2 * third]))
        c.send(frame(CONTINUATION, END_HEADERS, 1, block[2 * third:]))
        _assert_refused(c, 1, "20 KiB header list")
    still_serving(srv, tls=tls)


def test_header_list_under_limit_is_served(h2c):
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        extra = [(f"x-ok-{i}", "c" * 1000) for i in range(8)]
        r = c.response(c.get("/plaintext", extra=extra))
        assert r.status == 200 and r.body == HELLO, r


def test_hpack_garbage_is_compression_error(h2c):
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        # index 0 is invalid; an index far past the tables too
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80"))
        g = c.read_until(lambda f: f.type == GOAWAY, 5)
        assert g is not None and g.error_code == COMPRESSION_ERROR, (g, c.frames)
    still_serving(h2c)


# ---- frame size ------------------------------------------------------------------------------

@pytest.mark.parametrize("ftype", [HEADERS, DATA, PING], ids=["HEADERS", "DATA", "PING"])
def test_oversized_frame_gets_frame_size_error(h2c, ftype):
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        max_frame = c.server_settings.get(tls_certs.SETTINGS_MAX_FRAME_SIZE, 16384)
        assert max_frame == 16384, f"server advertises SETTINGS_MAX_FRAME_SIZE {max_frame}"
        sid = 0 if ftype == PING else 1
        if ftype == DATA:   # a valid open stream first
            c.send(frame(HEADERS, END_HEADERS, 1, c.encode(c.request_headers("/echo", "POST"))))
        c.send(frame(ftype, 0, sid, b"\0" * (max_frame + 1)))
        g = c.read_until(lambda f: f.type == GOAWAY, 5)
        assert g is not None, f"no GOAWAY for a {max_frame + 1}-byte frame; frames {c.frames}"
        assert g.error_code == FRAME_SIZE_ERROR, f"GOAWAY {err(g.error_code)}, expected FRAME_SIZE_ERROR"
        assert c.read_until_closed(5)
    still_serving(h2c)


def test_frame_length_16mb_header_only(h2c):
    """A frame header announcing 16 MB, then nothing: the server must not wait for (or allocate)
    16 MB; it answers FRAME_SIZE_ERROR from the header alone."""
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        c.send(struct.pack(">BHBBI", 0xFF, 0xFFFF, HEADERS, END_HEADERS, 1))
        g = c.read_until(lambda f: f.type == GOAWAY, 5)
        assert g is not None and g.error_code == FRAME_SIZE_ERROR, (g, c.frames)
    still_serving(h2c)


# ---- concurrent streams -----------------------------------------------------------------------

@pytest.mark.covet_timeout(60)
def test_too_many_concurrent_streams_refused(h2c):
    with RawH2(h2c.port, timeout=10) as c:
        c.handshake()
        limit = c.server_settings.get(tls_certs.SETTINGS_MAX_CONCURRENT_STREAMS)
        assert limit == 100, f"SETTINGS_MAX_CONCURRENT_STREAMS is {limit}, expected 100"
        sids = [c.get("/delayed?ms=1500") for _ in range(limit)]
        extra = c.get("/plaintext")
        rst = c.read_until(lambda f: f.type == RST_STREAM and f.stream_id == extra or f.type == GOAWAY, 5)
        assert rst is not None and rst.type == RST_STREAM, \
            f"stream {limit + 1} was not refused with RST_STREAM: got {rst}; last frames {c.frames[-5:]}"
        assert rst.error_code in (REFUSED_STREAM, PROTOCOL_ERROR), rst
        assert rst.error_code == REFUSED_STREAM, f"expected REFUSED_STREAM, got {err(rst.error_code)}"
        # the 100 admitted streams all complete
        for sid in sids:
            r = c.response(sid, timeout=10)
            assert r.status == 200 and r.body == b"delayed 1500", r
        # and once they are done, a new stream is accepted again on the same connection
        r = c.response(c.get("/plaintext"))
        assert r.status == 200 and r.body == HELLO, r
    still_serving(h2c)


# ---- other floods -----------------------------------------------------------------------------

@pytest.mark.covet_timeout(60)
def test_ping_flood_without_reading(h2c):
    """Thousands of PINGs while never reading the ACKs: the server must bound its output queue
    (close the connection, or just cope) and keep serving others."""
    s = socket.create_connection((HOST, h2c.port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        s.sendall(tls_certs.PREFACE + tls_certs.settings_frame())
        burst = frame(PING, 0, 0, b"12345678") * 1000
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                s.sendall(burst)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
        still_serving(h2c)
    finally:
        s.close()
    still_serving(h2c)


def test_settings_flood(h2c):
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        c.send(tls_certs.settings_frame({tls_certs.SETTINGS_INITIAL_WINDOW_SIZE: 65535}) * 5000)
        c.read_until_closed(3)
    still_serving(h2c)


def test_window_update_overflow_is_flow_control_error(h2c):
    with RawH2(h2c.port, timeout=5) as c:
        c.handshake()
        c.send(tls_certs.window_update_frame(0, 0x7FFFFFFF))
        g = c.read_until(lambda f: f.type == GOAWAY, 5)
        assert g is not None and g.error_code == tls_certs.FLOW_CONTROL_ERROR, (g, c.frames)
    still_serving(h2c)


# ---- stalled TLS handshakes ------------------------------------------------------------------

@pytest.mark.covet_timeout(90)
def test_many_stalled_tls_handshakes(server):
    hello = client_hello_bytes()
    socks = []
    try:
        for i in range(150):
            s = socket.create_connection((HOST, server.port), timeout=5)
            if i % 3 == 1:
                s.sendall(hello[:10])
            elif i % 3 == 2:
                s.sendall(hello[:-5])
            socks.append(s)
        t0 = time.monotonic()
        still_serving(server, tls=True)
        took = time.monotonic() - t0
        assert took < 5, f"a normal client took {took:.1f} s with 150 stalled handshakes open"
    finally:
        for s in socks:
            s.close()
    still_serving(server, tls=True)
