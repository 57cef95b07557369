"""Handler parameters: where each argument comes from and how it is converted.

The handler's signature is read ONCE, when the route is added, into a `RequestPlan`: one small spec per
argument (its source, its key, a converter). Per request, `RequestPlan.extract` only runs those specs.

Sources, as in FastAPI:
- a name that appears in the path (``/users/{user_id}``) is a path parameter;
- an argument annotated ``Request`` receives the request;
- ``Query()``, ``Path()``, ``Header()``, ``Cookie()``, ``Body()``, ``Form()``, ``File()`` markers (as the
  default or inside ``Annotated[...]``) choose the source explicitly and may add constraints (``ge=1``,
  ``max_length=5``);
- an `UploadFile` (or ``list[UploadFile]``, ``Optional[UploadFile]``) is a file of a multipart form;
- ``Depends(callable)`` is a dependency (see `covet.dependencies`), whose own parameters follow these rules;
- otherwise a simple type (``int``, ``float``, ``str``, ``bool``, ``UUID``, enums, dates, ``Optional[...]``
  of those) or a list of them is a query parameter, and anything else (a pydantic model, a dataclass,
  ``dict``) is read from the JSON body.

Failures are collected and raised together as `RequestValidationError` with FastAPI's error shape.

A plan without dependencies is filled synchronously by `RequestPlan.extract`. A plan with dependencies
(`RequestPlan.dependencies` is not empty) is filled by ``async with plan.solve(request, executor) as
kwargs``, which also runs the dependencies' teardown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Optional, Union

from .datastructures import FormData, UploadFile
from .dependencies import Dependency, DependencyScope, Depends, call_kind
from .encoders import loads as json_loads
from .exceptions import HTTPException, RequestValidationError
from .requests import Request

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from pydantic import TypeAdapter, ValidationError

__all__ = ["Query", "Path", "Header", "Cookie", "Body", "Form", "File", "Depends", "RequestPlan", "build_plan"]

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


class _FormParam(_BodyParam):
    """A field of a form body (URL-encoded or multipart)."""


class _FileParam(_FormParam):
    """A file of a multipart form body."""


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


def Form(default: Any = _REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A field of a form body (``application/x-www-form-urlencoded`` or ``multipart/form-data``).

    On a pydantic model (``Annotated[Model, Form()]``) the model's fields are read from the form's fields.
    An empty value counts as missing, as in FastAPI.
    """
    return _FormParam(default, alias=alias, **kwargs)


def File(default: Any = _REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A file of a ``multipart/form-data`` body: annotate `UploadFile` for the file object, ``bytes`` for its
    content (``list[...]`` of either for several files under one name)."""
    return _FileParam(default, alias=alias, **kwargs)


# --- type classification --------------------------------------------------------------------------

# uuid, decimal, datetime, json and urllib.parse are not imported here (they cost start-up time and memory
# an app may not need): an annotation can only name UUID, Decimal or a datetime type once its module has
# been imported, so the checks below take those types from sys.modules.
_BUILTIN_SCALARS: tuple[type, ...] = (str, int, float, bool, bytes)
_STDLIB_SCALARS = (
    ("uuid", ("UUID",)),
    ("decimal", ("Decimal",)),
    ("datetime", ("datetime", "date", "time", "timedelta")),
)


def _scalar_types() -> tuple[type, ...]:
    """str, int, float, bool, bytes, UUID, Decimal, datetime, date, time, timedelta (the loaded ones)."""
    found = list(_BUILTIN_SCALARS)
    for module_name, names in _STDLIB_SCALARS:
        module = sys.modules.get(module_name)
        if module is not None:
            found.extend(getattr(module, name) for name in names)
    return tuple(found)


def _uuid_type() -> Any:
    """uuid.UUID if the uuid module is loaded (an annotation naming it implies that), else None."""
    module = sys.modules.get("uuid")
    return module.UUID if module is not None else None

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
    return isinstance(tp, type) and (issubclass(tp, _scalar_types()) or issubclass(tp, enum.Enum))


def _is_sequence(tp: Any) -> bool:
    """``list[X]`` (or set, tuple ...), possibly Optional."""
    members = _non_none(tp)
    if len(members) != 1:
        return False
    origin = typing.get_origin(members[0])
    return origin in _SEQUENCES or members[0] in (list, set, tuple, frozenset)


def _mentions_upload(tp: Any) -> bool:
    """`tp` is `UploadFile` or contains it (``Optional[UploadFile]``, ``list[UploadFile]``)."""
    tp = _strip_annotated(tp)
    if isinstance(tp, type) and issubclass(tp, UploadFile):
        return True
    return any(_mentions_upload(a) for a in typing.get_args(tp) if a is not Ellipsis)


def _is_bytes_file(tp: Any) -> bool:
    """``bytes`` or ``list[bytes]`` (possibly Optional): a File() parameter receiving the file content."""
    members = _non_none(tp)
    if len(members) != 1:
        return False
    tp = members[0]
    if _is_sequence(tp):
        args = typing.get_args(tp)
        return bool(args) and _strip_annotated(args[0]) is bytes
    return tp is bytes


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
    if base is not None and base is _uuid_type():
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
    if base in (float, bool) or (base is not None and base is _uuid_type()):
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
    many: bool = False  # a list of values (repeated query keys / header lines / form fields)
    embed: bool = False  # body: read from body[key] rather than the whole body
    form: bool = False  # body: a field (or file) of a form body, not JSON
    read_bytes: bool = False  # form: a file's content rather than the UploadFile
    form_fields: Optional[tuple[tuple[str, bool], ...]] = None  # form: a model read from these (key, many)


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
        from urllib.parse import parse_qsl

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
        from urllib.parse import parse_qsl

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


_NO_BODY: Any = object()  # no body (or no such field in it)
_UNPARSED: Any = object()  # the body is not parsed yet


class RequestPlan:
    """How to turn a native request into a handler's keyword arguments (built once per route)."""

    __slots__ = ("specs", "path", "query", "query_lists", "header", "cookie", "body", "request_arg", "needs_request",
                 "trivial", "dependencies", "form", "json_in_tree", "form_in_tree")

    def __init__(self, specs: list[ParamSpec], request_arg: Optional[str],
                 dependencies: Sequence[Dependency] = ()) -> None:
        self.specs = specs
        self.request_arg = request_arg
        self.dependencies = tuple(dependencies)
        self.path = tuple(s for s in specs if s.location == "path")
        self.query = tuple(s for s in specs if s.location == "query")
        self.query_lists = any(s.many for s in self.query)
        self.header = tuple(s for s in specs if s.location == "header")
        self.cookie = tuple(s for s in specs if s.location == "cookie")
        self.body = tuple(s for s in specs if s.location == "body")
        self.form = any(s.form for s in self.body)  # the body is a form (then every body spec is a form field)
        # Whether this plan or a dependency's reads a JSON / form body (dependencies share the parsed body).
        self.json_in_tree: bool = (bool(self.body) and not self.form) or any(d.plan.json_in_tree for d in self.dependencies)
        self.form_in_tree: bool = self.form or any(d.plan.form_in_tree for d in self.dependencies)
        # Path and query values are read straight from the native request; everything else goes through
        # a Request object (which caches what it parses).
        self.needs_request = bool(request_arg or self.header or self.cookie or self.body or self.dependencies)
        self.trivial = not specs and request_arg is None and not self.dependencies

    @property
    def path_names(self) -> list[str]:
        return [s.key for s in self.path]

    def extract(self, native: Any, request: Optional[Request]) -> dict[str, Any]:
        """The handler's keyword arguments; raises `RequestValidationError` listing every problem.

        For a plan without dependencies (the dispatcher calls `solve` for the others).
        """
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

    # -- plans with dependencies -------------------------------------------------------------------------
    def solve(self, request: Request, executor: Optional["Executor"] = None) -> DependencyScope:
        """``async with plan.solve(request, executor) as kwargs``: calls the dependencies (sync ones in
        `executor`, or directly when it is None) and gives the handler's keyword arguments; on exit, runs the
        teardown of generator dependencies (after ``yield``), passing them the exception of the block."""
        return DependencyScope(self, request, executor)

    def read_tree_body(self, request: Request) -> Any:
        """The JSON body, parsed once for this plan and its dependencies (`_UNPARSED` if none reads it).

        Invalid JSON raises `RequestValidationError` before any dependency runs, as in FastAPI."""
        if not self.json_in_tree:
            return _UNPARSED
        errors: list[dict[str, Any]] = []
        value = _parse_body(request, errors)
        if errors:
            raise RequestValidationError(errors, body=value)
        return value

    def error_body(self, request: Request, body: Any) -> Any:
        """The body to attach to a `RequestValidationError` raised by `solve`."""
        if body is not _UNPARSED and body is not _NO_BODY:
            return body
        if self.form_in_tree and request._form is not None:
            return request._form
        return None

    def fill(self, request: Request, kwargs: dict[str, Any], errors: list[dict[str, Any]], body: Any = _UNPARSED) -> None:
        """Adds this plan's own parameters to `kwargs` and its problems to `errors` (used by `solve`).

        `body` is the JSON body from `read_tree_body` (`_UNPARSED`: parse it here)."""
        if self.request_arg is not None:
            kwargs[self.request_arg] = request
        if self.path:
            self._extract_path(None, request, kwargs, errors)
        if self.query:
            if self.query_lists:
                self._extract_values(_query_multi(request.query_string), True, self.query, kwargs, errors)
            else:
                self._extract_values(_query_last(request.query_string), False, self.query, kwargs, errors)
        if self.header:
            headers = request.headers
            self._extract_values({s.key: headers.getlist(s.key) for s in self.header}, True, self.header, kwargs, errors)
        if self.cookie:
            self._extract_values(request.cookies, False, self.cookie, kwargs, errors)
        if self.body:
            if self.form:
                self._extract_form(request, kwargs, errors)
            elif body is _UNPARSED:
                self._extract_body(request, kwargs, errors)
            else:
                self._bind_body(body, kwargs, errors)

    # -- sources ------------------------------------------------------------------------------------------
    def _extract_path(self, native: Any, request: Optional[Request], kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        params = request.path_params if request is not None else native.params
        for spec in self.path:
            raw = params[spec.key]
            if "%" in raw:
                from urllib.parse import unquote

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
        if self.form:
            return self._extract_form(request, kwargs, errors)
        raw = request._body_now()
        if not raw:
            value: Any = _NO_BODY
        elif _is_json_media_type(request.headers.get("content-type")):
            value = _body_json(raw, errors)
            if value is _INVALID:
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

    def _bind_body(self, value: Any, kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        """`_extract_body` after parsing, for a body parsed already (by `read_tree_body`)."""
        if len(self.body) == 1 and not self.body[0].embed:
            self._validate_body(self.body[0], value, ("body",), kwargs, errors)
            return
        fields = value if isinstance(value, dict) else {}
        for spec in self.body:
            self._validate_body(spec, fields.get(spec.key, _NO_BODY), ("body", spec.key), kwargs, errors)

    def _extract_form(self, request: Request, kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> FormData:
        from .formparsers import MultiPartException

        try:
            form = request._form_now()
        except MultiPartException as exc:
            raise HTTPException(400, "There was an error parsing the body") from exc
        for spec in self.body:
            if spec.form_fields is not None:
                self._validate_form_model(spec, form, kwargs, errors)
                continue
            value = _form_value(form, spec.key, spec.many)
            if value is _NO_BODY:
                if spec.required:
                    errors.append(_missing(("body", spec.key)))
                else:
                    kwargs[spec.name] = spec.default
                continue
            if spec.read_bytes:
                value = [_file_content(v) for v in value] if spec.many else _file_content(value)
            if spec.convert is None:
                kwargs[spec.name] = value
                continue
            try:
                kwargs[spec.name] = spec.convert(value)
            except validation_error() as exc:
                errors.extend(_errors(exc, ("body", spec.key)))
        return form

    @staticmethod
    def _validate_form_model(spec: ParamSpec, form: FormData, kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        assert spec.form_fields is not None and spec.convert is not None
        data: dict[str, Any] = {}
        for key, many in spec.form_fields:
            value = _form_value(form, key, many)
            if value is not _NO_BODY:
                data[key] = value
        if not data and not spec.required:
            kwargs[spec.name] = spec.default
            return
        try:
            kwargs[spec.name] = spec.convert(data)
        except validation_error() as exc:
            errors.extend(_errors(exc, ("body",)))

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


def _parse_body(request: Request, errors: list[dict[str, Any]]) -> Any:
    """The request body: parsed JSON, `_NO_BODY` when empty, the bytes when not JSON (validation then
    reports the type mismatch, as FastAPI does); invalid JSON adds its error and returns the bytes."""
    raw = request._body_now()
    if not raw:
        return _NO_BODY
    if _is_json_media_type(request.headers.get("content-type")):
        value = _body_json(raw, errors)
        if value is not _INVALID:
            return value
    return raw


def _is_empty_file(value: Any) -> bool:
    """What a browser sends for a file input left empty."""
    return isinstance(value, UploadFile) and value.filename == "" and not value.size


def _form_value(form: FormData, key: str, many: bool) -> Any:
    """The form's value(s) for `key`, or `_NO_BODY` when missing; empty values count as missing (FastAPI)."""
    if many:
        values = [v for v in form.getlist(key) if not _is_empty_file(v)]
        return values if values else _NO_BODY
    value = form.get(key)
    if value is None or value == "" or _is_empty_file(value):
        return _NO_BODY
    return value


def _file_content(value: Any) -> Any:
    return value._content() if isinstance(value, UploadFile) else value


_INVALID: Any = object()  # the body is not valid JSON (its error is in `errors`)


def _body_json(raw: bytes, errors: list[dict[str, Any]]) -> Any:
    """The body parsed as JSON, as FastAPI does it.

    Malformed JSON adds FastAPI's 422 error (``json_invalid`` with the stdlib decoder's message and
    position) to `errors` and returns `_INVALID`. A body nested too deeply to parse (over 1024 levels) or
    not text in any JSON encoding raises ``HTTPException(400, "There was an error parsing the body")``:
    FastAPI answers that when its parser fails with anything but a decode error (a `RecursionError`,
    a ``UnicodeDecodeError``). Neither is logged: both are the client's mistake.
    """
    try:
        return json_loads(raw)
    except ValueError as exc:
        from json import JSONDecodeError

        from ._json_fallback import JSONNestingError

        if isinstance(exc, JSONDecodeError) and not isinstance(exc, JSONNestingError):
            errors.append({"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {},
                           "ctx": {"error": exc.msg}})
            return _INVALID
        raise HTTPException(400, "There was an error parsing the body") from exc


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


def _marker_of(annotation: Any, default: Any) -> tuple[Union[Param, Depends, None], Any]:
    """The explicit marker (from the default or Annotated metadata) and the real default."""
    if isinstance(default, (Param, Depends)):
        return default, default.default if isinstance(default, Param) else inspect.Parameter.empty
    if typing.get_origin(annotation) is Annotated:
        for meta in typing.get_args(annotation)[1:]:
            if isinstance(meta, Param):
                real_default = default if default is not inspect.Parameter.empty else meta.default
                return meta, real_default
            if isinstance(meta, Depends):
                return meta, default
    return None, default


def _is_request_type(tp: Any) -> bool:
    tp = _strip_annotated(tp)
    return isinstance(tp, type) and issubclass(tp, Request)


def _name_of(func: Any) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(type(func), "__qualname__", repr(func)))


def _hints_of(func: Callable[..., Any]) -> dict[str, Any]:
    """`resolve_hints` for any callable a dependency may be: a function, a class (its ``__init__``, and its
    field annotations for dataclasses and pydantic models), a callable object, a ``functools.partial``."""
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isclass(target):
        hints: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            hints.update(typing.get_type_hints(target, include_extras=True))
        init = target.__init__
        if init is not object.__init__ and (inspect.isfunction(init) or inspect.ismethod(init)):
            with contextlib.suppress(Exception):
                hints.update(resolve_hints(init))
        return hints
    if not (inspect.isfunction(target) or inspect.ismethod(target)) and callable(target):
        call = getattr(type(target), "__call__", None)
        if inspect.isfunction(call):
            return resolve_hints(call)
    return resolve_hints(target)


def _form_spec(name: str, marker: Optional[Param], base: Any, required: bool, default: Any,
               owner: str) -> ParamSpec:
    """A field (or file) of a form body."""
    constraints = marker.constraints if marker is not None else {}
    key = (marker.alias if marker is not None else None) or name
    many = _is_sequence(base)
    model_fields = getattr(base, "model_fields", None) if isinstance(base, type) else None
    if model_fields is not None and not constraints:  # a pydantic model read from the form's fields
        fields = tuple((field.alias or field_name, _is_sequence(field.annotation))
                       for field_name, field in model_fields.items())
        return ParamSpec(name, "body", key, base, required, None if required else default,
                         _adapter(base).validate_python, form=True, form_fields=fields)
    try:
        convert: Optional[Converter] = None if base in (Any, inspect.Parameter.empty) else _adapter(base, constraints).validate_python
    except Exception as exc:
        raise TypeError(f"{owner}: form parameter {name!r} of type {base!r} is not supported: {exc}") from exc
    read_bytes = isinstance(marker, _FileParam) and _is_bytes_file(base)
    return ParamSpec(name, "body", key, base, required, None if required else default, convert, many=many,
                     form=True, read_bytes=read_bytes)


def _build(func: Callable[..., Any], path_names: Sequence[str], route_dependencies: Sequence[Depends]) -> RequestPlan:
    """`func`'s plan with its dependencies' plans (body parameters not yet embedded across the tree)."""
    owner = _name_of(func)
    signature = inspect.signature(func)
    hints = _hints_of(func)
    specs: list[ParamSpec] = []
    dependencies = [_dependency(None, d, inspect.Parameter.empty, path_names, owner) for d in route_dependencies]
    request_arg: Optional[str] = None
    path_set = set(path_names)
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{owner}: positional-only parameter {param.name!r} cannot be filled from a request")
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if _is_request_type(annotation):
            request_arg = param.name
            continue
        found, default = _marker_of(annotation, param.default)
        base = _strip_annotated(annotation)
        if isinstance(found, Depends):
            dependencies.append(_dependency(param.name, found, base, path_names, owner))
            continue
        marker = found
        constraints = marker.constraints if marker is not None else {}
        required = default is inspect.Parameter.empty or default is _REQUIRED
        if param.name in path_set or isinstance(marker, _PathParam):
            if param.name not in path_set:
                raise TypeError(f"{owner}: Path() parameter {param.name!r} does not appear in the route's path")
            specs.append(ParamSpec(param.name, "path", param.name, base, True, None, _make_converter(base, constraints)))
            continue
        if isinstance(marker, _FormParam) or (marker is None and _mentions_upload(base)):
            specs.append(_form_spec(param.name, marker, base, required, default, owner))
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
                f"{owner}: parameter {param.name!r} of type {base!r} cannot come from the {location} "
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
    return RequestPlan(specs, request_arg, dependencies)


def _dependency(name: Optional[str], marker: Depends, annotation: Any, path_names: Sequence[str],
                owner: str) -> Dependency:
    call = marker.dependency
    if call is None:
        if not callable(annotation) or annotation is inspect.Parameter.empty:
            raise TypeError(f"{owner}: Depends() without a callable needs a class as the parameter's annotation"
                            + (f" ({name!r})" if name else ""))
        call = annotation
    plan = _build(call, path_names, ())
    return Dependency(name, call, marker.use_cache, plan, call_kind(call), tuple(path_names))


def _tree_body_specs(plan: RequestPlan) -> list[ParamSpec]:
    out = list(plan.body)
    for dependency in plan.dependencies:
        out.extend(_tree_body_specs(dependency.plan))
    return out


def _embedded(plan: RequestPlan) -> RequestPlan:
    """`plan` (and its dependencies') with every JSON body parameter read from a field of the body."""
    specs = [dataclasses.replace(s, embed=True) if s.location == "body" and not s.form else s for s in plan.specs]
    dependencies = [dataclasses.replace(d, plan=_embedded(d.plan), embed_body=True, _override_plans={})
                    for d in plan.dependencies]
    return RequestPlan(specs, plan.request_arg, dependencies)


def _finish(plan: RequestPlan, owner: str, embed: bool = False) -> RequestPlan:
    """Applies the rules that span the dependency tree: JSON and form bodies do not mix; several body
    parameters (in the handler and its dependencies together) are each a field of the body."""
    body_specs = _tree_body_specs(plan)
    if any(s.form for s in body_specs) and not all(s.form for s in body_specs):
        raise TypeError(f"{owner}: a JSON body parameter cannot be combined with Form()/File() parameters")
    if embed or len({s.key for s in body_specs if not s.form}) > 1:
        return _embedded(plan)
    return plan


def build_plan(func: Callable[..., Any], path_names: Sequence[str],
               dependencies: Sequence[Depends] = ()) -> RequestPlan:
    """Read `func`'s signature into a plan; `path_names` are the parameter names in the route's path.

    `dependencies` (``[Depends(f), ...]``) run before the handler; their values are not passed to it.
    """
    for dependency in dependencies:
        if not isinstance(dependency, Depends):
            raise TypeError(f"dependencies must be Depends(...) markers, not {dependency!r}")
    return _finish(_build(func, path_names, dependencies), _name_of(func))


def build_dependency_plan(call: Callable[..., Any], path_names: Sequence[str], embed_body: bool = False) -> RequestPlan:
    """The plan for a dependency on its own (used for ``app.dependency_overrides`` replacements)."""
    return _finish(_build(call, path_names, ()), _name_of(call), embed_body)
