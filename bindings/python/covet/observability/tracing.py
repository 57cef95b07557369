"""Request tracing: the engine's native spans, the handlers' OpenTelemetry context, and OTLP export.

The engine (covet/trace) parses ``traceparent``/``tracestate``, gives every request a span id and decides
sampling natively; a sampled request's span is recorded natively when its response goes out. This module

* runs each Python handler with that span as the current OpenTelemetry context (when ``opentelemetry-api`` is
  installed): spans the handler starts with the official API are its children, and instrumented clients (httpx)
  send a ``traceparent`` with the same trace id;
* sets the request's ids for JSON log records (covet.observability.logging);
* drains the engine's finished spans on a background thread and exports them with the OTLP exporter
  (``opentelemetry-exporter-otlp-proto-http``), in batches, off the request path.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Optional, Union

from covet.logger import request_ids

__all__ = ["SAMPLERS", "Tracing", "sampler_from_env"]

logger = logging.getLogger("covet.observability")

SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio")


def sampler_from_env(sampler: Union[str, float, None] = None, ratio: Optional[float] = None) -> tuple[str, float]:
    """(OTEL_TRACES_SAMPLER name, ratio) from the arguments, else OTEL_TRACES_SAMPLER/_ARG, else parent-based
    always-on (OpenTelemetry's default). A number alone means ``parentbased_traceidratio`` at that ratio."""
    if isinstance(sampler, (int, float)) and not isinstance(sampler, bool):
        sampler, ratio = "parentbased_traceidratio", float(sampler)
    if sampler is not None and not isinstance(sampler, str):
        raise TypeError(f"sampler must be a sampler name or a ratio, not {sampler!r}")
    name = (sampler if sampler is not None else os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on"))
    name = name.strip().lower()
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}, or a ratio (0.01)")
    if ratio is None:
        arg = os.environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        try:
            ratio = float(arg) if arg else 1.0
        except ValueError:
            raise ValueError(f"OTEL_TRACES_SAMPLER_ARG: expected a ratio between 0 and 1, not {arg!r}") from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"sampler ratio must be between 0 and 1, not {ratio}")
    return name, ratio


def _traces_endpoint(endpoint: Optional[str]) -> Optional[str]:
    """An OTLP/HTTP base URL (as OTEL_EXPORTER_OTLP_ENDPOINT) → its traces URL; a URL already ending in
    /v1/traces is kept. None: the exporter reads the environment (default http://localhost:4318)."""
    if not endpoint:
        return None
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class Tracing:
    """Tracing for one app (made by `covet.observability.setup_observability`). The runtime calls `install` on
    each native server it makes for the app and `request_hook` in each request's context."""

    def __init__(self, *, service_name: Optional[str] = None, sampler: Union[str, float, None] = None,
                 sampler_ratio: Optional[float] = None, otlp_endpoint: Optional[str] = None, export: bool = True,
                 export_interval: float = 1.0, max_export_batch: int = 512, queue_capacity: int = 2048) -> None:
        self.service_name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "covet"
        self.sampler, self.ratio = sampler_from_env(sampler, sampler_ratio)
        self.endpoint = _traces_endpoint(otlp_endpoint)
        self.export = export
        self.export_interval = export_interval
        self.max_export_batch = max_export_batch
        self.queue_capacity = queue_capacity
        self._tracers: list[Any] = []  # the NativeTracer of each server installed
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._exporter: Any = None
        self._resource: Any = None
        self._scope: Any = None
        self._otel = _otel_api()
        self._flush_waiters: list[threading.Event] = []
        self.exported = 0  # spans handed to the exporter successfully
        self.failed = 0  # spans an export failed for

    # -- the runtime's calls --------------------------------------------------------------------------------
    def install(self, server: Any, native: Any) -> None:
        """Turns on the engine's spans on `server` (before its other middleware: first to run) and starts the
        export thread once."""
        tracer = native.enable_tracing(server, self.sampler, self.ratio, self.queue_capacity)
        with self._lock:
            self._tracers.append(tracer)
            if self.export and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="covet-otlp-export", daemon=True)
                self._thread.start()
                atexit.register(self.shutdown)

    def request_hook(self, native_request: Any) -> None:
        """In a request's fresh context, before its handler: the request's span as the current OpenTelemetry
        context, and its ids for log records."""
        trace_context = native_request.trace_context
        if trace_context is None:
            request_ids.set(("", "", native_request.request_id))
            return
        trace_id, span_id, flags, tracestate = trace_context
        request_ids.set((trace_id, span_id, native_request.request_id))
        otel = self._otel
        if otel is not None:
            trace, context, state_type = otel
            span_context = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False,
                                             trace_flags=trace.TraceFlags(flags & 0x01),
                                             trace_state=state_type.from_header([tracestate]) if tracestate else None)
            context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span_context)))

    # -- export ---------------------------------------------------------------------------------------------
    def force_flush(self, timeout: float = 10.0) -> bool:
        """Exports every span finished so far now; True when done within `timeout` seconds."""
        if self._thread is None:
            return True
        done = threading.Event()
        with self._lock:
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def shutdown(self) -> None:
        """Exports what is left and stops the thread (registered with atexit)."""
        thread = self._thread
        if thread is None or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout=10.0)
        if self._exporter is not None:
            self._exporter.shutdown()

    @property
    def dropped(self) -> int:
        """Spans the engine dropped because a worker's queue was full (the exporter fell behind)."""
        return sum(t.dropped for t in self._tracers)

    def _run(self) -> None:
        try:
            self._exporter, self._resource, self._scope = self._make_exporter()
        except Exception:
            logger.exception("tracing: cannot set up the OTLP exporter; spans are not exported")
            self._exporter = None
        while True:
            self._wake.wait(self.export_interval)
            self._wake.clear()
            with self._lock:
                waiters, self._flush_waiters = self._flush_waiters, []
            self._export_pending()
            for w in waiters:
                w.set()
            if self._stopping:
                return

    def _export_pending(self) -> None:
        spans: list[tuple[Any, ...]] = []
        for tracer in list(self._tracers):
            spans.extend(tracer.drain())
        if not spans or self._exporter is None:
            return
        for start in range(0, len(spans), self.max_export_batch):
            batch = [self._readable(s) for s in spans[start:start + self.max_export_batch]]
            try:
                result = self._exporter.export(batch)
            except Exception:
                logger.exception("tracing: exporting %d spans failed", len(batch))
                self.failed += len(batch)
                continue
            if getattr(result, "name", "") == "SUCCESS":
                self.exported += len(batch)
            else:
                self.failed += len(batch)

    def _make_exporter(self) -> tuple[Any, Any, Any]:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError:
            logger.warning("tracing: spans are recorded but not exported: install the OpenTelemetry SDK and OTLP "
                           "exporter (pip install 'covetpy[otel]')")
            return None, None, None
        exporter = OTLPSpanExporter(endpoint=self.endpoint) if self.endpoint else OTLPSpanExporter()
        resource = Resource.create({"service.name": self.service_name})
        return exporter, resource, InstrumentationScope("covet", _version())

    def _readable(self, record: Sequence[Any]) -> Any:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace.status import Status, StatusCode

        (trace_id, span_id, parent_id, flags, parent_remote, status, start_ns, end_ns, method, version, scheme,
         route, path, peer, request_id) = record
        tid = int(trace_id, 16)
        span_flags = trace.TraceFlags(flags & 0x01)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scheme,
            "url.path": path,
            "http.response.status_code": status,
            "network.protocol.name": "http",
            "network.protocol.version": version,
        }
        if route:
            attributes["http.route"] = route
        if peer:
            attributes["client.address"] = peer
        if request_id:
            attributes["covet.request_id"] = request_id
        if status >= 500:
            attributes["error.type"] = str(status)
        parent = (trace.SpanContext(tid, int(parent_id, 16), is_remote=bool(parent_remote), trace_flags=span_flags)
                  if parent_id else None)
        return ReadableSpan(
            name=f"{method} {route}" if route else method,
            context=trace.SpanContext(tid, int(span_id, 16), is_remote=False, trace_flags=span_flags),
            parent=parent,
            resource=self._resource,
            attributes=attributes,
            kind=trace.SpanKind.SERVER,
            status=Status(StatusCode.ERROR) if status >= 500 else Status(StatusCode.UNSET),
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=self._scope,
        )


def _otel_api() -> Optional[tuple[Any, Any, Any]]:
    """(opentelemetry.trace, opentelemetry.context, TraceState) when opentelemetry-api is installed."""
    try:
        from opentelemetry import context, trace
        from opentelemetry.trace import TraceState
    except ImportError:
        return None
    return trace, context, TraceState


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("covetpy")
    except Exception:
        return "unknown"
