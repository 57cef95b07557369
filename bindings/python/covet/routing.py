"""Routes, FastAPI path syntax → native router patterns, and duplicate detection.

Path syntax is FastAPI's (``/users/{user_id}``, ``/files/{p:path}``); the native router also understands
``{x:int}``, ``{x:float}``, ``{x:uuid}`` and ``{x:str}``. A plain ``{name}`` takes its native type from the
handler's annotation (``int`` → ``{name:int}`` ...), so the engine routes by type. Because FastAPI answers
a value of the wrong type with 422 (not 404), the app also registers an untyped fallback pattern for such
routes when nothing else uses that shape; the handler's converter then reports the error.

Duplicates (same method, same shape: literals and parameter types, names ignored) are refused when the
route is added, naming both routes — the same rule the native router applies.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Optional, TypedDict, Union

from .params import RequestPlan, build_plan, native_path_type, resolve_hints
from .requests import Request
from .responses import RedirectResponse, Response

if TYPE_CHECKING:
    from pydantic import TypeAdapter
    from typing_extensions import Unpack

__all__ = ["Route", "RouteOptions", "ConstantRoute", "WebSocketRoute", "RouteTable", "parse_path", "PathSegment",
           "FROM_ANNOTATION"]

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
_PARAM_TYPES = ("str", "int", "float", "uuid", "path")
MAX_PARAMS = 16  # the native router's limit


@dataclasses.dataclass(frozen=True)
class PathSegment:
    text: str  # the literal, or the parameter name
    is_param: bool = False
    type: Optional[str] = None  # a parameter's explicit type ("int" ...), None when written as {name}


def parse_path(path: str) -> Optional[list[PathSegment]]:
    """Validates `path` with the native router's rules; None for a static path (no parameters)."""

    def bad(why: str) -> ValueError:
        return ValueError(f"bad route path '{path}': {why}")

    if not path.startswith("/"):
        raise bad("must start with '/'")
    if "{" not in path and "}" not in path:
        return None
    segments: list[PathSegment] = []
    names: set[str] = set()
    for seg in path[1:].split("/"):
        if "{" not in seg and "}" not in seg:
            segments.append(PathSegment(seg))
            continue
        if not (seg.startswith("{") and seg.endswith("}")) or seg.count("{") != 1 or seg.count("}") != 1:
            raise bad(f"segment '{seg}' must be either fully literal or exactly one {{parameter}}")
        name, _, type_ = seg[1:-1].partition(":")
        if not name:
            raise bad(f"empty parameter name in segment '{seg}'")
        if not (name.isascii() and name.isidentifier()):  # [A-Za-z_][A-Za-z0-9_]*, without compiling a regex
            raise bad(f"invalid parameter name '{name}' (use letters, digits and '_', not starting with a digit)")
        if type_ and type_ not in _PARAM_TYPES:
            raise bad(f"unknown parameter type '{type_}' (expected str, int, float, uuid or path)")
        if name in names:
            raise bad(f"duplicate parameter name '{name}'")
        names.add(name)
        segments.append(PathSegment(name, True, type_ or None))
    if len(names) > MAX_PARAMS:
        raise bad(f"more than {MAX_PARAMS} parameters")
    for segment in segments[:-1]:
        if segment.is_param and segment.type == "path":
            raise bad("a {path} parameter must be the last segment")
    return segments


def _render(segments: Sequence[PathSegment], types: dict[str, Optional[str]]) -> str:
    parts = []
    for seg in segments:
        if not seg.is_param:
            parts.append(seg.text)
        else:
            type_ = types.get(seg.text)
            parts.append(f"{{{seg.text}:{type_}}}" if type_ and type_ != "str" else f"{{{seg.text}}}")
    return "/" + "/".join(parts)


def _shape(pattern: str) -> tuple[Any, ...]:
    """What makes two native patterns the same route: literals and parameter types, not names."""
    segments = parse_path(pattern)
    if segments is None:
        return ("static", pattern)
    return tuple((s.type or "str") if s.is_param else ("=", s.text) for s in segments)


def _is_async_callable(obj: Any) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(getattr(type(obj), "__call__", None))


def _declared_result_type(endpoint: Callable[..., Any], response_model: Any) -> Any:
    """The route's declared result type: ``response_model=``, else the return annotation; None when there is
    none (``response_model=None``, no annotation, ``-> None``, or an annotation that cannot be resolved)."""
    if response_model is not FROM_ANNOTATION:
        return response_model
    try:
        declared = resolve_hints(endpoint).get("return", None)
    except Exception:
        return None
    return None if declared is type(None) else declared


def _response_adapter(response_model: Any) -> Optional[TypeAdapter[Any]]:
    """A TypeAdapter for the declared result type (see `_declared_result_type`), when it checks or reshapes."""
    if response_model is None:
        return None
    if response_model in (Any, object, dict, list, str, int, float, bool):  # nothing to check or reshape
        return None

    def mentions_response(tp: Any) -> bool:
        if isinstance(tp, type) and issubclass(tp, Response):
            return True
        return any(mentions_response(a) for a in getattr(tp, "__args__", ()) or ())

    if mentions_response(response_model):
        return None
    from pydantic import TypeAdapter  # deferred: an app without declared result types never imports pydantic

    try:
        return TypeAdapter(response_model)
    except Exception:  # not a type pydantic can validate: serialise the result as it is
        return None


FROM_ANNOTATION: Any = object()
"""``response_model=``'s default: the handler's return annotation declares the result type."""


class RouteOptions(TypedDict, total=False):
    """The keyword options of a route: ``@app.get(path, ...)``, `CovetPy.add_api_route`, `Route.build`.

    Adding an option means one line here, a field on `Route` and its conversion in `Route.build`."""

    status_code: Optional[int]
    name: Optional[str]
    response_model: Any  # default FROM_ANNOTATION: the return annotation; None: no result checking
    inline: Optional[bool]
    eager: Optional[bool]
    dependencies: Optional[Sequence[Any]]  # Depends(...) run before the handler, their values unused
    # OpenAPI only, as in FastAPI: stored on the route (``app.routes``) for the schema, nothing else.
    tags: Optional[Sequence[Union[str, Enum]]]
    summary: Optional[str]
    description: Optional[str]
    responses: Optional[Mapping[Union[int, str], Mapping[str, Any]]]
    deprecated: Optional[bool]
    openapi_extra: Optional[Mapping[str, Any]]
    operation_id: Optional[str]
    include_in_schema: bool
    response_description: str


@dataclasses.dataclass(eq=False)
class Route:
    """A Python route: `endpoint` answers `methods` on `path`."""

    path: str  # as written (FastAPI syntax)
    endpoint: Callable[..., Any]
    methods: tuple[str, ...]
    name: str
    status_code: int
    native_pattern: str  # what the native router gets
    fallback_pattern: Optional[str]  # untyped variant for FastAPI's 422 on a mistyped path value
    plan: RequestPlan
    is_async: bool
    inline: Optional[bool]  # sync handlers: run on the loop thread (True) or in the pool (False/None: app default)
    response_adapter: Optional[TypeAdapter[Any]]
    # A result type was declared (response_model= or a return annotation) but needs no adapter (dict, list,
    # Any, ...): FastAPI still serialises through pydantic then (timedelta "PT5M", UTC datetimes "Z"), where an
    # undeclared result goes through jsonable_encoder (seconds, "+00:00").
    declared_result: bool = False
    eager: Optional[bool] = None  # async handlers: start their Task eagerly (None: the app's eager_async)
    dependencies: tuple[Any, ...] = ()  # Depends(...) run before the handler, their values unused
    # OpenAPI only (FastAPI's keywords), kept for the schema; they change nothing in how the route is served.
    tags: list[Any] = dataclasses.field(default_factory=list)  # str or Enum values
    summary: Optional[str] = None
    description: Optional[str] = None
    responses: dict[Any, dict[str, Any]] = dataclasses.field(default_factory=dict)  # by status code or "default"
    deprecated: Optional[bool] = None
    openapi_extra: Optional[dict[str, Any]] = None
    operation_id: Optional[str] = None
    include_in_schema: bool = True
    response_description: str = "Successful Response"  # the schema's description of the success response
    response_model: Any = None  # the declared result type (response_model= or the return annotation), for the schema

    @classmethod
    def build(cls, path: str, endpoint: Callable[..., Any], methods: Sequence[str],
              **options: Unpack[RouteOptions]) -> Route:
        """The route for `endpoint` on `path`; `options` are `RouteOptions` (an unknown one is a TypeError)."""
        unknown = set(options) - RouteOptions.__optional_keys__
        if unknown:
            raise TypeError(f"route {path}: unknown option(s) {', '.join(sorted(unknown))}; the route options are "
                            f"{', '.join(sorted(RouteOptions.__optional_keys__))}")
        methods = tuple(dict.fromkeys(m.upper() for m in methods))
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"unknown HTTP method '{m}' for route {path}")
        segments = parse_path(path)
        path_names = [s.text for s in segments if s.is_param] if segments else []
        dependencies = tuple(options.get("dependencies") or ())
        plan = build_plan(endpoint, path_names, dependencies)
        native_types: dict[str, Optional[str]] = {}
        derived = False
        for seg in segments or ():
            if not seg.is_param:
                continue
            if seg.type is not None:
                native_types[seg.text] = seg.type
                continue
            spec = next((s for s in plan.path if s.key == seg.text), None)
            type_ = native_path_type(spec.annotation) if spec is not None else None
            native_types[seg.text] = type_
            derived = derived or type_ is not None
        native_pattern = _render(segments, native_types) if segments else path
        fallback = None
        if derived:
            assert segments is not None
            fallback = _render(segments, {s.text: s.type for s in segments if s.is_param})
        declared = _declared_result_type(endpoint, options.get("response_model", FROM_ANNOTATION))
        status_code = options.get("status_code")
        openapi_extra = options.get("openapi_extra")
        return cls(
            path=path,
            endpoint=endpoint,
            methods=methods,
            name=options.get("name") or str(getattr(endpoint, "__name__", type(endpoint).__name__)),
            status_code=status_code if status_code is not None else 200,
            native_pattern=native_pattern,
            fallback_pattern=fallback,
            plan=plan,
            is_async=_is_async_callable(endpoint),
            inline=options.get("inline"),
            response_adapter=_response_adapter(declared),
            declared_result=declared is not None and declared is not type(None),
            eager=options.get("eager"),
            dependencies=dependencies,
            tags=list(options.get("tags") or ()),
            summary=options.get("summary"),
            description=options.get("description"),
            responses={code: dict(value) for code, value in (options.get("responses") or {}).items()},
            deprecated=options.get("deprecated"),
            openapi_extra=dict(openapi_extra) if openapi_extra is not None else None,
            operation_id=options.get("operation_id"),
            include_in_schema=options.get("include_in_schema", True),
            response_description=options.get("response_description", "Successful Response"),
            response_model=declared,
        )

    def describe(self) -> str:
        return f"{','.join(self.methods)} {self.path} -> {self.name}"

    def __repr__(self) -> str:
        return f"Route({self.describe()!r})"


@dataclasses.dataclass(eq=False)
class ConstantRoute:
    """A route whose response is fixed: served by the engine, never entering Python."""

    path: str
    methods: tuple[str, ...]
    status_code: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]]
    name: str = "constant"

    @property
    def native_pattern(self) -> str:
        return self.path

    def describe(self) -> str:
        return f"{','.join(self.methods)} {self.path} -> constant {self.status_code}"

    def __repr__(self) -> str:
        return f"ConstantRoute({self.describe()!r})"


def _segments(pattern: str) -> list[PathSegment]:
    """Every segment of `pattern`, static ones included (``/items/`` → ``items``, ``""``)."""
    parsed = parse_path(pattern)
    return parsed if parsed is not None else [PathSegment(text) for text in pattern[1:].split("/")]


def _literal_fits(type_: Optional[str], literal: str) -> bool:
    """Could a parameter of `type_` match the path segment `literal`? (Errs towards yes.)"""
    if type_ == "int":
        return literal.lstrip("-").isdigit()
    if type_ == "float":
        try:
            float(literal)
        except ValueError:
            return False
        return True
    return bool(literal) or type_ == "path"


def _overlap(a: Sequence[PathSegment], b: Sequence[PathSegment]) -> bool:
    """Could one request path match both patterns? (Errs towards yes: two parameters always overlap.)"""
    for x, y in zip(a, b, strict=False):
        if (x.is_param and x.type == "path") or (y.is_param and y.type == "path"):
            return True
        if x.is_param and y.is_param:
            continue
        if not x.is_param and not y.is_param:
            if x.text != y.text:
                return False
        elif not _literal_fits((x if x.is_param else y).type, (y if x.is_param else x).text):
            return False
    if len(a) != len(b):
        longer, shorter = (a, b) if len(a) > len(b) else (b, a)
        return bool(shorter) and shorter[-1].is_param and shorter[-1].type == "path" and len(longer) >= len(shorter)
    return True


_RANK = {"int": 1, "float": 2, "uuid": 3, "str": 4, None: 4, "path": 5}  # the native router's order; literals 0


def _less_specific(a: Sequence[PathSegment], b: Sequence[PathSegment]) -> bool:
    """Does the native router try `b` before `a` (at the first segment where their kinds differ)?"""
    for x, y in zip(a, b, strict=False):
        rank_x = _RANK[x.type] if x.is_param else 0
        rank_y = _RANK[y.type] if y.is_param else 0
        if rank_x != rank_y:
            return rank_x > rank_y
    return False


def _other_slash_form(path: str) -> Optional[str]:
    """`path` with its trailing slash toggled; None where that means nothing (``/``, or a ``{p:path}`` tail,
    which matches both forms already)."""
    if path == "/":
        return None
    if path.endswith("/"):
        return path.rstrip("/") or None
    last = path.rsplit("/", 1)[-1]
    if last.startswith("{") and last.endswith(":path}"):
        return None
    return path + "/"


async def _redirect_to_other_slash_form(request: Request) -> Response:
    url = request.url
    path = request.raw_path
    path = path.rstrip("/") if path.endswith("/") else path + "/"
    query = f"?{url.query}" if url.query else ""
    host = url.netloc
    target = f"{url.scheme}://{host}{path}{query}" if host else f"{path}{query}"
    return RedirectResponse(target, status_code=307)


class RouteTable:
    """The app's routes in registration order, with the native router's conflict rule applied early.

    `redirect_slashes` (Starlette's default): a path that matches no route but would with its trailing slash
    added or removed answers 307 to that form, for any method, query string kept.
    """

    def __init__(self, redirect_slashes: bool = True) -> None:
        self.redirect_slashes = redirect_slashes
        self.routes: list[Route | ConstantRoute] = []
        self._taken: dict[tuple[str, tuple[Any, ...]], Route | ConstantRoute] = {}

    def add(self, route: Route | ConstantRoute) -> None:
        shape = _shape(route.native_pattern)
        for method in route.methods:
            previous = self._taken.get((method, shape))
            if previous is not None:
                raise ValueError(
                    f"route conflict: {method} {route.path} ({route.name}) clashes with "
                    f"{method} {previous.path} ({previous.name}) registered earlier (same shape)"
                )
        for method in route.methods:
            self._taken[(method, shape)] = route
        self.routes.append(route)

    def native_registrations(self) -> Iterator[tuple[str, str, Route | ConstantRoute, bool]]:
        """(method, native pattern, route, is_fallback) for every native registration, user routes first."""
        for route in self.routes:
            for method in route.methods:
                yield method, route.native_pattern, route, False
        fallback_taken: set[tuple[str, tuple[Any, ...]]] = set()
        for route in self.routes:
            if not isinstance(route, Route) or route.fallback_pattern is None:
                continue
            shape = _shape(route.fallback_pattern)
            for method in route.methods:
                key = (method, shape)
                if key in self._taken or key in fallback_taken:
                    continue
                fallback_taken.add(key)
                yield method, route.fallback_pattern, route, True
        if self.redirect_slashes:
            for pattern, redirect in self._slash_redirects():
                for method in METHODS:
                    yield method, pattern, redirect, True

    def _slash_redirects(self) -> Iterator[tuple[str, Route]]:
        """(pattern, redirecting route) for every route path whose other slash form no route could match.

        A pattern is used only when every route pattern (any method) that could match the same path comes
        first in the native router's order (literals, then int, float, uuid, str, path parameters), so a
        redirect never takes a request some route answers."""
        patterns = [_segments(r.native_pattern) for r in self.routes]
        patterns += [_segments(r.fallback_pattern) for r in self.routes
                     if isinstance(r, Route) and r.fallback_pattern is not None]
        seen: set[str] = set()
        redirect: Optional[Route] = None
        for route in self.routes:
            other = _other_slash_form(route.path)
            if other is None or other in seen:
                continue
            seen.add(other)
            wanted = _segments(other)
            if any(_overlap(wanted, taken) and not _less_specific(wanted, taken) for taken in patterns):
                continue
            if redirect is None:
                redirect = Route.build("/{redirect_slashes:path}", _redirect_to_other_slash_form, ["GET"],
                                       name="redirect_slashes", response_model=None)
            yield other, redirect


class WebSocketRoute:
    """``@app.websocket(path)``: the endpoint and the plan for its parameters."""

    __slots__ = ("path", "endpoint", "name", "native_pattern", "plan", "options")

    def __init__(self, path: str, endpoint: Callable[..., Any], *, name: Optional[str] = None,
                 dependencies: Any = (), **options: Any) -> None:
        segments = parse_path(path)
        path_names = [s.text for s in segments if s.is_param] if segments else []
        self.path = path
        self.endpoint = endpoint
        self.name = name or str(getattr(endpoint, "__name__", type(endpoint).__name__))
        self.native_pattern = path
        self.plan: RequestPlan = build_plan(endpoint, path_names, dependencies)
        if self.plan.request_arg is None:
            raise TypeError(f"websocket route {path}: {self.name} needs a parameter annotated `WebSocket`")
        if self.plan.body:
            raise TypeError(f"websocket route {path}: {self.name} cannot take body parameters")
        self.options = options
