"""Structured (JSON) logs with the request's ids (the format is covet.logger's: `JsonFormatter`), and log levels
changed at run time, the engine's included."""

from __future__ import annotations

import logging
from typing import IO, Optional, Union

from covet.logger import JsonFormatter, RequestIds, current_ids, parse_level, request_ids
from covet.logger import use_json_logs as _use_json_logs

__all__ = ["JsonFormatter", "RequestIds", "current_ids", "request_ids", "set_log_level", "use_json_logs"]


def use_json_logs(stream: Optional[IO[str]] = None, level: Optional[Union[int, str]] = None) -> logging.Handler:
    """covet.logger.use_json_logs (every `logging` record as a JSON line on `stream`, default stderr), and the
    engine's own log lines as JSON too."""
    handler = _use_json_logs(stream, level)
    _native_format("json")
    return handler


def set_log_level(level: Union[int, str], logger: Optional[str] = None) -> None:
    """Changes a logger's level while the server runs: `logger` is a `logging` name ("covet", "myapp.db"; None:
    the root logger), ``"covet.engine"`` is the native engine's. Levels: debug, info, warning, error, critical,
    a number, or (engine) trace."""
    if logger == "covet.engine":
        _native_level(level)
        return
    logging.getLogger(logger).setLevel(parse_level(level))


_engine_format = "text"


def _native_level(level: Union[int, str]) -> None:
    name = logging.getLevelName(level).lower() if isinstance(level, int) else level.lower()
    _apply_native({"warning": "warn"}.get(name, name))


def _native_format(fmt: str) -> None:
    global _engine_format
    _engine_format = fmt
    # The engine's level follows the ``covet`` logger's, as covet.server.serve.configure_logging sets them.
    covet_level = logging.getLogger("covet").getEffectiveLevel()
    _apply_native({logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
                   logging.CRITICAL: "critical"}.get(covet_level, "info"))


def _apply_native(level: str) -> None:
    from covet.server.engine import native_module  # deferred: the engine loads only where a server runs

    try:
        native = native_module()
    except ImportError:  # no engine built (docs tools): Python records are formatted all the same
        return
    try:
        native.configure_logging(level, _engine_format)
    except ValueError as exc:
        raise ValueError(f"covet.engine: {exc}") from None
