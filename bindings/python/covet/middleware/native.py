"""`NativeMiddleware`: the base of the middleware classes the engine runs itself (CORS, GZip, TrustedHost,
HTTPSRedirect). An instance holds its checked options; the runtime hands `native_kind` and `native_options()`
to the engine (``covet._native.add_middleware``) when the server is made."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["NativeMiddleware"]


class NativeMiddleware:
    """Configured like Starlette's class of the same name (``app`` first, then its options); never called."""

    native_kind: ClassVar[str]

    def __init__(self, app: Any) -> None:
        self.app = app

    def native_options(self) -> dict[str, Any]:
        """The options as the engine takes them (see bindings/python/src/middleware_bindings.cpp)."""
        raise NotImplementedError

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise TypeError(f"{type(self).__name__} runs inside CovetPy's engine, not as an ASGI application: add it "
                        "with app.add_middleware(...)")
