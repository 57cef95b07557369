"""Request bodies through POST /echo: Content-Length, chunked, split sends, 1 MiB, 100-continue."""
import os
import time

from covet_wire import HELLO, RawConn, build_request, chunked

MAX_BODY = 1024 * 1024  # the default --max-body

def echo(port, body, headers=(), timeout=10.0):
    with RawConn(port, timeout=timeout) as c:
        return c.request("POST", "/echo", headers, body)


def test_echo_content_length_and_content_type(server):
    r = echo(server.port, b"hello body", [("Content-Type", "text/x-custom; charset=utf-8")])
    assert (r.status, r.body) == (200, b"hello body"), r
    assert r.header("Content-Type") == "text/x-custom; charset=utf-8", r


def test_echo_default_content_type(server):
    r = echo(server.port, b"abc")
    assert (r.status, r.body) == (200, b"abc"), r
    assert r.header("Content-Type") == "application/octet-stream", r


def test_echo_all_byte_values(server):
    body = bytes(range(256)) * 17
    r = echo(server.port, body)
    assert (r.status, r.body) == (200, body), r


def test_echo_empty_body_content_length_zero(server):
    r = echo(server.port, b"")
    assert r.status == 200, r
    assert r.body == b"" and r.header("Content-Length") == "0", r


def test_post_without_length_or_chunked_has_empty_body(server):
    # RFC 9112 section 6.3: no Content-Length and no Transfer-Encoding means no body, and the
    # next bytes are the next request.
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n" + build_request("GET", "/users/8")
    with RawConn(server.port) as c:
        c.send(data)
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, b""), r
        r2 = c.read_response()
        assert r2.body == b'{"id":8}', r2


def test_chunked_body_with_extensions_and_trailers(server):
    body = (b"5;ext=1\r\nhello\r\n"
            b"6;name=\"quoted value\";flag\r\n world\r\n"
            b"A\r\n0123456789\r\n"
            b"0;last=yes\r\n"
            b"X-Trailer-One: t1\r\n"
            b"X-Trailer-Two: t2\r\n\r\n")
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
    with RawConn(server.port) as c:
        c.send(head + body + build_request("GET", "/users/6"))
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, b"hello world0123456789"), r
        assert r.header("Content-Type") == "text/plain", r
        r2 = c.read_response()
        assert r2.body == b'{"id":6}', f"trailers not consumed correctly: {r2!r}"


def test_chunked_hex_sizes_upper_and_lower_case(server):
    part = os.urandom(0xAB)
    body = b"ab\r\n" + part + b"\r\nAB\r\n" + part + b"\r\n0\r\n\r\n"
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with RawConn(server.port) as c:
        c.send(head + body)
        r = c.read_response("POST")
    assert (r.status, r.body) == (200, part + part), r


def test_chunked_many_tiny_chunks(server):
    payload = os.urandom(3000)
    parts = []
    i = 0
    while i < len(payload):
        n = (i % 9) + 1
        parts.append(payload[i:i + n])
        i += n
    r = echo(server.port, chunked(parts), [("Transfer-Encoding", "chunked")])
    assert (r.status, r.body) == (200, payload), r


def test_chunked_empty_body(server):
    r = echo(server.port, b"0\r\n\r\n", [("Transfer-Encoding", "chunked")])
    assert (r.status, r.body) == (200, b""), r


def test_body_split_across_many_small_sends_with_pauses(server):
    body = os.urandom(4000)
    with RawConn(server.port) as c:
        c.send(build_request("POST", "/echo", [("Content-Length", str(len(body)))]))
        pos, step = 0, 1
        while pos < len(body):
            c.send(body[pos:pos + step])
            pos += step
            step = step * 2 % 397 + 1
            time.sleep(0.01)
        r = c.read_response("POST")
    assert (r.status, r.body) == (200, body), r


def test_chunked_body_split_across_sends(server):
    payload = os.urandom(2000)
    data = build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) \
        + chunked([payload[:700], payload[700:1500], payload[1500:]], trailers=[("X-T", "1")])
    with RawConn(server.port) as c:
        for k in range(0, len(data), 33):
            c.send(data[k:k + 33])
            time.sleep(0.003)
        r = c.read_response("POST")
    assert (r.status, r.body) == (200, payload), r


def test_request_head_sent_byte_by_byte(server):
    data = build_request("GET", "/headers", [("User-Agent", "slow-typist"), ("X-Test", "1")])
    with RawConn(server.port) as c:
        for b in data:
            c.send(bytes([b]))
            time.sleep(0.002)
        r = c.read_response()
    assert r.status == 200 and b"slow-typist" in r.body, r


def test_one_mib_body_content_length(server):
    body = os.urandom(MAX_BODY)
    r = echo(server.port, body, [("Content-Type", "application/x-test")], timeout=20)
    assert r.status == 200, r
    assert len(r.body) == MAX_BODY and r.body == body, "1 MiB echo differs"
    assert r.header("Content-Type") == "application/x-test"


def test_one_mib_body_chunked(server):
    body = os.urandom(MAX_BODY)
    parts = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    r = echo(server.port, chunked(parts), [("Transfer-Encoding", "chunked")], timeout=20)
    assert r.status == 200, r
    assert r.body == body, "1 MiB chunked echo differs"


def test_expect_100_continue(server):
    body = b"x" * 5000
    with RawConn(server.port) as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
                                               ("Content-Length", str(len(body)))]))
        interim = c.read_response("POST", timeout=3, return_interim=True)
        assert interim.status == 100, f"expected '100 Continue' before sending the body: {interim!r}"
        assert interim.status_line.startswith("HTTP/1.1 100"), interim.status_line
        c.send(body)
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, body), r
        # the connection goes on normally
        assert c.get("/plaintext").body == HELLO


def test_expect_100_continue_chunked(server):
    body = b"chunky" * 100
    with RawConn(server.port) as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
                                               ("Transfer-Encoding", "chunked")]))
        interim = c.read_response("POST", timeout=3, return_interim=True)
        assert interim.status == 100, interim
        c.send(chunked([body[:250], body[250:]]))
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, body), r


def test_expect_100_continue_sent_only_once_per_request(server):
    with RawConn(server.port) as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"), ("Content-Length", "3")]))
        assert c.read_response("POST", timeout=3, return_interim=True).status == 100
        c.send(b"abc")
        r = c.read_response("POST")
        assert r.interim == [], f"a second 100 Continue arrived: {r.interim}"
        assert r.body == b"abc", r


def test_expect_100_continue_ignored_for_http10(server):
    # RFC 9110 section 10.1.1: a 100-continue expectation in an HTTP/1.0 request MUST be ignored.
    with RawConn(server.port) as c:
        c.send(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        time.sleep(0.3)
        c.send(b"data")
        r = c.read_response("POST")
        assert r.interim == [], f"100 Continue sent to an HTTP/1.0 client: {r.interim}"
        assert (r.status, r.body) == (200, b"data"), r


def test_body_followed_by_pipelined_request_in_same_send(server):
    data = build_request("POST", "/echo", body=b"first") + build_request("GET", "/users/2") \
        + build_request("POST", "/echo", body=b"") + build_request("GET", "/json")
    with RawConn(server.port) as c:
        c.send(data)
        assert c.read_response("POST").body == b"first"
        assert c.read_response().body == b'{"id":2}'
        assert c.read_response("POST").body == b""
        assert c.read_response().status == 200
