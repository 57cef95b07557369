"""Protocol corners that RFC 9112 lets a server handle in one of a few ways: obsolete line
folding, Upgrade requests the server does not take up, and request smuggling shapes."""
import json

import pytest

from covet_wire import (HELLO, RawConn, WireClosed, assert_rejected, assert_server_healthy,
                        build_request, raw_exchange)


def test_obs_fold_is_rejected_or_unfolded(server):
    # RFC 9112 section 5.2: a server MUST either reject obs-fold with 400 or replace each fold
    # with SP before interpreting the value.
    data = b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Test: first\r\n  second\r\n\r\n"
    ex = raw_exchange(server.port, data, close_timeout=None)
    assert ex.responses, ex.describe()
    r = ex.responses[0]
    if r.status == 400:
        assert_rejected(server, data, 400)
    else:
        assert r.status == 200, ex.describe()
        value = json.loads(r.body)["x-test"]
        assert value.split() == ["first", "second"] and "\r" not in value and "\n" not in value, \
            f"fold not replaced by SP: {value!r}"
    assert_server_healthy(server)


@pytest.mark.parametrize("upgrade_headers", [
    # /plaintext is no WebSocket route: the upgrade is declined.
    [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")],
    # h2c with HTTP/2 turned off (--no-http2): declined too.
    [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
     ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")],
], ids=["websocket-not-a-ws-route", "h2c-with-http2-off"])
def test_upgrade_request_is_answered_normally(make_server, upgrade_headers):
    """An upgrade the server does not take must be ignored (RFC 9110 section 7.8): the request is
    answered itself and the connection stays HTTP/1.1."""
    server = make_server("--no-http2")
    with RawConn(server.port) as c:
        c.send(build_request("GET", "/plaintext", upgrade_headers) + build_request("GET", "/users/4"))
        r = c.read_response()
        assert (r.status, r.body) == (200, HELLO), f"upgrade not declined with a normal answer: {r!r}"
        assert "upgrade" not in r.tokens("Connection"), r
        if "close" in r.tokens("Connection"):
            assert c.wait_closed(3)[0]
        else:
            r2 = c.read_response()
            assert r2.body == b'{"id":4}', r2


def test_upgrade_post_body_is_still_a_body(server):
    with RawConn(server.port) as c:
        body = b"not a websocket frame"
        c.send(build_request("POST", "/echo", [("Connection", "Upgrade"), ("Upgrade", "websocket")],
                             body) + build_request("GET", "/users/11"))
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, body), r
        if "close" not in r.tokens("Connection"):
            assert c.read_response().body == b'{"id":11}'


def test_smuggled_request_in_body_is_only_echoed(server):
    """A request hidden in a Content-Length body is data, never a second request."""
    hidden = build_request("GET", "/users/666")
    with RawConn(server.port) as c:
        c.send(build_request("POST", "/echo", body=hidden) + build_request("GET", "/users/1"))
        r = c.read_response("POST")
        assert r.body == hidden, r
        r2 = c.read_response()
        assert r2.body == b'{"id":1}', f"hidden request was executed: {r2!r}"
        closed, extra = c.wait_closed(0.3)
        assert not closed and extra == b"", f"extra response after the pipeline: {extra!r}"


def test_chunk_size_overflow_is_rejected(server):
    data = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")
    assert_rejected(server, data, {400, 413})


@pytest.mark.parametrize("chunks", [
    b"3\r\nabcdef\r\n0\r\n\r\n",   # data longer than the chunk size
    b"3\r\nabcXX0\r\n\r\n",         # two arbitrary bytes where CRLF must be
    b"3\r\nabcX\n0\r\n\r\n",        # X + LF where CRLF must be
], ids=["longer-than-size", "XX-instead-of-CRLF", "X-LF-instead-of-CRLF"])
def test_chunk_data_must_be_followed_by_crlf(server, chunks):
    # RFC 9112 section 7.1: chunk = chunk-size [ext] CRLF chunk-data CRLF. Skipping whatever two
    # bytes follow the data lets a front end and this server disagree on where the body ends
    # (request smuggling).
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    assert_rejected(server, data, 400)


def test_client_reset_mid_request_does_not_hurt(server):
    import socket
    import struct
    for _ in range(10):
        c = RawConn(server.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
        # SO_LINGER 0: close() sends RST
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    try:
        assert_server_healthy(server)
    except WireClosed as e:
        raise AssertionError(f"server unhealthy after client resets: {e}") from None
