"""Reading a handler's (or a dependency's) signature into a `RequestPlan`, once, when the route is added.

Sources, as in FastAPI:
- a name that appears in the path (``/users/{user_id}``) is a path parameter;
- an argument annotated ``Request`` (or ``WebSocket``) receives the connection;
- ``Query()``, ``Path()``, ``Header()``, ``Cookie()``, ``Body()``, ``Form()``, ``File()`` markers (as the
  default or inside ``Annotated[...]``) choose the source explicitly and may add constraints (``ge=1``,
  ``max_length=5``);
- an `UploadFile` (or ``list[UploadFile]``, ``Optional[UploadFile]``) is a file of a multipart form;
- ``Depends(callable)`` is a dependency, whose own parameters follow these rules; ``Security(callable,
  scopes=[...])`` one that adds OAuth2 scopes, which an argument annotated `SecurityScopes` receives;
- a pydantic model with ``Query()``, ``Header()`` or ``Cookie()`` is a group of parameters (its fields);
- pydantic metadata in ``Annotated[...]`` (``AfterValidator``, ``Field(gt=0)``, ``StringConstraints`` ...)
  applies to the value wherever it comes from;
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

from .markers import (
    REQUIRED,
    Depends,
    Param,
    Security,
    SecurityBase,
    SecurityScopes,
    _CookieParam,
    _FileParam,
    _FormParam,
    _HeaderParam,
    _PathParam,
    _QueryParam,
)
from .plan import Dependency, ParamSpec, RequestPlan, call_kind
from .types import (
    Converter,
    adapter,
    body_converter,
    is_bytes_file,
    is_scalar,
    is_scalar_sequence,
    is_sequence,
    make_converter,
    mentions_upload,
    param_model,
    resolve_hints,
    strip_annotated,
    unalias,
    with_metadata,
)

__all__ = ["build_plan", "build_dependency_plan"]


def _marker_of(annotation: Any, default: Any) -> tuple[Union[Param, Depends, None], Any]:
    """The explicit marker (from the default or Annotated metadata) and the real default."""
    annotation = unalias(annotation)
    if isinstance(default, (Param, Depends)):
        return default, default.default if isinstance(default, Param) else inspect.Parameter.empty
    if typing.get_origin(annotation) is Annotated:
        for meta in reversed(typing.get_args(annotation)[1:]):  # the last marker wins, as in FastAPI
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


def _is_scopes_type(tp: Any) -> bool:
    """`SecurityScopes`: the argument receives the OAuth2 scopes declared on the way to its dependency."""
    tp = strip_annotated(tp)
    return isinstance(tp, type) and issubclass(tp, SecurityScopes)


def _is_marker(meta: Any) -> bool:
    """covet's own ``Annotated`` items (not pydantic's metadata)."""
    return isinstance(meta, (Param, Depends))


def _merge_scopes(parent: tuple[str, ...], own: Sequence[str]) -> tuple[str, ...]:
    """The parent's scopes, then `own` ones not already there (FastAPI's order)."""
    return parent + tuple(dict.fromkeys(s for s in own if s not in parent))


def _group_spec(name: str, location: str, marker: Param, model: Any, annotation: Any, required: bool,
                default: Any) -> ParamSpec:
    """A pydantic model read from the query, headers or cookies: each field by its alias (a header's
    underscores become hyphens), the other keys given to the model too (``extra="forbid"`` refuses them)."""
    fields: list[tuple[str, str, bool]] = []
    for field_name, field in model.model_fields.items():
        key = field.alias or field_name
        request_key = key
        if location == "header":
            if field.alias is None and marker.convert_underscores:
                request_key = key.replace("_", "-")
            request_key = request_key.lower()
        fields.append((key, request_key, is_sequence(field.annotation)))
    optional = strip_annotated(annotation) is not model  # Optional[Model]: None when none of it is given
    extra = model.model_config.get("extra")
    return ParamSpec(name, location, name, annotation, required, None if required else default,
                     body_converter(annotation), group=(tuple(fields), optional, extra in ("allow", "forbid")))


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


def _form_spec(name: str, marker: Optional[Param], base: Any, validated: Any, constraints: dict[str, Any],
               required: bool, default: Any, owner: str) -> ParamSpec:
    """A field (or file) of a form body; `validated` is `base` with its pydantic ``Annotated`` metadata, and
    `constraints` the marker's not already in it."""
    key = (marker.alias if marker is not None else None) or name
    many = is_sequence(base)
    model = param_model(base)
    if model is not None and not (marker is not None and marker.constraints):  # a model from the form's fields
        fields = tuple((field.alias or field_name, is_sequence(field.annotation))
                       for field_name, field in model.model_fields.items())
        return ParamSpec(name, "body", key, base, required, None if required else default,
                         body_converter(validated), form=True, form_fields=fields)
    try:
        convert: Optional[Converter] = (None if base in (Any, inspect.Parameter.empty)
                                        else adapter(validated, constraints).validate_python)
    except Exception as exc:
        raise TypeError(f"{owner}: form parameter {name!r} of type {base!r} is not supported: {exc}") from exc
    read_bytes = isinstance(marker, _FileParam) and is_bytes_file(base)
    return ParamSpec(name, "body", key, base, required, None if required else default, convert, many=many,
                     form=True, read_bytes=read_bytes)


def _build(func: Callable[..., Any], path_names: Sequence[str], route_dependencies: Sequence[Depends],
           scopes: tuple[str, ...] = (), strict_content_type: bool = True) -> RequestPlan:
    """`func`'s plan with its dependencies' plans (body parameters not yet embedded across the tree); `scopes`
    are the OAuth2 scopes declared on the way to `func` (``Security(..., scopes=...)``)."""
    owner = _name_of(func)
    signature = inspect.signature(func)
    hints = _hints_of(func)
    specs: list[ParamSpec] = []
    dependencies = [_dependency(None, d, inspect.Parameter.empty, path_names, owner, scopes)
                    for d in route_dependencies]
    request_arg: Optional[str] = None
    scopes_arg: Optional[str] = None
    factories: dict[str, Callable[[], Any]] = {}  # Query(default_factory=...) & co., by argument
    extras: list[tuple[str, str]] = []
    path_set = set(path_names)
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{owner}: positional-only parameter {param.name!r} cannot be filled from a request")
        annotation = unalias(hints.get(param.name, inspect.Parameter.empty))
        found, default = _marker_of(annotation, param.default)
        if not isinstance(found, Depends):
            if _is_request_type(annotation):
                request_arg = param.name
                continue
            if _is_scopes_type(annotation):
                scopes_arg = param.name
                continue
            extra = _extra_kind(annotation)
            if extra is not None:  # a `Response` or `BackgroundTasks` of the request (covet.background)
                extras.append((param.name, extra))
                continue
        base = strip_annotated(annotation)
        if isinstance(found, Depends):
            dependencies.append(_dependency(param.name, found, base, path_names, owner, scopes))
            continue
        marker = found
        # The type pydantic validates: with the Annotated metadata (validators, Field constraints ...).
        validated, constraints = (base, {}) if annotation is inspect.Parameter.empty else with_metadata(
            annotation, _is_marker, marker.constraints if marker is not None else {})
        factory = marker.default_factory if marker is not None else None
        required = (default is inspect.Parameter.empty or default is REQUIRED) and factory is None
        if factory is not None:
            factories[param.name] = factory
        if param.name in path_set or isinstance(marker, _PathParam):
            if param.name not in path_set:
                raise TypeError(f"{owner}: Path() parameter {param.name!r} does not appear in the route's path")
            specs.append(ParamSpec(param.name, "path", param.name, base, True, None,
                                   make_converter(validated, constraints)))
            continue
        if isinstance(marker, _FormParam) or (marker is None and mentions_upload(base)):
            specs.append(_form_spec(param.name, marker, base, validated, constraints, required, default, owner))
            continue
        location = marker.location if marker is not None else None
        if location is None:  # a simple type (or a list of them) is a query parameter, anything else the body
            location = "query" if is_scalar(base) or is_scalar_sequence(base) else "body"
        if location == "body":
            embed = bool(marker is not None and marker.embed)
            key = (marker.alias if marker is not None else None) or param.name
            convert = None if base in (Any, inspect.Parameter.empty) else body_converter(validated, constraints)
            specs.append(ParamSpec(param.name, "body", key, base, required, None if required else default, convert,
                                   embed=embed))
            continue
        many = is_scalar_sequence(base)
        if not (is_scalar(base) or many):
            model = param_model(base)
            if model is not None and isinstance(marker, (_QueryParam, _HeaderParam, _CookieParam)):
                specs.append(_group_spec(param.name, location, marker, model, validated, required, default))
                continue
            raise TypeError(
                f"{owner}: parameter {param.name!r} of type {base!r} cannot come from the {location} "
                "(use a simple type such as int, str, bool, a list of them, or a pydantic model of them)"
            )
        key = marker.alias if marker is not None and marker.alias else param.name
        if location == "header":
            assert marker is not None
            if not marker.alias and marker.convert_underscores:
                key = key.replace("_", "-")
            key = key.lower()
        specs.append(
            ParamSpec(param.name, location, key, base, required, None if required else default,
                      make_converter(validated, constraints), many=many)
        )
    if factories:
        specs = [dataclasses.replace(s, default_factory=factories[s.name]) if s.name in factories else s
                 for s in specs]
    return RequestPlan(specs, request_arg, dependencies, extras, scopes_arg=scopes_arg, scopes=scopes,
                       strict_content_type=strict_content_type)


def _uses_scopes(call: Any, own: Sequence[str], plan: RequestPlan) -> bool:
    """Whether a dependency's value may depend on its scopes (then it is cached per set of scopes, as in
    FastAPI): it declares scopes, reads `SecurityScopes`, is a security scheme, or depends on one that does."""
    while isinstance(call, functools.partial):
        call = call.func
    return (bool(own) or plan.scopes_arg is not None or isinstance(call, SecurityBase)
            or any(_uses_scopes(d.call, d.own_scopes, d.plan) for d in plan.dependencies))


def _check_lifespan(call: Any, plan: RequestPlan, owner: str) -> None:
    """A lifespan-scoped dependency is made once for the app: it cannot read a request."""
    reads = [s.name for s in plan.specs] + [a for a in (plan.request_arg, plan.scopes_arg) if a is not None]
    reads += [f"Depends({_name_of(d.call)})" for d in plan.dependencies if d.scope != "lifespan"]
    if reads:
        raise TypeError(f'{owner}: the dependency "{_name_of(call)}" has scope="lifespan" (made once for the app) '
                        f"but reads the request: {', '.join(reads)}; its dependencies must be lifespan-scoped "
                        "too, or give it the default scope")


def _dependency(name: Optional[str], marker: Depends, annotation: Any, path_names: Sequence[str],
                owner: str, parent_scopes: tuple[str, ...] = ()) -> Dependency:
    call = marker.dependency
    if call is None:
        if not callable(annotation) or annotation is inspect.Parameter.empty:
            raise TypeError(f"{owner}: Depends() without a callable needs a class as the parameter's annotation"
                            + (f" ({name!r})" if name else ""))
        call = annotation
    own = marker.scopes if isinstance(marker, Security) else ()
    scopes = _merge_scopes(parent_scopes, own)
    plan = _build(call, path_names, (), scopes)
    kind = call_kind(call)
    generator = kind in ("gen", "asyncgen")
    if generator and marker.scope != "function":  # request-scoped: torn down after the response is sent
        for sub in plan.dependencies:
            if sub.scope == "function":
                raise TypeError(f'{owner}: the dependency "{_name_of(call)}" has a scope of "request", it cannot '
                                f'depend on dependencies with scope "function" ("{_name_of(sub.call)}"): give it '
                                'scope="function" too, or the other the default scope')
    if marker.scope == "lifespan":
        _check_lifespan(call, plan, owner)
    uses_scopes = _uses_scopes(call, own, plan)
    # FastAPI's cache key: the call, its scopes when it uses them, and the teardown scope of a generator.
    cache_key: Any = call
    if uses_scopes or (generator and marker.scope == "function"):
        cache_key = (call, tuple(sorted(set(scopes))) if uses_scopes else (), marker.scope if generator else "")
    return Dependency(name, call, marker.use_cache, plan, kind, tuple(path_names), build_dependency_plan,
                      own_scopes=own, cache_key=cache_key, scope=marker.scope)


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
    return plan.replaced(specs, dependencies)


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
               dependencies: Sequence[Depends] = (), *, strict_content_type: bool = True) -> RequestPlan:
    """Read `func`'s signature into a plan; `path_names` are the parameter names in the route's path.

    `dependencies` (``[Depends(f), ...]``) run before the handler; their values are not passed to it.
    `strict_content_type`: a JSON body must say ``Content-Type: application/json`` (or ``+json``); with
    False a body without a Content-Type is parsed as JSON too (FastAPI's option of that name).
    """
    for dependency in dependencies:
        if not isinstance(dependency, Depends):
            raise TypeError(f"dependencies must be Depends(...) markers, not {dependency!r}")
    return _finish(_build(func, path_names, dependencies, strict_content_type=strict_content_type),
                   _name_of(func))


def build_dependency_plan(call: Callable[..., Any], path_names: Sequence[str],
                          embed_body: bool = False, scopes: tuple[str, ...] = ()) -> RequestPlan:
    """The plan for a dependency on its own (used for ``app.dependency_overrides`` replacements); `scopes`
    are those declared on the way to the dependency it replaces."""
    return _finish(_build(call, path_names, (), scopes), _name_of(call), embed_body)
