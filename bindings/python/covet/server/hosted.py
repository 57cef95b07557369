"""Serving applications that are not CovetPy apps: ASGI 3 and WSGI applications on the native engine.

`hosted(obj)` says how `obj` is served: a CovetPy app (a `ServedApp`) as it is; an ASGI 3 application (an async
callable of ``(scope, receive, send)``: Starlette, FastAPI, Litestar, Django's ASGIHandler, a bare ``async def``)
by `covet.asgi.server.AsgiHost`; a WSGI application (a sync callable of ``(environ, start_response)``: Flask,
Django's WSGIHandler) by `covet.wsgi.WsgiHost`. Both hosts are `HostedApp`s: they register catch-all routes on
the engine and give the `Worker` a `HostedDispatcher` that takes the engine's requests on the loop thread
(`covet.server.dispatch.EngineDriver` drives the engine for them as for CovetPy apps).

``interface=`` (``covet run --interface``) forces one: ``"asgi3"``, ``"wsgi"`` or ``"covet"``; ``"auto"`` (the
default) detects it, and anything it cannot serve (an ASGI 2 class-style app, a callable of the wrong shape) is a
`HostingError` naming the cause and the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
from collections.abc import Callable
from typing import Any, Optional, Protocol, Union, runtime_checkable

from covet.concurrency import TaskSet

from .engine import Engine
from .interface import ServedApp

__all__ = ["HostedApp", "HostedDispatcher", "HostingError", "INTERFACES", "RequestGate", "STARTUP_FAILURE_EXIT",
           "StartupFailed", "detect_interface", "hosted", "is_hosted", "is_served_app", "span_headers"]

INTERFACES = ("auto", "asgi3", "wsgi", "covet")
STARTUP_FAILURE_EXIT = 3  # a worker whose app's lifespan startup failed exits with this (uvicorn's code)


class HostingError(TypeError):
    """The object given to ``covet run`` (or `hosted`) cannot be served: the message names why and what to do."""


class StartupFailed(RuntimeError):
    """A hosted application's lifespan startup failed (``lifespan.startup.failed``, or it raised during startup):
    the worker exits with code 3 (as uvicorn) and ``covet run`` with it, printing the app's message."""


class RequestGate(Protocol):
    """``covet run --limit-concurrency`` / ``--limit-max-requests`` for a hosted app's requests (the CovetPy path
    has them as a middleware): `enter` once per request before the app runs, `leave` once it has answered."""

    def enter(self) -> bool:
        """Counts the request; False: over ``--limit-concurrency``, answer 503 without calling the app."""

    def leave(self) -> None: ...


@runtime_checkable
class HostedDispatcher(Protocol):
    """What the `Worker` needs from a hosted app's dispatcher (`covet.server.dispatch.EngineDriver` provides
    `tasks`, `engine_stopped` and `on_readable`; a host subclasses it and implements ``dispatch(items)``)."""

    tasks: TaskSet
    engine_stopped: Optional[asyncio.Future[None]]  # embedded engine: resolved once it stopped and drained
    trace_ids: bool  # the app runs with the engine's ids as covet.logger.request_ids (tracing, access log)

    def on_readable(self) -> None:
        """The loop's reader callback for the engine's fd."""


class HostedApp(Protocol):
    """An ASGI or WSGI application wrapped for the engine (`covet.asgi.server.AsgiHost`, `covet.wsgi.WsgiHost`)."""

    interface: str  # "asgi3" | "wsgi"
    wrapped: Any  # the application object given (where setup_observability's marks are)

    def register(self, server: Engine) -> None:
        """Adds the catch-all routes (every method, every path; WebSocket routes for ASGI) to `server`, before
        it starts."""

    def lifespan_context(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Startup around the serving period and shutdown after it; a failed startup raises `StartupFailed`."""

    def dispatcher(self, server: Engine, loop: asyncio.AbstractEventLoop, root_path: str,
                   gate: Optional[RequestGate] = None) -> HostedDispatcher:
        """The dispatcher for `server` (started) on `loop`; `root_path`: ``covet run --root-path``."""


def span_headers(ids: Optional[tuple[Any, ...]]) -> Optional[tuple[str, str]]:
    """The ``traceparent`` (and ``tracestate``, "" for none) naming the engine's span of a request (`ids`:
    covet.logger.request_ids' tuple), or None when it has none (tracing off). A hosted app sees these in place of
    the caller's, as a tracing proxy sends them on: its own instrumentation (FastAPI's server span,
    OpenTelemetry's ASGI/WSGI middleware) takes its parent from the headers, and the engine's span is that
    parent, itself the caller's child."""
    if ids is None or not ids[0] or len(ids) < 5:
        return None
    return f"00-{ids[0]}-{ids[1]}-{ids[3] & 0xFF:02x}", ids[4]


def is_served_app(obj: object) -> bool:
    """Whether `obj` is a CovetPy app (satisfies `ServedApp`; the runtime never imports covet.app)."""
    return (hasattr(obj, "router") and callable(getattr(obj, "lifespan_context", None))
            and callable(getattr(obj, "set_publisher", None)) and hasattr(obj, "websocket_routes"))


def is_hosted(obj: object) -> bool:
    """Whether `obj` is already a `HostedApp`."""
    return (getattr(obj, "interface", None) in ("asgi3", "wsgi") and callable(getattr(obj, "register", None))
            and callable(getattr(obj, "dispatcher", None)) and callable(getattr(obj, "lifespan_context", None)))


def _described(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def _positional_count(func: Callable[..., Any]) -> Optional[int]:
    """How many positional arguments `func` takes (None: any number, or its signature is unknown)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))


def detect_interface(obj: object) -> str:
    """``"covet"``, ``"asgi3"`` or ``"wsgi"`` for `obj`, as uvicorn's and Granian's guesses; a `HostingError`
    naming the cause and the fix for anything else."""
    what = _described(obj)
    if is_served_app(obj):
        return "covet"
    if inspect.isclass(obj):
        method = getattr(obj, "__call__", None)  # the instances' __call__ (unbound: self counts)
        if inspect.iscoroutinefunction(method) and _positional_count(method) == 4:
            raise HostingError(f"{what} is a class of ASGI 3 applications, not one: serve an instance of it "
                               "(e.g. `app = " + str(getattr(obj, "__name__", "App")) + "()` in the module)")
        if hasattr(obj, "__await__") or _is_async(method):
            raise HostingError(
                f"{what} is a class: it looks like an ASGI 2 application (instantiated with the scope, then called "
                "with receive and send); CovetPy hosts ASGI 3 apps. Serve an instance if the class is an ASGI 3 app, "
                f"or wrap it: `async def app(scope, receive, send): await {getattr(obj, '__name__', 'App')}(scope)"
                "(receive, send)` (asgiref.compatibility.guarantee_single_callable does this)")
        raise HostingError(f"{what} is a class, not an application: serve an instance of it (or the app it builds: "
                           "--factory for a function returning the app)")
    if not callable(obj):
        raise HostingError(f"{what} is not callable, so it is not an ASGI or WSGI application (point `covet run` "
                           "at the app object, e.g. main:app; --factory if it is a function returning the app)")
    call: Any = obj
    if not (inspect.isfunction(call) or inspect.ismethod(call)):
        call = getattr(obj, "__call__", obj)
    count = _positional_count(call)
    if _is_async(obj):
        if count is None or count == 3:
            return "asgi3"
        if count == 2:
            raise HostingError(
                f"{what} is an async callable of 2 arguments: an ASGI 2 application's inner callable "
                "(receive, send)? CovetPy hosts ASGI 3 apps, `async def app(scope, receive, send)`: serve the ASGI 3 "
                "app, or wrap the ASGI 2 one with asgiref.compatibility.guarantee_single_callable; --interface asgi3 "
                "skips this check")
        raise HostingError(f"{what} is an async callable of {count} argument(s), not an ASGI 3 application "
                           "`async def app(scope, receive, send)`; --interface asgi3 skips this check")
    if count == 3:  # a sync callable of (scope, receive, send) returning an awaitable (a wrapper, a partial)
        return "asgi3"
    if count == 2 or count is None:
        return "wsgi"
    if count == 1:
        raise HostingError(
            f"{what} is a sync callable of 1 argument: an ASGI 2 application (called with the scope, returning an "
            "awaitable callable of receive and send)? CovetPy hosts ASGI 3 apps (`async def app(scope, receive, "
            "send)`: wrap it with asgiref.compatibility.guarantee_single_callable) and WSGI apps "
            "(`def app(environ, start_response)`)")
    raise HostingError(
        f"{what} takes {count} positional argument(s): neither an ASGI 3 application (async, scope, receive, send) "
        "nor a WSGI one (environ, start_response); --interface asgi3|wsgi forces one")


def hosted(obj: Any, interface: str = "auto", wsgi_threads: Optional[int] = None) -> Union[ServedApp, HostedApp]:
    """`obj` ready for the `Worker`: a CovetPy app or a `HostedApp` as it is, an ASGI 3 app in an ``AsgiHost``, a
    WSGI app in a ``WsgiHost`` (`wsgi_threads`: its thread pool, None for the host's default). `interface`:
    ``"auto"`` detects it (`detect_interface`); ``"asgi3"``, ``"wsgi"``, ``"covet"`` force one."""
    if interface not in INTERFACES:
        raise HostingError(f"interface must be one of {', '.join(INTERFACES)}, not {interface!r}")
    if is_hosted(obj):
        if interface not in ("auto", obj.interface):
            raise HostingError(f"{_described(obj)} already hosts a {obj.interface} app, not --interface {interface}")
        hosted_app: HostedApp = obj
        return hosted_app
    kind = detect_interface(obj) if interface == "auto" else interface
    if kind == "covet":
        if not is_served_app(obj):
            raise HostingError(f"--interface covet: {_described(obj)} is not a CovetPy app (covet.CovetPy); drop "
                               "--interface to serve it as an ASGI or WSGI application")
        served: ServedApp = obj
        return served
    if not callable(obj):
        raise HostingError(f"--interface {kind}: {_described(obj)} is not callable")
    # The hosts sit above the runtime in the package's layers (covet.asgi uses covet.server): loaded by name.
    if kind == "asgi3":
        host: HostedApp = importlib.import_module("covet.asgi.server").AsgiHost(obj)
        return host
    try:
        wsgi = importlib.import_module("covet.wsgi")
    except ImportError as exc:  # pragma: no cover - the package is part of covet
        raise HostingError(f"{_described(obj)} is a WSGI application, but covet.wsgi cannot be imported: {exc}") \
            from exc
    host = wsgi.WsgiHost(obj) if wsgi_threads is None else wsgi.WsgiHost(obj, threads=wsgi_threads)
    return host
