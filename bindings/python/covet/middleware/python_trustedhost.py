"""`TrustedHostMiddleware` run in Python, for the position it was added at when a Python middleware is added
after it (so outside it: that middleware then sees the refused requests too, as in FastAPI): Starlette's semantics
exactly — ``400 Invalid host header`` for a Host not allowed (or missing, or malformed), a 307 to ``www.`` + the
host when only the www form is allowed (``www_redirect``)."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Optional

from covet.requests import Request
from covet.responses import PlainTextResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from covet.server.interface import CallNext

    from .trustedhost import TrustedHostMiddleware

__all__ = ["PythonTrustedHost", "host_of"]

# A Host header: a reg-name or IPv4, or a bracketed IPv6 / IPvFuture literal, then an optional port (RFC 3986).
_HOST = re.compile(
    r"(?P<host>[a-z0-9._~%!$&'()*+,;=-]+|\[(?:(?P<ipv6>[a-f0-9]*:[a-f0-9.:]+)|"
    r"(?-i:v)[a-f0-9]+\.[a-z0-9._~!$&'()*+,;=:-]+)\])(?::[0-9]+)?", re.IGNORECASE)


def host_of(header: Optional[str]) -> Optional[str]:
    """The host part of a Host header (brackets kept around IP literals), None if missing or malformed."""
    if header is None:
        return None
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return None
    return match["host"]


class PythonTrustedHost:
    """``async (request, call_next) -> Response`` with a `TrustedHostMiddleware`'s options."""

    passes_response_whole = True  # not a BaseHTTPMiddleware: what it passes on is not turned into a stream

    def __init__(self, options: TrustedHostMiddleware) -> None:
        self.allowed_hosts = options.allowed_hosts
        self.allow_any = options.allow_any
        self.www_redirect = options.www_redirect

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        if self.allow_any:
            return await call_next(request)
        parsed = host_of(request.headers.get("host"))
        if parsed is None:
            return PlainTextResponse("Invalid host header", status_code=400)
        host = parsed.lower()
        www_form = False
        for pattern in self.allowed_hosts:
            if host == pattern or (pattern.startswith("*") and host.endswith(pattern[1:])):
                return await call_next(request)
            if "www." + host == pattern:
                www_form = True
        if www_form and self.www_redirect:
            url = request.url
            url.netloc = "www." + url.netloc
            return RedirectResponse(str(url))
        return PlainTextResponse("Invalid host header", status_code=400)
