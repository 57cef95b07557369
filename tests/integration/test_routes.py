"""The example's routes, 404/405 handling, HEAD, and the headers every response carries."""
import json
import time

import pytest

from covet_wire import (HELLO, HELLO_JSON, STREAM_BODY, RawConn, assert_standard_headers,
                        build_request)


def fetch(server, method, target, headers=(), body=None, version="HTTP/1.1"):
    with RawConn(server.port) as c:
        return c.request(method, target, headers, body, version)


def test_plaintext(server):
    r = fetch(server, "GET", "/plaintext")
    assert r.status == 200, r
    assert r.media_type == "text/plain", r
    assert r.body == HELLO, r
    assert r.header("Content-Length") == "13", r
    assert_standard_headers(r)


def test_json(server):
    r = fetch(server, "GET", "/json")
    assert r.status == 200, r
    assert r.media_type == "application/json", r
    assert r.body == HELLO_JSON, r
    assert_standard_headers(r)


@pytest.mark.parametrize("n", [0, 7, 42, 1234567890123, 9223372036854775807])
def test_users_int_param(server, n):
    r = fetch(server, "GET", f"/users/{n}")
    assert r.status == 200, r
    assert r.media_type == "application/json", r
    assert json.loads(r.body) == {"id": n}, r
    assert_standard_headers(r)


@pytest.mark.parametrize("tail", ["abc", "12abc", "1.5", "", "9223372036854775808", "42/extra"])
def test_users_non_int_param_is_404(server, tail):
    # 9223372036854775808 does not fit in int64, so it must not match {id:int} either.
    r = fetch(server, "GET", f"/users/{tail}")
    assert r.status == 404, r
    assert_standard_headers(r)


@pytest.mark.parametrize("query, expected", [
    ("q=hello", b"hello"),
    ("q=hello%20world", b"hello world"),
    ("q=a+b+c", b"a b c"),
    ("q=%2B%26%3D%25", b"+&=%"),
    ("q=caf%C3%A9", "café".encode()),
    ("q=caf%c3%a9", "café".encode()),
    ("a=1&q=x&b=2", b"x"),
    ("q=", b""),
    ("other=1", b""),
    (None, b""),
])
def test_search_decodes_q(server, query, expected):
    r = fetch(server, "GET", "/search" if query is None else f"/search?{query}")
    assert r.status == 200, r
    assert r.media_type == "text/plain", r
    assert r.body == expected, r
    assert_standard_headers(r)


def test_stream_is_chunked_in_three_chunks(server):
    r = fetch(server, "GET", "/stream")
    assert r.status == 200, r
    assert r.is_chunked, f"expected Transfer-Encoding: chunked: {r!r}"
    assert r.header("Content-Length") is None, r
    assert r.body == STREAM_BODY, r
    assert r.chunks == [b"chunk-0\n", b"chunk-1\n", b"chunk-2\n"], r.chunks
    assert_standard_headers(r)


def test_stream_with_http_client(server):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/stream")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == STREAM_BODY
        # keep-alive after a chunked response
        conn.request("GET", "/plaintext")
        assert conn.getresponse().read() == HELLO
    finally:
        conn.close()


@pytest.mark.parametrize("ms", [0, 150])
def test_delayed(server, ms):
    t0 = time.monotonic()
    r = fetch(server, "GET", f"/delayed?ms={ms}")
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert r.media_type == "text/plain", r
    assert r.body == f"delayed {ms}".encode(), r
    assert took >= ms / 1000 - 0.01, f"answered after {took:.3f} s, before the {ms} ms delay"
    assert took < ms / 1000 + 2, f"answered after {took:.3f} s"
    assert_standard_headers(r)


def test_headers_route_case_insensitive_lookup(server):
    r = fetch(server, "GET", "/headers", [("uSeR-aGeNt", "probe/1.0"), ("X-TEST", "some value")])
    assert r.status == 200, r
    assert r.media_type == "application/json", r
    assert json.loads(r.body) == {"user-agent": "probe/1.0", "x-test": "some value"}, r
    assert_standard_headers(r)


def test_headers_route_absent_headers_are_null(server):
    r = fetch(server, "GET", "/headers")
    assert r.status == 200, r
    assert json.loads(r.body) == {"user-agent": None, "x-test": None}, r


def test_headers_route_value_whitespace_is_trimmed(server):
    # RFC 9112 section 5: optional whitespace around a field value is not part of the value.
    raw = b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Test: \t padded \t\r\nUser-Agent:ua\r\n\r\n"
    with RawConn(server.port) as c:
        c.send(raw)
        r = c.read_response()
    assert json.loads(r.body) == {"user-agent": "ua", "x-test": "padded"}, r


@pytest.mark.parametrize("target", ["/", "/nope", "/plaintext/extra", "/jsonx", "/users"])
def test_unknown_path_is_404_and_keeps_connection(server, target):
    with RawConn(server.port) as c:
        r = c.get(target)
        assert r.status == 404, r
        assert_standard_headers(r)
        r2 = c.get("/plaintext")
        assert (r2.status, r2.body) == (200, HELLO), "connection unusable after a 404"


def test_query_string_does_not_affect_routing(server):
    r = fetch(server, "GET", "/plaintext?x=1&y=2")
    assert (r.status, r.body) == (200, HELLO), r


def test_absolute_form_target_is_accepted(server):
    # RFC 9112 section 3.2.2: a server MUST accept the absolute-form in requests.
    r = fetch(server, "GET", f"http://127.0.0.1:{server.port}/plaintext")
    assert (r.status, r.body) == (200, HELLO), r


@pytest.mark.parametrize("method, target, allowed", [
    ("POST", "/plaintext", {"get", "head"}),
    ("PUT", "/plaintext", {"get", "head"}),
    ("DELETE", "/json", {"get", "head"}),
    ("POST", "/json", {"get", "head"}),
    ("GET", "/echo", {"post"}),
    ("POST", "/users/5", {"get", "head"}),
])
def test_wrong_method_is_405_with_allow(server, method, target, allowed):
    body = b"" if method in ("POST", "PUT") else None
    r = fetch(server, method, target, body=body)
    assert r.status == 405, r
    assert r.header("Allow") is not None, f"405 without Allow: {r!r}"
    assert allowed <= r.tokens("Allow"), f"Allow should contain {allowed}: {r!r}"
    assert_standard_headers(r)


@pytest.mark.parametrize("method, target", [("POST", "/plaintext"), ("GET", "/echo")])
def test_405_allow_does_not_list_the_rejected_method(server, method, target):
    # RFC 9110 section 15.5.6: Allow lists the methods the target resource supports, so it
    # cannot name the method that was just refused with 405.
    r = fetch(server, method, target, body=b"" if method == "POST" else None)
    assert r.status == 405, r
    assert method.lower() not in r.tokens("Allow"), f"Allow lists the rejected {method}: {r!r}"


def test_405_with_body_leaves_connection_usable_or_closed(server):
    """The refused request's body must be skipped (or the connection closed), never parsed as
    the next request."""
    req = build_request("POST", "/plaintext", body=b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
    with RawConn(server.port) as c:
        c.send(req + build_request("GET", "/users/77"))
        r1 = c.read_response("POST")
        assert r1.status == 405, r1
        if "close" in r1.tokens("Connection"):
            closed, extra = c.wait_closed(3)
            assert closed and not extra, f"after 'Connection: close' got {extra!r}"
        else:
            r2 = c.read_response()
            assert (r2.status, r2.body) == (200, b'{"id":77}'), \
                f"body of the 405'd request was not skipped correctly: {r2!r}"


@pytest.mark.parametrize("target, body", [("/plaintext", HELLO), ("/json", HELLO_JSON)])
def test_head_has_get_headers_and_no_body(server, target, body):
    with RawConn(server.port) as c:
        g = c.get(target)
        # HEAD then GET pipelined: if the server sent a body after HEAD, the GET's response
        # would not start where it should.
        c.send(build_request("HEAD", target) + build_request("GET", "/users/9"))
        h = c.read_response("HEAD")
        after = c.read_response()
    assert h.status == 200, h
    assert h.header("Content-Length") == str(len(body)), h
    for name in ("Content-Type", "Content-Length", "Server"):
        assert h.header(name) == g.header(name), f"{name}: HEAD {h!r} vs GET {g!r}"
    assert_standard_headers(h, method="HEAD")
    assert (after.status, after.body) == (200, b'{"id":9}'), \
        f"response after HEAD is wrong (was a body sent for HEAD?): {after!r}"


def test_request_id_is_echoed(server):
    r = fetch(server, "GET", "/plaintext", [("X-Request-ID", "req-abc-123")])
    assert r.header("X-Request-ID") == "req-abc-123", r


def test_request_id_echoed_on_error_responses(server):
    r = fetch(server, "GET", "/nope", [("x-request-id", "lower-case-name-42")])
    assert r.status == 404
    assert r.header("X-Request-ID") == "lower-case-name-42", r


def test_generated_request_ids_are_present_and_distinct(server):
    ids = []
    with RawConn(server.port) as c:
        for _ in range(20):
            r = c.get("/plaintext")
            ids.append(r.header("X-Request-ID"))
    assert all(i and i.strip() for i in ids), ids
    assert len(set(ids)) == len(ids), f"generated request ids repeat: {ids}"


@pytest.mark.parametrize("method, target, body", [
    ("GET", "/plaintext", None), ("GET", "/json", None), ("GET", "/users/1", None),
    ("POST", "/echo", b"x"), ("GET", "/search?q=1", None), ("GET", "/stream", None),
    ("GET", "/delayed?ms=1", None), ("GET", "/headers", None), ("GET", "/nope", None),
    ("POST", "/plaintext", b""), ("HEAD", "/plaintext", None),
])
def test_standard_headers_on_every_response(server, method, target, body):
    r = fetch(server, method, target, body=body)
    assert_standard_headers(r, method=method)
