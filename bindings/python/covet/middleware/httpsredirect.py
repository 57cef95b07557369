"""`HTTPSRedirectMiddleware` (``fastapi.middleware.httpsredirect``): every plain-HTTP request answered with 307 to
its ``https://`` URL (ports 80 and 443 dropped), run natively."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .native import NativeMiddleware

if TYPE_CHECKING:
    from covet.server.interface import Middleware

__all__ = ["HTTPSRedirectMiddleware"]


class HTTPSRedirectMiddleware(NativeMiddleware):
    native_kind = "https_redirect"

    def native_options(self) -> dict[str, Any]:
        return {}

    def python_middleware(self) -> Middleware:
        from .python_httpsredirect import PythonHTTPSRedirect  # deferred: only apps with it inside a Python middleware

        return PythonHTTPSRedirect()
