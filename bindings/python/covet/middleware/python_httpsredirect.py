"""`HTTPSRedirectMiddleware` run in Python, for the position it was added at when a Python middleware is added
after it (so outside it): Starlette's semantics exactly — a plain-HTTP request answered ``307`` to its
``https://`` URL (``ws`` → ``wss``; ports 80 and 443 dropped), ``400 Invalid host header`` without a Host."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from covet.requests import Request
from covet.responses import PlainTextResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from covet.server.interface import CallNext

__all__ = ["PythonHTTPSRedirect", "secure_url"]

_SECURE = {"http": "https", "ws": "wss"}


def secure_url(scheme: str, netloc: str, rest: str) -> str:
    """The ``https``/``wss`` URL of ``scheme://netloc`` + `rest` (path and query); ports 80 and 443 dropped (then
    the host is written as ``urllib.parse`` gives it: lower case, without brackets — as Starlette does)."""
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname if port in (80, 443) else netloc
    return f"{_SECURE[scheme]}://{host}{rest}"


class PythonHTTPSRedirect:
    """``async (request, call_next) -> Response``: plain HTTP redirected, TLS requests passed on."""

    passes_response_whole = True  # not a BaseHTTPMiddleware: what it passes on is not turned into a stream

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        url = request.url
        if url.scheme not in _SECURE:
            return await call_next(request)
        if not url.netloc:
            return PlainTextResponse("Invalid host header", status_code=400)
        rest = url.raw_path + (f"?{url.query}" if url.query else "")
        return RedirectResponse(secure_url(url.scheme, url.netloc, rest), status_code=307)
