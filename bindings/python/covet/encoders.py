"""JSON encoding of handler results.

`dumps` turns dicts, lists, strings, numbers, pydantic models, dataclasses, datetimes, UUIDs, enums,
Decimals (as strings, like pydantic), sets and paths into compact UTF-8 JSON bytes. It uses orjson (a
dependency), imported on first use, and pydantic-core's Rust serializer for what orjson refuses (both far
faster than the stdlib `json`). NaN and infinities become ``null``.

pydantic is imported only when needed (a model is around anyway, or orjson is missing), so that an app
that uses none of it starts faster and smaller. For the same reason the stdlib modules whose types are
recognised here (datetime, decimal, uuid, pathlib, dataclasses, json) are not imported by this module: an
object of such a type exists only once its module has been imported, so the checks look the module up in
``sys.modules`` (see `_loaded`) and skip it when it is absent.
"""

from __future__ import annotations

import enum
import sys
from typing import Any

__all__ = ["dumps", "loads", "jsonable", "is_pydantic"]


_modules = sys.modules


def _loaded(name: str) -> Any:
    """The module `name` if something imported it already, else None (then none of its types can exist)."""
    return _modules.get(name)


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


def _orjson_default(obj: Any) -> Any:
    if is_pydantic(obj):
        return _pydantic_jsonable(obj)
    decimal = _loaded("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        return str(obj)  # as pydantic does: no precision lost
    pathlib = _loaded("pathlib")
    if pathlib is not None and isinstance(obj, pathlib.PurePath):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode()
    return _fallback(obj)


# The implementation is chosen on first use, not at import: importing orjson costs ~8 ms and ~1 MB
# (it loads datetime, uuid, dataclasses ...), which an app pays with its first JSON body instead of at
# start-up. `dumps` rebinds itself (callers use ``encoders.dumps``); `loads` is imported by name
# elsewhere, so it stays a thin wrapper around `_loads_impl`.
_loads_impl: Any = None


def _select() -> None:
    global dumps, _loads_impl
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; pydantic-core and json then
        from json import loads as json_loads

        dumps, _loads_impl = _pc_dumps, json_loads
        return
    orjson_dumps, options = orjson.dumps, orjson.OPT_NON_STR_KEYS

    def orjson_first(obj: Any) -> bytes:
        try:
            return orjson_dumps(obj, default=_orjson_default, option=options)
        except TypeError:  # e.g. integers over 64 bits; pydantic-core handles those
            return _pc_dumps(obj)

    dumps, _loads_impl = orjson_first, orjson.loads


def dumps(obj: Any) -> bytes:
    """`obj` as compact UTF-8 JSON (replaced by the chosen implementation on the first call)."""
    _select()
    return dumps(obj)


def loads(data: Any) -> Any:
    """Parses JSON from bytes or str (orjson; json without it)."""
    impl = _loads_impl
    if impl is None:
        _select()
        impl = _loads_impl
    return impl(data)


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
    if hasattr(type(obj), "__dataclass_fields__") and not isinstance(obj, type):  # dataclasses.is_dataclass
        import dataclasses

        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    datetime = _loaded("datetime")
    if datetime is not None and isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    for module, name in (("uuid", "UUID"), ("pathlib", "PurePath"), ("decimal", "Decimal")):
        loaded = _loaded(module)
        if loaded is not None and isinstance(obj, getattr(loaded, name)):
            return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, BaseException):
        return str(obj)
    import json

    return json.loads(_pc_dumps(obj))
