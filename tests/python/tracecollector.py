"""A trace collector for the tracing tests (tests/python and tests/hosting, whose conftest puts this directory on
``sys.path``): a real OTLP/HTTP endpoint in this process that decodes every span POSTed to ``/v1/traces``
(protobuf, gzip or not, with OpenTelemetry's own messages), and records the headers of every GET, so that it is
also the downstream server an instrumented handler calls (its ``traceparent`` is then in ``calls``).

    with Collector() as collector:
        ... otlp_endpoint=collector.url, downstream=f"{collector.url}/down" ...
        [sent] = collector.calls
"""

from __future__ import annotations

import gzip
import http.server
import threading
from types import TracebackType
from typing import Any, ClassVar, Optional

__all__ = ["Collector"]


class _Handler(http.server.BaseHTTPRequestHandler):
    collector: ClassVar[Collector]

    def do_POST(self) -> None:
        # Imported here: only the OTLP path needs OpenTelemetry's protobuf messages (opentelemetry-proto).
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                for s in scope.spans:
                    self.collector.spans.append({
                        "service": service, "scope": scope.scope.name, "name": s.name, "kind": s.kind,
                        "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(), "parent": s.parent_span_id.hex(),
                        "attributes": {a.key: a.value for a in s.attributes}})
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.collector.calls.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.collector.reply)))
        self.end_headers()
        self.wfile.write(self.collector.reply)

    def log_message(self, *args: Any) -> None:
        pass


class Collector:
    """Serves on 127.0.0.1 (a free port) in a daemon thread from construction until `close()`. `spans`: every
    span received, as a dict (service, scope, name, kind, trace_id, span_id, parent, attributes); `calls`: the
    headers (lower-case names) of every GET, which is answered 200 with `reply`."""

    def __init__(self, reply: bytes = b"ok") -> None:
        self.spans: list[dict[str, Any]] = []
        self.calls: list[dict[str, str]] = []
        self.reply = reply
        handler = type("CollectorHandler", (_Handler,), {"collector": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clear(self) -> None:
        self.spans.clear()
        self.calls.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()
