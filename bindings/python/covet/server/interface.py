"""`ServedApp`: what the runtime needs from an application — its routes, middleware, exception handlers,
lifespan and a few options — and nothing else. `covet.CovetPy` satisfies it (checked by mypy where the
app hands itself to the runtime, in ``CovetPy.run``); the runtime never imports the app module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Optional, Protocol, Union

from covet.requests import Request
from covet.responses import Response
from covet.routing import AppRouter, WebSocketRoute

__all__ = ["ServedApp", "CallNext", "Middleware", "ExceptionHandler", "Publisher"]

CallNext = Callable[[Request], Awaitable[Response]]
Middleware = Callable[[Request, CallNext], Awaitable[Response]]
"""``async def mw(request, call_next) -> Response`` (``@app.middleware("http")``)."""
ExceptionHandler = Callable[[Any, Exception], Any]
"""``(async) def handler(request, exc) -> Response`` (``@app.exception_handler(...)``)."""
Publisher = Callable[[str, Union[str, bytes]], int]
"""``publish(topic, data) -> receivers``: the serving worker's WebSocket broadcast."""


class ServedApp(Protocol):
    """An application the runtime (`covet.server.serve.Worker`, `covet.server.dispatch.Dispatcher`) can serve."""

    @property
    def router(self) -> AppRouter:
        """The HTTP routes (Python and constant ones), in registration order, and their native registrations."""

    @property
    def websocket_routes(self) -> Sequence[WebSocketRoute]: ...

    @property
    def user_middleware(self) -> Sequence[Middleware]:
        """HTTP middleware; the last one is outermost."""

    @property
    def native_middleware(self) -> Sequence[tuple[str, Mapping[str, Any]]]:
        """The engine's own middleware (``covet._native.add_middleware`` kind and options), the outermost first;
        they run outside `user_middleware`."""

    @property
    def exception_handlers(self) -> Mapping[Union[int, type[Exception]], ExceptionHandler]:
        """By status code (for `HTTPException`) or exception class; ``Exception`` / 500: the 500 handler."""

    @property
    def root_path(self) -> str:
        """The app's own ASGI ``root_path`` (``CovetPy(root_path=...)``), ``""`` if none: it wins over the
        server's, and paths starting with it are routed without it."""

    @property
    def sync_handlers(self) -> Literal["threadpool", "inline"]: ...

    @property
    def thread_pool_size(self) -> int: ...

    @property
    def eager_async(self) -> Union[bool, Literal["auto"]]: ...

    def lifespan_context(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Startup, the lifespan context and shutdown around the serving period."""

    def set_publisher(self, publish: Optional[Publisher]) -> None:
        """The serving worker's broadcast (``app.publish``), or None once it stops."""
