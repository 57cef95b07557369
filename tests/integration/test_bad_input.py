"""Malformed and over-limit requests with the default limits. Each one must get the right status,
then the server closes that connection, stays alive, and serves a NEW connection correctly."""
import pytest

from covet_wire import (HELLO, RawConn, assert_rejected, assert_server_healthy,
                        assert_standard_headers, build_request, expect_413_then_close,
                        raw_exchange, send_until_answered)

H = b"Host: 127.0.0.1\r\n"

# (id, request bytes, accepted statuses)
BAD_REQUESTS = [
    ("garbage", b"\x00\x01\x02\r\n\r\n", 400),
    ("unknown-method-FOO", b"FOO / HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("unknown-method-BREW", b"BREW /plaintext HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("cl-and-te-chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("te-chunked-and-cl", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("two-different-content-lengths", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\nhello!", 400),
    ("content-length-abc", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    ("content-length-negative", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("content-length-fraction", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 1.5\r\n\r\n", 400),
    ("chunk-size-zz", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n", 400),
    ("bare-lf-after-header", b"GET /plaintext HTTP/1.1\r\nHost: x\nX-Foo: bar\r\n\r\n", 400),
    ("bare-lf-everywhere", b"GET /plaintext HTTP/1.1\nHost: x\nX-Foo: bar\n\n", 400),
    ("bare-cr-between-headers", b"GET /plaintext HTTP/1.1\r\nHost: x\rX-Foo: bar\r\n\r\n", 400),
    ("bare-cr-in-value", b"GET /plaintext HTTP/1.1\r\n" + H + b"X-Foo: a\rb\r\n\r\n", 400),
    ("http11-without-host", b"GET /plaintext HTTP/1.1\r\n\r\n", 400),
    ("header-without-colon", b"GET /plaintext HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", 400),
    ("space-before-colon", b"GET /plaintext HTTP/1.1\r\n" + H + b"X-Foo : bar\r\n\r\n", 400),
    # RFC 9110 section 15.6.6 suggests 505 for an unsupported major version, while llhttp-style
    # parsers reject a version they do not know as a syntax error (400). Both refuse the request
    # without guessing at its semantics, so either is correct here.
    ("http-2.0", b"GET /plaintext HTTP/2.0\r\n" + H + b"\r\n", {400, 505}),
    ("http-3.5", b"GET /plaintext HTTP/3.5\r\n" + H + b"\r\n", {400, 505}),
    # Beyond the brief, but RFC MUSTs or plain robustness:
    # RFC 9112 section 3.2: more than one Host field -> 400.
    ("duplicate-host", b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("nul-in-header-value", b"GET /plaintext HTTP/1.1\r\n" + H + b"X-Foo: a\x00b\r\n\r\n", 400),
    ("non-token-header-name", b"GET /plaintext HTTP/1.1\r\n" + H + b"X(Foo): bar\r\n\r\n", 400),
    # RFC 9112 section 6.3: Transfer-Encoding in a request whose final coding is not chunked
    # -> 400 and close (501 for an unimplemented coding is also a refusal).
    ("te-not-ending-in-chunked", b"POST /echo HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", {400, 501}),
]


@pytest.mark.parametrize("data, statuses", [pytest.param(d, s, id=i) for i, d, s in BAD_REQUESTS])
def test_bad_request_rejected_and_connection_closed(server, data, statuses):
    assert_rejected(server, data, statuses)


@pytest.mark.parametrize("data, statuses", [
    pytest.param(d, s, id=i) for i, d, s in BAD_REQUESTS
    if i in ("garbage", "unknown-method-FOO", "http11-without-host", "chunk-size-zz", "http-2.0")
] + [
    pytest.param(build_request("GET", "/search?q=" + "a" * 9000), 414, id="414"),
    pytest.param(build_request("GET", "/plaintext", [("X-Big", "v" * 9000)]), 431, id="431"),
    pytest.param(build_request("POST", "/echo", [("Content-Length", str(2 << 20))]), 413, id="413"),
])
def test_error_responses_carry_standard_headers(server, data, statuses):
    # Every response has Date, Content-Length and Server: covet, protocol refusals included.
    r = assert_rejected(server, data, statuses)
    assert_standard_headers(r, routed=False)


def test_501_for_unknown_method_is_framed(server):
    r = assert_rejected(server, b"BREW /plaintext HTTP/1.1\r\n" + H + b"\r\n", 501)
    assert r.header("Content-Length") is not None, r


def test_bad_request_after_good_one_on_same_connection(server):
    with RawConn(server.port) as c:
        assert c.get("/plaintext").body == HELLO
        c.send(b"\x00\x01\x02\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r
        closed, extra = c.wait_closed(3)
        assert closed and not extra, (closed, extra)
    assert_server_healthy(server)


def test_url_longer_than_default_max_url_is_414(server):
    target = "/search?q=" + "a" * 9000
    assert_rejected(server, build_request("GET", target), 414)


def test_url_just_under_default_limits_is_served(server):
    target = "/search?q=" + "b" * 7000
    with RawConn(server.port) as c:
        r = c.get(target)
    assert (r.status, r.body) == (200, b"b" * 7000), r


def test_headers_larger_than_default_max_header_bytes_is_431(server):
    assert_rejected(server, build_request("GET", "/plaintext", [("X-Big", "v" * 9000)]), 431)


def test_headers_under_default_max_header_bytes_are_served(server):
    with RawConn(server.port) as c:
        r = c.get("/headers", [("X-Test", "w" * 7000)])
    assert r.status == 200 and r.body.count(b"w") == 7000, r


def test_more_than_default_max_headers_is_431(server):
    # Host + 100 more = 101 fields > 100
    hdrs = [(f"X-H{i}", "1") for i in range(100)]
    assert_rejected(server, build_request("GET", "/plaintext", hdrs), 431)


def test_exactly_default_max_headers_is_served(server):
    hdrs = [(f"X-H{i}", "1") for i in range(99)]  # Host + 99 = 100 fields
    with RawConn(server.port) as c:
        r = c.get("/plaintext", hdrs)
    assert (r.status, r.body) == (200, HELLO), r


def test_declared_body_over_default_max_body_is_413_without_reading_it(server):
    # Only the head is sent: the server must answer 413 from Content-Length alone.
    head = build_request("POST", "/echo", [("Content-Length", str(1024 * 1024 + 1))])
    assert_rejected(server, head, 413)


def test_declared_body_over_limit_with_expect_gets_413_not_100(server):
    head = build_request("POST", "/echo", [("Content-Length", str(1024 * 1024 + 1)),
                                           ("Expect", "100-continue")])
    ex = raw_exchange(server.port, head, close_timeout=3)
    assert ex.responses, ex.describe()
    r = ex.responses[0]
    assert r.interim == [], f"100 Continue sent for a body that will be refused:{ex.describe()}"
    assert r.status == 413 and ex.closed, ex.describe()
    assert_server_healthy(server)


def test_chunked_body_growing_past_default_max_body_is_413(server):
    conn = RawConn(server.port, timeout=10)
    head = build_request("POST", "/echo", [("Transfer-Encoding", "chunked")])
    chunk = b"10000\r\n" + b"z" * 0x10000 + b"\r\n"   # 64 KiB per chunk, 20 chunks = 1.25 MiB
    send_until_answered(conn, [head] + [chunk] * 20 + [b"0\r\n\r\n"])
    expect_413_then_close(server, conn)


def test_content_length_body_over_limit_sent_anyway_is_413(server):
    # The client sends the oversized body without waiting; the 413 must still reach it.
    conn = RawConn(server.port, timeout=10)
    size = 1024 * 1024 + 4096
    head = build_request("POST", "/echo", [("Content-Length", str(size))])
    send_until_answered(conn, [head] + [b"y" * 65536] * (size // 65536) + [b"y" * (size % 65536)])
    expect_413_then_close(server, conn)


def test_h2_preface_is_refused_when_http2_is_off(make_server):
    """With --no-http2 an HTTP/2 prior-knowledge preface is a bad HTTP/1.1 request: refused, not hung."""
    server = make_server("--no-http2")
    ex = raw_exchange(server.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", close_timeout=3)
    assert ex.responses and ex.responses[0].status in (400, 505), ex.describe()
    assert_server_healthy(server)


def test_server_survives_a_burst_of_bad_requests(server):
    for _ in range(5):
        for _, data, _ in BAD_REQUESTS:
            ex = raw_exchange(server.port, data, close_timeout=3)
            assert ex.responses and ex.responses[0].status >= 400, ex.describe()
    assert_server_healthy(server)
