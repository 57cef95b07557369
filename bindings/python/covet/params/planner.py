"""Reading a handler's (or a dependency's) signature into a `RequestPlan`, once, when the route is added.

Sources, as in FastAPI:
- a name that appears in the path (``/users/{user_id}``) is a path parameter;
- an argument annotated ``Request`` (or ``WebSocket``) receives the connection;
- ``Query()``, ``Path()``, ``Header()``, ``Cookie()``, ``Body()``, ``Form()``, ``File()`` markers (as the
  default or inside ``Annotated[...]``) choose the source explicitly and may add constraints (``ge=1``,
  ``max_length=5``);
- an `UploadFile` (or ``list[UploadFile]``, ``Optional[UploadFile]``) is a file of a multipart form;
- ``Depends(callable)`` is a dependency, whose own parameters follow these rules;
- otherwise a simple type (``int``, ``float``, ``str``, ``bool``, ``UUID``, enums, dates, ``Optional[...]``
  of those) or a list of them is a query parameter, and anything else (a pydantic model, a dataclass,
  ``dict``) is read from the JSON body.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Optional, Union

from covet.background import BackgroundTasks
from covet.connection import HTTPConnection
from covet.responses import Response

from .markers import REQUIRED, Depends, Param, _FileParam, _FormParam, _PathParam
from .plan import Dependency, ParamSpec, RequestPlan, call_kind
from .types import (
    Converter,
    adapter,
    is_bytes_file,
    is_scalar,
    is_scalar_sequence,
    is_sequence,
    make_converter,
    mentions_upload,
    resolve_hints,
    strip_annotated,
)

__all__ = ["build_plan", "build_dependency_plan"]


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
    """`Request`, `WebSocket` (or another `HTTPConnection`): the argument receives the connection itself."""
    tp = strip_annotated(tp)
    return isinstance(tp, type) and issubclass(tp, HTTPConnection)


def _extra_kind(tp: Any) -> Optional[str]:
    """``"response"`` for an argument annotated `Response` (or a subclass: the response whose headers, cookies and
    status the handler may set), ``"background"`` for `BackgroundTasks`; None otherwise."""
    tp = strip_annotated(tp)
    if not isinstance(tp, type):
        return None
    if issubclass(tp, Response):
        return "response"
    if issubclass(tp, BackgroundTasks):
        return "background"
    return None


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
    many = is_sequence(base)
    model_fields = getattr(base, "model_fields", None) if isinstance(base, type) else None
    if model_fields is not None and not constraints:  # a pydantic model read from the form's fields
        fields = tuple((field.alias or field_name, is_sequence(field.annotation))
                       for field_name, field in model_fields.items())
        return ParamSpec(name, "body", key, base, required, None if required else default,
                         adapter(base).validate_python, form=True, form_fields=fields)
    try:
        convert: Optional[Converter] = (None if base in (Any, inspect.Parameter.empty)
                                        else adapter(base, constraints).validate_python)
    except Exception as exc:
        raise TypeError(f"{owner}: form parameter {name!r} of type {base!r} is not supported: {exc}") from exc
    read_bytes = isinstance(marker, _FileParam) and is_bytes_file(base)
    return ParamSpec(name, "body", key, base, required, None if required else default, convert, many=many,
                     form=True, read_bytes=read_bytes)


def _build(func: Callable[..., Any], path_names: Sequence[str],
           route_dependencies: Sequence[Depends]) -> RequestPlan:
    """`func`'s plan with its dependencies' plans (body parameters not yet embedded across the tree)."""
    owner = _name_of(func)
    signature = inspect.signature(func)
    hints = _hints_of(func)
    specs: list[ParamSpec] = []
    dependencies = [_dependency(None, d, inspect.Parameter.empty, path_names, owner) for d in route_dependencies]
    request_arg: Optional[str] = None
    extras: list[tuple[str, str]] = []
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
        extra = _extra_kind(annotation)
        if extra is not None:  # a `Response` or `BackgroundTasks` of the request (covet.background)
            extras.append((param.name, extra))
            continue
        found, default = _marker_of(annotation, param.default)
        base = strip_annotated(annotation)
        if isinstance(found, Depends):
            dependencies.append(_dependency(param.name, found, base, path_names, owner))
            continue
        marker = found
        constraints = marker.constraints if marker is not None else {}
        required = default is inspect.Parameter.empty or default is REQUIRED
        if param.name in path_set or isinstance(marker, _PathParam):
            if param.name not in path_set:
                raise TypeError(f"{owner}: Path() parameter {param.name!r} does not appear in the route's path")
            specs.append(ParamSpec(param.name, "path", param.name, base, True, None,
                                   make_converter(base, constraints)))
            continue
        if isinstance(marker, _FormParam) or (marker is None and mentions_upload(base)):
            specs.append(_form_spec(param.name, marker, base, required, default, owner))
            continue
        location = marker.location if marker is not None else None
        if location is None:  # a simple type (or a list of them) is a query parameter, anything else the body
            location = "query" if is_scalar(base) or is_scalar_sequence(base) else "body"
        if location == "body":
            embed = bool(marker is not None and marker.embed)
            key = (marker.alias if marker is not None else None) or param.name
            convert = None if base in (Any, inspect.Parameter.empty) else adapter(base, constraints).validate_python
            specs.append(ParamSpec(param.name, "body", key, base, required, None if required else default, convert,
                                   embed=embed))
            continue
        many = is_scalar_sequence(base)
        if not (is_scalar(base) or many):
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
                      make_converter(base, constraints), many=many)
        )
    return RequestPlan(specs, request_arg, dependencies, extras)


def _dependency(name: Optional[str], marker: Depends, annotation: Any, path_names: Sequence[str],
                owner: str) -> Dependency:
    call = marker.dependency
    if call is None:
        if not callable(annotation) or annotation is inspect.Parameter.empty:
            raise TypeError(f"{owner}: Depends() without a callable needs a class as the parameter's annotation"
                            + (f" ({name!r})" if name else ""))
        call = annotation
    plan = _build(call, path_names, ())
    return Dependency(name, call, marker.use_cache, plan, call_kind(call), tuple(path_names), build_dependency_plan)


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
    return RequestPlan(specs, plan.request_arg, dependencies, plan.extras)


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


def build_dependency_plan(call: Callable[..., Any], path_names: Sequence[str],
                          embed_body: bool = False) -> RequestPlan:
    """The plan for a dependency on its own (used for ``app.dependency_overrides`` replacements)."""
    return _finish(_build(call, path_names, ()), _name_of(call), embed_body)
