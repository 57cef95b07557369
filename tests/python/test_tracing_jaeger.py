"""One trace in a real Jaeger (built from the Go module proxy by scripts/build-jaeger.sh, which
COVET_WITH_JAEGER=1 scripts/setup.sh runs): a CovetPy app served by ``covet run`` with ``setup_observability`` exports over
OTLP/HTTP; a request to it makes a user span in the handler and an outgoing httpx call (instrumented by
opentelemetry-instrumentation-httpx) to a plain HTTP server that records the ``traceparent`` it gets. Jaeger's
query API must then return one trace holding the engine's server span, the user span (its child) and the
httpx client span (the user span's child), whose id is the parent id the downstream server received.

Skipped when the Jaeger binary is missing, unless COVET_REQUIRE_JAEGER=1 (then a failure): its first build
takes longer than the test command's budget, so scripts/setup.sh builds it only with COVET_WITH_JAEGER=1.
COVET_JAEGER_BIN names another binary.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from serverproc import ServerProcess, require_compiled_engine

ROOT = Path(__file__).resolve().parents[2]
JAEGER_VERSION = "v1.75.0"  # scripts/build-jaeger.sh's


def jaeger_binary() -> Path:
    given = os.environ.get("COVET_JAEGER_BIN")
    if given:
        return Path(given)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "covetpy" / "bin" / f"jaeger-{JAEGER_VERSION}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    require_compiled_engine()
    binary = jaeger_binary()
    if not binary.is_file():
        reason = f"no Jaeger binary at {binary}: run scripts/build-jaeger.sh (or COVET_WITH_JAEGER=1 scripts/setup.sh)"
        if os.environ.get("COVET_REQUIRE_JAEGER", "").strip() not in ("", "0"):
            pytest.fail(reason)
        pytest.skip(reason)
    ports = {"query_http": free_port(), "query_grpc": free_port(), "otlp_http": free_port()}
    config = tmp_path_factory.mktemp("jaeger") / "config.yaml"
    config.write_text(CONFIG.format(**ports))
    log = config.with_name("jaeger.log").open("w")
    proc = subprocess.Popen([str(binary), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http_get(ports["query_http"], "/api/services")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"Jaeger did not start: {config.with_name('jaeger.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Recorder(http.server.BaseHTTPRequestHandler):
    traceparents: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.traceparents.append(self.headers.get("traceparent", ""))
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"down")

    def log_message(self, *args: Any) -> None:
        pass


APP = """
    from covet import CovetPy
    from covet.observability import setup_observability
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    import httpx

    app = CovetPy()
    setup_observability(app, service_name="covet-jaeger-test", otlp_endpoint="http://127.0.0.1:{otlp}",
                        sampler="always_on", json_logs=False, metrics=False)
    HTTPXClientInstrumentor().instrument()
    tracer = trace.get_tracer("jaeger-test")

    @app.get("/work/{{n}}")
    async def work(n: int):
        with tracer.start_as_current_span("user work"):
            async with httpx.AsyncClient() as client:
                r = await client.get("http://127.0.0.1:{down}/down")
        return {{"n": n, "down": r.text}}
"""


def test_one_trace_spans_request_user_span_and_outgoing_call(jaeger: dict[str, int], tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.instrumentation.httpx")
    downstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=downstream.serve_forever, daemon=True).start()
    Recorder.traceparents.clear()
    (tmp_path / "jaegerapp.py").write_text(textwrap.dedent(APP.format(otlp=jaeger["otlp_http"],
                                                                       down=downstream.server_address[1])))
    try:
        with ServerProcess([sys.executable, "-m", "covet", "run", "jaegerapp:app", "--app-dir", str(tmp_path),
                            "--port", "0"]) as server:
            status, body = http_get(server.port, "/work/3")
            assert status == 200, body
            assert json.loads(body) == {"n": 3, "down": "down"}
            [sent] = Recorder.traceparents
            version, trace_id, client_span_id, flags = sent.split("-")
            assert (version, flags) == ("00", "01")
            spans = wait_for_trace(jaeger["query_http"], trace_id, count=3)
            server.stop()
    finally:
        downstream.shutdown()
    by_name = {s["operationName"]: s for s in spans}
    server_span = by_name["GET /work/{n}"]
    user_span = by_name["user work"]
    client_span = next(s for s in spans if s["spanID"] == client_span_id)
    assert parent_of(server_span) is None  # a new trace: the engine's span is the root
    assert parent_of(user_span) == server_span["spanID"]
    assert parent_of(client_span) == user_span["spanID"]
    tags = {t["key"]: t["value"] for t in server_span["tags"]}
    assert tags["http.route"] == "/work/{n}" and tags["http.response.status_code"] == 200
    assert tags["http.request.method"] == "GET" and tags["span.kind"] == "server"


def parent_of(span: dict[str, Any]) -> Any:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def wait_for_trace(query_port: int, trace_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        status, body = http_get(query_port, f"/api/traces/{trace_id}")
        if status == 200:
            data = json.loads(body).get("data") or []
            spans = data[0]["spans"] if data else []
            if len(spans) >= count:
                return spans
        time.sleep(0.3)
    raise AssertionError(f"trace {trace_id} has {len(spans)} spans in Jaeger after {timeout}s, expected {count}: "
                         f"{[s.get('operationName') for s in spans]}")
