"""JSON encoding of handler results.

`dumps` turns dicts, lists, strings, numbers, pydantic models, dataclasses, datetimes, UUIDs, enums,
Decimals (as strings, like pydantic), sets and paths into compact UTF-8 JSON bytes. It uses orjson when it is installed and
pydantic-core's Rust serializer otherwise (both far faster than the stdlib `json`). NaN and infinities
become ``null``.

pydantic is imported only when needed (a model is around anyway, or orjson is missing), so that an app
that uses none of it starts faster and smaller.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import pathlib
import uuid
from typing import Any, Callable

__all__ = ["dumps", "loads", "jsonable", "is_pydantic"]


def is_pydantic(obj: Any) -> bool:
    """True for instances of pydantic models and pydantic dataclasses (without importing pydantic)."""
    return hasattr(type(obj), "__pydantic_serializer__")


def _pydantic_jsonable(obj: Any) -> Any:
    return type(obj).__pydantic_serializer__.to_python(obj, mode="json", by_alias=True)


def _fallback(obj: Any) -> Any:
    """Last resort for types neither serializer knows: iterables become lists, the rest str()."""
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _pc_dumps(obj: Any) -> bytes:
    from pydantic_core import to_json  # imported once, then a dictionary look-up

    return to_json(obj, by_alias=True, inf_nan_mode="null", fallback=_fallback)


try:  # optional speed-up
    import orjson

    _orjson_dumps = orjson.dumps
    _ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS

    def _orjson_default(obj: Any) -> Any:
        if is_pydantic(obj):
            return _pydantic_jsonable(obj)
        if isinstance(obj, decimal.Decimal):
            return str(obj)  # as pydantic does: no precision lost
        if isinstance(obj, pathlib.PurePath):
            return str(obj)
        if isinstance(obj, bytes):
            return obj.decode()
        return _fallback(obj)

    def dumps(obj: Any) -> bytes:
        try:
            return _orjson_dumps(obj, default=_orjson_default, option=_ORJSON_OPTIONS)
        except TypeError:  # e.g. integers over 64 bits; pydantic-core handles those
            return _pc_dumps(obj)

    loads: Callable[[Any], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    dumps = _pc_dumps
    loads = json.loads


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON-compatible Python data (dicts, lists, str, int, float, bool, None)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if is_pydantic(obj):
        return _pydantic_jsonable(obj)
    if isinstance(obj, dict):
        return {str(jsonable(k)) if not isinstance(k, str) else k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (uuid.UUID, pathlib.PurePath)):
        return str(obj)
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, BaseException):
        return str(obj)
    return json.loads(_pc_dumps(obj))
