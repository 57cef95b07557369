"""Issue 17, rate limiting (must-shows 1 and 4), through real sockets against `covet run`: a client over its
limit gets 429 with ``Retry-After`` and the draft ``RateLimit``/``RateLimit-Policy`` fields and never reaches
Python, other clients keep their budget, per-route limits (decorator and dependency), one budget shared by the
workers of ``--workers 2``, and 10,000 forged clients over the limit while an under-limit client keeps its
latency."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest
from serverproc import SERVICES_ENV, ServerProcess, free_port, require_compiled_engine, service_setting

APP = textwrap.dedent("""
    import os
    from covet import CovetPy, Depends
    from covet.ratelimit import Limit, RateLimitMiddleware, rate_limit

    app = CovetPy()
    calls = {"n": 0}

    @app.get("/")
    async def root():
        calls["n"] += 1
        return {"pid": os.getpid()}

    @app.get("/calls")
    async def count():
        return {"n": calls["n"]}

    @app.post("/login")
    @rate_limit("2/minute", name="login")
    async def login():
        return {"ok": True}

    @app.get("/items/{item_id}", dependencies=[Depends(Limit("1/minute", key="route", name="items"))])
    async def item(item_id: int):
        return {"item": item_id}

    @app.get("/search")
    @rate_limit("1/minute", key="header:X-Client", name="search")
    async def search():
        return {"results": []}

    @app.get("/find")
    @rate_limit("1/minute", key="ip", name="find")
    async def find():
        return {"results": []}

    app.add_middleware(RateLimitMiddleware, limits=[
        Limit("3/minute", key="header:X-Client", name="per-client", routes=["/"]),
        Limit("100/second", key="header:X-Client", name="calls", routes=["/calls"]),
    ], headers=True)
    """)


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine("import covet._native as n, covet.ratelimit", "compiled engine")


def request(port: int, path: str, client: str, method: str = "GET",
            conn: Optional[http.client.HTTPConnection] = None) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers={"X-Client": client})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if own:
            c.close()


def serve(tmp_path: Path, *extra: str, ready: str = r"serving on", app: str = APP,
          env: Optional[dict[str, str]] = None) -> ServerProcess:
    (tmp_path / "app.py").write_text(app)
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), *extra],
                           cwd=tmp_path, ready=ready, env=env)
    server.port = port
    return server


def test_over_the_limit_is_429_with_the_draft_fields_and_never_enters_python(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        port = server.port
        seen = [request(port, "/", "alice") for _ in range(3)]
        assert [s for s, _, _ in seen] == [200, 200, 200]
        assert [h["ratelimit"] for _, h, _ in seen] == [f'"per-client";r={r};t={t}'
                                                        for r, t in ((2, 20), (1, 40), (0, 60))]
        assert all(h["ratelimit-policy"] == '"per-client";q=3;w=60' for _, h, _ in seen)
        status, headers, body = request(port, "/", "alice")
        assert status == 429
        assert headers["retry-after"] == "20"  # one request every 20 s, the burst of 3 spent
        assert headers["ratelimit"] == '"per-client";r=0;t=60'
        assert headers["ratelimit-policy"] == '"per-client";q=3;w=60'
        assert b"Too Many Requests" in body
        for _ in range(5):
            assert request(port, "/", "alice")[0] == 429
        # Another client has its own budget; the refused requests never ran the handler.
        assert request(port, "/", "bob")[0] == 200
        status, _, body = request(port, "/calls", "carol")
        assert status == 200 and b'"n":4' in body.replace(b" ", b"")


def test_per_route_limits_from_the_decorator_and_the_dependency(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        port = server.port
        # @rate_limit("2/minute") on POST /login, per client address (all of these come from 127.0.0.1).
        login = [request(port, "/login", f"u{i}", method="POST") for i in range(3)]
        assert [s for s, _, _ in login] == [200, 200, 429]
        assert login[2][1]["ratelimit-policy"] == '"login";q=2;w=60'
        # Depends(Limit(key="route")): one budget for the template /items/{item_id}, whatever the id.
        assert request(port, "/items/1", "v1")[0] == 200
        status, headers, _ = request(port, "/items/2", "v2")
        assert status == 429 and headers["ratelimit-policy"] == '"items";q=1;w=60'
        assert request(port, "/", "w1")[0] == 200  # the other routes are not affected


def test_workers_share_one_budget(tmp_path: Path) -> None:
    with serve(tmp_path, "--workers", "2", ready=r"2 worker\(s\) serving on") as server:
        statuses: list[int] = []
        pids: set[int] = set()
        deadline = time.monotonic() + 20
        # New connections spread over the two workers (one shared socket); the per-client budget is 3 in all.
        while len(pids) < 2 or len(statuses) < 12:
            assert time.monotonic() < deadline, f"only {pids} answered"
            status, _, body = request(server.port, "/", f"probe-{len(statuses)}")  # a fresh key: 200, from any worker
            pids.add(int(body.split(b":")[1].strip(b" }")))
            statuses.append(status)
        shared = [request(server.port, "/", "shared")[0] for _ in range(12)]
        assert shared.count(200) == 3 and shared.count(429) == 9, shared


# ---- must-show: 10,000 clients over the limit get 429; one under it keeps its latency ------------------------

# The end of both attacker scripts: `run(k)` for k in 0..7, one thread each, then the 200 and 429 counts.
ATTACK_THREADS = textwrap.dedent("""
    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(counts[b"200"], counts[b"429"], flush=True)
    """)

ATTACKER = textwrap.dedent("""
    # 10,000 forged clients (X-Client: c0..c9999) asking GET /search (1/minute per client), `per` requests each,
    # over 8 keep-alive connections (one thread each), 32 requests in flight per connection (a client that
    # pipelines, not one that queues its whole attack in the server's socket buffer). Prints the 200 and 429 counts.
    import socket, sys, threading
    port, per, window = int(sys.argv[1]), int(sys.argv[2]), 32
    counts = {b"200": 0, b"429": 0}
    lock = threading.Lock()
    def run(k):
        s = socket.create_connection(("127.0.0.1", port))
        requests = [b"GET /search HTTP/1.1\\r\\nHost: x\\r\\nX-Client: c%d\\r\\n\\r\\n" % i
                    for i in range(k * 1250, (k + 1) * 1250) for _ in range(per)]
        mine = {b"200": 0, b"429": 0}
        for at in range(0, len(requests), window):
            batch = requests[at:at + window]
            s.sendall(b"".join(batch))
            buf = b""
            while buf.count(b"HTTP/1.1 ") < len(batch) or not buf.endswith(b"}"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise SystemExit("server closed")
                buf += chunk
            for status in mine:
                mine[status] += buf.count(b"HTTP/1.1 " + status)
        s.close()
        with lock:
            for status in mine:
                counts[status] += mine[status]
    """) + ATTACK_THREADS


def attack(tmp_path: Path, port: int, per: int, source: str = ATTACKER) -> subprocess.Popen[str]:
    script = tmp_path / "attacker.py"
    script.write_text(source)
    return subprocess.Popen([sys.executable, str(script), str(port), str(per)], stdout=subprocess.PIPE, text=True)


def counts(attacker: subprocess.Popen[str]) -> tuple[int, int]:
    try:
        out, _ = attacker.communicate(timeout=120)
    finally:
        attacker.kill()
    ok, refused = out.split()
    return int(ok), int(refused)


def latencies(port: int, samples: int, until: Optional[subprocess.Popen[str]] = None) -> list[float]:
    """One client under its limit (X-Client: good, GET /calls, 100/second): sequential keep-alive requests about
    12 ms apart, `samples` of them and then on until `until` exits."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out: list[float] = []
    try:
        while len(out) < samples or (until is not None and until.poll() is None):
            started = time.perf_counter()
            status, _, _ = request(port, "/calls", "good", conn=conn)
            out.append(time.perf_counter() - started)
            assert status == 200
            time.sleep(0.012)
    finally:
        conn.close()
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def clients_over_their_limit_leave_one_under_it_its_latency(tmp_path: Path, port: int, source: str, per: int) -> None:
    """The must-show: `source`'s 10,000 clients spend their budget (one request each), then send `per` more each
    (all 429) while one client under its own limit keeps its p99 latency."""
    assert counts(attack(tmp_path, port, 1, source)) == (10_000, 0)  # each client spends its budget
    latencies(port, 10)  # warm up
    baseline = latencies(port, 100)
    attacker = attack(tmp_path, port, per, source)  # now all 10,000 are over their limit
    under_attack = latencies(port, 30, until=attacker)
    assert counts(attacker) == (0, 10_000 * per)
    base, attacked = p99(baseline), p99(under_attack)
    print(f"p99 baseline {base * 1e3:.2f} ms, during the attack {attacked * 1e3:.2f} ms "
          f"({len(under_attack)} samples)")
    # Stated bound (a loaded, shared machine): within 5x the baseline's p99, or 50 ms above it.
    assert attacked <= max(5 * base, base + 0.050), (base, attacked)


def test_ten_thousand_clients_over_the_limit_and_one_under_it_keeps_its_latency(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        clients_over_their_limit_leave_one_under_it_its_latency(tmp_path, server.port, ATTACKER, 3)


ATTACKER_ADDRESSES = textwrap.dedent("""
    # 10,000 real clients: each its own source address (127.1.0.1 .. 127.1.39.250: all of 127/8 is the loopback
    # interface), one connection each asking GET /find (1/minute per client address) `per` times, pipelined; 8
    # threads take 1,250 clients each in turn. Prints the 200 and 429 counts.
    import socket, sys, threading
    port, per = int(sys.argv[1]), int(sys.argv[2])
    counts = {b"200": 0, b"429": 0}
    lock = threading.Lock()
    request = b"GET /find HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    def run(k):
        mine = {b"200": 0, b"429": 0}
        for i in range(k * 1250, (k + 1) * 1250):
            s = socket.socket()
            s.bind((f"127.1.{i // 250}.{i % 250 + 1}", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(request * per)
            buf = b""
            while buf.count(b"HTTP/1.1 ") < per or not buf.endswith(b"}"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise SystemExit("server closed")
                buf += chunk
            s.close()
            for status in mine:
                mine[status] += buf.count(b"HTTP/1.1 " + status)
        with lock:
            for status in mine:
                counts[status] += mine[status]
    """) + ATTACK_THREADS


def test_ten_thousand_client_addresses_over_the_limit_and_one_under_it_keeps_its_latency(tmp_path: Path) -> None:
    """The same must-show with real clients: 10,000 distinct source addresses, limited by address (``key="ip"``,
    the engine's own view of the peer), not by a header one client can vary."""
    with serve(tmp_path) as server:
        clients_over_their_limit_leave_one_under_it_its_latency(tmp_path, server.port, ATTACKER_ADDRESSES, 2)
        assert request(server.port, "/find", "x")[0] == 200  # 127.0.0.1 is not one of them: its own budget


# ---- across machines: Redis ------------------------------------------------------------------------------------

REDIS_APP = textwrap.dedent("""
    import os
    from covet import CovetPy, Depends
    from covet.ratelimit import RedisRateLimit

    app = CovetPy()
    limit = RedisRateLimit("3/minute", url=os.environ["RL_REDIS_URL"], prefix=os.environ["RL_PREFIX"],
                           key="header:X-Client", name="shared")

    @app.get("/", dependencies=[Depends(limit)])
    async def root():
        return {"pid": os.getpid()}
    """)


def redis_url() -> str:
    url = service_setting("COVET_TEST_REDIS_URL")
    if not url:
        reason = f"COVET_TEST_REDIS_URL not set and {SERVICES_ENV} missing: run `scripts/services.sh start`"
        if os.environ.get("COVET_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def test_redis_budget_is_shared_by_two_separate_servers(tmp_path: Path) -> None:
    url = redis_url()
    env = {"RL_REDIS_URL": url, "RL_PREFIX": f"covet-test-{os.getpid()}-{time.monotonic_ns()}:"}
    with serve(tmp_path, app=REDIS_APP, env=env) as one, serve(tmp_path, app=REDIS_APP, env=env) as two:
        if True:
            ports = [one.port, two.port, one.port, two.port, one.port]
            answers = [request(port, "/", "dana") for port in ports]
            assert [s for s, _, _ in answers] == [200, 200, 200, 429, 429]
            _, headers, _ = answers[3]
            assert headers["retry-after"] == "20"
            assert headers["ratelimit-policy"] == '"shared";q=3;w=60'
            assert headers["ratelimit"] == '"shared";r=0;t=60'
            assert request(two.port, "/", "erin")[0] == 200  # another key: its own budget


# ---- configuration, without a server ---------------------------------------------------------------------------

def test_rates_keys_and_misuse_are_checked_when_configured() -> None:
    from covet import CovetPy
    from covet.ratelimit import Limit, RateLimitMiddleware, parse_rate

    assert parse_rate("100/minute") == (100, 60.0)
    assert parse_rate("10 per second") == (10, 1.0)
    assert parse_rate("1000/5minutes") == (1000, 300.0)
    for bad in ("0/minute", "ten/minute", "5/fortnight", ""):
        with pytest.raises(ValueError, match="expected 'N/unit'"):
            parse_rate(bad)
    with pytest.raises(ValueError, match="rate limit key 'cookie'"):
        Limit("1/second", key="cookie")
    assert Limit("1/second", key="api_key").native_rule()["header"] == "X-API-Key"
    app = CovetPy()
    app.add_middleware(RateLimitMiddleware, limits=["5/second"])
    ((kind, options),) = app.native_middleware
    assert kind == "rate_limit" and options["rules"][0]["limit"] == 5 and options["rules"][0]["key"] == "ip"

    async def python_middleware(request: object, call_next: object) -> object:
        raise AssertionError("never called")

    # A Python middleware added after it would sit outside it: the limiter could then not run before Python.
    with pytest.raises(TypeError, match="runs in the engine, before any Python middleware"):
        app.middleware("http")(python_middleware)


def test_http2_streams_are_limited_like_requests(tmp_path: Path) -> None:
    """h2c (prior knowledge): five streams of one connection, one client key with a budget of 3."""
    h2_connection = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    h2_events = pytest.importorskip("h2.events")
    with serve(tmp_path) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        conn = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
        conn.initiate_connection()
        streams = []
        for _ in range(5):
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                          (":authority", "localhost"), ("x-client", "h2-client")], end_stream=True)
            streams.append(stream_id)
        sock.sendall(conn.data_to_send())
        heads: dict[int, dict[str, str]] = {}
        ended: set[int] = set()
        deadline = time.monotonic() + 10
        while len(ended) < 5 and time.monotonic() < deadline:
            for event in conn.receive_data(sock.recv(65536)):
                if isinstance(event, h2_events.ResponseReceived):
                    heads[event.stream_id] = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2_events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2_events.StreamEnded):
                    ended.add(event.stream_id)
            sock.sendall(conn.data_to_send())
        sock.close()
        statuses = [heads[s][":status"] for s in streams]
        assert sorted(statuses) == ["200", "200", "200", "429", "429"], statuses
        refused = next(heads[s] for s in streams if heads[s][":status"] == "429")
        assert refused["retry-after"] == "20" and refused["ratelimit-policy"] == '"per-client";q=3;w=60'
