"""Observability in one call: ``setup_observability(app)`` (the design doc's), or its parts.

* tracing (`covet.observability.tracing`): a native span per request (W3C traceparent continued), the
  handler's current OpenTelemetry context, OTLP export off the request path;
* structured logs (`covet.observability.logging`): JSON lines with the request's trace_id/span_id/request_id,
  levels per logger at run time;
* metrics (`covet.observability.metrics`, when present): the engine's request metrics on ``/_metrics``.

Settings not passed come from the standard environment variables: OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER,
OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
"""

from __future__ import annotations

import importlib
import logging as std_logging  # `logging` is this package's submodule (covet.observability.logging)
import os
from typing import Any, Optional, Union

from covet.observability.logging import JsonFormatter, current_ids, set_log_level, use_json_logs
from covet.observability.tracing import Tracing

__all__ = ["JsonFormatter", "Tracing", "current_ids", "set_log_level", "setup_observability", "use_json_logs"]

logger = std_logging.getLogger("covet.observability")


def setup_observability(
    app: Any,
    *,
    service_name: Optional[str] = None,
    sampler: Union[str, float, None] = None,
    sampler_ratio: Optional[float] = None,
    otlp_endpoint: Optional[str] = None,
    metrics: bool = True,
    tracing: bool = True,
    json_logs: bool = True,
    access_log: bool = True,
    log_level: Optional[str] = None,
    export: bool = True,
    **metrics_options: Any,
) -> Optional[Tracing]:
    """Turns on tracing, JSON logs and metrics for `app` (a CovetPy app) with sensible defaults; call it where the
    app is made, before it serves (each ``covet run --workers N`` process does). Returns the `Tracing`, if on.
    `app` may also be an ASGI or WSGI application that ``covet run`` hosts (FastAPI, Flask): it gets the native
    span per request, its current OpenTelemetry context and the JSON logs; its metrics come from
    ``covet run --metrics``.

    `sampler`: an OTEL_TRACES_SAMPLER name (``parentbased_traceidratio`` ...) with `sampler_ratio`, or a ratio
    alone (0.01: one trace in a hundred, following the caller's decision when it sent one). `otlp_endpoint`:
    the OTLP/HTTP collector (``http://jaeger:4318``). `export=False` records spans without exporting them.
    `access_log`: the engine's access log (JSON with `json_logs`), with a request id (X-Request-ID).
    `metrics_options` go to ``covet.observability.metrics.enable_metrics``.
    """
    result: Optional[Tracing] = None
    if json_logs:
        use_json_logs(level=log_level)
    elif log_level is not None:
        set_log_level(log_level)
    if tracing:
        result = Tracing(service_name=service_name, sampler=sampler, sampler_ratio=sampler_ratio,
                         otlp_endpoint=otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None,
                         export=export)
        app._covet_tracing = result  # the runtime (covet.server.serve.Worker) installs it on its servers
        _set_global_tracer_provider(result)
    if access_log:
        app._covet_access_log = "json" if json_logs else "text"
    if metrics and not isinstance(getattr(app, "ops_options", None), dict):
        # A hosted ASGI/WSGI app (FastAPI, Flask): tracing and logs are set on it; the engine's metrics endpoints
        # are the server's (covet run --metrics / --ops-port), not the app's.
        logger.debug("setup_observability: %r is not a CovetPy app; serve /_metrics with covet run --metrics", app)
    elif metrics:
        try:
            metrics_module = importlib.import_module("covet.observability.metrics")
        except ImportError:
            logger.debug("covet.observability.metrics is not available: metrics not enabled")
        else:
            metrics_module.enable_metrics(app, **metrics_options)
    return result


def _set_global_tracer_provider(tracing: Tracing) -> None:
    """The OpenTelemetry SDK's provider for the spans handlers create, when the app has not set one: sampled as
    the request's span (parent-based), exported to the same endpoint in batches."""
    if not tracing.export:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:
        return
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the app configured OpenTelemetry itself
    provider = TracerProvider(resource=Resource.create({"service.name": tracing.service_name}),
                              sampler=ParentBased(TraceIdRatioBased(tracing.ratio if tracing.sampler.endswith(
                                  "traceidratio") else 0.0 if tracing.sampler.endswith("always_off") else 1.0)))
    exporter = OTLPSpanExporter(endpoint=tracing.endpoint) if tracing.endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
