"""Handler parameters: where each argument comes from and how it is converted.

The handler's signature is read ONCE, when the route is added, into a `RequestPlan`: one small spec per
argument (its source, its key, a converter). Per request, `RequestPlan.extract` only runs those specs.

Sources, as in FastAPI:
- a name that appears in the path (``/users/{user_id}``) is a path parameter;
- an argument annotated ``Request`` receives the request;
- ``Query()``, ``Path()``, ``Header()``, ``Cookie()``, ``Body()`` markers (as the default or inside
  ``Annotated[...]``) choose the source explicitly and may add constraints (``ge=1``, ``max_length=5``);
- otherwise a simple type (``int``, ``float``, ``str``, ``bool``, ``UUID``, enums, dates, ``Optional[...]``
  of those) or a list of them is a query parameter, and anything else (a pydantic model, a dataclass,
  ``dict``) is read from the JSON body.

Failures are collected and raised together as `RequestValidationError` with FastAPI's error shape.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import enum
import inspect
import json
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Optional, Union
from urllib.parse import parse_qsl, unquote

from .encoders import loads as json_loads
from .exceptions import RequestValidationError
from .requests import Request

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

__all__ = ["Query", "Path", "Header", "Cookie", "Body", "RequestPlan", "build_plan"]

_REQUIRED: Any = ...  # the marker default meaning "no default": the parameter is required

_CONSTRAINTS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern", "strict")


class Param:
    """A parameter marker; use the `Query`/`Path`/`Header`/`Cookie`/`Body` functions to make one."""

    location = "query"

    def __init__(
        self,
        default: Any = _REQUIRED,
        *,
        alias: Optional[str] = None,
        convert_underscores: bool = True,
        embed: bool = False,
        title: Optional[str] = None,
        description: Optional[str] = None,
        **constraints: Any,
    ) -> None:
        unknown = set(constraints) - set(_CONSTRAINTS)
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} option(s): {', '.join(sorted(unknown))}")
        self.default = default
        self.alias = alias
        self.convert_underscores = convert_underscores
        self.embed = embed
        self.title = title
        self.description = description
        self.constraints = {k: v for k, v in constraints.items() if v is not None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'' if self.default is _REQUIRED else repr(self.default)})"


class _QueryParam(Param):
    location = "query"


class _PathParam(Param):
    location = "path"


class _HeaderParam(Param):
    location = "header"


class _CookieParam(Param):
    location = "cookie"


class _BodyParam(Param):
    location = "body"


def Query(default: Any = _REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A query-string parameter (``?limit=10``); `alias` names the key when it differs from the argument."""
    return _QueryParam(default, alias=alias, **kwargs)


def Path(default: Any = _REQUIRED, **kwargs: Any) -> Any:
    """A path parameter with constraints (``Path(ge=1)``); path parameters are always required."""
    return _PathParam(default, **kwargs)


def Header(default: Any = _REQUIRED, *, alias: Optional[str] = None, convert_underscores: bool = True, **kwargs: Any) -> Any:
    """A request header; ``user_agent`` reads ``User-Agent`` (underscores become hyphens)."""
    return _HeaderParam(default, alias=alias, convert_underscores=convert_underscores, **kwargs)


def Cookie(default: Any = _REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A cookie from the ``Cookie`` header."""
    return _CookieParam(default, alias=alias, **kwargs)


def Body(default: Any = _REQUIRED, *, embed: bool = False, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A JSON body value; with ``embed=True`` (or several body arguments) it is read from ``body[name]``."""
    return _BodyParam(default, alias=alias, embed=embed, **kwargs)


# --- type classification --------------------------------------------------------------------------

_SCALARS: tuple[type, ...] = (
    str, int, float, bool, bytes, uuid.UUID, decimal.Decimal,
    datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
)
_SEQUENCES = (list, set, frozenset, tuple, Sequence, typing.List, typing.Set, typing.FrozenSet, typing.Tuple)
_UNION_TYPES: tuple[Any, ...] = (Union, getattr(types, "UnionType", Union))  # X | Y needs 3.10


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _non_none(tp: Any) -> list[Any]:
    """The members of a Union other than None (or [tp] itself)."""
    tp = _strip_annotated(tp)
    if typing.get_origin(tp) in _UNION_TYPES:
        return [_strip_annotated(a) for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _is_scalar(tp: Any) -> bool:
    tp = _strip_annotated(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return True
    if origin in _UNION_TYPES:
        return all(_is_scalar(a) for a in typing.get_args(tp) if a is not type(None))
    return isinstance(tp, type) and (issubclass(tp, _SCALARS) or issubclass(tp, enum.Enum))


def _is_scalar_sequence(tp: Any) -> bool:
    members = _non_none(tp)
    if len(members) != 1:
        return False
    tp = members[0]
    origin = typing.get_origin(tp)
    if origin in _SEQUENCES or tp in (list, set, tuple, frozenset):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return all(_is_scalar(a) for a in args)
    return False


def native_path_type(tp: Any) -> Optional[str]:
    """The native router type for a path parameter annotated `tp`: "int", "float", "uuid" or None (str)."""
    members = _non_none(tp)
    if len(members) != 1:
        return None
    base = members[0]
    if base is bool:  # bool is an int subclass, but "true" must reach the handler
        return None
    if base is int:
        return "int"
    if base is float:
        return "float"
    if base is uuid.UUID:
        return "uuid"
    return None


# --- converters ---------------------------------------------------------------------------------------

Converter = Callable[[Any], Any]  # raw value -> converted value; raises pydantic.ValidationError


def validation_error() -> "type[ValidationError]":
    """pydantic's ValidationError, imported when first needed (used as ``except validation_error():``,
    which is evaluated only when an exception is being matched)."""
    from pydantic_core import ValidationError

    return ValidationError


def _adapter(tp: Any, constraints: Optional[dict[str, Any]] = None) -> "TypeAdapter[Any]":
    from pydantic import Field, TypeAdapter

    return TypeAdapter(Annotated[tp, Field(**constraints)] if constraints else tp)


class _LazyValidator:
    """``TypeAdapter(tp).validate_python``, built on first use: for types pydantic surely supports, so that
    an app whose values all take the fast paths never imports pydantic."""

    __slots__ = ("_tp", "_validate")

    def __init__(self, tp: Any) -> None:
        self._tp = tp
        self._validate: Optional[Converter] = None

    def __call__(self, raw: Any) -> Any:
        if self._validate is None:
            self._validate = _adapter(self._tp).validate_python
        return self._validate(raw)


def _make_converter(tp: Any, constraints: dict[str, Any]) -> Optional[Converter]:
    """A converter for raw string input, or None when the raw value is already right (plain `str`)."""
    if tp is inspect.Parameter.empty:
        tp = Any
    if constraints:
        return _adapter(tp, constraints).validate_python
    members = _non_none(tp)
    base = members[0] if len(members) == 1 else None
    if base in (str, Any):
        return None
    if base is int:
        validate = _LazyValidator(tp)

        def to_int(raw: Any) -> Any:
            if isinstance(raw, str) and raw.isdigit() and raw.isascii():
                return int(raw)
            return validate(raw)

        return to_int
    if base in (float, bool, uuid.UUID):
        return _LazyValidator(tp)
    return _adapter(tp).validate_python  # built now: an unsupported type fails at registration


# --- specs and plans ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One handler argument."""

    name: str  # the keyword argument
    location: str  # "path", "query", "header", "cookie", "body"
    key: str  # where it is read: the path/query name, header name (lower case), cookie name, body field
    annotation: Any
    required: bool
    default: Any
    convert: Optional[Converter]
    many: bool = False  # a list of values (repeated query keys / header lines)
    embed: bool = False  # body: read from body[key] rather than the whole body


def _errors(exc: "ValidationError", prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False):
        out.append({**err, "loc": (*prefix, *err["loc"])})
    return out


def _missing(loc: tuple[Any, ...]) -> dict[str, Any]:
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


def _query_last(qs: str) -> dict[str, str]:
    """Query parameters, the last value of a repeated key winning (as FastAPI does for scalars)."""
    if not qs:
        return {}
    if "%" in qs or "+" in qs:
        return dict(parse_qsl(qs, keep_blank_values=True))
    out: dict[str, str] = {}
    for part in qs.split("&"):  # the common, unencoded case without parse_qsl's overhead
        key, _, value = part.partition("=")
        out[key] = value
    return out


def _query_multi(qs: str) -> dict[str, list[str]]:
    """Query parameters with every value of a repeated key."""
    out: dict[str, list[str]] = {}
    if not qs:
        return out
    if "%" in qs or "+" in qs:
        pairs: Sequence[tuple[str, str]] = parse_qsl(qs, keep_blank_values=True)
    else:  # the common, unencoded case without parse_qsl's overhead
        pairs = [part.partition("=")[::2] for part in qs.split("&") if part]  # type: ignore[misc]
    for key, value in pairs:
        values = out.get(key)
        if values is None:
            out[key] = [value]
        else:
            values.append(value)
    return out


def _is_json_media_type(content_type: Optional[str]) -> bool:
    if not content_type:
        return True  # FastAPI parses a body without Content-Type as JSON too
    media_type = content_type.partition(";")[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class RequestPlan:
    """How to turn a native request into a handler's keyword arguments (built once per route)."""

    __slots__ = ("specs", "path", "query", "query_lists", "header", "cookie", "body", "request_arg", "needs_request",
                 "trivial")

    def __init__(self, specs: list[ParamSpec], request_arg: Optional[str]) -> None:
        self.specs = specs
        self.request_arg = request_arg
        self.path = tuple(s for s in specs if s.location == "path")
        self.query = tuple(s for s in specs if s.location == "query")
        self.query_lists = any(s.many for s in self.query)
        self.header = tuple(s for s in specs if s.location == "header")
        self.cookie = tuple(s for s in specs if s.location == "cookie")
        self.body = tuple(s for s in specs if s.location == "body")
        # Path and query values are read straight from the native request; everything else goes through
        # a Request object (which caches what it parses).
        self.needs_request = bool(request_arg or self.header or self.cookie or self.body)
        self.trivial = not specs and request_arg is None

    @property
    def path_names(self) -> list[str]:
        return [s.key for s in self.path]

    def extract(self, native: Any, request: Optional[Request]) -> dict[str, Any]:
        """The handler's keyword arguments; raises `RequestValidationError` listing every problem."""
        kwargs: dict[str, Any] = {}
        if self.trivial:
            return kwargs
        errors: list[dict[str, Any]] = []
        if self.request_arg is not None:
            kwargs[self.request_arg] = request
        if self.path:
            self._extract_path(native, request, kwargs, errors)
        if self.query:
            qs = request.query_string if request is not None else native.query_string
            if self.query_lists:
                self._extract_values(_query_multi(qs), True, self.query, kwargs, errors)
            else:
                self._extract_values(_query_last(qs), False, self.query, kwargs, errors)
        if self.header:
            assert request is not None
            headers = request.headers
            self._extract_values({s.key: headers.getlist(s.key) for s in self.header}, True, self.header, kwargs, errors)
        if self.cookie:
            assert request is not None
            self._extract_values(request.cookies, False, self.cookie, kwargs, errors)
        if self.body:
            assert request is not None
            body_value = self._extract_body(request, kwargs, errors)
        else:
            body_value = None
        if errors:
            raise RequestValidationError(errors, body=body_value)
        return kwargs

    def _extract_path(self, native: Any, request: Optional[Request], kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        params = request.path_params if request is not None else native.params
        for spec in self.path:
            raw = params[spec.key]
            if "%" in raw:
                raw = unquote(raw)
            convert = spec.convert
            if convert is None:
                kwargs[spec.name] = raw
                continue
            try:
                kwargs[spec.name] = convert(raw)
            except validation_error() as exc:
                errors.extend(_errors(exc, ("path", spec.key)))

    @staticmethod
    def _extract_values(
        source: Mapping[str, Any], lists: bool, specs: Sequence[ParamSpec], kwargs: dict[str, Any],
        errors: list[dict[str, Any]],
    ) -> None:
        """`source` maps keys to lists of values when `lists`, else to single values."""
        for spec in specs:
            raw: Any = source.get(spec.key)
            if raw is None or (lists and not raw):
                if spec.required:
                    errors.append(_missing((spec.location, spec.key)))
                else:
                    kwargs[spec.name] = spec.default
                continue
            if lists:
                if not spec.many:
                    raw = raw[-1]  # the last repeated key wins, as in FastAPI
            elif spec.many:
                raw = [raw]
            convert = spec.convert
            if convert is None:
                kwargs[spec.name] = raw
                continue
            try:
                kwargs[spec.name] = convert(raw)
            except validation_error() as exc:
                errors.extend(_errors(exc, (spec.location, spec.key)))

    def _extract_body(self, request: Request, kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> Any:
        raw = request._body_now()
        if not raw:
            value: Any = _NO_BODY
        elif _is_json_media_type(request.headers.get("content-type")):
            try:
                value = json_loads(raw)
            except ValueError:
                errors.append(_json_error(raw))
                return raw
        else:
            value = raw  # not JSON: validation reports the type mismatch, as FastAPI does
        if len(self.body) == 1 and not self.body[0].embed:
            self._validate_body(self.body[0], value, ("body",), kwargs, errors)
            return value
        fields = value if isinstance(value, dict) else {}
        for spec in self.body:
            self._validate_body(spec, fields.get(spec.key, _NO_BODY), ("body", spec.key), kwargs, errors)
        return value

    @staticmethod
    def _validate_body(
        spec: ParamSpec, value: Any, loc: tuple[Any, ...], kwargs: dict[str, Any], errors: list[dict[str, Any]]
    ) -> None:
        if value is _NO_BODY:
            if spec.required:
                errors.append(_missing(loc))
            else:
                kwargs[spec.name] = spec.default
            return
        if spec.convert is None:
            kwargs[spec.name] = value
            return
        try:
            kwargs[spec.name] = spec.convert(value)
        except validation_error() as exc:
            errors.extend(_errors(exc, loc))


_NO_BODY: Any = object()


def _json_error(raw: bytes) -> dict[str, Any]:
    """FastAPI's error for a body that is not JSON: the stdlib decoder's message and position."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}, "ctx": {"error": exc.msg}}
    except (UnicodeDecodeError, ValueError) as exc:
        return {"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "input": {}, "ctx": {"error": str(exc)}}
    return {"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "input": {}, "ctx": {"error": "invalid JSON"}}


# --- building a plan from a signature ---------------------------------------------------------------


def resolve_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The function's annotations with string (postponed) annotations evaluated, ``Annotated`` kept."""
    target = inspect.unwrap(func)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        # Names local to an enclosing function are not in the module globals; try its closure too.
        localns: dict[str, Any] = {}
        code = getattr(target, "__code__", None)
        closure = getattr(target, "__closure__", None) or ()
        if code is not None:
            for name, cell in zip(code.co_freevars, closure):
                with contextlib.suppress(ValueError):  # an empty cell
                    localns[name] = cell.cell_contents
        return typing.get_type_hints(target, localns=localns, include_extras=True)


def _marker_of(annotation: Any, default: Any) -> tuple[Optional[Param], Any]:
    """The explicit marker (from the default or Annotated metadata) and the real default."""
    if isinstance(default, Param):
        return default, default.default
    if typing.get_origin(annotation) is Annotated:
        for meta in typing.get_args(annotation)[1:]:
            if isinstance(meta, Param):
                real_default = default if default is not inspect.Parameter.empty else meta.default
                return meta, real_default
    return None, default


def _is_request_type(tp: Any) -> bool:
    tp = _strip_annotated(tp)
    return isinstance(tp, type) and issubclass(tp, Request)


def build_plan(func: Callable[..., Any], path_names: Sequence[str]) -> RequestPlan:
    """Read `func`'s signature into a plan; `path_names` are the parameter names in the route's path."""
    signature = inspect.signature(func)
    hints = resolve_hints(func)
    specs: list[ParamSpec] = []
    request_arg: Optional[str] = None
    path_set = set(path_names)
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{func.__qualname__}: positional-only parameter {param.name!r} cannot be filled from a request")
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if _is_request_type(annotation):
            request_arg = param.name
            continue
        marker, default = _marker_of(annotation, param.default)
        base = _strip_annotated(annotation)
        constraints = marker.constraints if marker is not None else {}
        required = default is inspect.Parameter.empty or default is _REQUIRED
        if param.name in path_set or isinstance(marker, _PathParam):
            if param.name not in path_set:
                raise TypeError(f"{func.__qualname__}: Path() parameter {param.name!r} does not appear in the route's path")
            specs.append(ParamSpec(param.name, "path", param.name, base, True, None, _make_converter(base, constraints)))
            continue
        location = marker.location if marker is not None else None
        if location is None:
            if _is_scalar(base) or _is_scalar_sequence(base):
                location = "query"
            else:
                location = "body"
        if location == "body":
            embed = bool(marker is not None and marker.embed)
            key = (marker.alias if marker is not None else None) or param.name
            convert = None if base in (Any, inspect.Parameter.empty) else _adapter(base, constraints).validate_python
            specs.append(ParamSpec(param.name, "body", key, base, required, None if required else default, convert, embed=embed))
            continue
        many = _is_scalar_sequence(base)
        if not (_is_scalar(base) or many):
            raise TypeError(
                f"{func.__qualname__}: parameter {param.name!r} of type {base!r} cannot come from the {location} "
                "(use a simple type such as int, str, bool, or a list of them)"
            )
        key = marker.alias if marker is not None and marker.alias else param.name
        if location == "header":
            assert marker is not None
            if not marker.alias and marker.convert_underscores:
                key = key.replace("_", "-")
            key = key.lower()
        specs.append(
            ParamSpec(param.name, location, key, base, required, None if required else default,
                      _make_converter(base, constraints), many=many)
        )
    body_specs = [s for s in specs if s.location == "body"]
    if len(body_specs) > 1:  # several body arguments: each is a field of a JSON object
        specs = [dataclasses.replace(s, embed=True) if s.location == "body" else s for s in specs]
    return RequestPlan(specs, request_arg)
