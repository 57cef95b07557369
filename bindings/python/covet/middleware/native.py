"""`NativeMiddleware`: the base of the middleware classes the engine runs itself (CORS, GZip, TrustedHost,
HTTPSRedirect). An instance holds its checked options; the runtime hands `native_kind` and `native_options()`
to the engine (``covet._native.add_middleware``) when the server is made — when it is outside every Python
middleware. One added before a Python middleware (so inside it, in FastAPI's order) runs at its position as
`python_middleware()` instead: the same options, Starlette's behaviour (see covet.app's add_middleware)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from covet.server.interface import Middleware

__all__ = ["NativeMiddleware"]


class NativeMiddleware:
    """Configured like Starlette's class of the same name (``app`` first, then its options); never called."""

    native_kind: ClassVar[str]
    # Does a Python HTTP middleware (``@app.middleware("http")``, a BaseHTTPMiddleware) sit inside this one? Then,
    # as in FastAPI, every response reaches it streamed (BaseHTTPMiddleware passes responses on as a stream):
    # GZip compresses any non-empty body, whatever its minimum_size. Set by the app when the stack is built.
    behind_http_middleware = False

    def __init__(self, app: Any) -> None:
        self.app = app

    def native_options(self) -> dict[str, Any]:
        """The options as the engine takes them (see bindings/python/src/middleware_bindings.cpp)."""
        raise NotImplementedError

    def python_middleware(self) -> Middleware:
        """The same middleware as an ``async (request, call_next) -> Response`` function, for a position inside
        a Python middleware."""
        raise NotImplementedError

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise TypeError(f"{type(self).__name__} runs inside CovetPy's engine, not as an ASGI application: add it "
                        "with app.add_middleware(...)")
