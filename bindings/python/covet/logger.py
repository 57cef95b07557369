"""CovetPy's logger (``fastapi.logger.logger`` is FastAPI's): the ``logging`` logger named ``"covet"``; and the
JSON log format (`JsonFormatter`, `use_json_logs`) that ``covet run --log-format json`` and
covet.observability use.

A JSON record is one object on one line: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``msg``, and, when it is written while a request is handled, that request's ``trace_id``, ``span_id`` and
``request_id``; ``exc`` holds a traceback; `extra=` fields that JSON can hold are kept. The engine's JSON
access log lines have the same shape, so one parser reads the whole stream.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import IO, Any, Optional, Protocol, Union

__all__ = ["JsonFormatter", "RequestIds", "RequestTrace", "TraceIdsSource", "current_ids", "ids_of", "logger",
           "parse_level", "request_ids", "use_json_logs"]

logger = logging.getLogger("covet")

# The ids of the request whose code runs now: ``(trace_id, span_id, request_id)`` (hex ids, "" when absent), or
# ``(trace_id, span_id, request_id, trace_flags, tracestate)``, or an object whose ``trace_ids`` property gives the
# latter: what the dispatchers set from the engine (its request, NativeRequest, when tracing or the access log is
# on), once in each request's context (its Task and what that context is copied into, such as sync handlers'
# threads), so that the ids are formatted only when something reads them (`ids_of`). covet.observability.tracing
# makes the handler's current OpenTelemetry span of them when something asks for one.
RequestIds = tuple[str, str, str]
RequestTrace = tuple[str, str, str, int, str]


class TraceIdsSource(Protocol):
    """The engine's request as the dispatchers set it in `request_ids`."""

    @property
    def trace_ids(self) -> RequestTrace: ...


request_ids: contextvars.ContextVar[Optional[Union[RequestIds, RequestTrace, TraceIdsSource]]] = (
    contextvars.ContextVar("covet_request_ids", default=None))


def ids_of(value: Optional[Union[RequestIds, RequestTrace, TraceIdsSource]]) -> Optional[Union[RequestIds,
                                                                                             RequestTrace]]:
    """The ids tuple of a `request_ids` value: a tuple as it is, the engine's request's ``trace_ids``."""
    if value is None or isinstance(value, tuple):
        return value
    return value.trace_ids


def current_ids() -> Optional[RequestIds]:
    """The current request's ``(trace_id, span_id, request_id)`` (hex ids, "" when absent), or None outside one."""
    ids = ids_of(request_ids.get())
    return None if ids is None else (ids[0], ids[1], ids[2])


# LogRecord attributes that are not `extra=` fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module's doc); `extra=` fields that JSON can hold are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ids = ids_of(request_ids.get())
        if ids is not None:
            trace_id, span_id, request_id = ids[0], ids[1], ids[2]
            if request_id:
                entry["request_id"] = request_id
            if trace_id:
                entry["trace_id"] = trace_id
                entry["span_id"] = span_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and isinstance(value, (str, int, float, bool, type(None))):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json_logs(stream: Optional[IO[str]] = None, level: Optional[Union[int, str]] = None) -> logging.Handler:
    """Every stdlib `logging` record (the app's, covet's, libraries') as JSON lines on `stream` (stderr); the
    engine's own lines follow (covet.server.serve.configure_logging sees this handler). Replaces the root
    logger's handlers and the ``covet`` logger's own one (the text handler `covet run` installs); returns the
    handler. Idempotent."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.set_name("covet-json")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    if level is not None:
        root.setLevel(parse_level(level))
    elif root.level == logging.WARNING:  # the default: the app's info records would vanish
        root.setLevel(logging.INFO)
    covet_logger = logging.getLogger("covet")
    for old in list(covet_logger.handlers):  # records go up to the root's JSON handler instead
        covet_logger.removeHandler(old)
    covet_logger.propagate = True
    return handler




def parse_level(level: Union[int, str]) -> int:
    if isinstance(level, int):
        return level
    numeric = logging.DEBUG if level.lower() == "trace" else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning, error or critical")
    return numeric
