"""The engine the runtime drives, as a type: `Engine` (what a server object offers), `EngineModule` (what the
module offers: the server class, its configuration (`EngineConfig`: the engine's defaults), the listen error,
logging), and where the module comes from.

``covet._native`` (the compiled extension; its types are in ``covet/_native.pyi``) is the engine; tests and
tools may install a stand-in with the same interface through `use_native` (tests/python/fake_native.py is
one). mypy checks that both satisfy these Protocols (tests/python/typing_check/engines.py).
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Optional, Protocol, Union

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineLimits",
    "EngineTimeouts",
    "EngineModule",
    "Responder",
    "TrailersResponder",
    "WebSocketEvent",
    "native_module",
    "request_gone_types",
    "use_native",
]


class WebSocketEvent(enum.IntEnum):
    """The kind of an event from ``Engine.take_ws()`` (module.cpp's ``WsEventKind``)."""

    OPEN = 0
    MESSAGE = 1  # data: str or bytes
    CLOSE = 2  # data: the reason; code: the close code
    DRAIN = 3  # the send buffer went below the route's max_send_buffer


class Responder(Protocol):
    """The answer side of one request (``NativeResponder``): one `send`, or a stream."""

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...

    def start_stream(self, status: int, headers: list[tuple[str, str]]) -> None: ...

    def write(self, chunk: bytes) -> Optional[bool]: ...  # False: the client went away (covet.responses)

    def end(self) -> None: ...

    def abort(self) -> None: ...

    @property
    def answered(self) -> bool: ...


class TrailersResponder(Responder, Protocol):
    """What the compiled engine's responder adds (other responders may lack it: feature-detect with getattr)."""

    def send_trailers(self, trailers: list[tuple[str, str]]) -> None:
        """Ends a started stream (instead of `end`) with trailer fields: HTTP/2 a trailing HEADERS frame, HTTP/1.1
        the chunked trailer section (an HTTP/1.0 client's stream ends without them)."""

    def early_hint(self, headers: list[tuple[str, str]]) -> None:
        """A ``103 Early Hints`` response with these headers before the answer (several may go; only before
        send/start_stream/send_file; dropped for HTTP/1.0 clients)."""


class EngineLimits(Protocol):
    """``ServerConfig.limits`` (covet::net::Limits): sizes in bytes, counts."""

    @property
    def max_url_bytes(self) -> int: ...
    @property
    def max_header_bytes(self) -> int: ...
    @property
    def max_headers(self) -> int: ...
    @property
    def max_body_bytes(self) -> int: ...
    @property
    def stream_body_threshold(self) -> int: ...
    @property
    def max_stream_body_bytes(self) -> int: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def max_buffered_input(self) -> int: ...
    @property
    def output_high_water(self) -> int: ...
    @property
    def stream_send_buffer(self) -> int: ...


class EngineTimeouts(Protocol):
    """``ServerConfig.timeouts`` (covet::net::Timeouts)."""

    @property
    def header(self) -> timedelta: ...
    @property
    def body(self) -> timedelta: ...
    @property
    def min_body_rate(self) -> int: ...
    @property
    def min_body_rate_grace(self) -> timedelta: ...
    @property
    def body_deadline(self) -> timedelta: ...
    @property
    def keep_alive(self) -> timedelta: ...
    @property
    def shutdown(self) -> timedelta: ...


class EngineConfig(Protocol):
    """The engine's settings (``_native.ServerConfig``, covet::net::ServerConfig): a default-constructed one holds
    the engine's defaults, which covet.server.options reads instead of repeating them."""

    @property
    def listen_backlog(self) -> int: ...
    @property
    def inherited_listener(self) -> int: ...
    @property
    def limits(self) -> EngineLimits: ...
    @property
    def timeouts(self) -> EngineTimeouts: ...


class Engine(Protocol):
    """One native server (``_native.NativeServer``): routes are added, then it is started; requests for
    Python routes are taken from it in batches on the loop thread when `fileno` is readable.

    With ``threads=0`` on io_uring the engine is *embedded*: its I/O runs in `poll` and `flush` on the loop
    thread (`embedded` is True once started); otherwise its own threads do the I/O.
    """

    # -- set-up (before start) ----------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, route_id: int, max_body_bytes: int = 0) -> None: ...

    def add_constant_route(self, method: str, pattern: str, status: int, content_type: str, body: bytes,
                           headers: list[tuple[str, str]]) -> None: ...

    def add_websocket_route(self, pattern: str, route_id: int, max_message_bytes: int = ...,
                            idle_timeout_ms: int = ..., ping_interval_ms: int = ..., max_send_buffer: int = ...,
                            permessage_deflate: bool = ..., subprotocols: list[str] = ...,
                            defer_accept: bool = ...) -> None: ...

    def configure_tls(self, certfile: str, keyfile: str, ca_certs: str = ..., client_auth: str = ...,
                      allow_tls12: bool = ..., ciphers: str = ...,
                      sni_certs: list[tuple[str, str]] = ...) -> None: ...

    http2: bool
    http3: bool

    # -- lifetime -----------------------------------------------------------------------------------
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait(self) -> None: ...

    def reload_tls(self) -> None: ...

    @property
    def port(self) -> int: ...

    @property
    def backend(self) -> str: ...

    @property
    def embedded(self) -> bool: ...

    @property
    def tls(self) -> bool: ...

    def fileno(self) -> int: ...

    # -- embedded engine (threads=0) ----------------------------------------------------------------
    def poll(self) -> bool: ...

    def flush(self) -> bool: ...

    def set_output_hook(self, hook: Callable[[], None]) -> None: ...

    # -- the hand-off to Python ---------------------------------------------------------------------
    def take(self, max_items: int = ...) -> Sequence[tuple[int, Any, Responder]]: ...

    def take_body(self) -> Sequence[int]: ...

    def take_ws(self) -> Sequence[tuple[int, int, Any, Any, int]]: ...

    def ws_subscribe(self, connection: Any, topic: str) -> None: ...

    def ws_unsubscribe(self, connection: Any, topic: str) -> None: ...

    def ws_publish(self, topic: str, data: Union[str, bytes]) -> int: ...


class EngineModule(Protocol):
    """What the runtime takes from the engine module (``covet._native`` or a stand-in)."""

    @property
    def NativeServer(self) -> Callable[..., Engine]:
        """The server class: ``NativeServer(host=..., port=..., threads=..., **limits)`` (keyword arguments as
        covet.server.options.ENGINE_OPTIONS; ``listen_fd=`` / ``shared_port=`` for worker processes)."""

    @property
    def ServerConfig(self) -> Callable[[], EngineConfig]:
        """The engine's configuration, default-constructed: its defaults."""

    @property
    def ListenError(self) -> type[OSError]:
        """Raised by ``Engine.start()`` when the address cannot be listened on (an OSError with its errno)."""

    @property
    def RequestGone(self) -> type[RuntimeError]:
        """Raised by a request's attribute once the engine has answered that request itself (it refused its
        streamed body: 413, 408, 400): nothing more can be read of it."""

    def configure_logging(self, level: str = ..., format: str = ...) -> None: ...

    def add_middleware(self, server: Any, kind: str, options: dict[str, Any]) -> None:
        """Installs one of the engine's middleware (covet.middleware's native classes) on a server not yet
        started; the first installed is the outermost."""


_override: Optional[Any] = None


def native_module() -> EngineModule:
    """The engine module: the one given to `use_native`, else ``covet._native``."""
    if _override is not None:
        module: EngineModule = _override
        return module
    try:
        # Loaded when first needed (a stand-in may be used instead), by name: the compiled module is not part of
        # the Python import graph (and `from covet import ...` would read as importing the whole package).
        native: EngineModule = importlib.import_module("covet._native")
    except ImportError as exc:
        raise ImportError(
            "covet's native engine (covet._native) is not built; install the package with "
            "`pip install .` from the source tree"
        ) from exc
    return native


def request_gone_types() -> tuple[type[BaseException], ...]:
    """For ``except``: the engine's RequestGone (a request it answered itself, whose data is gone), or nothing
    for a stand-in engine module without it."""
    gone = getattr(native_module(), "RequestGone", None)
    return (gone,) if isinstance(gone, type) and issubclass(gone, BaseException) else ()


def use_native(module: Optional[Any]) -> Optional[Any]:
    """Use `module` as the engine from now on (None: back to ``covet._native``); returns the previous one."""
    global _override
    previous, _override = _override, module
    return previous
