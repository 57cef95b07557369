"""Tracing of hosted apps: a FastAPI app (ASGI) and a Flask app (WSGI, in the host's thread pool) served by
`covet run`, each calling ``setup_observability(app)``. The engine makes a span per request (continuing an
incoming W3C traceparent); the app runs with it as its current OpenTelemetry context, so the app's SDK span is
its child and an instrumented httpx call sends a traceparent on in the same trace; the JSON access log lines
carry the trace id.

The spans are read from a real OTLP/HTTP endpoint in this process (the engine's spans and the app's SDK spans are
both exported to it by the app's process, as to a collector), decoded with OpenTelemetry's protobuf messages.
covet only: uvicorn and gunicorn make no spans."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import serve

pytest.importorskip("opentelemetry.proto", reason="the hosting venv has no OpenTelemetry (tests/hosting/run.sh)")

from tracecollector import Collector  # tests/python's, on sys.path by conftest

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    with Collector() as c:
        yield c


def spans_of(collector: Collector, trace_id: str, span_ids: set[str], timeout: float = 15.0) -> list[dict[str, Any]]:
    """The spans of `trace_id` once those of `span_ids`, the engine's (scope "covet") and a client span arrived
    (both exporters send every second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in collector.spans if s["trace_id"] == trace_id]
        if (span_ids <= {s["span_id"] for s in found} and any(s["scope"] == "covet" for s in found)
                and any(s["kind"] == SPAN_KIND_CLIENT for s in found)) or time.monotonic() > deadline:
            time.sleep(0.2)  # the rest of a batch being decoded
            return [s for s in collector.spans if s["trace_id"] == trace_id]
        time.sleep(0.1)


def access_lines(log: str, trace_id: str) -> list[dict[str, Any]]:
    lines = []
    for line in log.splitlines():
        if line.startswith("{") and trace_id in line:
            entry = json.loads(line)
            if entry.get("trace_id") == trace_id and "status" in entry:
                lines.append(entry)
    return lines


@pytest.mark.parametrize("target, user_span", [("traced_fastapi_app:app", "fastapi work"),
                                               ("traced_flask_app:app", "flask work")], ids=["fastapi", "flask"])
def test_hosted_app_continues_the_request_span(collector: Collector, target: str, user_span: str) -> None:
    collector.clear()  # the same trace id in each case
    env = {"TRACED_COLLECTOR": collector.url, "TRACED_DOWNSTREAM": f"{collector.url}/down"}
    with serve("covet", target, env, args=("--log-level", "info")) as server:  # info: the access log's lines
        r = httpx.get(f"{server.url}/traced", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        spans = spans_of(collector, TRACE_ID, {body["request"]["span_id"], body["user"]["span_id"]})
        log = server.output()
    request, user = body["request"], body["user"]
    by_id = {s["span_id"]: s for s in spans}

    def ancestors(span_id: str) -> list[str]:
        chain = []
        while span_id in by_id:
            chain.append(span_id)
            span_id = by_id[span_id]["parent"]
        return [*chain, span_id]

    # The engine's span (exported by covet.observability.tracing, scope "covet") continues the caller's trace.
    [native] = [s for s in spans if s["scope"] == "covet"]
    assert native["kind"] == SPAN_KIND_SERVER and native["parent"] == PARENT_ID and native["name"] == "GET"
    assert native["attributes"]["url.path"].string_value == "/traced"
    # Every other span of the trace descends from it: the app's current span while it ran (the engine's span for
    # Flask; FastAPI's own server and endpoint spans, which take their parent from the traceparent the engine
    # presents, are between them), the app's SDK span, the httpx client span.
    for span in spans:
        assert ancestors(span["span_id"])[-2:] == [native["span_id"], PARENT_ID], (span, spans)
    assert request["trace_id"] == TRACE_ID and request["sampled"] is True
    assert native["span_id"] in ancestors(request["span_id"])
    if target.startswith("traced_flask"):
        assert request["span_id"] == native["span_id"]
    sdk = by_id[user["span_id"]]
    assert sdk["name"] == user_span and sdk["parent"] == request["span_id"] and user["trace_id"] == TRACE_ID
    [client] = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT]
    assert client["parent"] == user["span_id"]
    # The downstream got a traceparent of the same trace, whose parent is the httpx client span.
    [sent] = collector.calls
    assert sent["traceparent"] == f"00-{TRACE_ID}-{client['span_id']}-01"
    # The JSON access log line of the request carries the engine's span.
    [line] = access_lines(log, TRACE_ID)
    assert line["span_id"] == native["span_id"] and line["status"] == 200 and line["request_id"]


def test_unsampled_hosted_request_propagates_its_trace_unsampled(collector: Collector) -> None:
    """Parent-based sampling with an unsampled caller: nothing is recorded, but the app's outgoing call continues
    the caller's trace with sampled=0 (W3C); a request without a traceparent gets its own trace id."""
    collector.calls.clear()
    trace_id = "5" * 32
    env = {"TRACED_COLLECTOR": collector.url, "TRACED_DOWNSTREAM": f"{collector.url}/down",
           "TRACED_SAMPLER": "parentbased_always_off"}
    with serve("covet", "traced_fastapi_app:app", env) as server:
        r = httpx.get(f"{server.url}/traced", headers={"traceparent": f"00-{trace_id}-{PARENT_ID}-00"}, timeout=10)
        fresh = httpx.get(f"{server.url}/sync", timeout=10)
        time.sleep(2.5)  # two export intervals: anything recorded would have arrived
    assert r.status_code == 200 and fresh.status_code == 200
    request = r.json()["request"]
    assert request["trace_id"] == trace_id and request["sampled"] is False
    [sent] = collector.calls
    version, sent_trace, _, flags = sent["traceparent"].split("-")
    assert (version, sent_trace, flags) == ("00", trace_id, "00")
    assert [s for s in collector.spans if s["trace_id"] == trace_id] == []
    # A def route (FastAPI's thread pool, a copy of the request's context) sees the engine's own new trace id.
    other = fresh.json()["request"]
    assert other["trace_id"] not in (trace_id, "0" * 32) and other["sampled"] is False
