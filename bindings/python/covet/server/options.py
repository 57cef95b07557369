"""The engine's limits and timeouts as options: one `EngineOption` per `NativeServer` keyword, with its
``covet run`` flag, its ``COVET_*`` environment variable, its parser and the engine config field it sets. The
defaults are the engine's own: read from a default-constructed ``ServerConfig`` of the engine module (the C++
struct, bound in bindings/python/src/module.cpp), never written down here. docs/operations.md lists them all."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Optional

from .engine import EngineModule, native_module

if TYPE_CHECKING:
    import argparse

__all__ = ["ENGINE_OPTIONS", "EngineOption", "UsageError", "check_engine_supports", "engine_default", "engine_has",
           "engine_option", "engine_options", "parse_count", "parse_duration_ms", "parse_size"]


class UsageError(Exception):
    """A bad flag, environment variable or combination: ``covet: <message>`` on stderr, exit code 2."""


_SIZE = re.compile(r"^\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int:
    """Bytes: ``1048576``, ``512K``, ``10M``, ``1G`` (K/M/G, KB/MB/GB and KiB/MiB/GiB are all powers of 1024)."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError("expected a size in bytes such as 1048576, 512K, 10M or 1G")
    return int(m.group(1)) * _UNITS[m.group(2).lower() if m.group(2) else None]


def parse_duration_ms(text: str) -> int:
    """Milliseconds from seconds: ``5``, ``1.5``, ``500ms``, ``30s``, ``2m``."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError("expected seconds such as 5, 0.5, 500ms, 30s or 2m")
    unit = (m.group(2) or "s").lower()
    return round(float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000}[unit])


def parse_count(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("expected a whole number such as 100")
    return int(text)


@dataclass(frozen=True)
class EngineOption:
    """One engine limit: its ``covet run`` flag, the `NativeServer` keyword it sets, and the field of the engine's
    ``ServerConfig`` that keyword sets (``limits.max_body_bytes``): the engine's default is read from there."""

    flag: str
    kwarg: str
    field: str
    parse: Callable[[str], int]
    help: str
    minimum: int = 1
    zero: str = ""  # what 0 means, when it is allowed and means something ("off")

    @property
    def env(self) -> str:
        return "COVET_" + self.flag[2:].upper().replace("-", "_")

    def render(self, value: int) -> str:
        """The worker-command form of a parsed value (it parses back to the same value)."""
        return f"{value}ms" if self.parse is parse_duration_ms else str(value)

    def default(self, native: EngineModule) -> int:
        """The engine's default, from a default-constructed ``native.ServerConfig`` (bytes, milliseconds, a count)."""
        value = _read_field(_config(native), self.field)
        if isinstance(value, timedelta):
            return value // timedelta(milliseconds=1)
        return int(value)

    def describe(self, value: int) -> str:
        """`value` as a user writes it: ``1M``, ``64K``, ``10s``, ``500ms``, ``0 (off)`` (docs/operations.md)."""
        if value == 0:
            return f"0 ({self.zero})" if self.zero else "0"
        if self.parse is parse_duration_ms:
            return f"{value // 1000}s" if value % 1000 == 0 else f"{value}ms"
        if self.parse is parse_size:
            for suffix, unit in (("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
                if value % unit == 0:
                    return f"{value // unit}{suffix}"
        return str(value)


_MISSING = object()


def _config(native: EngineModule) -> object:
    """A default-constructed ``native.ServerConfig``; an engine without one predates this package."""
    make = getattr(native, "ServerConfig", None)
    if make is None:
        raise RuntimeError("covet._native is older than the covet package (it has no ServerConfig): rebuild it "
                           "from this source tree (pip install .)")
    config: object = make()
    return config


def _read_field(config: object, path: str) -> Any:
    value: Any = config
    for name in path.split("."):
        value = getattr(value, name, _MISSING)
        if value is _MISSING:
            raise AttributeError(path)
    return value


ENGINE_OPTIONS: tuple[EngineOption, ...] = (
    EngineOption("--limit-max-body", "max_body_bytes", "limits.max_body_bytes", parse_size,
                 "largest request body read whole: body(), json(), form(), body parameters (more: 413)"),
    EngineOption("--limit-max-stream-body", "max_stream_body_bytes", "limits.max_stream_body_bytes", parse_size,
                 "largest request body a handler reads with request.stream() (more: 413; 0: no limit)", minimum=0,
                 zero="no limit"),
    EngineOption("--stream-body-threshold", "stream_body_threshold", "limits.stream_body_threshold", parse_size,
                 "bodies larger than this reach the handler while they arrive instead of whole", minimum=0),
    EngineOption("--max-url-bytes", "max_url_bytes", "limits.max_url_bytes", parse_size,
                 "longest request line (more: 414)"),
    EngineOption("--max-header-bytes", "max_header_bytes", "limits.max_header_bytes", parse_size,
                 "request line + headers (more: 431)"),
    EngineOption("--max-headers", "max_headers", "limits.max_headers", parse_count,
                 "header fields per request (more: 431)"),
    EngineOption("--max-buffered-input", "max_buffered_input", "limits.max_buffered_input", parse_size,
                 "pipelined input held per connection while a response is pending"),
    EngineOption("--output-high-water", "output_high_water", "limits.output_high_water", parse_size,
                 "unsent output per connection above which the engine stops reading from it"),
    EngineOption("--stream-send-buffer", "stream_send_buffer", "limits.stream_send_buffer", parse_size,
                 "unsent bytes of a streamed response above which its producer (generator) waits for the client"),
    EngineOption("--timeout-header", "header_timeout_ms", "timeouts.header", parse_duration_ms,
                 "first byte of a request head to its end (slowloris)"),
    EngineOption("--timeout-body", "body_timeout_ms", "timeouts.body", parse_duration_ms,
                 "idle time between body bytes"),
    EngineOption("--body-deadline", "body_deadline_ms", "timeouts.body_deadline", parse_duration_ms,
                 "whole request body, head end to last byte (0: off)", minimum=0, zero="off"),
    EngineOption("--min-body-rate", "min_body_rate", "timeouts.min_body_rate", parse_size,
                 "bytes/second a body must average once the grace period has passed (less: 408; 0: off)",
                 minimum=0, zero="off"),
    EngineOption("--min-body-rate-grace", "min_body_rate_grace_ms", "timeouts.min_body_rate_grace",
                 parse_duration_ms, "time from the body's start before --min-body-rate applies", minimum=0),
    EngineOption("--timeout-keep-alive", "keep_alive_timeout_ms", "timeouts.keep_alive", parse_duration_ms,
                 "idle time between requests on a keep-alive connection"),
    EngineOption("--timeout-graceful-shutdown", "shutdown_timeout_ms", "timeouts.shutdown", parse_duration_ms,
                 "on SIGTERM, how long in-flight requests may take before their connections close", minimum=0),
    EngineOption("--max-connections", "max_connections", "limits.max_connections", parse_count,
                 "open connections per worker process; more wait unaccepted in the backlog"),
    EngineOption("--max-connections-per-ip", "max_connections_per_ip", "client_limits.max_connections_per_ip",
                 parse_count, "open connections per client address (IPv6: per /64), checked at accept; more are "
                 "closed at once (per worker process; 0: no limit)", minimum=0, zero="no limit"),
    EngineOption("--max-new-connections-per-ip", "new_connections_per_ip", "client_limits.new_connections_per_ip",
                 parse_count, "new connections per second per client address (shared by the worker processes); "
                 "more are closed at once (0: no limit)", minimum=0, zero="no limit"),
    EngineOption("--max-streams-per-ip", "max_streams_per_ip", "client_limits.max_streams_per_ip", parse_count,
                 "open HTTP/2 streams per client address over all its connections; more are refused with "
                 "REFUSED_STREAM (per worker process; 0: no limit)", minimum=0, zero="no limit"),
    EngineOption("--h2-ping-interval", "h2_ping_interval_ms", "http2_limits.ping_interval", parse_duration_ms,
                 "HTTP/2 keep-alive: a PING once the client has been silent this long while a stream is open "
                 "(0: off)", minimum=0, zero="off"),
    EngineOption("--h2-ping-timeout", "h2_ping_timeout_ms", "http2_limits.ping_timeout", parse_duration_ms,
                 "HTTP/2 keep-alive: an unanswered PING closes the connection after this long"),
    EngineOption("--backlog", "listen_backlog", "listen_backlog", parse_count,
                 "the listening socket's accept queue"),
)
_BY_KWARG = {o.kwarg: o for o in ENGINE_OPTIONS}


def engine_option(kwarg: str) -> EngineOption:
    return _BY_KWARG[kwarg]


def _checked(option: EngineOption, text: str, source: str) -> int:
    try:
        value = option.parse(text)
    except ValueError as e:
        raise UsageError(f"{source}: {e}, not {text!r}") from None
    if value < option.minimum:
        raise UsageError(f"{source} must be at least {option.minimum}, not {text!r}")
    return value


def engine_options(args: argparse.Namespace, environ: Optional[dict[str, str]] = None) -> dict[str, int]:
    """The engine options the user set, by flag or ``COVET_*`` variable (the flag wins), as NativeServer
    keywords. Options set by neither are left out: the engine's defaults apply."""
    env = os.environ if environ is None else environ
    out: dict[str, int] = {}
    for o in ENGINE_OPTIONS:
        text = getattr(args, o.kwarg, None)
        if text is not None:
            out[o.kwarg] = _checked(o, text, o.flag)
        elif env.get(o.env, "").strip():
            out[o.kwarg] = _checked(o, env[o.env], f"{o.env} (environment)")
    return out


def engine_default(kwarg: str, native: Optional[EngineModule] = None) -> int:
    """The engine's default for the `NativeServer` keyword `kwarg` (an `ENGINE_OPTIONS` one), read from the
    engine's own config struct (`native`, or the engine in use)."""
    return _BY_KWARG[kwarg].default(native if native is not None else native_module())


def engine_has(native: EngineModule, field: str) -> bool:
    """Whether this build of the engine has the ``ServerConfig`` field `field` (``"limits.max_body_bytes"``,
    ``"inherited_listener"``): the explicit capability check for a setting."""
    try:
        _read_field(_config(native), field)
    except (AttributeError, RuntimeError):
        return False
    return True


def check_engine_supports(options: dict[str, Any], native: EngineModule) -> None:
    """Refuse, naming the flag, an option this build of the engine does not have (instead of a TypeError)."""
    for kwarg in options:
        option = _BY_KWARG.get(kwarg)
        if option is not None and not engine_has(native, option.field):
            raise UsageError(f"{option.flag}: this build of the engine (covet._native) has no {option.field!r} "
                             "setting; rebuild it from this source tree (pip install .) or drop the option")


# ---- logging (covet run --log-format, --access-log; workers inherit them through the environment) ----------

LOG_FORMATS = ("text", "json")


def log_format(value: Optional[str] = None, environ: Optional[dict[str, str]] = None) -> str:
    """``--log-format`` or COVET_LOG_FORMAT: text (the default) or json. ValueError names a bad value."""
    env = os.environ if environ is None else environ
    text = (value or env.get("COVET_LOG_FORMAT", "") or "text").strip().lower()
    if text not in LOG_FORMATS:
        source = "--log-format" if value else "COVET_LOG_FORMAT (environment)"
        raise ValueError(f"{source}: expected text or json, not {text!r}")
    return text


def access_log_format(environ: Optional[dict[str, str]] = None) -> Optional[str]:
    """The engine's access log a worker writes: COVET_ACCESS_LOG (``covet run --access-log`` sets it) 1/true/on
    for the log format's (COVET_LOG_FORMAT), or text/json; None (off) when unset, 0, false or off."""
    env = os.environ if environ is None else environ
    value = env.get("COVET_ACCESS_LOG", "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return None
    if value in LOG_FORMATS:
        return value
    return log_format(None, dict(env)) if value in ("1", "true", "on", "yes") else None
