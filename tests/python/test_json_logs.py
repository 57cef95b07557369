"""Structured logs: ``covet run --log-format json --access-log`` writes every line on stderr as one JSON object,
the engine's access log and the app's stdlib `logging` records (info and errors) alike, each carrying the
request's request_id and, with tracing (covet.observability), its trace_id and span_id; levels per logger
change at run time."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serverproc
from serverproc import ServerProcess, free_port, require_compiled_engine, sample

from covet.logger import JsonFormatter, request_ids
from covet.observability import set_log_level

APP = """
    import logging
    from covet import CovetPy
    {setup}
    app = CovetPy()
    {observe}
    log = logging.getLogger("myapp")

    @app.get("/hello/{{name}}")
    async def hello(name: str):
        log.info("saying hello to %s", name, extra={{"user": name}})
        return {{"hi": name}}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("kaboom")
"""


@pytest.fixture(scope="module", autouse=True)
def _engine() -> None:
    require_compiled_engine()


def get(port: int, path: str) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    out = []
    for line in server.stderr:
        line = line.strip()
        if line:
            out.append(json.loads(line))  # every line on the stream is JSON
    return out


def run_app(tmp_path: Path, tracing: bool) -> ServerProcess:
    setup = "from covet.observability import setup_observability" if tracing else ""
    observe = "setup_observability(app, export=False, metrics=False)" if tracing else ""
    (tmp_path / "logapp.py").write_text(textwrap.dedent(APP.format(setup=setup, observe=observe)))
    return ServerProcess([sys.executable, "-m", "covet", "run", "logapp:app", "--app-dir", str(tmp_path), "--port", "0",
                          "--log-format", "json", "--access-log"])


@pytest.mark.parametrize("tracing", [True, False], ids=["with-tracing", "access-log-only"])
def test_access_and_app_records_are_json_with_the_request_ids(tmp_path: Path, tracing: bool) -> None:
    with run_app(tmp_path, tracing) as server:
        status, headers = get(server.port, "/hello/ann")
        assert status == 200
        assert get(server.port, "/boom")[0] == 500
        server.wait_for(r'"status":500')
        server.stop()
    records = json_lines(server)
    assert records and all({"time", "level", "logger", "msg"} <= r.keys() for r in records)
    [hello] = [r for r in records if r["logger"] == "myapp"]
    assert hello["msg"] == "saying hello to ann" and hello["user"] == "ann" and hello["level"] == "info"
    [access] = [r for r in records if r["logger"] == "covet.access" and r["target"] == "/hello/ann"]
    assert access["status"] == 200 and access["method"] == "GET"
    assert hello["request_id"] == access["request_id"] == headers["x-request-id"]
    [error] = [r for r in records if r["level"] == "error"]
    assert "kaboom" in error["exc"]
    [boom] = [r for r in records if r["logger"] == "covet.access" and r["target"] == "/boom"]
    assert error["request_id"] == boom["request_id"]
    if tracing:
        assert len(hello["trace_id"]) == 32 and len(hello["span_id"]) == 16
        assert (hello["trace_id"], hello["span_id"]) == (access["trace_id"], access["span_id"])
        assert (error["trace_id"], error["span_id"]) == (boom["trace_id"], boom["span_id"])
        assert hello["trace_id"] != error["trace_id"]
    else:
        assert "trace_id" not in hello and "trace_id" not in access


def test_json_formatter_and_run_time_levels() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.json_logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        set_log_level("warning", "tests.json_logs")
        log.info("hidden")
        token = request_ids.set(("a" * 32, "b" * 16, "req-1"))
        try:
            log.warning('quote " and\nnewline')
        finally:
            request_ids.reset(token)
        set_log_level("debug", "tests.json_logs")
        log.debug("now visible")
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["msg"] for r in lines] == ['quote " and\nnewline', "now visible", "failed"]
    assert lines[0]["trace_id"] == "a" * 32 and lines[0]["span_id"] == "b" * 16 and lines[0]["request_id"] == "req-1"
    assert "trace_id" not in lines[1]
    assert "ValueError: bad" in lines[2]["exc"]
    with pytest.raises(ValueError, match="unknown log level"):
        set_log_level("loud", "tests.json_logs")


BODIES_APP = """
    import asyncio
    from covet import CovetPy
    from covet.responses import FileResponse, StreamingResponse

    app = CovetPy()

    @app.api_route("/file", methods=["GET", "HEAD"])
    async def file():
        return FileResponse({path!r})

    @app.api_route("/stream", methods=["GET", "HEAD"])
    async def stream():
        async def chunks():
            for _ in range(3):
                yield b"x" * 1000
                await asyncio.sleep(0.05)
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/endless")
    async def endless():
        async def chunks():
            while True:
                yield b"y" * 1000
                await asyncio.sleep(0.01)
        return StreamingResponse(chunks(), media_type="text/plain")
"""


def test_access_log_and_metrics_count_the_body_as_sent(tmp_path: Path) -> None:
    """The access log's bytes and the response body size metric are the body as it went out: a file body
    (sendfile) counts its length, not 0; HEAD counts none; a streamed response is logged when its stream ends,
    with all its chunks and its whole duration; a stream the client walks away from is logged as aborted."""
    (tmp_path / "data.bin").write_bytes(b"f" * 5000)
    (tmp_path / "bodies.py").write_text(textwrap.dedent(BODIES_APP.format(path=str(tmp_path / "data.bin"))))
    ops = free_port()
    with ServerProcess([sys.executable, "-m", "covet", "run", "bodies:app", "--app-dir", str(tmp_path), "--port", "0",
                        "--log-format", "json", "--access-log", "--ops-port", str(ops)]) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        # A HEAD's answer is complete at its head, while the app's producer still runs: a client that closes the
        # connection right after the head (curl -I) has not aborted anything.
        for method, path, size in (("HEAD", "/stream", 0), ("GET", "/file", 5000), ("HEAD", "/file", 0),
                                   ("GET", "/stream", 3000)):
            conn.request(method, path)
            r = conn.getresponse()
            assert r.status == 200 and len(r.read()) == size
            if method == "HEAD":
                conn.close()
        conn.close()
        sizes = h2c_exchange(server.port, [("HEAD", "/stream"), ("GET", "/stream"), ("GET", "/file")])
        assert sizes == [0, 3000, 5000]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
            got = b""
            while got.count(b"y") < 3000:
                got += s.recv(65536)
        server.wait_for(r'"target":"/endless".*"aborted":true')
        # An HTTP/2 stream the client resets is logged as aborted then, not when its pooled slot is next used: the
        # connection stays open and quiet meanwhile.
        with h2c_reset_after(server.port, "/endless", 3000):
            server.wait_for(r'"target":"/endless","protocol":"HTTP/2".*"aborted":true')
        # The engine writes an exchange's access log line, then records its metrics: a scrape right after the
        # line may come in between (a CI run did), so it is repeated until both aborted exchanges are in.
        deadline = time.monotonic() + 10
        while True:
            metrics = serverproc.get(ops, "/_metrics")[1]
            aborted = sample(metrics, "http_server_request_duration_seconds_count", error_type="aborted")
            if aborted >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        server.stop()
    lines = [r for r in json_lines(server) if r["logger"] == "covet.access"]
    access = {(r["method"], r["target"], r["protocol"]): r for r in lines}
    assert access[("GET", "/file", "HTTP/1.1")]["bytes"] == access[("GET", "/file", "HTTP/2")]["bytes"] == 5000
    assert access[("HEAD", "/file", "HTTP/1.1")]["bytes"] == 0
    for protocol in ("HTTP/1.1", "HTTP/2"):
        streamed = access[("GET", "/stream", protocol)]
        assert streamed["bytes"] == 3000 and streamed["status"] == 200 and "aborted" not in streamed, streamed
        assert streamed["duration_us"] >= 100_000  # two 50 ms sleeps between the chunks: logged at the end
        head = access[("HEAD", "/stream", protocol)]  # a stream with no body still ends (not aborted)
        assert head["bytes"] == 0 and "aborted" not in head, (protocol, head)
    endless = access[("GET", "/endless", "HTTP/1.1")]
    assert endless["aborted"] is True and endless["bytes"] >= 3000
    assert access[("GET", "/endless", "HTTP/2")]["aborted"] is True
    heads = [r for r in lines if r["method"] == "HEAD" and r["target"] == "/stream" and r["protocol"] == "HTTP/1.1"]
    assert len(heads) == 1 and "aborted" not in heads[0], heads
    file_route = {"http_route": "/file", "http_request_method": "GET"}
    assert sample(metrics, "http_server_response_body_size_bytes_sum", **file_route) == 2 * 5000
    assert sample(metrics, "http_server_response_body_size_bytes_sum", http_route="/file",
                  http_request_method="HEAD") == 0
    assert sample(metrics, "http_server_response_body_size_bytes_sum", http_route="/stream") == 2 * 3000
    # Every exchange but the endless ones completed: none is counted as aborted.
    assert sample(metrics, "http_server_request_duration_seconds_count", error_type="aborted") == 2


@contextlib.contextmanager
def h2c_connection(port: int) -> Iterator[tuple[socket.socket, Any]]:
    """A socket and an HTTP/2 client connection on it (cleartext, prior knowledge), its preface sent with the
    first request."""
    import h2.config
    import h2.connection

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        yield s, conn


def h2c_read(s: socket.socket, conn: Any, method: str, path: str,
             enough: int | None = None) -> tuple[int, int]:
    """Sends a request on a new stream and reads its body until the stream ends (or `enough` bytes came): the
    stream id and how many body bytes arrived."""
    import h2.events

    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", method), (":scheme", "http"), (":authority", "t"), (":path", path)],
                      end_stream=True)
    s.sendall(conn.data_to_send())
    size, ended = 0, False
    while not ended and (enough is None or size < enough):
        data = s.recv(65536)
        assert data, "the server closed the connection"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                size += len(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
            ended = ended or (isinstance(event, h2.events.StreamEnded) and event.stream_id == stream)
        s.sendall(conn.data_to_send())
    return stream, size


@contextlib.contextmanager
def h2c_reset_after(port: int, path: str, size: int) -> Iterator[None]:
    """GET `path` over HTTP/2 cleartext, RST_STREAM(CANCEL) once `size` body bytes arrived; the connection stays
    open (quiet: no other stream) for the body of the with block."""
    import h2.errors

    with h2c_connection(port) as (s, conn):
        stream, got = h2c_read(s, conn, "GET", path, enough=size)
        assert got >= size, "the stream ended first"
        conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
        s.sendall(conn.data_to_send())
        yield


def h2c_exchange(port: int, requests: list[tuple[str, str]]) -> list[int]:
    """Each request on one HTTP/2 cleartext connection (prior knowledge), one after the other: the body sizes."""
    with h2c_connection(port) as (s, conn):
        return [h2c_read(s, conn, method, path)[1] for method, path in requests]
