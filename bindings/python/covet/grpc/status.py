"""gRPC status codes and the error a handler raises to end its call with one (``context.abort``).

`StatusCode` has grpcio's names and numbers; wherever a code is taken, grpcio's own ``grpc.StatusCode`` members are
accepted too (their value is ``(number, name)``), so a servicer written for grpcio passes its codes unchanged.
"""

from __future__ import annotations

import enum
from typing import Any, Union
from urllib.parse import quote, unquote

__all__ = ["StatusCode", "AbortError", "status_number", "status_fields", "encode_message", "decode_message"]


class StatusCode(enum.IntEnum):
    """The gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


Code = Union[StatusCode, int, Any]  # Any: a grpc.StatusCode member


def status_number(code: Code) -> int:
    """The wire number of `code`: a `StatusCode`, an int, or a ``grpc.StatusCode`` member (value ``(n, name)``)."""
    if isinstance(code, int):
        number = int(code)
    else:
        value = getattr(code, "value", None)
        if not (isinstance(value, tuple) and value and isinstance(value[0], int)):
            raise TypeError(f"not a gRPC status code: {code!r} (use covet.grpc.StatusCode or grpc.StatusCode)")
        number = value[0]
    if not 0 <= number <= 16:
        raise ValueError(f"gRPC status code {number} is out of range (0-16)")
    return number


class AbortError(Exception):
    """Raised by ``context.abort``: the call ends with `code` and `details`. Handlers should let it propagate
    (grpcio raises its own exception type for the same purpose)."""

    def __init__(self, code: Code, details: str = "") -> None:
        super().__init__(details)
        self.code = status_number(code)
        self.details = details


# grpc-message is percent-encoded UTF-8: every byte outside printable ASCII (0x20-0x7E), and '%' itself.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def encode_message(details: str) -> str:
    """`details` as a ``grpc-message`` value (the gRPC HTTP/2 spec's percent-encoding)."""
    return quote(details, safe=_SAFE, encoding="utf-8", errors="replace")


def decode_message(value: str) -> str:
    """A ``grpc-message`` value back to text (undecodable bytes become U+FFFD, as the spec asks)."""
    return unquote(value, encoding="utf-8", errors="replace")


def status_fields(code: int, details: str) -> list[tuple[str, str]]:
    """A call's status as header fields: ``grpc-status``, and ``grpc-message`` (percent-encoded) when there are
    `details` (for trailers, a Trailers-Only response, or gRPC-Web's trailer frame)."""
    fields = [("grpc-status", str(code))]
    if details:
        fields.append(("grpc-message", encode_message(details)))
    return fields
