"""A Flask app with covet.observability (tests/hosting/test_tracing.py, under `covet run` only): its SDK spans and
its instrumented httpx calls must continue the native request span of the server hosting it (WSGI, in the host's
thread pool). The environment variables are traced_fastapi_app.py's."""

from __future__ import annotations

import os
from typing import Any

import httpx
from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from covet.observability import setup_observability

app = Flask(__name__)
setup_observability(app, service_name="hosted-flask", sampler=os.environ.get("TRACED_SAMPLER"),
                    otlp_endpoint=os.environ["TRACED_COLLECTOR"])
HTTPXClientInstrumentor().instrument()
tracer = trace.get_tracer("hosting.flask")


def _ids(span: Any) -> dict[str, Any]:
    ctx = span.get_span_context()
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}", "sampled": ctx.trace_flags.sampled}


@app.get("/traced")
def traced() -> dict[str, Any]:
    request_span = _ids(trace.get_current_span())
    with tracer.start_as_current_span("flask work") as span, httpx.Client() as client:
        client.get(os.environ["TRACED_DOWNSTREAM"])
    return {"request": request_span, "user": _ids(span)}
