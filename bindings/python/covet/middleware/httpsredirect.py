"""`HTTPSRedirectMiddleware` (``fastapi.middleware.httpsredirect``): every plain-HTTP request answered with 307 to
its ``https://`` URL (ports 80 and 443 dropped), run natively."""

from __future__ import annotations

from typing import Any

from .native import NativeMiddleware

__all__ = ["HTTPSRedirectMiddleware"]


class HTTPSRedirectMiddleware(NativeMiddleware):
    native_kind = "https_redirect"

    def native_options(self) -> dict[str, Any]:
        return {}
