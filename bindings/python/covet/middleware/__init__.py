"""Middleware classes, at FastAPI's import paths: `Middleware` (``CovetPy(middleware=[Middleware(cls, **options)])``),
``covet.middleware.cors.CORSMiddleware``, ``.gzip.GZipMiddleware``, ``.trustedhost.TrustedHostMiddleware``,
``.httpsredirect.HTTPSRedirectMiddleware`` (these four run natively in the engine, on every response the app
gives, for no Python cost, when added after every Python middleware; one added before a Python middleware runs
inside it in Python, as FastAPI orders them: ``python_*.py``) and ``.base.BaseHTTPMiddleware``
(``dispatch(request, call_next)``, run like ``@app.middleware("http")``). See docs/python.md, "Middleware"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .native import NativeMiddleware

__all__ = ["Middleware", "NativeMiddleware"]


class Middleware:
    """A middleware class and its options, as ``app.add_middleware(cls, *args, **kwargs)`` takes them
    (Starlette's ``Middleware``): ``CovetPy(middleware=[Middleware(CORSMiddleware, allow_origins=["*"])])``;
    the first in that list is the outermost."""

    def __init__(self, cls: Any, *args: Any, **kwargs: Any) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __iter__(self) -> Iterator[Any]:
        return iter((self.cls, self.args, self.kwargs))

    def __repr__(self) -> str:
        parts = [getattr(self.cls, "__name__", "")]
        parts += [repr(value) for value in self.args]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"{type(self).__name__}({', '.join(parts)})"
