"""ASGI on both sides of a CovetPy app.

- A CovetPy app is an ASGI 3 application (``await app(scope, receive, send)``: `build_stack`, `AppHost`), so
  uvicorn, Hypercorn or Granian can serve it and another ASGI app (Starlette, FastAPI) can mount it.
- Pure ASGI middleware (``app.add_middleware(cls, **options)`` with a class taking ``app`` and defining
  ``async __call__(scope, receive, send)``) wrap the app as ASGI; on the engine, requests reach them through
  `call_asgi` (`covet.asgi.bridge`), so the same stack runs under both.
- ``app.mount(path, asgi_app)`` serves any ASGI application under a prefix (`mounted_endpoint`).
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from covet.requests import Request
from covet.responses import PlainTextResponse, Response
from covet.server.interface import Middleware, ServedApp

from .bridge import NoResponse, call_asgi, http_middleware_layer, send_response
from .host import AppHost
from .messages import ScopeRequest, route_path
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "AppHost", "AsgiMiddlewareEntry", "HostedApp", "Message", "NoResponse", "Receive", "Scope",
           "Send", "build_stack", "call_asgi", "mounted_endpoint", "send_response", "serve_errors"]

# (how many of the app's HTTP middleware functions were added before it, class, args, kwargs)
AsgiMiddlewareEntry = tuple[int, Any, tuple[Any, ...], dict[str, Any]]


class HostedApp:
    """The app itself as ASGI (innermost in the stack): its routes, with the HTTP middleware functions added
    before any pure ASGI middleware (those inside them) run by the dispatcher as on the engine."""

    def __init__(self, app: ServedApp, middleware: Sequence[Middleware]) -> None:
        self.app = app
        self.middleware = list(middleware)
        self._hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AppHost] = weakref.WeakKeyDictionary()

    def host(self) -> AppHost:
        loop = asyncio.get_running_loop()
        host = self._hosts.get(loop)
        if host is None:
            host = self._hosts[loop] = AppHost(self.app, loop, self.middleware)
        return host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        host = self.host()
        if kind == "http":
            await host.http(scope, receive, send)
        elif kind == "websocket":
            await host.websocket(scope, receive, send)
        elif kind == "lifespan":
            await host.lifespan(scope, receive, send)
        else:
            raise ValueError(f"a CovetPy app serves ASGI 'http', 'websocket' and 'lifespan' scopes, not {kind!r}")


def build_stack(app: ServedApp, entries: Sequence[AsgiMiddlewareEntry]) -> ASGIApp:
    """The app's ASGI stack: its pure ASGI middleware (the last added outermost) around the app, with the HTTP
    middleware functions (``@app.middleware("http")``, BaseHTTPMiddleware) at the places they were added."""
    http = list(app.user_middleware)
    position = entries[0][0] if entries else len(http)
    stack: ASGIApp = HostedApp(app, http[:position])
    for count, cls, args, kwargs in entries:
        while position < count:
            stack = http_middleware_layer(http[position], stack, app)
            position += 1
        stack = cls(stack, *args, **kwargs)
    while position < len(http):
        stack = http_middleware_layer(http[position], stack, app)
        position += 1
    return stack


async def serve_errors(app: ServedApp, stack: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """`stack` with Starlette's ServerErrorMiddleware around it (the outermost layer under an ASGI server): an
    exception that reaches it before the response started is answered 500 — by the app's ``Exception``/500
    handler, else ``Internal Server Error`` in plain text — and raised again for the server to log."""
    if scope.get("type") != "http":
        await stack(scope, receive, send)
        return
    started = False

    async def tracking(message: Message) -> None:
        nonlocal started
        if message.get("type") == "http.response.start":
            started = True
        await send(message)

    try:
        await stack(scope, receive, tracking)
    except Exception as exc:
        if started:
            raise
        handlers = app.exception_handlers
        handler = handlers.get(Exception) or handlers.get(500)
        response: Response = PlainTextResponse("Internal Server Error", status_code=500)
        if handler is not None:
            request = Request(ScopeRequest(scope, route_path(scope), b"", {}), app, scope.get("root_path", "") or "")
            result = handler(request, exc)
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, Response):
                response = result
        await send_response(response, send, head=scope.get("method") == "HEAD")
        raise


def mounted_endpoint(mounted: ASGIApp, prefix: str) -> Callable[[Request], Awaitable[Response]]:
    """The handler serving `mounted` under `prefix` (``app.mount``): its scope as Starlette's ``Mount`` makes
    it — ``root_path`` extended by the prefix, ``path`` the full path."""

    async def asgi_mount(request: Request) -> Response:
        scope = request.scope
        root_path = request.root_path
        scope["app_root_path"] = root_path
        scope["root_path"] = root_path.rstrip("/") + prefix
        scope["path_params"] = {}
        return await call_asgi(mounted, scope, request)

    return asgi_mount
