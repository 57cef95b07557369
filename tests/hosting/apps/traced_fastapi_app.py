"""A FastAPI app with covet.observability (tests/hosting/test_tracing.py, under `covet run` only): its SDK spans
and its instrumented httpx calls must continue the native request span of the server hosting it.

TRACED_COLLECTOR: the OTLP/HTTP endpoint both the engine's spans and the SDK's go to; TRACED_DOWNSTREAM: the URL
the handler calls with httpx; TRACED_SAMPLER: the sampler (default parent-based always-on)."""

from __future__ import annotations

import os
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from covet.observability import setup_observability

app = FastAPI()
setup_observability(app, service_name="hosted-fastapi", sampler=os.environ.get("TRACED_SAMPLER"),
                    otlp_endpoint=os.environ["TRACED_COLLECTOR"])
HTTPXClientInstrumentor().instrument()
tracer = trace.get_tracer("hosting.fastapi")


def _ids(span: Any) -> dict[str, Any]:
    ctx = span.get_span_context()
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}", "sampled": ctx.trace_flags.sampled}


@app.get("/traced")
async def traced() -> dict[str, Any]:
    request_span = _ids(trace.get_current_span())
    with tracer.start_as_current_span("fastapi work") as span:
        async with httpx.AsyncClient() as client:
            await client.get(os.environ["TRACED_DOWNSTREAM"])
    return {"request": request_span, "user": _ids(span)}


@app.get("/sync")
def sync_route() -> dict[str, Any]:  # FastAPI runs it in its thread pool, in a copy of the request's context
    return {"request": _ids(trace.get_current_span())}
