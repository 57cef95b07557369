"""Pipelining over raw sockets: many requests in one send, answered completely and in order."""
import time

import pytest

from covet_wire import HELLO, HELLO_JSON, STREAM_BODY, RawConn, build_request, chunked


def mixed_requests(n: int):
    """n requests over all routes; each (request bytes, method, expected status, expected body).
    Unique ids/queries make any reordering visible."""
    out = []
    for i in range(n):
        kind = i % 9
        if kind == 0:
            out.append((build_request("GET", "/plaintext"), "GET", 200, HELLO))
        elif kind == 1:
            out.append((build_request("GET", "/json"), "GET", 200, HELLO_JSON))
        elif kind == 2:
            out.append((build_request("GET", f"/users/{i}"), "GET", 200, b'{"id":%d}' % i))
        elif kind == 3:
            body = b"echo-%d|" % i * (i % 5 + 1)
            out.append((build_request("POST", "/echo", body=body), "POST", 200, body))
        elif kind == 4:
            out.append((build_request("GET", f"/search?q=item+{i}%21"), "GET", 200,
                        b"item %d!" % i))
        elif kind == 5:
            out.append((build_request("GET", "/stream"), "GET", 200, STREAM_BODY))
        elif kind == 6:
            out.append((build_request("HEAD", "/plaintext"), "HEAD", 200, b""))
        elif kind == 7:
            body = b"chunked-%d" % i
            req = build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) \
                + chunked([body[:3], body[3:]])
            out.append((req, "POST", 200, body))
        else:
            out.append((build_request("GET", f"/missing/{i}"), "GET", 404, None))
    return out


def run_pipeline(port, reqs, *, send_pieces=None, timeout=10.0):
    data = b"".join(r[0] for r in reqs)
    with RawConn(port, timeout=timeout) as c:
        if send_pieces is None:
            c.send(data)
        else:
            for k in range(0, len(data), send_pieces):
                c.send(data[k:k + send_pieces])
                time.sleep(0.001)
        for idx, (_, method, status, body) in enumerate(reqs):
            r = c.read_response(method)
            assert r.status == status, f"response #{idx} out of {len(reqs)}: {r!r}"
            if body is not None:
                assert r.body == body, f"response #{idx}: expected {body!r}, got {r!r}"
        # still usable afterwards
        r = c.get("/users/424242")
        assert r.body == b'{"id":424242}', r


@pytest.mark.parametrize("n", [16, 100])
def test_pipelined_mixed_routes_in_one_send(server, n):
    run_pipeline(server.port, mixed_requests(n))


def test_pipeline_split_at_odd_boundaries(server):
    # 7-byte pieces cut request lines, headers, chunk sizes and bodies in every possible place.
    run_pipeline(server.port, mixed_requests(27), send_pieces=7)


@pytest.mark.covet_timeout(120)
def test_deep_pipeline_of_2000_requests(server):
    reqs = [(build_request("GET", f"/users/{i}"), "GET", 200, b'{"id":%d}' % i) for i in range(2000)]
    run_pipeline(server.port, reqs, timeout=30)


def test_pipeline_with_delayed_request_in_the_middle(server):
    reqs = [
        (build_request("GET", "/users/1"), "GET", 200, b'{"id":1}'),
        (build_request("GET", "/plaintext"), "GET", 200, HELLO),
        (build_request("GET", "/delayed?ms=100"), "GET", 200, b"delayed 100"),
        (build_request("GET", "/users/2"), "GET", 200, b'{"id":2}'),
        (build_request("POST", "/echo", body=b"after-delay"), "POST", 200, b"after-delay"),
        (build_request("GET", "/json"), "GET", 200, HELLO_JSON),
        (build_request("GET", "/search?q=last"), "GET", 200, b"last"),
    ]
    run_pipeline(server.port, reqs)


def test_pipeline_slow_delayed_before_fast_delayed(server):
    # The 50 ms one completes first on its timer thread but must be sent after the 300 ms one.
    reqs = [
        (build_request("GET", "/delayed?ms=300"), "GET", 200, b"delayed 300"),
        (build_request("GET", "/delayed?ms=50"), "GET", 200, b"delayed 50"),
        (build_request("GET", "/users/3"), "GET", 200, b'{"id":3}'),
        (build_request("GET", "/delayed?ms=0"), "GET", 200, b"delayed 0"),
        (build_request("GET", "/stream"), "GET", 200, STREAM_BODY),
    ]
    run_pipeline(server.port, reqs)


def test_pipeline_with_many_delayed_requests(server):
    reqs = []
    for i in range(20):
        ms = (20 - i) * 5
        reqs.append((build_request("GET", f"/delayed?ms={ms}"), "GET", 200, b"delayed %d" % ms))
        reqs.append((build_request("GET", f"/users/{i}"), "GET", 200, b'{"id":%d}' % i))
    run_pipeline(server.port, reqs)


def test_pipeline_ending_in_connection_close(server):
    data = (build_request("GET", "/users/1") + build_request("GET", "/delayed?ms=50")
            + build_request("GET", "/users/2", [("Connection", "close")])
            + build_request("GET", "/users/3"))
    with RawConn(server.port) as c:
        c.send(data)
        assert c.read_response().body == b'{"id":1}'
        assert c.read_response().body == b"delayed 50"
        r = c.read_response()
        assert r.body == b'{"id":2}' and "close" in r.tokens("Connection"), r
        closed, extra = c.wait_closed(3)
        assert closed and extra == b"", f"request after close answered / not closed: {extra!r}"
