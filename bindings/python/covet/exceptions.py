"""Exceptions a handler raises to produce an error response, and the errors CovetPy raises itself.

FastAPI's names, with FastAPI's behaviour: `HTTPException` (status, detail, headers), `WebSocketException`
(close code and reason), the validation errors (`RequestValidationError` answered 422,
`ResponseValidationError` answered 500, `WebSocketRequestValidationError` closing with 1008, all
`ValidationException`), and `CovetError` for a misuse of the framework (`FastAPIError` is the same class).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

__all__ = [
    "HTTPException",
    "WebSocketException",
    "ValidationException",
    "RequestValidationError",
    "ResponseValidationError",
    "WebSocketRequestValidationError",
    "CovetError",
    "FastAPIError",
    "DependencyScopeError",
]


class CovetError(RuntimeError):
    """A misuse of the framework found at start-up or at run time (FastAPI calls it ``FastAPIError``)."""


FastAPIError = CovetError


class DependencyScopeError(CovetError):
    """A dependency depends on another one with a narrower ``scope`` (as in FastAPI)."""


class HTTPException(Exception):
    """Raise to answer with `status_code` and the JSON body ``{"detail": detail}``.

    `detail` defaults to the status phrase ("Not Found"); `headers` are added to the response.
    """

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        if detail is None:
            from http import HTTPStatus  # not at module level: `http` builds a large enum on import

            try:
                detail = HTTPStatus(status_code).phrase
            except ValueError:
                detail = ""
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class WebSocketException(Exception):
    """Raise in a WebSocket endpoint to close the connection with `code` and `reason` (before the
    handshake completes, the upgrade is refused)."""

    def __init__(self, code: int, reason: Optional[str] = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason or ""

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


class ValidationException(Exception):
    """Validation errors: `errors()` gives FastAPI-shaped dicts ``{"type", "loc", "msg", "input"[, "ctx"]}``."""

    def __init__(self, errors: Sequence[Any]) -> None:
        super().__init__(errors)
        self._errors = list(errors)

    def errors(self) -> list[Any]:
        return self._errors

    def __str__(self) -> str:
        lines = [f"{len(self._errors)} validation error(s):"]
        for e in self._errors:
            if isinstance(e, Mapping):
                lines.append(f"  {'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}")
            else:
                lines.append(f"  {e}")
        return "\n".join(lines)


class RequestValidationError(ValidationException):
    """The request's path, query, header, cookie or body parameters did not validate (answered with 422).
    `body` is the request body as received, when there was one."""

    def __init__(self, errors: Sequence[Any], *, body: Any = None) -> None:
        super().__init__(errors)
        self.body = body


class ResponseValidationError(ValidationException):
    """A handler's return value did not match its declared return type (answered with 500 and logged)."""

    def __init__(self, errors: Sequence[Any], *, body: Any = None) -> None:
        super().__init__(errors)
        self.body = body


class WebSocketRequestValidationError(ValidationException):
    """A WebSocket endpoint's parameters did not validate (the connection is closed with 1008)."""
