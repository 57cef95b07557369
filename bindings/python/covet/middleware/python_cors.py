"""`CORSMiddleware` run in Python, for the position it was added at when an ``@app.middleware("http")`` function
(or another Python middleware) is added after it, so outside it: Starlette's semantics exactly — preflight answers
(``OK`` / ``Disallowed CORS origin, method, headers, private-network``, 200 / 400), the simple response's
``Access-Control-*`` headers and ``Vary: Origin``. The engine's native CORS does the same for no Python cost when
CORS is outside every Python middleware (see docs/python.md, "Middleware order")."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from covet.datastructures import Headers, MutableHeaders
from covet.requests import Request
from covet.responses import PlainTextResponse, Response

if TYPE_CHECKING:
    from covet.server.interface import CallNext

    from .cors import CORSMiddleware

__all__ = ["ALL_METHODS", "SAFELISTED_HEADERS", "PythonCORS"]

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
SAFELISTED_HEADERS = {"Accept", "Accept-Language", "Content-Language", "Content-Type"}

_PREFLIGHT_VARY = ("Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
                   "Access-Control-Request-Private-Network")


class PythonCORS:
    """``async (request, call_next) -> Response`` with a `CORSMiddleware`'s options."""

    passes_response_whole = True  # not a BaseHTTPMiddleware: what it passes on is not turned into a stream

    def __init__(self, options: CORSMiddleware) -> None:
        self.allow_methods = options.allow_methods
        self.allow_all_origins = "*" in options.allow_origins
        self.allow_origins = frozenset(options.allow_origins)
        self.allow_all_headers = "*" in options.allow_headers
        allowed_headers = sorted(SAFELISTED_HEADERS | set(options.allow_headers))
        self.allow_headers = frozenset(h.lower() for h in allowed_headers)
        self.allow_credentials = options.allow_credentials
        self.allow_private_network = options.allow_private_network
        self.regex: Optional[re.Pattern[str]] = (
            re.compile(options.allow_origin_regex) if options.allow_origin_regex is not None else None)
        self.explicit_preflight_origin = not self.allow_all_origins or self.allow_credentials
        simple: list[tuple[str, str]] = []
        if self.allow_all_origins:
            simple.append(("Access-Control-Allow-Origin", "*"))
        if self.allow_credentials:
            simple.append(("Access-Control-Allow-Credentials", "true"))
        if options.expose_headers:
            simple.append(("Access-Control-Expose-Headers", ", ".join(options.expose_headers)))
        self.simple_headers = simple
        preflight: list[tuple[str, str]] = [("Vary", _PREFLIGHT_VARY)]
        if not self.explicit_preflight_origin:
            preflight.append(("Access-Control-Allow-Origin", "*"))
        preflight.append(("Access-Control-Allow-Methods", ", ".join(self.allow_methods)))
        preflight.append(("Access-Control-Max-Age", str(options.max_age)))
        if allowed_headers and not self.allow_all_headers:
            preflight.append(("Access-Control-Allow-Headers", ", ".join(allowed_headers)))
        if self.allow_credentials:
            preflight.append(("Access-Control-Allow-Credentials", "true"))
        self.preflight_headers = preflight

    def allowed_origin(self, origin: str) -> bool:
        if self.allow_all_origins:
            return True
        if self.regex is not None and self.regex.fullmatch(origin):
            return True
        return origin in self.allow_origins

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        headers = request.headers
        origin = headers.get("origin")
        if origin is not None and request.method == "OPTIONS" and "access-control-request-method" in headers:
            return self.preflight(origin, headers)
        response = await call_next(request)
        if origin is not None:
            self.decorate(response.headers, origin)
        else:
            _add_vary(response.headers, "Origin", "vary" in response.headers)
        return response

    def preflight(self, origin: str, request_headers: Headers) -> Response:
        headers = MutableHeaders(self.preflight_headers)
        failures: list[str] = []
        if self.allowed_origin(origin):
            if self.explicit_preflight_origin:
                headers["Access-Control-Allow-Origin"] = origin
        else:
            failures.append("origin")
        if request_headers["access-control-request-method"] not in self.allow_methods:
            failures.append("method")
        requested_headers = request_headers.get("access-control-request-headers")
        if requested_headers is not None:
            if self.allow_all_headers:  # mirrored back
                headers["Access-Control-Allow-Headers"] = requested_headers
            elif any(name.strip() not in self.allow_headers for name in requested_headers.lower().split(",")):
                failures.append("headers")
        if request_headers.get("access-control-request-private-network") is not None:
            if self.allow_private_network:
                headers["Access-Control-Allow-Private-Network"] = "true"
            else:
                failures.append("private-network")
        if failures:
            return PlainTextResponse("Disallowed CORS " + ", ".join(failures), status_code=400,
                                     headers=headers)
        return PlainTextResponse("OK", status_code=200, headers=headers)

    def decorate(self, headers: MutableHeaders, origin: str) -> None:
        """A simple (not preflight) request's response, from a request with an Origin header: each header set
        (replacing one the response has), appended where the response has none (the common case, cheaper)."""
        present = {name.lower() for name, _ in headers._raw}
        for name, value in self.simple_headers:
            _put(headers, present, name, value)
        # with credentials the origin itself, never "*"; with a list, the origin if it is allowed
        explicit = self.allow_credentials if self.allow_all_origins else self.allowed_origin(origin)
        if explicit:
            _put(headers, present, "Access-Control-Allow-Origin", origin)
        _add_vary(headers, "Origin", "vary" in present)


def _put(headers: MutableHeaders, present: set[str], name: str, value: str) -> None:
    if name.lower() in present:
        headers[name] = value
    else:
        headers.append(name, value)


def _add_vary(headers: MutableHeaders, value: str, has_vary: bool = True) -> None:
    if has_vary:
        headers["Vary"] = ", ".join([*headers.getlist("Vary"), value])
    else:
        headers.append("Vary", value)
