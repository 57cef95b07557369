"""Exceptions a handler raises to produce an error response."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

__all__ = ["HTTPException", "RequestValidationError", "ResponseValidationError"]


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


class RequestValidationError(Exception):
    """The request's path, query, header, cookie or body parameters did not validate (answered with 422).

    `errors()` gives FastAPI-shaped dicts: ``{"type", "loc", "msg", "input"[, "ctx"]}``.
    """

    def __init__(self, errors: Sequence[dict[str, Any]], *, body: Any = None) -> None:
        super().__init__(errors)
        self._errors = list(errors)
        self.body = body

    def errors(self) -> list[dict[str, Any]]:
        return self._errors

    def __str__(self) -> str:
        lines = [f"{len(self._errors)} validation error(s):"]
        lines.extend(f"  {'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in self._errors)
        return "\n".join(lines)


class ResponseValidationError(Exception):
    """A handler's return value did not match its declared return type (answered with 500 and logged)."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__(errors)
        self._errors = list(errors)

    def errors(self) -> list[dict[str, Any]]:
        return self._errors
