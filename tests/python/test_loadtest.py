"""covet.testing.LoadTester: real HTTP/1.1 load over real sockets against a CovetPy app served in-process and
against a running server given by URL (the stdlib's http.server, for chunked and close-delimited framing);
closed-loop and open-loop counts, coordinated-omission-free latency, failures by kind."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import covet
from covet.testing import LoadTester, LoadTestResult


@pytest.fixture
def real(native: Any) -> Any:
    if getattr(native, "__name__", "") == "fake_native":
        pytest.skip("LoadTester measures the compiled engine over real sockets")
    return native


def _app() -> tuple[covet.CovetPy, dict[str, Any]]:
    app = covet.CovetPy()
    seen: dict[str, Any] = {"hits": 0, "bodies": set(), "agents": set()}

    @app.get("/hit")
    async def hit() -> dict[str, int]:
        seen["hits"] += 1
        return {"n": seen["hits"]}

    @app.get("/slow")
    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "late"

    @app.post("/echo")
    async def echo(request: covet.Request) -> dict[str, int]:
        seen["bodies"].add(await request.body())
        seen["agents"].add(request.headers.get("user-agent"))
        return {"ok": 1}

    return app, seen


def test_closed_loop_counts_what_the_app_served(real: Any) -> None:
    app, seen = _app()

    async def go() -> LoadTestResult:
        async with LoadTester(app, paths=["/hit"]) as tester:
            return await tester.run_test(concurrent_users=8, duration=0.5)

    result = asyncio.run(go())
    assert result.requests > 50 and result.requests == seen["hits"]
    assert result.status_counts == {200: result.requests} and result.errors == {} and result.error_rate == 0
    assert len(result.latencies) == result.requests and result.bytes_received > 0
    assert 0 < result.p50_latency <= result.p99_latency <= result.max_latency
    assert result.avg_latency > 0 and result.requests_per_second > 100
    assert "req/s" in result.summary()


def test_open_loop_sends_the_target_rate_and_post_bodies(real: Any) -> None:
    app, seen = _app()

    async def go() -> LoadTestResult:
        async with LoadTester(app, method="POST", paths=["/echo"], body=b'{"a":1}',
                              headers={"user-agent": "lt", "content-type": "application/json"}) as tester:
            return await tester.run_test(concurrent_users=5, duration=1.0, target_rps=200)

    result = asyncio.run(go())
    assert result.requests + result.missed == 200 and result.missed < 5
    assert result.status_counts == {200: result.requests}
    assert seen["bodies"] == {b'{"a":1}'} and seen["agents"] == {"lt"}


def test_open_loop_latency_counts_from_the_schedule(real: Any) -> None:
    """One user, 50 ms per answer, 40 requests due per second: the server does ~20/s, so requests wait longer and
    longer for their turn; the latency from the due time shows it (a closed-loop figure would stay ~50 ms)."""
    app, _ = _app()

    async def go() -> LoadTestResult:
        async with LoadTester(app, paths=["/slow"]) as tester:
            return await tester.run_test(concurrent_users=1, duration=1.0, target_rps=40)

    result = asyncio.run(go())
    assert result.requests < 30 and result.requests_per_second < 30 and result.requests + result.missed == 40
    assert result.duration < 1.2  # requests due but not sent by the end are counted in `missed`, not sent late
    assert result.p50_latency >= 50 and result.max_latency > 300


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":  # no content-length: the host frames the body (chunked)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hi", "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


@pytest.mark.parametrize(("app", "host_module", "size"), [(_asgi_app, "covet.asgi.server", 3),
                                                          (_wsgi_app, "covet.wsgi", 5)])
def test_asgi_and_wsgi_apps_hosted_in_process(real: Any, app: Any, host_module: str, size: int) -> None:
    pytest.importorskip(host_module, reason=f"this CovetPy has no {host_module} (ASGI/WSGI hosting)")

    async def go() -> LoadTestResult:
        async with LoadTester(app) as tester:
            return await tester.run_test(concurrent_users=3, duration=0.3)

    result = asyncio.run(go())
    assert result.requests > 10 and result.status_counts == {200: result.requests}
    assert result.bytes_received == size * result.requests


def test_failures_by_kind(real: Any) -> None:
    app, _ = _app()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]

    async def go() -> tuple[LoadTestResult, LoadTestResult]:
        async with LoadTester(app) as tester:
            missing = await tester.run_test(concurrent_users=2, duration=0.3, paths=["/nope"])
        async with LoadTester(f"http://127.0.0.1:{dead}") as tester:
            refused = await tester.run_test(concurrent_users=2, duration=0.2)
        return missing, refused

    missing, refused = asyncio.run(go())
    assert missing.requests > 0 and missing.status_counts == {404: missing.requests}
    assert missing.errors == {"status 404": missing.requests} and missing.error_rate == 1.0
    assert refused.requests == 0 and set(refused.errors) == {"ConnectionRefusedError"} and refused.error_rate == 1.0


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts (the kernel's backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)

        async def go() -> LoadTestResult:
            async with LoadTester(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.2) as tester:
                return await tester.run_test(concurrent_users=2, duration=0.3)

        result = asyncio.run(go())
    assert result.requests == 0 and set(result.errors) == {"timeout"} and result.error_rate == 1.0
    assert result.duration < 1.0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
        elif self.path == "/close":
            self.send_response(201)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
            self.close_connection = True
        else:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stdlib_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_running_server_by_url_chunked_and_close_delimited(stdlib_server: int) -> None:
    async def go() -> LoadTestResult:
        async with LoadTester(f"http://127.0.0.1:{stdlib_server}", paths=["/chunked", "/close", "/busy"]) as t:
            return await t.run_test(concurrent_users=3, duration=0.5)

    result = asyncio.run(go())
    statuses = result.status_counts
    assert set(statuses) == {200, 201, 503} and min(statuses.values()) > 3, result
    assert set(result.errors) == {"status 503"} and 0.2 < result.error_rate < 0.5
    # bodies: 11 bytes chunked, 13 close-delimited, 0
    assert result.bytes_received == 11 * statuses[200] + 13 * statuses[201]


def test_bad_arguments_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="http:// URL"):
        LoadTester("https://example.com")

    async def go() -> None:
        tester = LoadTester("http://127.0.0.1:9")
        with pytest.raises(ValueError, match="concurrent_users"):
            await tester.run_test(concurrent_users=0)
        with pytest.raises(ValueError, match="must start with '/'"):
            await tester.run_test(duration=0.1, paths=["x"])
        with pytest.raises(RuntimeError, match="async with"):
            await LoadTester(covet.CovetPy()).run_test(duration=0.1)

    asyncio.run(go())
