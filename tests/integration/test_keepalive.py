"""Persistent connections: HTTP/1.1 default keep-alive, HTTP/1.0 rules, Connection: close."""
import http.client
import json

import pytest

from covet_wire import HELLO, HELLO_JSON, STREAM_BODY, RawConn, build_request


def test_many_requests_on_one_http_client_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.connect()
        sock = conn.sock
        for i in range(300):
            kind = i % 5
            if kind == 0:
                conn.request("GET", "/plaintext")
                want = HELLO
            elif kind == 1:
                conn.request("GET", "/json")
                want = HELLO_JSON
            elif kind == 2:
                conn.request("GET", f"/users/{i}")
                want = b'{"id":%d}' % i
            elif kind == 3:
                payload = f"payload-{i}".encode() * (i % 7 + 1)
                conn.request("POST", "/echo", body=payload)
                want = payload
            else:
                conn.request("GET", "/stream")
                want = STREAM_BODY
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (i, resp.status, body)
            if kind == 2:
                assert json.loads(body) == {"id": i}
            else:
                assert body == want, (i, body)
            assert not resp.will_close, f"server announced close on request {i}"
            assert conn.sock is sock, f"http.client had to reconnect before request {i + 1}"
    finally:
        conn.close()


def test_http11_default_is_keep_alive(server):
    with RawConn(server.port) as c:
        r1 = c.get("/plaintext")
        assert "close" not in r1.tokens("Connection"), r1
        r2 = c.get("/json")
        assert (r2.status, r2.body) == (200, HELLO_JSON), r2


def test_http10_without_keep_alive_is_closed_after_response(server):
    with RawConn(server.port) as c:
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == HELLO, r
        # A server answers with its own highest minor version (RFC 9110 section 6.2), so
        # HTTP/1.0 and HTTP/1.1 are both fine here.
        assert r.version in ("HTTP/1.0", "HTTP/1.1"), r
        assert "keep-alive" not in r.tokens("Connection"), r
        closed, extra = c.wait_closed(3)
        assert closed, "HTTP/1.0 request without keep-alive: server did not close the connection"
        assert not extra, extra


def test_http10_keep_alive_stays_open(server):
    with RawConn(server.port) as c:
        ka = [("Connection", "keep-alive")]
        r1 = c.request("GET", "/plaintext", ka, version="HTTP/1.0")
        assert (r1.status, r1.body) == (200, HELLO), r1
        # An HTTP/1.0 client assumes close unless the response says keep-alive.
        assert "keep-alive" in r1.tokens("Connection"), f"no 'Connection: keep-alive': {r1!r}"
        r2 = c.request("GET", "/users/5", ka, version="HTTP/1.0")
        assert (r2.status, r2.body) == (200, b'{"id":5}'), r2
        # Third request without keep-alive: answered, then closed.
        r3 = c.request("GET", "/json", version="HTTP/1.0")
        assert (r3.status, r3.body) == (200, HELLO_JSON), r3
        closed, extra = c.wait_closed(3)
        assert closed and not extra, (closed, extra)


def test_http10_client_never_gets_chunked(server):
    # RFC 9112 section 6.1: a server MUST NOT send Transfer-Encoding to an HTTP/1.0 request.
    with RawConn(server.port) as c:
        c.send(b"GET /stream HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.header("Transfer-Encoding") is None, f"chunked response to HTTP/1.0: {r!r}"
        assert r.body == STREAM_BODY, r
        closed, _ = c.wait_closed(3)
        assert closed


@pytest.mark.parametrize("value", ["close", "Close", "CLOSE", "keep-alive, close"])
def test_http11_connection_close(server, value):
    with RawConn(server.port) as c:
        r = c.request("GET", "/plaintext", [("Connection", value)])
        assert (r.status, r.body) == (200, HELLO), r
        assert "close" in r.tokens("Connection"), f"response lacks 'Connection: close': {r!r}"
        closed, extra = c.wait_closed(3)
        assert closed, f"server did not close after 'Connection: {value}'"
        assert not extra, extra


def test_requests_after_connection_close_are_not_answered(server):
    # RFC 9112 section 9.6: no further requests are processed after the one with close.
    with RawConn(server.port) as c:
        c.send(build_request("GET", "/users/1", [("Connection", "close")])
               + build_request("GET", "/users/2"))
        r = c.read_response()
        assert (r.status, r.body) == (200, b'{"id":1}'), r
        closed, extra = c.wait_closed(3)
        assert closed, "server did not close after 'Connection: close'"
        assert extra == b"", f"request after 'Connection: close' was answered: {extra!r}"


def test_post_with_connection_close(server):
    with RawConn(server.port) as c:
        r = c.request("POST", "/echo", [("Connection", "close")], body=b"bye")
        assert (r.status, r.body) == (200, b"bye"), r
        assert "close" in r.tokens("Connection"), r
        closed, _ = c.wait_closed(3)
        assert closed
