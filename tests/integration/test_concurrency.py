"""Many clients at once, and deferred (/delayed) completion not blocking other connections."""
import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from covet_wire import HELLO, HELLO_JSON, RawConn, WireClosed, assert_server_healthy


def one_client(port: int, worker: int, requests: int, fresh_connections: bool) -> list[str]:
    """Runs `requests` mixed requests; returns a list of problems (empty when all is well)."""
    problems = []
    conn = None
    try:
        for i in range(requests):
            if conn is None or fresh_connections:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            kind = (worker + i) % 5
            uid = worker * 100000 + i
            if kind == 0:
                conn.request("GET", "/plaintext")
                want = HELLO
            elif kind == 1:
                conn.request("GET", "/json")
                want = HELLO_JSON
            elif kind == 2:
                conn.request("GET", f"/users/{uid}")
                want = json.dumps({"id": uid}, separators=(",", ":")).encode()
            elif kind == 3:
                want = f"w{worker}-r{i}-".encode() * (i + 1)
                conn.request("POST", "/echo", body=want)
            else:
                conn.request("GET", f"/search?q=w{worker}+r{i}")
                want = f"w{worker} r{i}".encode()
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or (body != want and not (kind == 2 and json.loads(body) == {"id": uid})):
                problems.append(f"worker {worker} request {i}: {resp.status} {body[:100]!r}, want {want[:100]!r}")
    except Exception as e:  # noqa: BLE001 - every failure is reported back to the test
        problems.append(f"worker {worker}: {type(e).__name__}: {e}")
    finally:
        if conn is not None:
            conn.close()
    return problems


def run_clients(port, clients, requests, fresh_connections=False):
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda w: one_client(port, w, requests, fresh_connections),
                                range(clients)))
    problems = [p for r in results for p in r]
    assert not problems, f"{len(problems)} problems, first ones:\n" + "\n".join(problems[:20])


@pytest.mark.covet_timeout(120)
def test_50_threads_x_20_requests_keep_alive(server):
    run_clients(server.port, 50, 20)
    assert_server_healthy(server)


@pytest.mark.covet_timeout(120)
def test_20_threads_x_25_requests_new_connection_each(server):
    run_clients(server.port, 20, 25, fresh_connections=True)
    assert_server_healthy(server)


def test_delayed_request_does_not_block_other_connections(make_server):
    # One worker thread: if deferred completion blocked the event loop, B would wait for A.
    srv = make_server(threads=1)
    with RawConn(srv.port) as a, RawConn(srv.port) as b:
        t0 = time.monotonic()
        a.send(b"GET /delayed?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)
        for i in range(5):
            r = b.get(f"/users/{i}")
            assert r.body == b'{"id":%d}' % i, r
        took_b = time.monotonic() - t0
        assert took_b < 0.8, f"other connection served only after {took_b:.2f} s"
        r = a.read_response(timeout=5)
        took_a = time.monotonic() - t0
        assert (r.status, r.body) == (200, b"delayed 1500"), r
        assert took_a >= 1.49, f"/delayed?ms=1500 answered after {took_a:.2f} s"


def test_many_concurrent_delayed_requests_overlap(make_server):
    srv = make_server(threads=1)
    conns = [RawConn(srv.port) for _ in range(20)]
    try:
        t0 = time.monotonic()
        for c in conns:
            c.send(b"GET /delayed?ms=500 HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            r = c.read_response(timeout=5)
            assert r.body == b"delayed 500", r
        took = time.monotonic() - t0
        assert took < 1.5, f"20 concurrent 500 ms requests took {took:.2f} s (serialized?)"
    finally:
        for c in conns:
            c.close()


def test_client_disconnects_while_request_is_deferred(server):
    """The completion arrives for a connection that is gone: nothing may crash or leak."""
    for _ in range(20):
        c = RawConn(server.port)
        c.send(b"GET /delayed?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        c.close()
    # Half-closed variant: the client shuts down its sending side only. Answering or closing
    # are both acceptable; garbage, a hang or a crash are not.
    c = RawConn(server.port)
    c.send(b"GET /delayed?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    try:
        r = c.read_response(timeout=3)
        assert r.body == b"delayed 100", r
    except WireClosed as e:
        assert not e.received, f"partial response before close: {e}"
    finally:
        c.close()
    time.sleep(0.4)
    assert_server_healthy(server)


def test_concurrent_pipelines_with_delayed(server):
    errors = []

    def worker(w):
        try:
            with RawConn(server.port, timeout=10) as c:
                data = b"".join(
                    (b"GET /delayed?ms=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (30 - i * 10) if i % 2 == 0
                     else b"GET /users/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (w * 10 + i))
                    for i in range(4))
                c.send(data)
                for i in range(4):
                    r = c.read_response()
                    want = (b"delayed %d" % (30 - i * 10)) if i % 2 == 0 else b'{"id":%d}' % (w * 10 + i)
                    if r.body != want:
                        errors.append(f"worker {w} #{i}: {r!r} want {want!r}")
        except Exception as e:  # noqa: BLE001
            errors.append(f"worker {w}: {e}")

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, "\n".join(errors[:20])
