"""Request tracing: the engine's native spans, the handlers' OpenTelemetry context, and OTLP export.

The engine (covet/trace) parses ``traceparent``/``tracestate``, gives every request a span id and decides
sampling natively; a sampled request's span is recorded natively when its response goes out. This module

* runs each Python handler (and a hosted ASGI/WSGI app) with that span as the current OpenTelemetry context
  (when ``opentelemetry-api`` is installed): spans the handler starts with the official API are its children,
  and instrumented clients (httpx) send a ``traceparent`` with the same trace id (and the request's sampled
  flag: an unsampled request's downstream calls continue its trace unsampled, W3C parent-based);
* the request's ids are set for JSON log records (covet.observability.logging).

What a request pays for it is one contextvar set: the dispatchers put the engine's request in the request's context
(covet.logger.request_ids), its ids are formatted (``NativeRequest.trace_ids``) only when a log record or
OpenTelemetry reads them, and the OpenTelemetry context holding the request's span is made from them only when
something reads the current context (`_RequestContext`, which OpenTelemetry's runtime context is wrapped in): a
handler that starts no span and calls no instrumented client never builds one, sampled or not.

* drains the engine's finished spans on a background thread and exports them with the OTLP exporter
  (``opentelemetry-exporter-otlp-proto-http``), in batches, off the request path.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Optional, Union

from covet.logger import ids_of, request_ids

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
        if self._otel is not None:
            _use_request_context(*self._otel)
        with self._lock:
            self._tracers.append(tracer)
            if self.export and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="covet-otlp-export", daemon=True)
                self._thread.start()
                atexit.register(self.shutdown)

    def request_hook(self, native_request: Any) -> None:
        """In a request's fresh context, before its handler: the request, whose ids are read from it on demand
        (what the dispatchers do themselves, with ``context.run(request_ids.set, native)``). The handler's
        OpenTelemetry span is made of them when something asks for the current context (`_RequestContext`)."""
        request_ids.set(native_request)

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
        if "{covet_unmatched" in route or "{covet_asgi" in route:
            route = ""  # the catch-all of unmatched paths and of hosted apps: no route (as the metrics' label)
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
    """(opentelemetry.trace, opentelemetry.context, the request span's class) when opentelemetry-api is
    installed."""
    try:
        from opentelemetry import context, trace
        from opentelemetry.trace import TraceState
    except ImportError:
        return None

    class RequestSpan(trace.NonRecordingSpan):
        """The engine's span of the request, as the handler's current span: its SpanContext is made from the
        native ids (hex, flags, tracestate: `covet.logger.RequestTrace`) on first use."""

        def __init__(self, ids: tuple[Any, ...]) -> None:  # no super().__init__: the context is lazy
            self._ids = ids
            self._built: Any = None

        def get_span_context(self) -> Any:
            built = self._built
            if built is None:
                ids = self._ids
                tracestate = ids[4] if len(ids) > 4 else ""
                built = self._built = trace.SpanContext(
                    int(ids[0], 16), int(ids[1], 16), is_remote=False,
                    trace_flags=trace.TraceFlags((ids[3] if len(ids) > 3 else 0) & 0x01),
                    trace_state=TraceState.from_header([tracestate]) if tracestate else None)
            return built

        def __repr__(self) -> str:
            return f"NonRecordingSpan({self.get_span_context()!r})"

    return trace, context, RequestSpan


def _use_request_context(trace: Any, context: Any, request_span: Any) -> None:
    """Wraps OpenTelemetry's runtime context (once per process) in `_RequestContext`: ``get_current()`` in a
    request's context then holds the request's span. (opentelemetry.context's functions call the module's
    ``_RUNTIME_CONTEXT`` at each call; OTEL_PYTHON_CONTEXT's choice is the wrapped one.)"""
    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    if runtime is None or isinstance(runtime, _RequestContext):
        return
    context._RUNTIME_CONTEXT = _RequestContext(runtime, trace.set_span_in_context, request_span)


class _RequestContext:
    """OpenTelemetry's runtime context (`inner`), with the request's span made lazily: the first
    ``get_current()``/``attach()`` in a request's context whose ids (covet.logger.request_ids) carry a trace id
    attaches, in that context, the current context with a `RequestSpan` of them, once. Outside requests, and in a
    request once done, it is `inner` plus two contextvar reads. A context the code attaches itself (an extracted
    remote parent, an empty one) is attached on top of it, so detaching returns to the request's span."""

    def __init__(self, inner: Any, set_span_in_context: Any, request_span: Any) -> None:
        self._inner = inner
        self._set_span_in_context = set_span_in_context
        self._request_span = request_span
        # The `request_ids` value whose span this context holds already (one per request).
        self._made: contextvars.ContextVar[Optional[object]] = contextvars.ContextVar(
            "covet_otel_request_span", default=None)

    def get_current(self) -> Any:
        value = request_ids.get()
        if value is not None and self._made.get() is not value:
            self._made.set(value)
            ids = ids_of(value)  # formatted here, on the request's first ask (the dispatchers set the request)
            if ids is not None and ids[0]:
                current = self._set_span_in_context(self._request_span(ids), self._inner.get_current())
                self._inner.attach(current)  # no detach: it lives as long as the request's context
                return current
        return self._inner.get_current()

    def attach(self, context: Any) -> Any:
        self.get_current()  # the request's span first: detaching `context` returns to it
        return self._inner.attach(context)

    def detach(self, token: Any) -> None:
        self._inner.detach(token)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("covetpy")
    except Exception:
        return "unknown"
