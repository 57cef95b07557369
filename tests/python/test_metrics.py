"""Native metrics and probes of `covet run --workers 2`, over real sockets: one scrape merges both worker
processes (the engine's metrics and the app's own Counter), a SIGKILLed worker's counters never go backwards,
label cardinality stays bounded whatever clients send, /_metrics can be guarded by a token and moved to an
operations port, /_ready follows @app.readiness_check and answers 503 during the drain before the listeners
close. The protocol counters (TLS, HTTP/2, WebSocket, body sizes) move with real traffic; /_health fails while a
handler blocks the event loop."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import re
import signal
import socket
import string
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Optional

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine, sample, self_signed_cert

APP = textwrap.dedent("""
    import os
    from covet import CovetPy
    from covet.observability.metrics import Counter

    app = CovetPy()
    orders = Counter("shop_orders", "Orders placed.", labels=("kind",))
    Counter("app_imports", "Imports of the app module (one per process).").inc()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        orders.labels(kind="gift").inc()
        return {"pid": os.getpid(), "item": item_id}

    @app.post("/echo")
    async def echo():
        return {"pid": os.getpid()}

    @app.get("/summary")
    async def summary():
        return app.metrics.as_dict()

    @app.readiness_check
    def flag_present():
        return os.path.exists(os.environ["READY_FLAG"])
    """)


@pytest.fixture(scope="module", autouse=True)
def compiled_engine_with_metrics() -> None:
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'configure_ops'), 'no configure_ops'",
                            "compiled engine with metrics (rebuild it)")


def request(port: int, path: str, method: str = "GET", headers: Optional[dict[str, str]] = None,
            body: Optional[bytes] = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """`covet run --workers 2 --metrics` of APP, readiness flag file absent at first."""
    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "app.py").write_text(APP)
    flag = tmp / "ready.flag"
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                            "--metrics"], cwd=tmp, ready=r"2 worker\(s\) serving on",
                           env={"READY_FLAG": str(flag), "COVET_READINESS_INTERVAL": "0.2"})
    with server:
        yield server, port, flag
        server.stop(expect=None)  # gracefully: the master removes its metrics directory


def test_readiness_checks_gate_ready(group) -> None:  # type: ignore[no-untyped-def]
    _server, port, flag = group
    assert request(port, "/_health") == (200, "ok\n")
    assert request(port, "/_ready") == (503, "checks failing\n")
    flag.write_text("")
    deadline = time.monotonic() + 5
    while request(port, "/_ready")[0] != 200:  # both workers' checks pass within their interval
        assert time.monotonic() < deadline, "the readiness checks never passed"
        time.sleep(0.1)
    time.sleep(0.5)
    assert {request(port, "/_ready")[0] for _ in range(10)} == {200}


def test_one_scrape_merges_both_workers(group) -> None:  # type: ignore[no-untyped-def]
    _server, port, _ = group
    before = request(port, "/_metrics")[1]
    base = sample(before, "http_server_request_duration_seconds_count", http_route="/items/{item_id}")
    base_orders = sample(before, "shop_orders_total", kind="gift")
    pids: set[str] = set()
    sent = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + 15

    def client(k: int) -> None:
        i = 0
        # Concurrent connections, until both workers answered and at least 100 each of these went out.
        while (len(pids) < 2 or i < 100) and time.monotonic() < deadline:
            i += 1
            status, body = request(port, f"/items/{k * 100000 + i}")
            assert status == 200
            with lock:
                sent[0] += 1
                pids.add(re.search(r'"pid":(\d+)', body).group(1))  # type: ignore[union-attr]

    clients = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    n = sent[0]
    assert len(pids) == 2, "the load never reached the second worker"
    for _ in range(4):  # whichever worker answers the scrape, it counts both
        status, text = request(port, "/_metrics")
        assert status == 200
        assert sample(text, "http_server_request_duration_seconds_count", http_route="/items/{item_id}",
                      http_request_method="GET", http_response_status_code="200",
                      network_protocol_version="1.1", url_scheme="http") - base == n
        assert sample(text, "shop_orders_total", kind="gift") - base_orders == n
    assert "/items/1\"" not in text and "/items/17" not in text  # the template, never the path
    assert sample(text, "covet_connections_accepted_total") >= n
    assert sample(text, "covet_workers_ready") == 2
    assert sample(text, "app_imports_total") >= 3  # the master's import and each worker's, in one scrape
    assert sample(text, "process_resident_memory_bytes") > 0
    # The seed's JSON view (app.metrics), read in a handler: the same group-wide figures, as numbers that follow
    # the load above (each worker's first read of a rate covers the time since the group started).
    summary = json.loads(request(port, "/summary")[1])
    assert set(summary) == {"requests_per_second", "latency_p99", "active_connections", "cpu_usage", "memory_usage"}
    assert summary["requests_per_second"] > 0
    assert 0 < summary["latency_p99"] <= 10  # seconds, within the duration histogram's buckets
    assert summary["active_connections"] >= 1  # this request's own connection is open while it runs
    assert summary["cpu_usage"] > 0  # percent of one core, the group's
    resident = sample(request(port, "/_metrics")[1], "process_resident_memory_bytes")
    assert 0.5 * resident < summary["memory_usage"] < 2 * resident, (summary, resident)


def test_cardinality_stays_bounded(group) -> None:  # type: ignore[no-untyped-def]
    _server, port, _ = group
    rng = random.Random(16)
    for _ in range(150):
        path = "/" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(1, 20)))
        method = rng.choice(["GET", "POST", "DELETE", "PATCH", "OPTIONS", "PUT"])
        request(port, path, method)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # an unknown method: refused by the protocol
        s.sendall(b"FROB / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 501")
    text = request(port, "/_metrics")[1]
    routes = set(re.findall(r'http_route="([^"]*)"', text))
    assert routes <= {"", "/items/{item_id}", "/echo", "/summary"}, routes
    series = [line for line in text.splitlines() if line.startswith("http_server_request_duration_seconds_count")]
    assert len(series) < 40, series  # methods x statuses of the unmatched route, not one per path
    assert sample(text, "covet_protocol_refusals_total", status="501") >= 1


def test_sigkill_of_a_worker_never_takes_counters_backwards(group) -> None:  # type: ignore[no-untyped-def]
    server, port, _ = group
    stop = threading.Event()
    errors: list[str] = []

    def load() -> None:
        while not stop.is_set():
            try:
                request(port, "/items/1")
            except (OSError, http.client.HTTPException) as e:  # a connection the killed worker held
                errors.append(str(e))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        seen: list[float] = []

        def scrape() -> None:
            try:
                status, text = request(port, "/_metrics")
            except (OSError, http.client.HTTPException):
                return  # accepted by the worker just killed
            assert status == 200
            seen.append(sample(text, "http_server_request_duration_seconds_count", http_route="/items/{item_id}"))

        scrape()
        worker = int(re.search(r'"pid":(\d+)', request(port, "/items/1")[1]).group(1))  # type: ignore[union-attr]
        os.kill(worker, signal.SIGKILL)
        server.wait_for(r"exited with .*SIGKILL|exited with signal", timeout=10)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            scrape()
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert all(b >= a for a, b in itertools.pairwise(seen)), seen
    assert seen[-1] > seen[0]
    text = request(port, "/_metrics")[1]
    assert sample(text, "covet_worker_restarts_total", cause="signal") == 1


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP `port` (/proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.rpartition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    # /proc prints each 32-bit word in host order (little-endian here).
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                    found.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found


def test_ops_port_and_token(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from covet import CovetPy\napp = CovetPy()\n\n@app.get('/')\n"
                                     "async def root():\n    return 'hi'\n")
    port, ops = free_port(), free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--host", "0.0.0.0", "--port",
                            str(port), "--workers", "2", "--ops-port", str(ops), "--metrics-token", "s3cret",
                            "--drain-delay", "4"],
                           cwd=tmp_path, ready=r"2 worker\(s\) serving on")
    with server:
        assert request(port, "/_metrics")[0] == 404  # not on the app's port
        assert request(port, "/")[0] == 200
        assert request(ops, "/")[0] == 404  # and no app routes on the operations port
        assert request(ops, "/_metrics")[0] == 401
        assert request(ops, "/_metrics", headers={"Authorization": "Bearer nope"})[0] == 401
        status, text = request(ops, "/_metrics", headers={"Authorization": "Bearer s3cret",
                                                          "Accept": "application/openmetrics-text"})
        assert status == 200 and text.endswith("# EOF\n")
        assert request(ops, "/_health")[0] == 200  # probes need no token
        assert request(ops, "/_ready")[0] == 200
        # No --ops-host: the operations listener is on the loopback address only, while the app's is on all.
        assert listening_addresses(ops) == {"127.0.0.1"}
        assert listening_addresses(port) == {"0.0.0.0"}
        # SIGTERM: /_ready answers 503 at once, while the app's listener still serves (the drain delay). The
        # delay is long enough that the checks below land inside it on a loaded machine (a 1.5 s delay did not).
        # Each worker takes the master's signal on its own loop, so for a moment one may still say ready: wait
        # for a run of 503s (the workers share the listener, so a run of them covers both).
        os.kill(server.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        streak = 0
        while streak < 6:
            assert time.monotonic() < deadline, "/_ready must answer 503 draining on every worker in the delay"
            streak = streak + 1 if request(ops, "/_ready") == (503, "draining\n") else 0
            time.sleep(0.02)
        assert request(port, "/")[0] == 200  # still served during the drain delay
        assert server.proc.wait(timeout=20) == 0
        leftovers = list(Path("/dev/shm").glob(f"covet-metrics-{server.proc.pid}-*"))
        assert not leftovers, f"the master left its metrics directory: {leftovers}"


BLOCKING_APP = textwrap.dedent("""
    import time
    from covet import CovetPy

    app = CovetPy()

    @app.get("/")
    async def root():
        return "hi"

    @app.get("/block")
    async def block(seconds: float):
        time.sleep(seconds)  # blocks the event loop: the liveness probe must notice
        return "unblocked"
    """)


@pytest.mark.parametrize("threads", ["0", "1"])  # the engine on the loop's thread, or on its own thread
def test_health_fails_while_a_handler_blocks_the_event_loop(tmp_path: Path, threads: str) -> None:
    """/_health on the operations port (its own engine thread) answers 503 once the worker's event loop has not
    turned for --health-stall, naming the cause, and 200 again once the loop turns; /_ready is unaffected."""
    (tmp_path / "app.py").write_text(BLOCKING_APP)
    port, ops = free_port(), free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--ops-port",
                            str(ops), "--health-stall", "1", "--threads", threads],
                           cwd=tmp_path, ready=r"serving on")
    with server:
        assert request(ops, "/_health") == (200, "ok\n")
        time.sleep(1.5)  # idle for longer than the limit: an idle loop still turns
        assert request(ops, "/_health") == (200, "ok\n")
        blocked: list[tuple[int, str]] = []
        blocker = threading.Thread(target=lambda: blocked.append(request(port, "/block?seconds=4")))
        blocker.start()
        try:
            deadline = time.monotonic() + 3.5
            status, text = request(ops, "/_health")
            while status == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
                status, text = request(ops, "/_health")
            assert status == 503, text
            assert "has not turned for" in text and "--health-stall" in text, text
            assert request(ops, "/_ready")[0] == 200  # readiness is another question
        finally:
            blocker.join()
        assert blocked == [(200, '"unblocked"')] or blocked[0][0] == 200, blocked
        deadline = time.monotonic() + 3.0
        while request(ops, "/_health")[0] != 200:
            assert time.monotonic() < deadline, "the loop turns again, /_health must say so"
            time.sleep(0.1)


PROTOCOL_APP = textwrap.dedent("""
    from covet import CovetPy, Request, WebSocket

    app = CovetPy()

    @app.get("/hello")
    async def hello():
        return "hello"

    @app.post("/upload")
    async def upload(request: Request):
        return {"received": len(await request.body())}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text.upper())
    """)


def test_engine_metrics_count_tls_http2_websocket_and_body_sizes(tmp_path: Path) -> None:
    """The engine's protocol counters move with real traffic, not only exist: TLS handshakes (ok and failed, the
    failure also a refused connection), HTTP/2 streams and a client's stream reset, WebSocket connections and
    messages both ways, and the request and response body size histograms of one POST by route."""
    import asyncio
    import ssl

    import h2.config
    import h2.connection
    import httpx
    import websockets

    cert, key = self_signed_cert(tmp_path)
    (tmp_path / "app.py").write_text(PROTOCOL_APP)
    ops = free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", "0", "--ops-port", str(ops),
                            "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)], cwd=tmp_path)
    with server:
        base = f"https://127.0.0.1:{server.port}"
        with httpx.Client(verify=False, http2=False, timeout=10) as h1:  # one TLS handshake
            assert h1.get(base + "/hello").status_code == 200
            r = h1.post(base + "/upload", content=b"x" * 3000)
            assert r.json() == {"received": 3000}
        with httpx.Client(verify=False, http2=True, timeout=10) as h2c:  # a second handshake, two streams
            for _ in range(2):
                r = h2c.get(base + "/hello")
                assert r.status_code == 200 and r.http_version == "HTTP/2"

        # A stream the client resets (RST_STREAM CANCEL) before its body ends: a third handshake.
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            conn.send_headers(1, [(":method", "POST"), (":scheme", "https"), (":authority", "t"),
                                  (":path", "/upload")])
            conn.send_data(1, b"partial")
            conn.reset_stream(1, error_code=8)
            ping = b"12345678"
            conn.ping(ping)
            tls.sendall(conn.data_to_send())
            acked = False
            while not acked:  # the server's PING ACK: it has read the reset before
                data = tls.recv(65536)
                assert data, "the server closed the connection"
                for event in conn.receive_data(data):
                    acked = acked or getattr(event, "ping_data", None) == ping
                tls.sendall(conn.data_to_send())

        # A handshake record that is not a ClientHello: a failed handshake.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as bad:
            bad.sendall(b"\x16\x03\x01\x00\x08garbage!")
            try:
                while bad.recv(4096):
                    pass
            except OSError:
                pass

        async def talk() -> list[str]:
            async with websockets.connect(f"wss://127.0.0.1:{server.port}/ws", ssl=context_ws) as ws:
                replies = []
                for word in ("one", "two"):
                    await ws.send(word)
                    replies.append(str(await ws.recv()))
                return replies

        context_ws = ssl.create_default_context()
        context_ws.check_hostname, context_ws.verify_mode = False, ssl.CERT_NONE
        assert asyncio.run(talk()) == ["ONE", "TWO"]  # a fourth handshake

        deadline = time.monotonic() + 5
        while True:  # the WebSocket's close reaches the gauge once the server has finished its side
            text = request(ops, "/_metrics")[1]
            if sample(text, "covet_websocket_connections_open") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert sample(text, "covet_tls_handshakes_total", result="ok") == 4, text
    assert sample(text, "covet_tls_handshakes_total", result="failed") == 1
    assert sample(text, "covet_connections_refused_total", reason="tls") == 1
    assert sample(text, "covet_http2_streams_total") == 3  # two GETs and the reset POST
    assert sample(text, "covet_http2_resets_total", side="client") == 1
    assert sample(text, "covet_websocket_messages_total", direction="received") == 2
    assert sample(text, "covet_websocket_messages_total", direction="sent") == 2
    assert sample(text, "covet_websocket_connections_open") == 0
    upload = {"http_route": "/upload", "http_request_method": "POST", "http_response_status_code": "200"}
    assert sample(text, "http_server_request_body_size_bytes_sum", **upload) == 3000
    assert sample(text, "http_server_request_body_size_bytes_bucket", le="1024", **upload) == 0
    assert sample(text, "http_server_request_body_size_bytes_bucket", le="4096", **upload) == 1
    assert sample(text, "http_server_response_body_size_bytes_sum", **upload) == len(b'{"received":3000}')
    hello = {"http_route": "/hello", "url_scheme": "https"}
    assert sample(text, "http_server_request_duration_seconds_count", network_protocol_version="2", **hello) == 2
    assert sample(text, "http_server_request_duration_seconds_count", network_protocol_version="1.1", **hello) == 1
