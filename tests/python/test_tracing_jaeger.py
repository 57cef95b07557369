"""One trace in a real Jaeger (Jaeger v1.75.0's components built from the Go module proxy by scripts/build-jaeger.sh,
which scripts/setup.sh runs): a CovetPy app served by ``covet run`` with ``setup_observability`` exports over
OTLP/HTTP; a request to it makes a user span in the handler and an outgoing httpx call (instrumented by
opentelemetry-instrumentation-httpx) to a plain HTTP server that records the ``traceparent`` it gets. Jaeger's
query API must then return one trace holding the engine's server span, the user span (its child) and the
httpx client span (the user span's child), whose id is the parent id the downstream server received.

Skipped when the Jaeger binary is missing, unless COVET_REQUIRE_JAEGER=1 (then a failure; the test command sets it).
COVET_JAEGER_BIN names another binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jaegerproc import http_get, jaeger_binary, running_jaeger
from serverproc import ServerProcess, require_compiled_engine
from tracecollector import Collector


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    require_compiled_engine()
    binary = jaeger_binary()
    if not binary.is_file():
        reason = f"no Jaeger binary at {binary}: run scripts/build-jaeger.sh (scripts/setup.sh does)"
        if os.environ.get("COVET_REQUIRE_JAEGER", "").strip() not in ("", "0"):
            pytest.fail(reason)
        pytest.skip(reason)
    with contextlib.ExitStack() as stack:
        try:
            ports = stack.enter_context(running_jaeger(binary, tmp_path_factory.mktemp("jaeger")))
        except RuntimeError as e:
            pytest.fail(str(e))
        yield ports


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
    downstream = Collector(reply=b"down")  # records the traceparent the handler's httpx call sends
    (tmp_path / "jaegerapp.py").write_text(textwrap.dedent(APP.format(otlp=jaeger["otlp_http"],
                                                                       down=downstream.port)))
    try:
        with ServerProcess([sys.executable, "-m", "covet", "run", "jaegerapp:app", "--app-dir", str(tmp_path),
                            "--port", "0"]) as server:
            status, body = http_get(server.port, "/work/3")
            assert status == 200, body
            assert json.loads(body) == {"n": 3, "down": "down"}
            [sent] = [call.get("traceparent", "") for call in downstream.calls]
            version, trace_id, client_span_id, flags = sent.split("-")
            assert (version, flags) == ("00", "01")
            spans = wait_for_trace(jaeger["query_http"], trace_id, count=3)
            server.stop()
    finally:
        downstream.close()
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
