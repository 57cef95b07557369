"""JSON encoding of handler results.

`dumps` turns dicts, lists, strings, numbers, pydantic models, dataclasses, datetimes, UUIDs, enums,
Decimals (as strings, like pydantic), sets and paths into compact UTF-8 JSON bytes. It uses orjson when it is installed and
pydantic-core's Rust serializer otherwise (both far faster than the stdlib `json`). NaN and infinities
become ``null``.

pydantic is imported only when needed (a model is around anyway, or orjson is missing), so that an app
that uses none of it starts faster and smaller. For the same reason the stdlib modules whose types are
recognised here (datetime, decimal, uuid, pathlib, dataclasses, json) are not imported by this module: an
object of such a type exists only once its module has been imported, so the checks look the module up in
``sys.modules`` (see `_loaded`) and skip it when it is absent.
"""

from __future__ import annotations

import enum
import sys
from typing import Any, Callable

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


try:  # optional speed-up
    import orjson

    _orjson_dumps = orjson.dumps
    _ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS

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

    def dumps(obj: Any) -> bytes:
        try:
            return _orjson_dumps(obj, default=_orjson_default, option=_ORJSON_OPTIONS)
        except TypeError:  # e.g. integers over 64 bits; pydantic-core handles those
            return _pc_dumps(obj)

    loads: Callable[[Any], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    dumps = _pc_dumps
    _stdlib_loads: Any = None

    def _import_stdlib_loads() -> Any:
        global _stdlib_loads
        from json import loads as impl

        _stdlib_loads = impl
        return impl

    def _lazy_stdlib_loads(data: Any) -> Any:
        """``json.loads``; the json module is imported on the first call (an app may never parse JSON)."""
        impl = _stdlib_loads
        if impl is None:
            impl = _import_stdlib_loads()
        return impl(data)

    loads = _lazy_stdlib_loads


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
