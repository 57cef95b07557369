"""The slow path of `covet.encoders.loads`: what orjson refused, parsed or explained the stdlib's way.

Imported only when a JSON document fails the fast parser (the stdlib `json` module it needs costs a few
milliseconds to import, which an app whose clients send valid JSON never pays).
"""

from __future__ import annotations

import json
from typing import Any, Union

__all__ = ["JSONNestingError", "MAX_DEPTH", "reparse"]

MAX_DEPTH = 1024
"""Arrays and objects nested deeper than this are refused (orjson's limit; the stdlib parser recurses and
stops near the interpreter's recursion limit, about 1000 levels, with a `RecursionError`)."""


class JSONNestingError(json.JSONDecodeError):
    """A JSON document nested too deeply to parse (a `json.JSONDecodeError`, so ``except ValueError`` and
    ``except json.JSONDecodeError`` catch it; no `RecursionError` escapes the parser)."""

    def __init__(self, doc: Union[str, bytes], pos: int) -> None:
        newline: Any = "\n" if isinstance(doc, str) else b"\n"
        pos = max(0, min(pos, len(doc)))
        msg = f"JSON nested too deeply (at most about {MAX_DEPTH} levels of arrays/objects inside each other)"
        lineno = doc.count(newline, 0, pos) + 1
        colno = pos - doc.rfind(newline, 0, pos)
        ValueError.__init__(self, f"{msg}: line {lineno} column {colno} (char {pos})")
        self.msg, self.doc, self.pos, self.lineno, self.colno = msg, doc, pos, lineno, colno  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.doc, self.pos)


def _is_depth_error(exc: BaseException) -> bool:
    """Whether orjson refused the document for its nesting ("depth limit exceeded"; older releases said
    "Recursion limit reached")."""
    message = str(exc).lower()
    return "depth limit" in message or "recursion" in message


def reparse(data: Any, refused: Exception, fast_is_stdlib: bool) -> Any:
    """`data` parsed by the stdlib `json` after the fast parser raised `refused`.

    The stdlib accepts what orjson does not (``NaN``/``Infinity``, lone surrogates ``"\\ud800"``, UTF-16/32
    bodies, a UTF-8 BOM) as Starlette/FastAPI do; for a document neither accepts it
    raises its `json.JSONDecodeError`, with the message and position FastAPI reports. Too deep nesting
    raises `JSONNestingError` instead of a `RecursionError`. Other `ValueError`s (``UnicodeDecodeError``
    for bytes that are not text in any JSON encoding) pass through.

    `fast_is_stdlib`: orjson is missing and `refused` came from the stdlib already (nothing to retry).
    """
    if isinstance(data, (memoryview, bytearray)):
        data = bytes(data)
    pos: int = getattr(refused, "pos", 0) or 0
    if isinstance(refused, RecursionError) or (not fast_is_stdlib and _is_depth_error(refused)):
        raise JSONNestingError(data, pos) from None
    if fast_is_stdlib:
        raise refused
    try:
        return json.loads(data)
    except RecursionError:  # nested deeper than the interpreter's recursion limit allows
        raise JSONNestingError(data, pos) from None
