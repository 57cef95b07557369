"""`BaseHTTPMiddleware` (``starlette.middleware.base``): subclass it with ``async def dispatch(self, request,
call_next)``, or pass ``dispatch=``; ``app.add_middleware(MyMiddleware, **options)`` then runs it exactly like an
``@app.middleware("http")`` function, in the same chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Optional

from covet.requests import Request
from covet.responses import Response

__all__ = ["BaseHTTPMiddleware", "DispatchFunction", "RequestResponseEndpoint"]

RequestResponseEndpoint = Callable[[Request], Awaitable[Response]]
DispatchFunction = Callable[[Request, RequestResponseEndpoint], Awaitable[Response]]


class BaseHTTPMiddleware:
    def __init__(self, app: Any, dispatch: Optional[DispatchFunction] = None) -> None:
        self.app = app
        self.dispatch_func: DispatchFunction = self.dispatch if dispatch is None else dispatch

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        raise NotImplementedError(f"{type(self).__name__} must define async def dispatch(self, request, call_next) "
                                  "or be given dispatch=")
