"""Annotations → parameter kinds and converters: which types are scalars (query, header, path values),
sequences, files; the native router type of a path parameter; converters from raw strings (pydantic's, built
only for the types that need them)."""

from __future__ import annotations

import contextlib
import enum
import inspect
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Optional, Union

from covet.datastructures import UploadFile

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

__all__ = ["Converter", "native_path_type", "resolve_hints", "validation_error", "make_converter", "adapter"]

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

# typing.List & co. are listed because annotations written with them must be recognised.
_SEQUENCES = (list, set, frozenset, tuple, Sequence, typing.List, typing.Set, typing.FrozenSet, typing.Tuple)  # noqa: UP006
_UNION_TYPES: tuple[Any, ...] = (Union, getattr(types, "UnionType", Union))  # X | Y needs 3.10


def unalias(tp: Any) -> Any:
    """The value of a type alias (PEP 695 ``type X = ...`` or ``typing_extensions.TypeAliasType``), else `tp`."""
    while type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
        tp = tp.__value__
    return tp


def strip_annotated(tp: Any) -> Any:
    tp = unalias(tp)
    while typing.get_origin(tp) is Annotated:
        tp = unalias(typing.get_args(tp)[0])
    return tp


def with_metadata(annotation: Any, skip: Callable[[Any], bool],
                  constraints: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The type pydantic validates for a parameter, and the marker `constraints` still to apply.

    `annotation` without its type aliases, keeping the ``Annotated`` metadata pydantic applies (``AfterValidator``,
    ``Field(gt=0)``, ``StringConstraints`` ...) and dropping the items `skip` says are covet's own markers
    (``Query()``, ``Depends()`` ...). With such metadata, the marker's constraints come first (they check the
    input, as in FastAPI) and none are left over."""
    tp = unalias(annotation)
    metadata: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        args = typing.get_args(tp)
        metadata[:0] = [m for m in args[1:] if not skip(m)]
        tp = unalias(args[0])
    if not metadata:
        return tp, constraints
    if constraints:
        from pydantic import Field  # deferred: see _LazyValidator

        metadata.insert(0, Field(**constraints))
    return Annotated[(tp, *metadata)], {}


def has_metadata(tp: Any) -> bool:
    """`tp` carries ``Annotated`` metadata somewhere (``Annotated[str, AfterValidator(f)] | None`` too)."""
    tp = unalias(tp)
    if typing.get_origin(tp) is Annotated:
        return True
    return any(has_metadata(a) for a in typing.get_args(tp) if a is not Ellipsis and not isinstance(a, str))


def param_model(tp: Any) -> Any:
    """The pydantic model `tp` is (or ``Optional[...]`` of), for a group of query/header/cookie parameters;
    None otherwise."""
    members = _non_none(tp)
    if len(members) != 1 or not isinstance(members[0], type):
        return None
    return members[0] if hasattr(members[0], "model_fields") and hasattr(members[0], "model_config") else None


def _non_none(tp: Any) -> list[Any]:
    """The members of a Union other than None (or [tp] itself)."""
    tp = strip_annotated(tp)
    if typing.get_origin(tp) in _UNION_TYPES:
        return [strip_annotated(a) for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def is_scalar(tp: Any) -> bool:
    """A simple value (a query/path/header/cookie parameter by default), as FastAPI decides it: anything that is
    not complex — not a pydantic model, mapping, sequence (str and bytes aside), dataclass or UploadFile, nor a
    union holding one. So pydantic's own types (``HttpUrl``, ``EmailStr`` ...) and other classes are scalars."""
    tp = strip_annotated(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return True
    if origin in _UNION_TYPES:
        return all(is_scalar(a) for a in typing.get_args(tp) if a is not type(None))
    if isinstance(tp, type) and (issubclass(tp, _scalar_types()) or issubclass(tp, enum.Enum)):
        return True  # the common case, without the checks below
    return not _is_complex(tp)


def _is_complex(tp: Any) -> bool:
    """FastAPI's "complex" annotations: models, mappings, sequences (not str/bytes), dataclasses, UploadFile."""
    import collections.abc
    import dataclasses

    origin = typing.get_origin(tp)
    if origin is not None and origin not in _UNION_TYPES and origin is not typing.Literal:
        tp = origin  # list[int] → list, dict[str, int] → dict
    if not isinstance(tp, type):
        return False
    if issubclass(tp, (str, bytes)):
        return False
    if issubclass(tp, (collections.abc.Mapping, collections.abc.Sequence, collections.abc.Set, UploadFile)):
        return True
    if dataclasses.is_dataclass(tp):
        return True
    return _is_pydantic_model(tp)


def _is_pydantic_model(tp: type) -> bool:
    module = sys.modules.get("pydantic")
    return module is not None and issubclass(tp, module.BaseModel)


def is_sequence(tp: Any) -> bool:
    """``list[X]`` (or set, tuple ...), possibly Optional."""
    members = _non_none(tp)
    if len(members) != 1:
        return False
    origin = typing.get_origin(members[0])
    return origin in _SEQUENCES or members[0] in (list, set, tuple, frozenset)


def mentions_upload(tp: Any) -> bool:
    """`tp` is `UploadFile` or contains it (``Optional[UploadFile]``, ``list[UploadFile]``)."""
    tp = strip_annotated(tp)
    if isinstance(tp, type) and issubclass(tp, UploadFile):
        return True
    return any(mentions_upload(a) for a in typing.get_args(tp) if a is not Ellipsis)


def is_bytes_file(tp: Any) -> bool:
    """``bytes`` or ``list[bytes]`` (possibly Optional): a File() parameter receiving the file content."""
    members = _non_none(tp)
    if len(members) != 1:
        return False
    tp = members[0]
    if is_sequence(tp):
        args = typing.get_args(tp)
        return bool(args) and strip_annotated(args[0]) is bytes
    return tp is bytes


def is_scalar_sequence(tp: Any) -> bool:
    members = _non_none(tp)
    if len(members) != 1:
        return False
    tp = members[0]
    origin = typing.get_origin(tp)
    if origin in _SEQUENCES or tp in (list, set, tuple, frozenset):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return all(is_scalar(a) for a in args)
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


def validation_error() -> type[ValidationError]:
    """pydantic's ValidationError, imported when first needed (used as ``except validation_error():``,
    which is evaluated only when an exception is being matched)."""
    from pydantic_core import ValidationError  # deferred: pydantic is imported only by apps that need it

    return ValidationError


def adapter(tp: Any, constraints: Optional[dict[str, Any]] = None) -> TypeAdapter[Any]:
    """A pydantic TypeAdapter for `tp` (with Field `constraints`)."""
    from pydantic import Field, TypeAdapter  # deferred: see _LazyValidator

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
            self._validate = adapter(self._tp).validate_python
        return self._validate(raw)


def body_converter(tp: Any, constraints: Optional[dict[str, Any]] = None) -> Converter:
    """A validator for a parsed JSON body (or form) value: objects are read by attribute too, as FastAPI
    validates (so a JSON array for a model is ``model_attributes_type``). pydantic-core's validator is called
    directly when the adapter has a plain one (no plugin wraps it): TypeAdapter.validate_python only passes its
    arguments on, a Python frame per request."""
    import functools

    from pydantic_core import SchemaValidator

    typed = adapter(tp, constraints)
    # Read as stored, never built here: some pydantic 2 releases make `validator` a property that builds the
    # schema (and fails for a model whose forward references are resolved later, on model_rebuild()).
    core = vars(typed).get("validator")
    return functools.partial(core.validate_python if type(core) is SchemaValidator else typed.validate_python,
                             from_attributes=True)


_FAST_INT_DIGITS = 18  # below any limit of int(): a path or query integer this short skips pydantic


def make_converter(tp: Any, constraints: dict[str, Any]) -> Optional[Converter]:
    """A converter for raw string input, or None when the raw value is already right (plain `str`)."""
    if tp is inspect.Parameter.empty:
        tp = Any
    if constraints or has_metadata(tp):
        return adapter(tp, constraints).validate_python
    members = _non_none(tp)
    base = members[0] if len(members) == 1 else None
    if base in (str, Any):
        return None
    if base is int:
        validate = _LazyValidator(tp)

        def to_int(raw: Any) -> Any:
            # Short ASCII digits only: int() of more than sys.get_int_max_str_digits() digits raises ValueError
            # (a 500), where pydantic answers int_parsing_size (a 422), as FastAPI does.
            if isinstance(raw, str) and len(raw) <= _FAST_INT_DIGITS and raw.isdigit() and raw.isascii():
                return int(raw)
            return validate(raw)

        return to_int
    if base in (float, bool) or (base is not None and base is _uuid_type()):
        return _LazyValidator(tp)
    return adapter(tp).validate_python  # built now: an unsupported type fails at registration


def errors_of(exc: ValidationError, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
    """pydantic's errors with `prefix` (``("query", "limit")`` ...) before each location, FastAPI's shape."""
    return [{**err, "loc": (*prefix, *err["loc"])} for err in exc.errors(include_url=False)]


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
            for name, cell in zip(code.co_freevars, closure, strict=False):
                with contextlib.suppress(ValueError):  # an empty cell
                    localns[name] = cell.cell_contents
        return typing.get_type_hints(target, localns=localns, include_extras=True)
