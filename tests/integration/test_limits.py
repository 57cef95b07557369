"""Configured limits (--max-url, --max-header-bytes, --max-headers, --max-body), just under and
over each one."""

from covet_wire import (HELLO, RawConn, assert_rejected, build_request, chunked,
                        expect_413_then_close, send_until_answered)

MAX_URL = 1024
MAX_HEADER_BYTES = 4096
MAX_HEADERS = 20
MAX_BODY = 65536

SERVER_ARGS = ["--max-url", MAX_URL, "--max-header-bytes", MAX_HEADER_BYTES,
               "--max-headers", MAX_HEADERS, "--max-body", MAX_BODY]


def served(server, method, target, headers=(), body=None):
    with RawConn(server.port) as c:
        return c.request(method, target, headers, body)


def test_url_at_max_url_is_served(server):
    target = "/search?q=" + "a" * (MAX_URL - len("/search?q="))
    assert len(target) == MAX_URL
    r = served(server, "GET", target)
    assert (r.status, r.body) == (200, b"a" * (MAX_URL - 10)), r


def test_url_over_max_url_is_414(server):
    # The whole head stays well under --max-header-bytes, so only the URL limit applies.
    target = "/search?q=" + "a" * 2000
    assert_rejected(server, build_request("GET", target), 414)


def test_url_one_over_max_url_is_414(server):
    target = "/search?q=" + "a" * (MAX_URL - len("/search?q=") + 1)
    assert len(target) == MAX_URL + 1
    assert_rejected(server, build_request("GET", target), 414)


def test_head_under_max_header_bytes_is_served(server):
    r = served(server, "GET", "/plaintext", [("X-Pad", "p" * 3000)])
    assert (r.status, r.body) == (200, HELLO), r


def test_single_header_over_max_header_bytes_is_431(server):
    assert_rejected(server, build_request("GET", "/plaintext", [("X-Pad", "p" * 5000)]), 431)


def test_many_medium_headers_over_max_header_bytes_is_431(server):
    # 15 fields (under --max-headers) of ~300 bytes: the sum is over 4096.
    hdrs = [(f"X-M{i}", "m" * 300) for i in range(15)]
    assert_rejected(server, build_request("GET", "/plaintext", hdrs), 431)


def test_max_headers_fields_are_served(server):
    hdrs = [(f"X-H{i}", "1") for i in range(MAX_HEADERS - 1)]  # + Host = MAX_HEADERS
    r = served(server, "GET", "/plaintext", hdrs)
    assert (r.status, r.body) == (200, HELLO), r


def test_one_more_than_max_headers_is_431(server):
    hdrs = [(f"X-H{i}", "1") for i in range(MAX_HEADERS)]  # + Host = MAX_HEADERS + 1
    assert_rejected(server, build_request("GET", "/plaintext", hdrs), 431)


def test_body_at_max_body_is_served(server):
    body = bytes(range(256)) * (MAX_BODY // 256)
    r = served(server, "POST", "/echo", body=body)
    assert (r.status, r.body) == (200, body), r


def test_chunked_body_at_max_body_is_served(server):
    body = b"c" * MAX_BODY
    r = served(server, "POST", "/echo", [("Transfer-Encoding", "chunked")],
               chunked([body[:40000], body[40000:]]))
    assert (r.status, r.body) == (200, body), r


def test_declared_body_one_over_max_body_is_413(server):
    head = build_request("POST", "/echo", [("Content-Length", str(MAX_BODY + 1))])
    assert_rejected(server, head, 413)


def test_declared_huge_content_length_is_413(server):
    head = build_request("POST", "/echo", [("Content-Length", "99999999999999")])
    assert_rejected(server, head, 413)


def test_chunked_body_one_over_max_body_is_413(server):
    conn = RawConn(server.port)
    head = build_request("POST", "/echo", [("Transfer-Encoding", "chunked")])
    body = chunked([b"d" * 40000, b"d" * (MAX_BODY + 1 - 40000)])
    send_until_answered(conn, [head, body])
    expect_413_then_close(server, conn)


def test_limits_do_not_leak_between_requests_on_one_connection(server):
    """Each request gets the full budget: many near-limit requests on one connection pass."""
    with RawConn(server.port) as c:
        for i in range(10):
            hdrs = [(f"X-H{k}", "v" * 100) for k in range(MAX_HEADERS - 2)]
            r = c.request("POST", "/echo", hdrs, b"e" * (MAX_BODY - i))
            assert r.status == 200 and len(r.body) == MAX_BODY - i, (i, r)
