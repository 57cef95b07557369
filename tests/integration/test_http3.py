"""HTTP/3 over QUIC (RFC 9114, RFC 9000) on the hello example started with --http3: the routes over
h3, the TLS facts of a QUIC connection, flow control both ways, many streams on one connection,
413, the alt-svc advertisement over TCP, garbage and unknown-version datagrams on the UDP port,
clients that vanish, and graceful shutdown (GOAWAY, in-flight requests finish, exit 0).

The client is aioquic (h3_client.py), a QUIC/HTTP/3 stack independent of the server's; it verifies
the server certificate against the test CA of tls_certs.cert_set(). Raw datagrams go through a
plain UDP socket (h3_client.UdpProbe)."""
import json
import os
import signal
import shutil
import time

import pytest

import tls_certs
from covet_wire import HELLO, HELLO_JSON, HOST, STREAM_BODY
from tls_certs import RawH2, cert_set, tls_args, tls_get

try:
    from h3_client import (QUIC_V1, H3HandshakeError, H3Session, UdpProbe, client_initial, h3_request,
                           h3_requests, long_header, parse_version_negotiation)
except ImportError as e:  # aioquic (requirements-dev.txt) is not installed
    AIOQUIC_MISSING = (f"aioquic is not importable ({e}); it is the HTTP/3 client of these tests: "
                       "pip install -r requirements-dev.txt")
else:
    AIOQUIC_MISSING = None

if AIOQUIC_MISSING and not os.environ.get("COVET_REQUIRE_SERVER"):
    pytest.skip(AIOQUIC_MISSING, allow_module_level=True)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI is not installed")

# The module-scoped `server` fixture (conftest.py, once per backend) starts hello with SERVER_ARGS, as in
# test_tls.py and test_http2.py: TLS on TCP and HTTP/3 on the same UDP port.
MODULE_MAX_BODY = 4 << 20   # the module's server: room for the 1 MiB echo whatever the default limit
SERVER_ARGS = tls_certs.LazyArgs(lambda c: [*tls_args(c), "--http3", "--max-body", str(MODULE_MAX_BODY)])

ALT_SVC = 'h3=":{port}"; ma=86400'
# RFC 9114 section 4.2: connection-specific fields are malformed in HTTP/3
CONNECTION_SPECIFIC = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
RESERVED_VERSION = 0x0A0A0A0A   # RFC 9000 section 15: a 0x?a?a?a?a version, never supported: forces VN


@pytest.fixture(scope="module", autouse=True)
def _aioquic_required():
    if AIOQUIC_MISSING:
        pytest.fail(f"{AIOQUIC_MISSING} (COVET_REQUIRE_SERVER=1: not skipped)", pytrace=False)


# ---- helpers ---------------------------------------------------------------------------------

def session(srv, **kw) -> "H3Session":
    return H3Session(srv.port, ca=cert_set().ca, **kw)


def h3_get(srv, path: str, headers=()):
    return h3_request(HOST, srv.port, "GET", path, headers, ca=cert_set().ca)


def h3_make_server(make_server, *extra, threads: int = 2):
    """A server of this test's own with HTTP/3 on (TLS on TCP and QUIC on UDP, same port)."""
    return make_server(*tls_args(cert_set()), "--http3", *extra, threads=threads)


def assert_h3_served(srv) -> None:
    r = h3_get(srv, "/plaintext")
    assert (r.status, r.body) == (200, HELLO), f"a fresh HTTP/3 client was not served: {r}"


def assert_h3_response_fields(r) -> None:
    bad = CONNECTION_SPECIFIC & {k for k, _ in r.headers}
    assert not bad, f"connection-specific fields {bad} in an HTTP/3 response: {r}"
    assert all(k == k.lower() for k, _ in r.headers), f"upper-case field name in an HTTP/3 response: {r}"
    assert [k for k, _ in r.pseudo] == [":status"], f"response pseudo-headers should be exactly :status: {r}"
    for v in r.headers_named("content-length"):
        assert int(v) == len(r.body), f"content-length {v} but {len(r.body)} body bytes: {r}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the routes over h3 ----------------------------------------------------------------------

@pytest.mark.parametrize("path, media, body", [
    ("/plaintext", "text/plain", HELLO),
    ("/json", "application/json", HELLO_JSON),
    ("/users/7", "application/json", b'{"id":7}'),
    ("/users/42?q=hello%20there", "application/json", b'{"id":42,"q":"hello there"}'),
    ("/search?q=a%20b%26c%3Dd%2F%C3%A9", "text/plain", "a b&c=d/é".encode()),
    ("/search", "text/plain", b""),
    ("/delayed?ms=20", "text/plain", b"delayed 20"),
])
def test_get_routes(server, path, media, body):
    r = h3_get(server, path)
    assert r.status == 200, r
    assert r.media_type == media, r
    assert r.body == body, r
    assert r.ended and r.reset_code is None, r
    assert_h3_response_fields(r)


def test_not_found_and_method_not_allowed_keep_the_connection(server):
    with session(server) as s:
        for path in ("/nope", "/users/abc", "/plaintext/extra", "/"):
            r = s.get(path)
            assert r.status == 404, (path, r)
        r = s.request("DELETE", "/plaintext")
        assert r.status == 405, r
        r = s.get("/plaintext")
        assert (r.status, r.body) == (200, HELLO), f"the connection was not usable after 404/405: {r}"
        assert s.terminated is None, s.describe()


def test_headers_route(server):
    r = h3_get(server, "/headers", [("user-agent", "covet-h3-test"), ("x-test", "some value")])
    assert r.status == 200, r
    assert json.loads(r.body) == {"user-agent": "covet-h3-test", "x-test": "some value"}, r
    r = h3_get(server, "/headers")
    assert json.loads(r.body) == {"user-agent": None, "x-test": None}, r


def test_post_echo_small_and_empty(server):
    with session(server) as s:
        r = s.request("POST", "/echo", [("content-type", "application/x-covet-test")], b"hello h3")
        assert (r.status, r.body) == (200, b"hello h3"), r
        assert r.header("content-type") == "application/x-covet-test", r
        r = s.request("POST", "/echo", [("content-length", "5")], b"12345")
        assert (r.status, r.body) == (200, b"12345"), r
        assert r.media_type == "application/octet-stream", r
        r = s.request("POST", "/echo", [("content-type", "text/plain")], b"")
        assert (r.status, r.body) == (200, b""), r
        assert_h3_response_fields(r)


def test_stream_route(server):
    r = h3_get(server, "/stream")
    assert r.status == 200, r
    assert r.body == STREAM_BODY, r
    assert r.media_type == "text/plain", r
    assert_h3_response_fields(r)


def test_tls_route_reports_http3(server):
    with session(server) as s:
        assert s.alpn == "h3", s.describe()
        r = s.get("/tls")
    assert r.status == 200, r
    info = json.loads(r.body)
    assert info["scheme"] == "https", info
    assert info["protocol"] == "HTTP/3", info
    assert info["tls_version"] == "TLSv1.3", info
    assert info["alpn"] == "h3", info
    assert info["sni"] == "localhost", info


# ---- the QUIC handshake: certificate and ALPN ------------------------------------------------

def test_certificate_is_verified(server):
    """The QUIC handshake presents the test certificate: the test CA verifies it for localhost,
    another CA does not, and neither does the wrong host name."""
    c = cert_set()
    with H3Session(server.port, ca=c.ca) as s:
        assert s.alpn == "h3"
    with pytest.raises(H3HandshakeError):
        H3Session(server.port, ca=c.rogue_ca, timeout=5).close()
    with pytest.raises(H3HandshakeError):
        H3Session(server.port, ca=c.ca, server_name="wrong.test", timeout=5).close()
    assert_h3_served(server)


def test_alpn_other_than_h3_is_refused(server):
    """RFC 9001 section 8.1: without an agreed application protocol the server closes the
    connection during the handshake with a TLS alert, a CRYPTO_ERROR (0x100-0x1ff;
    no_application_protocol is 0x178)."""
    s = H3Session(server.port, ca=cert_set().ca, alpn=("hq-interop",), require_h3=False, timeout=5, connect=False)
    try:
        with pytest.raises(H3HandshakeError):
            s.connect()
        t = s.terminated
        assert t is not None, f"the handshake timed out instead of being refused: {s.describe()}"
        assert 0x100 <= t.error_code <= 0x1FF, f"refused with 0x{t.error_code:x}, not a CRYPTO_ERROR: {s.describe()}"
    finally:
        s.close()
    assert_h3_served(server)


# ---- bodies and flow control -----------------------------------------------------------------

@pytest.mark.covet_timeout(120)
@pytest.mark.parametrize("windows", ["default", "small_client_windows"])
def test_post_echo_1mib(server, windows):
    """1 MiB up and 1 MiB down on one stream. With small client windows (64 KiB per stream,
    256 KiB per connection) the server must stop at the client's limits and go on after each
    MAX_STREAM_DATA/MAX_DATA; the upload goes through the server's windows either way."""
    kw = {"max_stream_data": 64 * 1024, "max_data": 256 * 1024} if windows != "default" else {}
    payload = os.urandom(1 << 20)
    with session(server, timeout=60, **kw) as s:
        r = s.request("POST", "/echo", [("content-type", "application/x-covet-test")], payload)
        assert r.status == 200, r
        assert len(r.body) == len(payload) and r.body == payload, \
            f"echo differs: {len(r.body)} bytes back of {len(payload)}"
        assert r.header("content-type") == "application/x-covet-test", r
        assert_h3_response_fields(r)
        r = s.get("/plaintext")
        assert (r.status, r.body) == (200, HELLO), r


def test_body_over_max_body_is_413(make_server):
    srv = h3_make_server(make_server, "--max-body", "1000")
    with session(srv) as s:
        r = s.request("POST", "/echo", [("content-type", "text/plain")], b"x" * 1000)
        assert (r.status, r.body) == (200, b"x" * 1000), f"a body of exactly --max-body was refused: {r}"
        # declared with content-length: refused from the head
        r = s.request("POST", "/echo", [("content-length", "5000")], b"y" * 5000)
        assert r.status == 413, r
        # no content-length: refused once the DATA frames go over the limit
        r = s.request("POST", "/echo", [], b"z" * 5000)
        assert r.status == 413, r
        r = s.request("POST", "/echo", [], os.urandom(300_000))
        assert r.status == 413, r
        # a 413 ends that request only
        r = s.get("/plaintext")
        assert (r.status, r.body) == (200, HELLO), f"the connection was not usable after 413: {r}"
        assert s.terminated is None, s.describe()


# ---- concurrency -----------------------------------------------------------------------------

@pytest.mark.covet_timeout(90)
def test_100_concurrent_requests_on_one_connection(server):
    """100 requests started before any answer is read, on one QUIC connection; half of them wait
    300 ms in the handler, so answering them one after another would take 15 s."""
    reqs = [("GET", f"/users/{i}?q=v{i}") if i % 2 == 0 else ("GET", "/delayed?ms=300") for i in range(100)]
    with session(server, timeout=30) as s:
        t0 = time.monotonic()
        rs = s.gather(reqs, timeout=30)
        took = time.monotonic() - t0
        assert s.terminated is None, s.describe()
    assert len({r.stream_id for r in rs}) == 100
    for i, r in enumerate(rs):
        want = b'{"id":%d,"q":"v%d"}' % (i, i) if i % 2 == 0 else b"delayed 300"
        assert (r.status, r.body) == (200, want), (i, r)
    assert took < 10, f"100 requests on one connection took {took:.1f} s: the streams were not served concurrently"


def test_many_connections_at_once(server):
    """8 connections (spread over the server's workers by their addresses), 10 requests each, all
    in flight together."""
    sessions = [session(server) for _ in range(8)]
    try:
        futures = [(n, i, s.send("GET", f"/users/{n * 100 + i}")) for n, s in enumerate(sessions) for i in range(10)]
        for n, i, f in futures:
            r = f.result(20)
            assert (r.status, r.body) == (200, b'{"id":%d}' % (n * 100 + i)), (n, i, r)
    finally:
        for s in sessions:
            s.close()


H3_MESSAGE_ERROR = 0x10E


def test_a_malformed_request_resets_its_stream_and_the_connection_goes_on(server):
    """RFC 9114 §4.1.2: a malformed request (here a Content-Length its DATA does not match) is a stream error:
    that stream is reset with H3_MESSAGE_ERROR, and the connection's other requests, before and after it, are
    served (the connection used to be closed with a transport INTERNAL_ERROR)."""
    with session(server) as s:
        pending = s.start("GET", "/delayed?ms=300")
        bad = s.request("POST", "/echo", [("content-length", "2")], b"longer than two")
        assert bad.reset_code == H3_MESSAGE_ERROR and bad.status is None, bad
        r = s.get("/plaintext")
        assert (r.status, r.body) == (200, HELLO), f"the connection was not usable after a malformed request: {r}"
        r = s.response(pending)
        assert (r.status, r.body) == (200, b"delayed 300"), f"a request in flight was lost: {r}"
        assert s.terminated is None, s.describe()


def test_a_field_value_with_cr_lf_or_nul_never_reaches_the_handler(server):
    """nghttp3 drops a field whose value has CR, LF or NUL (or leading whitespace) before the engine sees it, so
    it can never be passed on to split a header downstream; the request itself is served."""
    with session(server) as s:
        for value in ("a\r\nx-evil: 1", "nul\x00x", "a\nb"):
            r = s.get("/headers", [("x-test", value)])
            assert (r.status, json.loads(r.body)) == (200, {"user-agent": None, "x-test": None}), (value, r)
        r = s.get("/headers", [("x-test", "kept")])
        assert json.loads(r.body)["x-test"] == "kept", r


def test_the_first_answer_on_a_new_connection_is_not_held_back(server):
    """ngtcp2 0.12 paces by its 333 ms initial RTT until it has an RTT sample, which held the packet after the
    server's handshake flight, the answer to a connection's first request, ~20 ms on any network (loopback
    included). The first answer on a connection must come about as fast as the second one."""
    first, second = [], []
    for _ in range(7):
        with session(server) as s:
            a, b = s.get("/plaintext"), s.get("/plaintext")
            assert (a.status, b.status) == (200, 200), (a, b)
            first.append(a.finished_at - a.started_at)
            second.append(b.finished_at - b.started_at)
    first.sort()
    second.sort()
    assert first[3] < second[3] + 0.010, f"first answers {first} s, second answers {second} s: a pacing stall"


def test_h3_requests_helper_one_connection(server):
    rs = h3_requests(HOST, server.port, [("GET", "/plaintext"), ("GET", "/json"),
                                         ("POST", "/echo", [("content-type", "a/b")], b"body")],
                     ca=cert_set().ca)
    assert [(r.status, r.body) for r in rs] == [(200, HELLO), (200, HELLO_JSON), (200, b"body")], rs
    assert [r.stream_id for r in rs] == [0, 4, 8], rs


# ---- alt-svc over TCP --------------------------------------------------------------------------

def test_alt_svc_advertised_over_https(server):
    want = ALT_SVC.format(port=server.port)
    for path in ("/plaintext", "/json"):
        r, s = tls_get(server.port, path)
        s.close()
        assert r.status == 200, r
        assert r.headers_named("alt-svc") == [want], f"HTTP/1.1 over TLS with --http3: {r}"
    with RawH2(server.port, tls=True, ca=cert_set().ca) as c:
        assert c.alpn == "h2"
        r = c.response(c.get("/plaintext"))
    assert r.status == 200, r
    assert r.header("alt-svc") == want, f"HTTP/2 over TLS with --http3: {r}"


def test_no_alt_svc_and_no_quic_without_http3(make_server):
    srv = make_server(*tls_args(cert_set()))
    r, s = tls_get(srv.port, "/plaintext")
    s.close()
    assert r.status == 200 and r.header("alt-svc") is None, r
    with RawH2(srv.port, tls=True, ca=cert_set().ca) as c:
        r = c.response(c.get("/plaintext"))
    assert r.status == 200 and r.header("alt-svc") is None, r
    with pytest.raises(H3HandshakeError):
        H3Session(srv.port, ca=cert_set().ca, timeout=2).close()


# ---- garbage on the UDP port -----------------------------------------------------------------

def _garbage(case: str) -> list[bytes]:
    if case == "random":
        sizes = [1, 2, 3, 7, 20, 21, 64, 100, 500, 1199, 1200, 1252, 1350, 1500, 2000, 9000]
        out = [os.urandom(n) for n in sizes for _ in range(3)]
        # random bodies behind each kind of first byte: long header (any type), short header
        out += [bytes([first]) + os.urandom(n) for first in (0xC0, 0xD0, 0xE0, 0xF0, 0x40, 0x00, 0x80)
                for n in (4, 30, 1250)]
        return out
    if case == "one_byte":
        return [bytes([b]) for b in (0x00, 0x01, 0x40, 0x7F, 0x80, 0xC0, 0xC3, 0xF0, 0xFF)]
    if case == "truncated_initial":
        init = client_initial()
        cuts = [1, 4, 5, 6, 7, 13, 14, 15, 20, 30, 45, 60, 100, 300, 1199, len(init) - 17, len(init) - 1]
        out = [init[:n] for n in cuts if n < len(init)]
        corrupted = bytearray(init)
        corrupted[len(init) // 2] ^= 0xFF           # the AEAD tag no longer matches
        out.append(bytes(corrupted))
        bad_len = bytearray(init)
        bad_len[5] = 0xFF                           # a DCID length over 20
        out.append(bytes(bad_len))
        out.append(init + os.urandom(200))          # a coalesced tail of garbage after a real Initial
        return out
    if case == "unknown_version":
        return [long_header(RESERVED_VERSION, os.urandom(8), os.urandom(8)),
                long_header(0xFF00001D, os.urandom(8), os.urandom(8)),            # draft-29
                long_header(RESERVED_VERSION, os.urandom(20), os.urandom(20), size=1500),
                long_header(RESERVED_VERSION, os.urandom(255), os.urandom(255), size=1300),  # v1's 20-byte limit
                long_header(RESERVED_VERSION, b"", b"", size=1200),
                long_header(RESERVED_VERSION, os.urandom(8), os.urandom(8), size=60),
                long_header(0, os.urandom(8), os.urandom(8), size=1200)]          # a VN sent to the server
    if case == "short_header":
        return [bytes([0x40 | (i & 0x3F)]) + os.urandom(n) for i, n in enumerate((8, 9, 21, 40, 100, 1200, 1400))]
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["random", "one_byte", "truncated_initial", "unknown_version", "short_header"])
def test_garbage_datagrams_do_not_hurt(make_server, case):
    srv = h3_make_server(make_server)
    with session(srv) as established:
        assert established.get("/plaintext").status == 200
        with UdpProbe(srv.port) as probe:
            for _ in range(3):
                for d in _garbage(case):
                    probe.send(d)
                time.sleep(0.05)
            probe.drain(0.3)   # whatever came back (VN, stateless resets): not judged here
        srv.assert_alive()
        r = established.get("/json")
        assert (r.status, r.body) == (200, HELLO_JSON), f"an established connection broke after {case}: {r}"
        assert established.terminated is None, established.describe()
    assert_h3_served(srv)
    r, s = tls_get(srv.port, "/plaintext")
    s.close()
    assert r.status == 200, r


def test_garbage_from_an_established_clients_address(make_server):
    """Garbage datagrams carrying the DCID of a live connection (a short header with random
    protected payload) are dropped; that connection goes on."""
    srv = h3_make_server(make_server)
    with session(srv) as s:
        assert s.get("/plaintext").status == 200
        dcid = s.server_cid
        with UdpProbe(srv.port) as probe:
            for n in (1, 20, 100, 1200):
                probe.send(bytes([0x40]) + dcid + os.urandom(n))
        time.sleep(0.2)
        r = s.get("/json")
        assert (r.status, r.body) == (200, HELLO_JSON), r
    assert_h3_served(srv)


# ---- version negotiation ---------------------------------------------------------------------

def test_unknown_version_gets_version_negotiation(server):
    dcid, scid = os.urandom(8), os.urandom(8)
    packet = long_header(RESERVED_VERSION, dcid, scid, size=1200)
    with UdpProbe(server.port) as probe:
        reply = None
        for _ in range(3):
            probe.send(packet)
            reply = probe.recv(1.0)
            if reply is not None:
                break
    assert reply is not None, "no reply to a 1200-byte long header with an unknown version"
    vn = parse_version_negotiation(reply)
    assert vn.first_byte & 0x80, f"VN first byte 0x{vn.first_byte:02x} lacks the long-header bit"
    assert vn.version == 0, f"VN version field is 0x{vn.version:08x}, not 0"
    # RFC 9000 section 17.2.1: the connection IDs are echoed, swapped
    assert vn.dcid == scid, f"VN DCID {vn.dcid.hex()} is not the client's SCID {scid.hex()}"
    assert vn.scid == dcid, f"VN SCID {vn.scid.hex()} is not the client's DCID {dcid.hex()}"
    assert QUIC_V1 in vn.versions, f"VN lists {[hex(v) for v in vn.versions]} without QUIC v1"
    assert RESERVED_VERSION not in vn.versions, [hex(v) for v in vn.versions]
    assert 0 not in vn.versions, [hex(v) for v in vn.versions]
    assert_h3_served(server)


def test_no_version_negotiation_for_small_or_vn_packets(server):
    """RFC 9000 section 5.2.2: an unknown version in a datagram too small to open a connection
    (under 1200 bytes) is dropped, not answered (no amplification); and section 6.1: a Version
    Negotiation packet is never answered with another."""
    with UdpProbe(server.port) as probe:
        for _ in range(2):
            probe.send(long_header(RESERVED_VERSION, os.urandom(8), os.urandom(8), size=100))
            probe.send(long_header(RESERVED_VERSION, os.urandom(8), os.urandom(8), size=1199))
            probe.send(long_header(0, os.urandom(8), os.urandom(8),
                                   payload=b"\x00\x00\x00\x01" * 295))   # 1203 bytes: big enough
        replies = probe.drain(1.0)
    assert replies == [], f"the server answered {len(replies)} datagram(s): {[d[:40].hex() for d in replies]}"
    assert_h3_served(server)


# ---- clients that vanish ---------------------------------------------------------------------

@pytest.mark.covet_timeout(90)
def test_vanished_clients_do_not_stop_others(make_server):
    """Clients that finish the handshake and then go away without a word (no CONNECTION_CLOSE,
    their port closed): idle, with a request body half sent, and with a response still to come.
    Others are served meanwhile, the server does not spin on them, and shutdown is not held up
    past its deadline."""
    srv = h3_make_server(make_server, "--shutdown-timeout-ms", "3000")
    gone = []
    for _ in range(3):
        s = session(srv)
        assert s.alpn == "h3"
        gone.append(s)
    s = session(srv)
    s.start("POST", "/echo", [("content-length", "100000")], b"a" * 1000, end_stream=False)
    gone.append(s)
    s = session(srv)
    s.start("GET", "/delayed?ms=300")
    gone.append(s)
    for s in gone:
        s.abandon()

    cpu_before = cpu_seconds(srv.pid)
    with session(srv) as s:
        t0 = time.monotonic()
        rs = s.gather([("GET", f"/users/{i}") for i in range(20)])
        took = time.monotonic() - t0
    assert [(r.status, r.body) for r in rs] == [(200, b'{"id":%d}' % i) for i in range(20)], rs
    assert took < 5, f"20 requests took {took:.1f} s next to vanished clients"
    time.sleep(2.0)
    srv.assert_alive()
    assert_h3_served(srv)
    cpu = cpu_seconds(srv.pid) - cpu_before
    assert cpu < 1.5, f"the server used {cpu:.2f} CPU-s in ~2.5 s with only vanished clients left: spinning?"
    took = srv.stop()
    assert took < 9, f"shutdown took {took:.1f} s with --shutdown-timeout-ms 3000"


# ---- graceful shutdown -----------------------------------------------------------------------

@pytest.mark.covet_timeout(60)
def test_graceful_shutdown_goaway_and_in_flight_requests_finish(make_server):
    srv = h3_make_server(make_server)
    with session(srv, timeout=15) as s:
        assert s.get("/plaintext").status == 200                       # stream 0
        slow = s.start("GET", "/delayed?ms=1500")
        slower = s.start("GET", "/delayed?ms=2000")
        time.sleep(0.3)
        srv.send_sigterm()
        term_at = time.monotonic()
        goaways = s.wait_goaway(1.0)
        assert goaways, f"no GOAWAY on the server's control stream within 1 s of SIGTERM: {s.describe()}"
        r1 = s.response(slow, timeout=10)
        r2 = s.response(slower, timeout=10)
        assert (r1.status, r1.body) == (200, b"delayed 1500"), f"in-flight request cut by shutdown: {r1}"
        assert (r2.status, r2.body) == (200, b"delayed 2000"), f"in-flight request cut by shutdown: {r2}"
        assert s.goaway_at < r1.finished_at, "GOAWAY came only after the in-flight requests were answered"
        goaways = list(s.goaways)
        # RFC 9114 section 5.2: a client-initiated bidirectional stream ID, covering the requests
        # in flight, never increasing from one GOAWAY to the next
        assert all(g % 4 == 0 for g in goaways), f"GOAWAY ids {goaways} are not client bidi stream ids"
        assert goaways[-1] > slower, f"GOAWAY id {goaways[-1]} excludes in-flight stream {slower}"
        assert goaways == sorted(goaways, reverse=True), f"GOAWAY ids increased: {goaways}"
        rc = srv.wait_exit(15)
        assert rc == 0, f"exit code {rc} after graceful shutdown; stderr:\n{srv.stderr_tail()}"
        assert srv.stopped_at - term_at < 8, \
            f"exit {srv.stopped_at - term_at:.1f} s after SIGTERM: held until the drain deadline?"
        term = s.wait_terminated(3.0)
        assert term is not None, f"the server exited without closing the QUIC connection: {s.describe()}"
        assert term.error_code in (0x0, 0x100), f"connection closed with error 0x{term.error_code:x}: {s.describe()}"


def test_graceful_shutdown_closes_idle_connections_promptly(make_server):
    srv = h3_make_server(make_server)
    sessions = [session(srv) for _ in range(3)]
    try:
        for s in sessions:
            assert s.get("/plaintext").status == 200
        srv.send_sigterm()
        term_at = time.monotonic()
        for s in sessions:
            term = s.wait_terminated(8.0)
            assert term is not None, f"an idle connection was not closed during shutdown: {s.describe()}"
            assert term.error_code in (0x0, 0x100), f"closed with error 0x{term.error_code:x}: {s.describe()}"
            assert s.goaways, f"closed without a GOAWAY first: {s.describe()}"
        rc = srv.wait_exit(15)
        assert rc == 0, f"exit code {rc}; stderr:\n{srv.stderr_tail()}"
        assert srv.stopped_at - term_at < 8, f"idle connections held the exit {srv.stopped_at - term_at:.1f} s"
    finally:
        for s in sessions:
            s.close()



# ---- address validation (Retry) and stateless resets ----

def _initial_with_token(token: bytes) -> bytes:
    """A real client Initial (aioquic, made offline) that carries `token` (RFC 9000 section 17.2.2)."""
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    import ssl
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost", token=token)
    config.verify_mode = ssl.CERT_NONE
    quic = QuicConnection(configuration=config)
    quic.connect((HOST, 443), now=time.monotonic())
    return quic.datagrams_to_send(now=time.monotonic())[0][0]


def _long_type(packet: bytes) -> int:
    """The v1 long-header packet type: 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry."""
    assert packet[0] & 0x80, f"not a long-header packet: first byte 0x{packet[0]:02x}"
    return (packet[0] & 0x30) >> 4


def _first_reply(port: int, packet: bytes) -> bytes:
    with UdpProbe(port) as probe:
        for _ in range(3):
            probe.send(packet)
            reply = probe.recv(1.0)
            if reply is not None:
                return reply
    raise AssertionError("the server did not answer the Initial")


def test_without_retry_an_initial_gets_the_handshake(server):
    assert _long_type(_first_reply(server.port, client_initial())) == 0  # Initial (ServerHello), no Retry


def test_retry_validates_the_address_first_and_the_client_then_gets_served(make_server):
    srv = h3_make_server(make_server, "--h3-retry")
    reply = _first_reply(srv.port, client_initial())
    assert _long_type(reply) == 3, f"expected a Retry, got long-header type {_long_type(reply)}"
    assert int.from_bytes(reply[1:5], "big") == QUIC_V1
    r = h3_get(srv, "/plaintext")  # aioquic follows the Retry with its token
    assert (r.status, r.body) == (200, HELLO)


def test_forged_retry_token_is_refused(make_server):
    srv = h3_make_server(make_server, "--h3-retry")
    forged = bytes([0xB6]) + os.urandom(80)  # the Retry token's magic byte, then garbage
    reply = _first_reply(srv.port, _initial_with_token(forged))
    # CONNECTION_CLOSE(INVALID_TOKEN) in an Initial (no state kept), never a handshake or another Retry.
    assert _long_type(reply) == 0, f"expected an Initial with CONNECTION_CLOSE, got type {_long_type(reply)}"
    assert len(reply) < 1200, f"a {len(reply)}-byte reply looks like a handshake, not a refusal"
    assert_h3_served(srv)


def test_unknown_connection_gets_a_stateless_reset(server):
    # A short-header packet for a connection ID of ours (18 bytes) that no connection has.
    packet = bytes([0x40 | 0x01]) + os.urandom(18) + os.urandom(60)
    with UdpProbe(server.port) as probe:
        probe.send(packet)
        reply = probe.recv(2.0)
    assert reply is not None, "no stateless reset for a packet of an unknown connection"
    assert not reply[0] & 0x80 and reply[0] & 0x40, f"not shaped as a short-header packet: 0x{reply[0]:02x}"
    assert 21 <= len(reply) < len(packet), f"a {len(reply)}-byte reset for a {len(packet)}-byte packet"
    # Too short to be answered (an answer could trigger another: RFC 9000 section 10.3.3).
    with UdpProbe(server.port) as probe:
        probe.send(bytes([0x41]) + os.urandom(18) + os.urandom(3))
        assert probe.recv(0.5) is None
    assert_h3_served(server)


def _h3_serial(port: int) -> int:
    """The serial number of the certificate a new HTTP/3 connection is shown."""
    with H3Session(port, ca=cert_set().ca) as s:
        s.connect()
        return s._client._quic.tls._peer_certificate.serial_number


@pytest.mark.covet_timeout(90)
def test_sighup_reloads_the_http3_certificate(make_server, tmp_path):
    c = cert_set()
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(c.server_cert, cert)
    shutil.copy(c.server_key, key)
    srv = make_server("--tls-cert", cert, "--tls-key", key, "--http3")
    assert _h3_serial(srv.port) == c.server_serial
    old = session(srv).connect()  # opened before the reload: keeps working
    new_cert, new_key = c.server_leaf(tmp_path, "next-h3", serial=0x5006)
    os.replace(new_key, key)
    os.replace(new_cert, cert)
    os.kill(srv.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while _h3_serial(srv.port) != 0x5006 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _h3_serial(srv.port) == 0x5006, "new HTTP/3 connections do not see the reloaded certificate"
    r = old.get("/plaintext")
    assert (r.status, r.body) == (200, HELLO)
    old.close()
    # A failed reload keeps the current certificate.
    cert.write_text("this is not a certificate\n")
    os.kill(srv.pid, signal.SIGHUP)
    time.sleep(1.0)
    srv.assert_alive()
    assert _h3_serial(srv.port) == 0x5006


def test_retry_starts_by_itself_when_many_handshakes_are_in_progress(make_server):
    # An Initial flood from spoofed sources leaves half-open handshakes: above the threshold, new clients must
    # first prove their address with a Retry, so the flood stops costing state.
    srv = h3_make_server(make_server, "--h3-retry-above", "3", threads=1)
    with UdpProbe(srv.port) as a, UdpProbe(srv.port) as b, UdpProbe(srv.port) as c:
        for probe in (a, b, c):  # three handshakes started and never finished
            probe.send(client_initial())
            reply = probe.recv(2.0)
            assert reply is not None and _long_type(reply) == 0, "below the threshold: no Retry"
        reply = _first_reply(srv.port, client_initial())
        assert _long_type(reply) == 3, "above the threshold a new client gets a Retry"
    r = h3_get(srv, "/plaintext")  # a real client follows the Retry and is served
    assert (r.status, r.body) == (200, HELLO)


def test_ecn_marks_on_the_servers_packets(server):
    # ngtcp2 validates ECN on the path: its first packets carry ECT(0) in the IP header (RFC 9000 section 13.4),
    # which needs the engine to pass each packet's codepoint to the socket (IP_TOS) and read the client's.
    import socket as socket_module
    s = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_DGRAM)
    try:
        s.setsockopt(socket_module.IPPROTO_IP, socket_module.IP_RECVTOS, 1)
        s.settimeout(2.0)
        s.sendto(client_initial(), (HOST, server.port))
        marks = []
        for _ in range(2):
            data, ancillary, _flags, _addr = s.recvmsg(65536, 1024)
            tos = [a[2][0] for a in ancillary if a[0] == socket_module.IPPROTO_IP and a[1] == socket_module.IP_TOS]
            marks.append(tos[0] & 0x3 if tos else None)
    finally:
        s.close()
    assert 2 in marks, f"no ECT(0) on the server's first packets (ECN codepoints seen: {marks})"


def test_session_resumption_with_a_ticket(server):
    with session(server) as first:
        first.connect()
        r = first.get("/tls")
        assert r.status == 200 and json.loads(r.body)["session_reused"] is False
        deadline = time.monotonic() + 3
        while not first.tickets and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.tickets, "the server sent no session ticket after the handshake"
        ticket = first.tickets[-1]
    with session(server, session_ticket=ticket) as second:
        second.connect()
        assert second.session_resumed, "the ticket did not resume the session"
        r = second.get("/tls")
        assert r.status == 200 and json.loads(r.body)["session_reused"] is True, r.body


def test_zero_rtt_runs_safe_methods_and_refuses_the_others_with_425(make_server):
    # A resuming client's requests in 0-RTT early data: an attacker can replay them, so only GET/HEAD/OPTIONS run
    # from it (RFC 8470); a POST gets 425 Too Early and is to be sent again after the handshake.
    import asyncio

    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration
    from quic_early import EarlyClient

    srv = h3_make_server(make_server, "--h3-0rtt")

    async def run():
        tickets = []
        first = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
        first.load_verify_locations(cafile=str(cert_set().ca))
        async with connect(HOST, srv.port, configuration=first, create_protocol=EarlyClient,
                           session_ticket_handler=tickets.append) as c:
            await c.request(b"GET", b"/plaintext")
            for _ in range(30):
                if tickets:
                    break
                await asyncio.sleep(0.05)
        assert tickets and tickets[-1].max_early_data_size, "no ticket allowing early data"
        second = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost",
                                   session_ticket=tickets[-1])
        second.load_verify_locations(cafile=str(cert_set().ca))
        async with connect(HOST, srv.port, configuration=second, create_protocol=EarlyClient,
                           wait_connected=False) as c:
            get, post = c.request(b"GET", b"/tls"), c.request(b"POST", b"/echo", b"not twice")
            got, posted = await asyncio.wait_for(get, 5), await asyncio.wait_for(post, 5)
            return got, posted, c._quic.tls.early_data_accepted

    got, posted, accepted = asyncio.run(run())
    assert accepted, "the server did not accept the early data"
    assert got["status"] == 200 and json.loads(got["body"])["session_reused"] is True
    assert posted["status"] == 425, posted
