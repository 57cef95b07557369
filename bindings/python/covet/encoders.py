"""JSON encoding of handler results.

`dumps` turns dicts, lists, strings, numbers, pydantic models, dataclasses, datetimes, UUIDs, enums,
Decimals, sets and paths into compact UTF-8 JSON bytes. Outside pydantic models the values come out as
FastAPI's ``jsonable_encoder`` gives them: a ``timedelta`` as its seconds (a float, ``300.0``), datetimes in
``isoformat()`` (``+00:00`` for UTC), a Decimal an int or a float; inside a model, as pydantic serialises them
(``"PT5M"``, ``Z``, a Decimal a string), as FastAPI does. It uses orjson (a dependency), imported on first use,
and pydantic-core's Rust serializer for what orjson refuses (both far
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
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["dumps", "loads", "jsonable", "jsonable_encoder", "is_pydantic"]


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


def decimal_number(value: Any) -> Any:
    """A Decimal as FastAPI's ``decimal_encoder`` gives it outside a declared type: an int when it has no
    fractional digits (``Decimal("0")`` → 0), else a float (``Decimal("1.10")`` → 1.1); a declared type's
    Decimal is pydantic's string instead (`dumps_declared`).

    An integral Decimal whose int would have more digits than Python prints (``sys.get_int_max_str_digits()``,
    4,300 by default, and 4,300 when that limit is off) comes out as pydantic's string (``"1E+999999999"``):
    ``int()`` of it would take minutes and gigabytes (a client's ``?price=1e999999999`` echoed back froze
    FastAPI's worker), and no JSON writer here would print it."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent < 0:  # fractional; or NaN/Infinity, which float() maps (null)
        return float(value)
    if len(digits) + exponent > (sys.get_int_max_str_digits() or 4300):
        return str(value)
    return int(value)


def _orjson_default(obj: Any) -> Any:
    if is_pydantic(obj):
        return _pydantic_jsonable(obj)
    datetime = _loaded("datetime")
    if datetime is not None and isinstance(obj, datetime.timedelta):
        return obj.total_seconds()  # FastAPI's jsonable_encoder: seconds, not ISO 8601
    decimal = _loaded("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        return decimal_number(obj)
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
_loads_is_stdlib = False  # orjson is missing


def _select() -> None:
    global dumps, _loads_impl, _loads_is_stdlib
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; pydantic-core and json then
        from json import loads as json_loads

        dumps, _loads_impl, _loads_is_stdlib = _pc_plain_first, json_loads, True
        return
    orjson_dumps, options = orjson.dumps, orjson.OPT_NON_STR_KEYS

    def orjson_first(obj: Any) -> bytes:
        try:
            return orjson_dumps(obj, default=_orjson_default, option=options)
        except TypeError:  # e.g. integers over 64 bits or nesting over 254 levels; pydantic-core next
            return _pc_plain_first(obj)

    dumps, _loads_impl = orjson_first, orjson.loads


def _pc_plain_first(obj: Any) -> bytes:
    """`_pc_first` on `obj` made plain by `jsonable` first, so that timedeltas and datetimes come out as from
    orjson (pydantic-core alone writes ``"PT5M"`` and ``Z``)."""
    try:
        plain = jsonable(obj)
    except ValueError:  # a circular reference: let the serializer report it
        plain = obj
    return _pc_first(plain)


def _pc_first(obj: Any) -> bytes:
    try:
        return _pc_dumps(obj)
    except ValueError:  # PydanticSerializationError: e.g. nesting over 255 levels (or a circular reference)
        return _dumps_deep(obj)


def dumps_declared(obj: Any) -> bytes:
    """`obj` as JSON the way pydantic writes a value of a declared result type (FastAPI's ``response_model``
    path): ``timedelta`` as ISO 8601 (``"PT5M"``), UTC datetimes ending in ``Z``. `dumps` writes what
    FastAPI's ``jsonable_encoder`` gives for an undeclared result instead (seconds, ``+00:00``)."""
    return _pc_first(obj)


def dumps(obj: Any) -> bytes:  # noqa: F811 - the first-call stub that `_select` rebinds
    """`obj` as compact UTF-8 JSON (replaced by the chosen implementation on the first call).

    Values nested deeper than the fast serializers allow (orjson: 254 levels, pydantic-core: 255) go
    through `_dumps_deep`, which has no depth limit; a circular reference raises ``ValueError``."""
    _select()
    return dumps(obj)


def loads(data: Any) -> Any:
    """Parses JSON from bytes or str as the stdlib `json` does (what Starlette and FastAPI use), fast.

    orjson parses; a document it refuses is handed to `json.loads`, which accepts ``NaN``/``Infinity``,
    lone surrogates, UTF-16/32 and a UTF-8 BOM like Starlette does, or raises `json.JSONDecodeError` with
    the stdlib's message and position. Nesting deeper than 1024 levels raises
    `covet._json_fallback.JSONNestingError` (a `json.JSONDecodeError`), never `RecursionError`.
    """
    impl = _loads_impl
    if impl is None:
        _select()
        impl = _loads_impl
    try:
        return impl(data)
    except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a json.JSONDecodeError
        from ._json_fallback import reparse  # deferred: it imports json, needed only for invalid or deep JSON

        return reparse(data, exc, _loads_is_stdlib)


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON-compatible Python data (dicts, lists, str, int, float, bool, None).

    Any depth: past `_SHALLOW_DEPTH` levels the conversion continues without recursion (`_jsonable_deep`),
    so deeply nested data (a 1000-level JSON body echoed in a validation error) needs no deep Python stack.
    A circular reference raises ``ValueError``."""
    try:
        return _jsonable(obj, 0)
    except _TooDeep:
        return _jsonable_deep(obj)


_SHALLOW_DEPTH = 64  # levels converted recursively (fast) before `jsonable` switches to `_jsonable_deep`


class _TooDeep(Exception):
    pass


def _jsonable(obj: Any, depth: int) -> Any:
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if depth >= _SHALLOW_DEPTH:
        raise _TooDeep
    depth += 1
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(_jsonable(k, depth)): _jsonable(v, depth) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth) for v in obj]
    return _jsonable(_leaf(obj), depth)


def _leaf(obj: Any) -> Any:
    """One conversion step for what is neither a JSON scalar nor a container: the result may still need
    converting (a model's dict, an enum's value)."""
    if is_pydantic(obj):
        return _pydantic_jsonable(obj)
    if hasattr(type(obj), "__dataclass_fields__") and not isinstance(obj, type):  # dataclasses.is_dataclass
        import dataclasses

        return dataclasses.asdict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    datetime = _loaded("datetime")
    if datetime is not None:
        if isinstance(obj, (datetime.date, datetime.time)):
            return obj.isoformat()
        if isinstance(obj, datetime.timedelta):
            return obj.total_seconds()
    decimal = _loaded("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        return decimal_number(obj)
    for module, name in (("uuid", "UUID"), ("pathlib", "PurePath")):
        loaded = _loaded(module)
        if loaded is not None and isinstance(obj, getattr(loaded, name)):
            return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, BaseException):  # as FastAPI's jsonable_encoder: its attributes (a ValueError's: {})
        return dict(vars(obj))
    import json

    return json.loads(_pc_dumps(obj))


_CONTAINERS = (dict, list, tuple, set, frozenset)
_PLAIN = (str, int, float, bool, *_CONTAINERS)  # JSON scalars and the containers walked below
_LEAVE: Any = object()  # a stack entry that takes a container off the current path (cycle detection)


def _jsonable_deep(obj: Any) -> Any:
    """`jsonable` with an explicit stack instead of recursion: no depth limit."""
    root: list[Any] = [None]
    # Entries: (where the converted value goes, its key there, the value to convert).
    stack: list[tuple[Any, Any, Any]] = [(root, 0, obj)]
    on_path: set[int] = set()
    while stack:
        target, key, value = stack.pop()
        if target is _LEAVE:
            on_path.discard(key)
            continue
        while not (value is None or isinstance(value, _PLAIN)):
            value = _leaf(value)
        if not isinstance(value, _CONTAINERS):
            target[key] = value
            continue
        ident = id(value)
        if ident in on_path:
            raise ValueError("Circular reference detected: a value contains itself")
        on_path.add(ident)
        stack.append((_LEAVE, ident, None))  # popped after everything inside `value`
        out: Any
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                k = k if isinstance(k, str) else str(jsonable(k))
                out[k] = None  # keeps the key order; filled when its entry is popped
                stack.append((out, k, v))
        else:
            out = [None] * len(value)
            stack.extend((out, i, v) for i, v in enumerate(value))
        target[key] = out
    return root[0]


class _Token(str):
    """Literal JSON text on `_encode_plain`'s stack (a plain `str` there is a value to quote)."""

    __slots__ = ()


_CLOSE_ARRAY, _CLOSE_OBJECT, _COMMA = _Token("]"), _Token("}"), _Token(",")


def _dumps_deep(obj: Any) -> bytes:
    """`dumps` without recursion, for values nested deeper than orjson and pydantic-core go.

    Slow (pure Python) but with no depth limit; strings are written with ASCII escapes."""
    import math
    from json.encoder import encode_basestring_ascii as quote

    out: list[str] = []
    stack: list[Any] = [_jsonable_deep(obj)]
    while stack:
        item = stack.pop()
        if item.__class__ is _Token:
            out.append(item)
        elif isinstance(item, str):
            out.append(quote(item))
        elif item is None:
            out.append("null")
        elif item is True or item is False:
            out.append("true" if item else "false")
        elif isinstance(item, int):
            out.append(int.__repr__(item))
        elif isinstance(item, float):
            out.append(float.__repr__(item) if math.isfinite(item) else "null")
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_CLOSE_OBJECT)
            entries = list(item.items())
            for i in range(len(entries) - 1, -1, -1):
                k, v = entries[i]
                stack.append(v)
                stack.append(_Token(("," if i else "") + quote(k) + ":"))
        else:  # a list (`_jsonable_deep` gives nothing else)
            out.append("[")
            stack.append(_CLOSE_ARRAY)
            for i in range(len(item) - 1, -1, -1):
                stack.append(item[i])
                if i:
                    stack.append(_COMMA)
    return "".join(out).encode()


def jsonable_encoder(
    obj: Any,
    include: Any = None,
    exclude: Any = None,
    by_alias: bool = True,
    exclude_unset: bool = False,
    exclude_defaults: bool = False,
    exclude_none: bool = False,
    custom_encoder: Optional[dict[Any, Callable[[Any], Any]]] = None,
    sqlalchemy_safe: bool = True,
) -> Any:
    """FastAPI's ``jsonable_encoder``: `obj` as JSON-compatible Python data, with FastAPI's choices.

    Pydantic models are dumped with ``mode="json"`` and the `include`/`exclude`/`by_alias`/``exclude_*``
    options (which also filter the keys of a top-level dict); dataclasses become dicts, enums their values,
    datetimes ``isoformat()``, timedeltas seconds, Decimals ``int`` or ``float`` (as FastAPI's
    ``decimal_encoder``), UUIDs, paths and other scalars ``str``, sets, tuples and generators lists.
    `custom_encoder` maps a type to a function used for its instances first. With `sqlalchemy_safe`, dict
    keys starting with ``_sa`` are dropped."""
    encoders = custom_encoder or {}
    options = {"by_alias": by_alias, "exclude_unset": exclude_unset, "exclude_defaults": exclude_defaults,
               "exclude_none": exclude_none, "custom_encoder": custom_encoder, "sqlalchemy_safe": sqlalchemy_safe}
    if encoders:
        for kind in (type(obj), *type(obj).__mro__[1:]):
            if kind in encoders:
                return encoders[kind](obj)
    if obj is None or isinstance(obj, (str, int, float)):
        return obj
    if is_pydantic(obj) and hasattr(obj, "model_dump"):
        data = obj.model_dump(mode="json", include=include, exclude=exclude, by_alias=by_alias,
                              exclude_unset=exclude_unset, exclude_defaults=exclude_defaults,
                              exclude_none=exclude_none)
        return jsonable_encoder(data, **options)  # type: ignore[arg-type]
    if is_pydantic(obj):  # a pydantic dataclass
        return jsonable_encoder(_pydantic_jsonable(obj), **options)  # type: ignore[arg-type]
    if hasattr(type(obj), "__dataclass_fields__") and not isinstance(obj, type):
        import dataclasses

        return jsonable_encoder(dataclasses.asdict(obj), include, exclude, **options)  # type: ignore[arg-type]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        keys = set(obj) if include is None else set(include)
        if exclude is not None:
            keys -= set(exclude)
        out = {}
        for key, value in obj.items():
            if key not in keys or (sqlalchemy_safe and isinstance(key, str) and key.startswith("_sa")):
                continue
            if value is None and exclude_none:
                continue
            out[jsonable_encoder(key, **options)] = jsonable_encoder(value, **options)  # type: ignore[arg-type]
        return out
    if isinstance(obj, (list, tuple, set, frozenset)) or _is_generator(obj):
        return [jsonable_encoder(item, include, exclude, **options) for item in obj]  # type: ignore[arg-type]
    decimal = _loaded("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        return decimal_number(obj)
    re = _loaded("re")
    if re is not None and isinstance(obj, re.Pattern):
        return obj.pattern
    if isinstance(obj, bytes):
        return obj.decode()
    try:
        return jsonable_encoder(_leaf(obj), **options)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # pydantic-core's serialization error is a ValueError
        pass
    try:
        data = dict(obj)
    except Exception as first:
        try:
            data = vars(obj)
        except Exception as second:
            raise ValueError([first, second]) from None
    return jsonable_encoder(data, **options)  # type: ignore[arg-type]


def _is_generator(obj: Any) -> bool:
    types = _loaded("types")
    return types is not None and isinstance(obj, types.GeneratorType)
