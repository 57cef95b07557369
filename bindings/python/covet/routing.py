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

import collections.abc
import contextvars
import dataclasses
import functools
import inspect
import itertools
import re
import typing
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, Optional, Protocol, TypedDict, TypeVar, Union, cast, overload

from ._model_json import response_renderer
from .datastructures import URLPath
from .exceptions import HTTPException
from .params import RequestPlan, build_plan, native_path_type, resolve_hints
from .requests import Request
from .responses import JSONResponse, RedirectResponse, Response
from .staticfiles import StaticMount
from .utils import generate_unique_id

if TYPE_CHECKING:
    from pydantic import TypeAdapter
    from typing_extensions import Unpack

IncEx = Union[set[int], set[str], Mapping[int, Any], Mapping[str, Any]]
"""response_model_include / response_model_exclude: field names, or nested ``{"field": {...}}`` (pydantic's)."""

__all__ = ["Route", "RouteOptions", "ConstantRoute", "WebSocketRoute", "RouteTable", "parse_path", "PathSegment",
           "FROM_ANNOTATION", "APIRouter", "AppRouter", "NoMatchFound", "generate_unique_id", "APIRoute",
           "APIWebSocketRoute", "Mount"]

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
_PARAM_TYPES = ("str", "int", "float", "uuid", "path")
MAX_PARAMS = 16  # the native router's limit
F = TypeVar("F", bound=Callable[..., Any])
D = TypeVar("D")  # a class's method decorator type (see MethodDecorators)


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


_FILTER_OPTIONS = ("response_model_include", "response_model_exclude", "response_model_exclude_unset",
                   "response_model_exclude_defaults", "response_model_exclude_none")
_STREAM_ORIGINS = (collections.abc.AsyncIterable, collections.abc.AsyncIterator, collections.abc.AsyncGenerator,
                   collections.abc.Iterable, collections.abc.Iterator, collections.abc.Generator)


def _stream_kind(endpoint: Callable[..., Any], response_class: Optional[type[Response]],
                 response_model: Any) -> tuple[Optional[str], Any]:
    """(how a generator handler's items are streamed, their declared type) — (None, None) for other handlers.

    As in FastAPI 0.135: a generator handler streams JSON Lines by default and Server-Sent Events with
    ``response_class=EventSourceResponse``; another response_class receives the generator itself. The item
    type comes from a return annotation ``AsyncIterable[Item]`` / ``Iterator[Item]`` ... (not ServerSentEvent)."""
    target: Any = endpoint
    while isinstance(target, functools.partial):
        target = target.func
    call = target if inspect.isfunction(target) or inspect.ismethod(target) else getattr(type(target), "__call__",
                                                                                          target)
    if not (inspect.isasyncgenfunction(call) or inspect.isgeneratorfunction(call)):
        return None, None
    from .sse import EventSourceResponse, ServerSentEvent  # deferred: pydantic, for generator handlers only

    if response_class is None:
        kind = "jsonl"
    elif issubclass(response_class, EventSourceResponse):
        kind = "sse"
    else:
        return "raw", None
    if response_model is not FROM_ANNOTATION:
        return kind, None
    try:
        annotation = resolve_hints(endpoint).get("return", None)
    except Exception:
        return kind, None
    if typing.get_origin(annotation) not in _STREAM_ORIGINS:
        return kind, None
    args = typing.get_args(annotation)
    item = args[0] if args else Any
    if isinstance(item, type) and issubclass(item, ServerSentEvent):
        return kind, None
    return kind, item


def _response_adapter(response_model: Any, filtering: bool = False) -> Optional[TypeAdapter[Any]]:
    """A TypeAdapter for the declared result type (see `_declared_result_type`), when it checks or reshapes
    (`filtering`: response_model_include/exclude... are set, which pydantic applies to dicts too)."""
    if response_model is None:
        return None
    if not filtering and response_model in (Any, object, dict, list, str, int, float, bool):  # nothing to do
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


_PARAM_TYPE_RE = re.compile(r"{([^}:]+):[^}]*}")

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
    # CovetPy's abuse limits for this route (not FastAPI's): the request body's size limit in bytes, in place of the
    # server's --limit-max-body (more: 413, before the handler runs), and seconds the handler may take (then 503).
    max_body_size: Optional[int]
    timeout: Optional[float]
    strict_content_type: bool  # default True: a JSON body needs a JSON Content-Type (FastAPI 0.132+)
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
    callbacks: Optional[Sequence[Any]]  # OpenAPI callbacks: routes (``callback_router.routes``), stored
    # The operation id maker for the schema (FastAPI's ``generate_unique_id_function``); see `Route.unique_id`.
    generate_unique_id_function: Optional[Callable[[Any], str]]
    # Responses (FastAPI's semantics): the result is validated by the declared type, then dumped with these.
    response_model_include: Optional[IncEx]
    response_model_exclude: Optional[IncEx]
    response_model_by_alias: bool
    response_model_exclude_unset: bool
    response_model_exclude_defaults: bool
    response_model_exclude_none: bool
    response_class: Optional[type[Response]]  # wraps a non-Response result; None: JSON (the app's default)


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
    max_body_size: Optional[int] = None  # bytes: the route's body limit, enforced by the engine (None: the server's)
    timeout: Optional[float] = None  # seconds until the handler is cancelled and the client gets 503
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
    callbacks: list[Any] = dataclasses.field(default_factory=list)  # OpenAPI callbacks (routes), stored
    generate_unique_id_function: Optional[Callable[[Any], str]] = None  # None: the app's (see unique_id)
    # Set by the routers (`APIRouter`), not route options: the including routers' HTTP middleware (outermost
    # first) and exception handlers (the innermost router's win), applied to this route only.
    middleware: tuple[Callable[..., Any], ...] = ()
    exception_handlers: dict[Any, Callable[..., Any]] = dataclasses.field(default_factory=dict)
    default_response_class: Any = None  # the including routers' default_response_class, stored
    # A plain route (Starlette's ``Route``: the openapi_url and docs pages), not a FastAPI ``APIRoute``.
    plain: bool = False
    # The route's whole answer from the engine's request: ``await raw(native, responder, executor)`` (covet.grpc's
    # calls). The dispatcher runs it instead of the endpoint where no HTTP middleware wraps the route; else the
    # endpoint runs, as for any route.
    raw: Optional[Callable[[Any, Any, Any], Awaitable[None]]] = None
    # operation_id as built: FastAPI fixes a route's unique_id (which names its Body_/Response_ schemas) when the
    # route is made; setting ``route.operation_id`` later changes the operationId only.
    _built_operation_id: Optional[str] = dataclasses.field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._built_operation_id = self.operation_id

    @property
    def path_format(self) -> str:
        """The path with parameter types left out (``/items/{item_id}``), as Starlette's ``path_format``."""
        return _PARAM_TYPE_RE.sub(r"{\1}", self.path)

    @property
    def unique_id(self) -> str:
        """The route's id in the schema (``Body_<id>``, ``Response_<id>``; the operationId unless `operation_id` is
        set later): ``operation_id=`` if given, else ``generate_unique_id_function(route)`` (the route's, its
        routers' or the app's; FastAPI's `generate_unique_id` by default)."""
        if self._built_operation_id:
            return self._built_operation_id
        return (self.generate_unique_id_function or generate_unique_id)(self)
    # How a result that is not a Response is dumped (pydantic's options, FastAPI's response_model_* keywords).
    response_model_include: Optional[IncEx] = None
    response_model_exclude: Optional[IncEx] = None
    response_model_by_alias: bool = True
    response_model_exclude_unset: bool = False
    response_model_exclude_defaults: bool = False
    response_model_exclude_none: bool = False
    # The class that wraps such a result; None: JSON bytes straight from pydantic-core / the native encoder
    # (FastAPI's default JSONResponse). `response_media_type` is what the schema shows.
    response_class: Optional[type[Response]] = None
    status_code_set: bool = False  # status_code= was given (else a response_class keeps its own default)
    # A generator handler's body is streamed: "jsonl" (JSON Lines, the default), "sse" (response_class=
    # EventSourceResponse) or "raw" (another response_class, e.g. StreamingResponse, gets the generator).
    stream: Optional[str] = None
    stream_item_type: Any = None  # the declared item type (``-> AsyncIterable[Item]``: Item), for the schema
    stream_item_adapter: Optional[TypeAdapter[Any]] = None  # validates each item against it
    # route_class= whose get_route_handler() wraps covet's handler (see `APIRoute`): what the server calls for this
    # route instead of its own pipeline; None (every other route): the pipeline, with no extra step.
    route_handler: Optional[Callable[[Request], Awaitable[Response]]] = None

    @property
    def response_media_type(self) -> str:
        """The media type of the success response (for the schema)."""
        if self.stream == "jsonl":
            return "application/jsonl"
        cls = self.response_class
        return (cls.media_type if cls is not None else None) or "application/json"

    @functools.cached_property
    def dump_options(self) -> dict[str, Any]:
        """The response_model_* options as pydantic's dump keywords (only the ones that differ from pydantic's
        defaults, with by_alias always given)."""
        options: dict[str, Any] = {"by_alias": self.response_model_by_alias}
        if self.response_model_include is not None:
            options["include"] = self.response_model_include
        if self.response_model_exclude is not None:
            options["exclude"] = self.response_model_exclude
        if self.response_model_exclude_unset:
            options["exclude_unset"] = True
        if self.response_model_exclude_defaults:
            options["exclude_defaults"] = True
        if self.response_model_exclude_none:
            options["exclude_none"] = True
        return options
    response_model: Any = None  # the declared result type (response_model= or the return annotation), for the schema

    @functools.cached_property
    def response_json(self) -> Callable[[Any], bytes]:
        """A result as the response's JSON bytes: validated by `response_adapter`, dumped with `dump_options`
        (pydantic-core's bytes, written natively where the type allows: covet/_model_json.py), compiled once."""
        if self.response_adapter is None:
            raise RuntimeError(f"route {self.path} declares no result type: it has no response_json")
        return response_renderer(self.response_adapter, self.dump_options)

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
        plan = build_plan(endpoint, path_names, dependencies,
                          strict_content_type=options.get("strict_content_type", True))
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
        response_class = options.get("response_class")
        if response_class is JSONResponse:  # FastAPI's default: the same JSON, from pydantic-core's bytes
            response_class = None
        if response_class is not None and not (isinstance(response_class, type) and issubclass(response_class,
                                                                                                 Response)):
            raise TypeError(f"route {path}: response_class must be a Response class (JSONResponse, HTMLResponse, "
                            f"PlainTextResponse, a subclass of covet.Response ...), not {response_class!r}")
        stream, stream_item = _stream_kind(endpoint, response_class, options.get("response_model", FROM_ANNOTATION))
        declared = (None if stream is not None
                    else _declared_result_type(endpoint, options.get("response_model", FROM_ANNOTATION)))
        filtering = any(options.get(k) for k in _FILTER_OPTIONS)
        status_code = options.get("status_code")
        openapi_extra = options.get("openapi_extra")
        max_body_size, timeout = options.get("max_body_size"), options.get("timeout")
        if max_body_size is not None and (not isinstance(max_body_size, int) or isinstance(max_body_size, bool)
                                          or max_body_size <= 0):
            raise ValueError(f"route {path}: max_body_size must be a positive number of bytes, not {max_body_size!r}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                    or not timeout > 0 or timeout == float("inf")):
            raise ValueError(f"route {path}: timeout must be a positive number of seconds, not {timeout!r}")
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
            response_adapter=_response_adapter(declared, filtering),
            declared_result=declared is not None and declared is not type(None),
            eager=options.get("eager"),
            dependencies=dependencies,
            max_body_size=max_body_size,
            timeout=float(timeout) if timeout is not None else None,
            tags=list(options.get("tags") or ()),
            summary=options.get("summary"),
            description=options.get("description"),
            responses={code: dict(value) for code, value in (options.get("responses") or {}).items()},
            deprecated=options.get("deprecated"),
            openapi_extra=dict(openapi_extra) if openapi_extra is not None else None,
            operation_id=options.get("operation_id"),
            include_in_schema=options.get("include_in_schema", True),
            response_description=options.get("response_description", "Successful Response"),
            callbacks=list(options.get("callbacks") or ()),
            generate_unique_id_function=options.get("generate_unique_id_function"),
            response_model_include=options.get("response_model_include"),
            response_model_exclude=options.get("response_model_exclude"),
            response_model_by_alias=options.get("response_model_by_alias", True),
            response_model_exclude_unset=options.get("response_model_exclude_unset", False),
            response_model_exclude_defaults=options.get("response_model_exclude_defaults", False),
            response_model_exclude_none=options.get("response_model_exclude_none", False),
            response_class=response_class,
            status_code_set=status_code is not None,
            stream=stream,
            stream_item_type=stream_item,
            stream_item_adapter=_response_adapter(stream_item, True) if stream_item is not None else None,
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

    Duplicates (same method, same shape): the first route registered answers, as in FastAPI, and the later one
    stays listed in `routes` without being served for that method; ``duplicate_routes="error"`` refuses it
    instead (a ValueError naming both routes).

    `redirect_slashes` (Starlette's default): a path that matches no route but would with its trailing slash
    added or removed answers 307 to that form, for any method, query string kept.

    `auto_head`: False (FastAPI's behaviour): HEAD on a GET-only route answers 405 (``Allow: GET``), and every
    405 lists the methods of the first route whose path matches, as FastAPI does; True: HEAD is answered by the
    GET route (the engine's automatic HEAD) and 405s are the engine's (``Allow`` lists HEAD with GET).
    """

    def __init__(self, redirect_slashes: bool = True, *, duplicate_routes: str = "first",
                 auto_head: bool = False) -> None:
        if duplicate_routes not in ("first", "error"):
            raise ValueError(f"duplicate_routes must be 'first' (the first route registered answers, as in FastAPI) "
                             f"or 'error' (refuse a duplicate), not {duplicate_routes!r}")
        self.redirect_slashes = redirect_slashes
        self.duplicate_routes = duplicate_routes
        self.auto_head = auto_head
        self.routes: list[Route | ConstantRoute] = []
        self._taken: dict[tuple[str, tuple[Any, ...]], Route | ConstantRoute] = {}
        self._shadowed: dict[int, frozenset[str]] = {}  # id(route) -> methods a route registered earlier serves
        self._matchers: Optional[list[tuple[re.Pattern[str], Route | ConstantRoute]]] = None

    def add(self, route: Route | ConstantRoute) -> None:
        shape = _shape(route.native_pattern)
        shadowed = set()
        for method in route.methods:
            previous = self._taken.get((method, shape))
            if previous is None:
                continue
            if self.duplicate_routes == "error":
                raise ValueError(
                    f"route conflict: {method} {route.path} ({route.name}) clashes with "
                    f"{method} {previous.path} ({previous.name}) registered earlier (same shape); "
                    f"duplicate_routes='error' refuses this (the default, 'first', keeps the first route, as FastAPI)"
                )
            shadowed.add(method)
        for method in route.methods:
            self._taken.setdefault((method, shape), route)
        if shadowed:
            self._shadowed[id(route)] = frozenset(shadowed)
        self.routes.append(route)
        self._matchers = None

    def served_methods(self, route: Route | ConstantRoute) -> tuple[str, ...]:
        """The methods `route` answers: all of its own but those a route registered earlier took."""
        shadowed = self._shadowed.get(id(route))
        return route.methods if shadowed is None else tuple(m for m in route.methods if m not in shadowed)

    def native_registrations(self, catch_all: bool = False) -> Iterator[tuple[str, str, Route | ConstantRoute, bool]]:
        """(method, native pattern, route, is_fallback) for every native registration, user routes first.

        `catch_all`: every request no route answers reaches Python (``/{path:path}`` for every method), which
        answers 404 or 405 there — so the app's HTTP middleware and exception handlers see them, as in FastAPI."""
        for route in self.routes:
            for method in self.served_methods(route):
                yield method, route.native_pattern, route, False
        fallback_taken: set[tuple[str, tuple[Any, ...]]] = set()
        for route in self.routes:
            if not isinstance(route, Route) or route.fallback_pattern is None:
                continue
            shape = _shape(route.fallback_pattern)
            for method in self.served_methods(route):
                key = (method, shape)
                if key in self._taken or key in fallback_taken:
                    continue
                fallback_taken.add(key)
                yield method, route.fallback_pattern, route, True
        if self.redirect_slashes:
            for pattern, redirect in self._slash_redirects():
                for method in METHODS:
                    yield method, pattern, redirect, True
        if not self.auto_head or catch_all:
            unmatched = self.unmatched_route()
            for pattern, method in self._method_fillers(head_only=catch_all):
                yield method, pattern, unmatched, True
            if catch_all:
                for method in METHODS:
                    yield method, "/{covet_unmatched:path}", unmatched, True

    def _method_fillers(self, head_only: bool) -> Iterator[tuple[str, str]]:
        """(pattern, method) where the unmatched-request route answers instead of the engine: the method is not
        served on that route shape, and no route serving it could match the same paths (so it takes nothing).

        Without `auto_head`, HEAD on a GET shape (the engine would answer it with the GET route); unless
        `head_only`, every other method too (the engine's 405 lists HEAD beside GET in ``Allow``, FastAPI not)."""
        by_method: dict[str, list[list[PathSegment]]] = {}
        shapes: dict[str, tuple[list[PathSegment], set[str]]] = {}  # native pattern -> segments, served methods
        for route in self.routes:
            patterns = [route.native_pattern]
            if isinstance(route, Route) and route.fallback_pattern is not None:
                patterns.append(route.fallback_pattern)
            for pattern in patterns:
                segments = _segments(pattern)
                entry = shapes.setdefault(pattern, (segments, set()))
                for method in self.served_methods(route):
                    entry[1].add(method)
                    by_method.setdefault(method, []).append(segments)
                    if method == "GET" and isinstance(route, ConstantRoute):
                        entry[1].add("HEAD")  # a constant route always answers HEAD natively: it never enters Python
        for pattern, (segments, served) in shapes.items():
            for method in METHODS:
                if method in served or method == "CONNECT":
                    continue
                if method == "HEAD":
                    if self.auto_head and "GET" in served:
                        continue
                elif head_only:
                    continue
                if any(_overlap(segments, other) for other in by_method.get(method, ())):
                    continue
                yield pattern, method

    def unmatched_route(self) -> Route:
        """The route answering requests no route serves (404, or 405 with FastAPI's ``Allow``): see
        `native_registrations`. One per table."""
        route = getattr(self, "_unmatched", None)
        if route is None:
            table = self

            async def unmatched(request: Request) -> Response:
                allowed = table.allowed_methods(request._route_path())
                if allowed is None:
                    raise HTTPException(404)
                raise HTTPException(405, headers={"Allow": ", ".join(allowed)})

            route = Route.build("/{covet_unmatched:path}", unmatched, ["GET"], name="unmatched", response_model=None,
                                include_in_schema=False)
            self._unmatched: Route = route
        return route

    def allowed_methods(self, path: str) -> Optional[tuple[str, ...]]:
        """The methods of the first route (registration order) whose path matches `path`, as FastAPI's ``Allow``
        (with HEAD beside GET under `auto_head`); None when no route matches (404)."""
        matchers = self._matchers
        if matchers is None:
            matchers = self._matchers = [(_path_regex(route.path), route) for route in self.routes]
        for regex, route in matchers:
            if regex.fullmatch(path):
                methods = route.methods
                if self.auto_head and "GET" in methods and "HEAD" not in methods:
                    methods = (*methods, "HEAD")
                return methods
        return None

    def _slash_redirects(self) -> Iterator[tuple[str, Route]]:
        """(pattern, redirecting route) for every route path whose other slash form no route could match.

        A pattern is used only when every route pattern (any method) that could match the same path comes
        first in the native router's order (literals, then int, float, uuid, str, path parameters), so a
        redirect never takes a request some route answers."""
        patterns = [_segments(r.native_pattern) for r in self.routes]
        patterns += [_segments(r.fallback_pattern) for r in self.routes
                     if isinstance(r, Route) and r.fallback_pattern is not None]
        seen: set[str] = set()
        for route in self.routes:
            other = _other_slash_form(route.path)
            if other is None or other in seen:
                continue
            seen.add(other)
            wanted = _segments(other)
            if any(_overlap(wanted, taken) and not _less_specific(wanted, taken) for taken in patterns):
                continue
            yield other, self.slash_redirect_route()

    def slash_redirect_route(self) -> Route:
        """The route answering 307 with the request path's trailing slash toggled (`redirect_slashes`). One per
        table."""
        redirect: Optional[Route] = getattr(self, "_slash_redirect", None)
        if redirect is None:
            redirect = self._slash_redirect = Route.build(
                "/{redirect_slashes:path}", _redirect_to_other_slash_form, ["GET"], name="redirect_slashes",
                response_model=None)
        return redirect


_CONVERTOR_REGEX = {
    None: "[^/]+",
    "str": "[^/]+",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "path": ".*",
}


def _path_regex(path: str) -> re.Pattern[str]:
    """Starlette's matching of a route path as written: ``{x}`` is any non-empty segment (a FastAPI route does not
    type its path by the annotation), ``{x:int}`` digits, ``{x:path}`` the rest."""
    segments = parse_path(path)
    if segments is None:
        return re.compile(re.escape(path))
    parts = [_CONVERTOR_REGEX[s.type] if s.is_param else re.escape(s.text) for s in segments]
    return re.compile("/" + "/".join(parts))


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


class NoMatchFound(Exception):
    """``url_path_for(name, **path_params)``: no route has that name and exactly those path parameters
    (Starlette's name and message)."""

    def __init__(self, name: str, path_params: Mapping[str, Any]) -> None:
        params = ", ".join(list(path_params.keys()))
        super().__init__(f'No route exists for name "{name}" and params "{params}".')


def _param_to_string(path: str, segment: PathSegment, value: Any) -> str:
    """A path parameter's value as it goes into a URL (Starlette's convertors' ``to_string``)."""
    type_ = segment.type
    if type_ == "int":
        number = int(value)
        if number < 0:
            raise ValueError(f"url_path_for: {segment.text}={value!r} for {path}: an int path parameter is >= 0")
        return str(number)
    if type_ == "float":
        real = float(value)
        if real < 0 or real != real or real in (float("inf"), float("-inf")):
            raise ValueError(f"url_path_for: {segment.text}={value!r} for {path}: a float path parameter is a "
                             "finite number >= 0")
        return f"{real:0.20f}".rstrip("0").rstrip(".")
    text = str(value)
    if type_ != "path" and ("/" in text or not text):
        raise ValueError(f"url_path_for: {segment.text}={value!r} for {path}: a path parameter may not be empty or "
                         "contain '/' (declare it {name:path} for that)")
    return text


def url_path_for(routes: Iterable[Any], name: str, path_params: Mapping[str, Any]) -> URLPath:
    """The path of the first route in `routes` named `name` whose path parameters are exactly `path_params`."""
    for route in routes:
        if getattr(route, "name", None) != name:
            continue
        path = route.path
        segments = parse_path(path) or []
        params = [s for s in segments if s.is_param]
        if {s.text for s in params} != set(path_params):
            continue
        parts = [_param_to_string(path, s, path_params[s.text]) if s.is_param else s.text for s in segments]
        protocol = "websocket" if isinstance(route, WebSocketRoute) else "http"
        return URLPath("/" + "/".join(parts) if segments else path, protocol)
    raise NoMatchFound(name, path_params)


def _join_prefix(prefix: str, what: str) -> str:
    if prefix:
        if not prefix.startswith("/"):
            raise ValueError(f"{what}: a path prefix must start with '/' (got {prefix!r})")
        if prefix.endswith("/"):
            raise ValueError(f"{what}: a path prefix must not end with '/', as the routes' paths start with '/' "
                             f"(got {prefix!r})")
    return prefix


# FastAPI's names for the route classes. Code that walks ``app.routes``:
#     for route in app.routes:
#         if isinstance(route, APIRoute):
#             route.operation_id = route.name     # read by the OpenAPI schema (route.unique_id)
# and ``route_class=`` (`APIRouter`'s, ``app.router.route_class``): a subclass of APIRoute overriding
# get_route_handler() to wrap the handler it inherits (FastAPI's "Custom Request and APIRoute class").
class _APIRouteType(type):
    def __instancecheck__(cls, instance: object) -> bool:
        if cls is APIRoute:  # every path operation's route, whatever class built it
            return isinstance(instance, Route) and not instance.plain
        return type.__instancecheck__(cls, instance)


# The serving runtime's pipeline for a route (covet.server.dispatch sets it in the context its requests run in):
# what the handler `APIRoute.get_route_handler` gives calls.
route_pipeline: contextvars.ContextVar[Callable[[Route, Request], Awaitable[Response]]] = contextvars.ContextVar(
    "covet_route_pipeline")

_FASTAPI_ONLY = {
    "dependant": "covet plans a route's parameters itself (route.plan), it has no FastAPI Dependant",
    "body_field": "covet validates the body from route.plan, it has no FastAPI ModelField",
    "response_field": "covet validates results with route.response_adapter (a pydantic TypeAdapter, or None), not "
                      "a FastAPI ModelField",
    "dependency_overrides_provider": "the app's dependency_overrides apply to every route; read "
                                     "request.app.dependency_overrides",
    "app": "a covet route is not an ASGI app: the engine and covet.server.dispatch serve it; wrap the handler in "
           "get_route_handler() instead",
    "path_regex": "the native router matches covet routes; route.path and route.native_pattern are the patterns",
    "param_convertors": "path parameters are converted by the route's plan (route.plan), not Starlette convertors",
}


class APIRoute(Route, metaclass=_APIRouteType):
    """FastAPI's name for a path operation's route: ``isinstance(route, APIRoute)`` holds for every `Route` of
    ``app.routes`` made by ``@app.get(...)`` & co. (not for the openapi_url and docs pages, Starlette routes in
    FastAPI). Routes are built by ``add_api_route`` and the decorators, not by calling ``APIRoute(...)``.

    ``route_class=`` (``APIRouter(route_class=...)``, ``app.router.route_class = ...``): a subclass overriding
    `get_route_handler` serves its routes through the handler that returns, as FastAPI does::

        class TimedRoute(APIRoute):
            def get_route_handler(self):
                original_route_handler = super().get_route_handler()

                async def custom_route_handler(request: Request) -> Response:
                    response = await original_route_handler(request)
                    response.headers["X-Took"] = "..."
                    return response

                return custom_route_handler

    The subclass reads covet's route fields (``path``, ``endpoint``, ``methods``, ``name``, ``status_code``,
    ``response_model``, ``response_class``, ``tags``, ``dependencies``, ``summary``, ``operation_id`` ...);
    FastAPI's ``dependant``, ``body_field``, ``response_field``, ``app`` ... do not exist (AttributeError
    naming why), and it may not override ``__init__`` (covet builds it from the route's options)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler: ``await handler(request)`` runs covet's whole per-route pipeline (parameters and
        their validation, dependencies, the endpoint, response_model, the response_class, background tasks) and
        gives the `Response`. Errors propagate as exceptions (`RequestValidationError`, `HTTPException` ...),
        for the app's exception handlers — around the handler returned here, inside the middleware.

        `request` may be a `Request` subclass made with ``MyRequest(request.scope, request.receive)``; if it
        overrides ``body()``, the parameters are read from what its ``body()`` returns."""
        route = self

        async def route_handler(request: Request) -> Response:
            if not isinstance(request, Request):
                raise TypeError(f"{route.describe()}: the route handler takes a covet Request (or a subclass made "
                                f"with MyRequest(request.scope, request.receive)), not {type(request).__name__}")
            run = route_pipeline.get(None)
            if run is None:
                raise RuntimeError(f"{route.describe()}: get_route_handler()'s handler serves requests of a running "
                                   "app (its server or TestClient); it cannot be called outside one")
            plan = route.plan
            if type(request).body is not Request.body and plan.body_in_tree:
                # a custom Request class with its own body() (FastAPI's GzipRequest): parameters come from it
                request._body_cache = await request.body()
            try:
                return await run(route, request)
            finally:
                origin = getattr(request, "_origin", None)
                if origin is not None and request._teardown is not None:  # the server tears down the one it made
                    origin._teardown = request._teardown

        return route_handler



def _fastapi_only(name: str, why: str) -> property:
    """A property for FastAPI's APIRoute attribute `name` that covet's routes lack: AttributeError saying `why`.
    (Properties, not a __getattr__, which would slow every attribute load of a route in the server.)"""

    def missing(route: APIRoute) -> Any:
        raise AttributeError(f"{type(route).__name__}.{name} is FastAPI's and not supported: {why}")

    return property(missing)


for _name, _why in _FASTAPI_ONLY.items():
    setattr(APIRoute, _name, _fastapi_only(_name, _why))


def _check_route_class(route_class: Any) -> type[Route]:
    """`route_class` (APIRoute or a subclass) as the class to build routes with, checked."""
    if route_class is None or route_class is APIRoute or route_class is Route:
        return APIRoute
    if not (isinstance(route_class, type) and issubclass(route_class, APIRoute)):
        raise TypeError(f"route_class must be covet.routing.APIRoute or a subclass of it (FastAPI's "
                        f"fastapi.routing.APIRoute), not {route_class!r}")
    for klass in route_class.__mro__:
        if klass is APIRoute:
            break
        if "__init__" in vars(klass) or "__new__" in vars(klass):
            raise TypeError(f"route_class {route_class.__qualname__}: {klass.__qualname__} overrides __init__/__new__, "
                            "which covet cannot support (it builds routes from their options with its own "
                            "fields); override get_route_handler() only, or set attributes in it")
    return route_class


def _overrides_handler(route: Route) -> bool:
    cls = type(route)  # (isinstance(route, APIRoute) holds for every path operation's route)
    return issubclass(cls, APIRoute) and cls.get_route_handler is not APIRoute.get_route_handler



@dataclasses.dataclass(frozen=True)
class _Declared:
    """A route declared on an `APIRouter`, with what its routers apply: built into a `Route` once, by the app it is
    finally included in (or on demand for ``router.routes``)."""

    kind: str  # "http", "websocket" or "constant"
    path: str
    endpoint: Callable[..., Any]
    methods: tuple[str, ...]
    options: Mapping[str, Any]  # RouteOptions (http), name/dependencies/websocket options, status_code (constant)
    middleware: tuple[Callable[..., Any], ...] = ()  # outermost first
    exception_handlers: Mapping[Any, Callable[..., Any]] = dataclasses.field(default_factory=dict)
    default_response_class: Any = None
    route_class: type[Route] = Route  # the declaring router's route_class (kept through includes, as in FastAPI)


@dataclasses.dataclass(frozen=True, eq=False)
class _Include:
    """``include_router(router, ...)``: a reference to `router` with the include's options; its routes are read
    from `router` whenever the including side lists them (FastAPI 0.165 includes routers live, the same way)."""

    router: APIRouter
    prefix: str
    tags: tuple[Any, ...]
    dependencies: tuple[Any, ...]
    responses: Mapping[Any, Any]
    callbacks: tuple[Any, ...]
    deprecated: Optional[bool]
    include_in_schema: bool
    generate_unique_id_function: Optional[Callable[[Any], str]]
    default_response_class: Any


_versions = itertools.count(1)
_version = [0]  # bumped on every change to any router: the cached flattened route lists are then recomputed


def _bump() -> None:
    _version[0] = next(_versions)


def _merge_route_options(options: Mapping[str, Any], *, tags: Sequence[Any], dependencies: Sequence[Any],
                         responses: Mapping[Any, Any], deprecated: Optional[bool], include_in_schema: bool,
                         callbacks: Sequence[Any], generate_unique_id_function: Optional[Callable[[Any], str]],
                         inner_first: bool) -> dict[str, Any]:
    """`options` with a router's (or an include's) tags, dependencies, responses ... applied, as FastAPI does:
    the outer router's tags, dependencies and callbacks come first; a route's responses override the router's;
    deprecated if either is; in the schema only if both are; the innermost explicit unique id function wins."""
    merged = dict(options)
    merged["tags"] = [*tags, *(options.get("tags") or ())]
    merged["dependencies"] = [*dependencies, *(options.get("dependencies") or ())]
    merged["responses"] = {**responses, **(options.get("responses") or {})}
    merged["callbacks"] = [*callbacks, *(options.get("callbacks") or ())]
    if deprecated or options.get("deprecated"):
        merged["deprecated"] = True
    merged["include_in_schema"] = include_in_schema and options.get("include_in_schema", True)
    own = options.get("generate_unique_id_function")
    if generate_unique_id_function is not None and (own is None or not inner_first):
        merged["generate_unique_id_function"] = generate_unique_id_function
    for key in ("tags", "responses", "callbacks"):
        if not merged[key]:
            del merged[key]
    if not merged["dependencies"]:
        del merged["dependencies"]
    return merged


class RouteDecorator(Protocol):
    """``router.get(path, **options)`` & co.: the options are `RouteOptions`."""

    def __call__(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]: ...


class _MethodDecorator(Generic[D]):
    """One of `MethodDecorators`: on an instance, ``obj._decorate([method], path, **options)``, typed `D`."""

    def __init__(self, method: str) -> None:
        self.method = method

    @overload
    def __get__(self, obj: None, owner: Optional[type] = None) -> _MethodDecorator[D]: ...
    @overload
    def __get__(self, obj: object, owner: Optional[type] = None) -> D: ...
    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return functools.partial(obj._decorate, [self.method])


class MethodDecorators(Generic[D]):
    """``get``, ``post``, ``put``, ``patch``, ``delete``, ``head``, ``options``, ``trace``: the method decorators
    of `APIRouter` (D: `RouteDecorator`) and `covet.CovetPy` (its options add ``constant``), written once; each
    calls the class's ``_decorate([METHOD], path, **options)``."""

    get: _MethodDecorator[D] = _MethodDecorator("GET")
    post: _MethodDecorator[D] = _MethodDecorator("POST")
    put: _MethodDecorator[D] = _MethodDecorator("PUT")
    patch: _MethodDecorator[D] = _MethodDecorator("PATCH")
    delete: _MethodDecorator[D] = _MethodDecorator("DELETE")
    head: _MethodDecorator[D] = _MethodDecorator("HEAD")
    options: _MethodDecorator[D] = _MethodDecorator("OPTIONS")
    trace: _MethodDecorator[D] = _MethodDecorator("TRACE")


class APIRouter(MethodDecorators[RouteDecorator]):
    """A group of routes under a common prefix, with tags, dependencies, responses ... applied to each (FastAPI's
    ``APIRouter``), included into the app (or another router) with `include_router`.

    ::

        router = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(check_token)])

        @router.get("/{item_id}")
        async def read_item(item_id: int) -> dict: ...

        app.include_router(router)

    Routes are declared here and built once, when the app includes them (the app's table holds them with every
    prefix, tag and dependency applied; FastAPI copies each route at every include instead): a router included
    twice (``/v1`` and ``/v2``) gives two routes per declaration, a router's routes are never copied otherwise.
    Routes declared after the router was included are not in the app, as in FastAPI.

    Beyond FastAPI: ``@router.middleware("http")`` and ``@router.exception_handler(...)`` apply to this router's
    routes only (see `middleware`)."""

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Optional[Sequence[Union[str, Enum]]] = None,
        dependencies: Optional[Sequence[Any]] = None,
        default_response_class: Any = None,
        responses: Optional[Mapping[Union[int, str], Mapping[str, Any]]] = None,
        callbacks: Optional[Sequence[Any]] = None,
        deprecated: Optional[bool] = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Optional[Callable[[Any], str]] = None,
        on_startup: Optional[Sequence[Callable[[], Any]]] = None,
        on_shutdown: Optional[Sequence[Callable[[], Any]]] = None,
        route_class: type[APIRoute] = APIRoute,
    ) -> None:
        self.prefix = _join_prefix(prefix, "APIRouter")
        _check_route_class(route_class)
        # The class of the routes declared here from now on (FastAPI's): a subclass of APIRoute overriding
        # get_route_handler() wraps their handler; routes keep it when the router is included.
        self.route_class = route_class
        self.tags: list[Union[str, Enum]] = list(tags or ())
        self.dependencies: list[Any] = list(dependencies or ())
        self.default_response_class = default_response_class
        self.responses: dict[Union[int, str], dict[str, Any]] = {k: dict(v) for k, v in (responses or {}).items()}
        self.callbacks: list[Any] = list(callbacks or ())
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.generate_unique_id_function = generate_unique_id_function
        self.on_startup: list[Callable[[], Any]] = list(on_startup or ())
        self.on_shutdown: list[Callable[[], Any]] = list(on_shutdown or ())
        self.user_middleware: list[Callable[..., Any]] = []  # the last one is outermost
        self.exception_handlers: dict[Any, Callable[..., Any]] = {}
        self._declared: list[Union[_Declared, _Include]] = []
        self._built: Optional[list[Any]] = None
        self._built_version = -1
        self._included = False

    # -- declaring routes ----------------------------------------------------------------------------
    def _add(self, declared: Union[_Declared, _Include]) -> None:
        self._declared.append(declared)
        _bump()

    def _reaches(self, router: APIRouter) -> bool:
        """Does this router include `router`, directly or through included routers?"""
        return any(isinstance(e, _Include) and (e.router is router or e.router._reaches(router))
                   for e in self._declared)

    def _flatten(self) -> Iterator[tuple[tuple[int, ...], _Declared]]:
        """Every route declared here or in included routers (as they are now), with the includes applied: (key,
        declaration); the key (ids along the include chain) is stable while the routers keep their entries."""
        for entry in self._declared:
            if isinstance(entry, _Declared):
                yield (id(entry),), entry
            else:
                for key, declared in entry.router._flatten():
                    yield (id(entry), *key), self._apply_include(entry, declared)

    def _apply_include(self, include: _Include, declared: _Declared) -> _Declared:
        """`declared` (a route of ``include.router``) as this router has it: the include's prefix, tags,
        dependencies ... first, then this router's own (as its add_api_route would), and the included router's
        middleware and exception handlers around it."""
        router = include.router
        options: Mapping[str, Any] = declared.options
        if declared.kind == "http":
            options = _merge_route_options(
                declared.options, tags=include.tags, dependencies=include.dependencies, responses=include.responses,
                deprecated=include.deprecated, include_in_schema=include.include_in_schema,
                callbacks=include.callbacks, generate_unique_id_function=include.generate_unique_id_function,
                inner_first=True)
            options = _merge_route_options(
                options, tags=self.tags, dependencies=self.dependencies, responses=self.responses,
                deprecated=self.deprecated, include_in_schema=self.include_in_schema, callbacks=self.callbacks,
                generate_unique_id_function=self.generate_unique_id_function, inner_first=True)
        elif declared.kind == "websocket":
            options = {**declared.options, "dependencies": [
                *self.dependencies, *include.dependencies, *declared.options["dependencies"]]}
        return dataclasses.replace(
            declared, path=self.prefix + include.prefix + declared.path, options=options,
            middleware=(*reversed(router.user_middleware), *declared.middleware),  # outermost first
            exception_handlers={**router.exception_handlers, **declared.exception_handlers},
            default_response_class=(declared.default_response_class or router.default_response_class
                                    or include.default_response_class or self.default_response_class))

    def add_api_route(self, path: str, endpoint: Callable[..., Any], *, methods: Optional[Sequence[str]] = None,
                      route_class_override: Optional[type[APIRoute]] = None,
                      **options: Unpack[RouteOptions]) -> None:
        """Declares `endpoint` for `methods` (default GET) on ``prefix + path``; `options` are `RouteOptions`, the
        same as ``@app.get``'s. The router's tags, dependencies, responses ... are applied here; the route's class
        is ``route_class_override`` or the router's `route_class` (FastAPI's)."""
        route_class = _check_route_class(route_class_override or self.route_class)
        unknown = set(options) - RouteOptions.__optional_keys__
        if unknown:
            raise TypeError(f"route {path}: unknown option(s) {', '.join(sorted(unknown))}; the route options are "
                            f"{', '.join(sorted(RouteOptions.__optional_keys__))}")
        merged = _merge_route_options(
            options, tags=self.tags, dependencies=self.dependencies, responses=self.responses,
            deprecated=self.deprecated, include_in_schema=self.include_in_schema, callbacks=self.callbacks,
            generate_unique_id_function=self.generate_unique_id_function, inner_first=True)
        self._add(_Declared("http", self.prefix + path, endpoint, tuple(methods or ("GET",)), merged,
                            default_response_class=self.default_response_class, route_class=route_class))

    def api_route(self, path: str, methods: Optional[Sequence[str]] = None,
                  **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Decorator form of `add_api_route`."""

        def decorator(func: F) -> F:
            self.add_api_route(path, func, methods=methods, **options)
            return func

        return decorator

    def _decorate(self, methods: list[str], path: str, **options: Any) -> Callable[[F], F]:
        return self.api_route(path, methods, **options)

    def add_api_websocket_route(self, path: str, endpoint: Callable[..., Any], name: Optional[str] = None, *,
                                dependencies: Optional[Sequence[Any]] = None, **options: Any) -> None:
        """A WebSocket endpoint on ``prefix + path`` (the app's `add_websocket_route` options); the router's
        dependencies run first."""
        self._add(_Declared("websocket", self.prefix + path, endpoint, (), {
            "name": name, "dependencies": [*self.dependencies, *(dependencies or ())], **options}))

    def websocket(self, path: str, name: Optional[str] = None, *, dependencies: Optional[Sequence[Any]] = None,
                  **options: Any) -> Callable[[F], F]:
        """Decorator form of `add_api_websocket_route`."""

        def decorator(func: F) -> F:
            self.add_api_websocket_route(path, func, name, dependencies=dependencies, **options)
            return func

        return decorator

    # -- including routers ----------------------------------------------------------------------------
    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Optional[Sequence[Union[str, Enum]]] = None,
        dependencies: Optional[Sequence[Any]] = None,
        default_response_class: Any = None,
        responses: Optional[Mapping[Union[int, str], Mapping[str, Any]]] = None,
        callbacks: Optional[Sequence[Any]] = None,
        deprecated: Optional[bool] = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Optional[Callable[[Any], str]] = None,
    ) -> None:
        """Includes `router`'s routes under ``prefix``, with these tags, dependencies ... applied before the
        router's own (FastAPI's order), and `router`'s middleware and exception handlers around them. The router is
        referenced, not copied: routes it gets later are included too (as in FastAPI 0.165)."""
        if not isinstance(router, APIRouter):
            raise TypeError(f"include_router takes an APIRouter, not {type(router).__name__}")
        if router is self or router._reaches(self):
            raise ValueError("a router cannot include itself, directly or through the routers it includes")
        self._add(_Include(
            router, _join_prefix(prefix, "include_router"), tuple(tags or ()), tuple(dependencies or ()),
            dict(responses or {}), tuple(callbacks or ()), deprecated, include_in_schema, generate_unique_id_function,
            default_response_class))
        router._included = True
        self.on_startup.extend(router.on_startup)
        self.on_shutdown.extend(router.on_shutdown)

    # -- middleware and exception handlers (beyond FastAPI) -------------------------------------------
    def middleware(self, middleware_type: str = "http") -> Callable[[F], F]:
        """``@router.middleware("http")`` on ``async def mw(request, call_next) -> Response``: runs for this
        router's routes only, inside the app's middleware (and an including router's); the one registered last
        is outermost. It sees the responses of handled exceptions (HTTPException, validation errors, registered
        handlers). Register it before the router is included."""
        if middleware_type != "http":
            raise ValueError("only 'http' middleware is supported")

        def decorator(func: F) -> F:
            self.add_http_middleware(func)
            return func

        return decorator

    def add_http_middleware(self, func: Callable[..., Any]) -> None:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("middleware must be an async function: async def mw(request, call_next)")
        if self._included:
            raise RuntimeError("add the router's middleware before include_router(): the routes were already "
                               "included without it")
        self.user_middleware.append(func)

    def exception_handler(self, exc_class_or_status_code: Union[int, type[Exception]]) -> Callable[[F], F]:
        """``@router.exception_handler(MyError)``: handles exceptions from this router's routes, before the app's
        handlers (an including router's come after this one's). Register it before the router is included."""

        def decorator(func: F) -> F:
            self.add_exception_handler(exc_class_or_status_code, func)
            return func

        return decorator

    def add_exception_handler(self, key: Union[int, type[Exception]], handler: Callable[..., Any]) -> None:
        if self._included:
            raise RuntimeError("add the router's exception handlers before include_router(): the routes were "
                               "already included without them")
        self.exception_handlers[key] = handler

    # -- the routes -----------------------------------------------------------------------------------
    @property
    def routes(self) -> list[Any]:
        """This router's routes as declared so far (`Route` / `WebSocketRoute`), built on first access (the app
        builds its own when it includes the router)."""
        if self._built is None or self._built_version != _version[0]:
            self._built = [_build_declared(d, None, standalone=True) for _, d in self._flatten()]
            self._built_version = _version[0]
        return list(self._built)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """The path of this router's route named `name` with these path parameters; `NoMatchFound` if none."""
        return url_path_for(self.routes, name, path_params)


def _build_declared(declared: _Declared, app: Any, standalone: bool = False) -> Any:
    """The route for `declared`: added to `app` (WebSocket routes), or built (HTTP routes). `standalone`: for
    ``router.routes`` (never served): a path without its leading ``/`` (a webhook's name) is accepted."""
    if declared.kind == "websocket":
        options = dict(declared.options)
        if app is not None:
            return app.add_websocket_route(declared.path, declared.endpoint, **options)
        name = options.pop("name", None)
        dependencies = options.pop("dependencies", ())
        path = "/" + declared.path if standalone and not declared.path.startswith("/") else declared.path
        return WebSocketRoute(path, declared.endpoint, name=name, dependencies=dependencies, **options)
    # webhooks have names for paths ("new-subscription"); callbacks' have OpenAPI runtime expressions
    # ("{$callback_url}/invoices/{$request.body.id}"): not parameters of the handler (FastAPI's reading), kept as
    # the route's path for the schema and left out of the path it is built (validated) with
    build_path = "/" + declared.path if standalone and not declared.path.startswith("/") else declared.path
    if standalone:
        build_path = re.sub(r"{\$[^{}]*}", "_", build_path)
    route = declared.route_class.build(build_path, declared.endpoint, declared.methods,
                                       **cast("RouteOptions", declared.options))
    route.path = declared.path
    route.middleware = declared.middleware
    route.exception_handlers = dict(declared.exception_handlers)
    route.default_response_class = declared.default_response_class
    if _overrides_handler(route):  # route_class= wrapping the handler: made once, as FastAPI makes it
        route.route_handler = cast(APIRoute, route).get_route_handler()
        route.plan.needs_request = True  # the handler takes a Request: the server makes one for every request
    return route


class AppRouter(APIRouter):
    """``app.router``: the app's own router and its one route table.

    Routes added here directly (``app.get``, constant and WebSocket routes) are built at once; included routers are
    referenced and their routes built when the app's routes are next listed (``routes``, ``table``, serving), once
    per route (cached), with the app's dependencies first. ``routes`` lists every route in registration order
    (HTTP, constant and WebSocket ones; a duplicate that does not answer too)."""

    def __init__(self, app: Any, table_options: Mapping[str, Any], **options: Any) -> None:
        super().__init__(**options)
        self.app = app
        self._table_options = dict(table_options)
        self._table = RouteTable(**self._table_options)
        self._entries: list[Any] = []  # built routes (added directly) and _Include references, in order
        self._all: list[Any] = []  # the routes, includes flattened (see _materialize)
        self._materialized = _version[0]
        self._cache: dict[tuple[Any, ...], Any] = {}  # included routes, built once

    def _add(self, declared: Union[_Declared, _Include]) -> None:
        if isinstance(declared, _Include):
            self._entries.append(declared)
            _bump()
        elif declared.kind == "http":
            self.add_listed(self._build(declared))
        elif declared.kind == "websocket":
            _build_declared(declared, self.app)  # add_websocket_route lists it (add_listed)

    def _build(self, declared: _Declared) -> Any:
        if declared.kind == "websocket":
            options = dict(declared.options)
            return self.app.build_websocket_route(declared.path, declared.endpoint, name=options.pop("name", None),
                                                  dependencies=options.pop("dependencies", ()), **options)
        options = dict(declared.options)
        options["dependencies"] = [*self.app.dependencies, *(options.get("dependencies") or ())]
        options.setdefault("strict_content_type", self.app.strict_content_type)
        # response_class: the route's, else its routers' default_response_class, else the app's
        default_class = declared.default_response_class or self.app.default_response_class
        if default_class is not None:
            options.setdefault("response_class", default_class)
        if not declared.path:
            raise ValueError(f"route {getattr(declared.endpoint, '__name__', declared.endpoint)!r}: the prefix and "
                             "the path cannot both be empty: give the route a path, or its router a prefix")
        route = _build_declared(dataclasses.replace(declared, options=options), None)
        if route.generate_unique_id_function is None:
            route.generate_unique_id_function = self.app.generate_unique_id_function
        return route

    def add_listed(self, route: Any) -> None:
        """Adds a built route (HTTP, constant or WebSocket) to the table and to ``routes``."""
        self._materialize()
        if not isinstance(route, WebSocketRoute):
            self._table.add(route)
        self._entries.append(route)
        self._all.append(route)

    def _materialize(self) -> None:
        """Rebuilds the route list and table when a router changed since (included routes come from the cache)."""
        if self._materialized == _version[0]:
            return
        table = RouteTable(**self._table_options)
        routes: list[Any] = []
        for entry in self._entries:
            if not isinstance(entry, _Include):
                if not isinstance(entry, WebSocketRoute):
                    table.add(entry)
                routes.append(entry)
                continue
            for key, declared in entry.router._flatten():
                applied = self._apply_include(entry, declared)
                cache_key = (id(entry), *key, applied.path)
                route = self._cache.get(cache_key)
                if route is None:
                    route = self._cache[cache_key] = self._build(applied)
                if not isinstance(route, WebSocketRoute):
                    table.add(route)
                routes.append(route)
        self._table, self._all, self._materialized = table, routes, _version[0]

    @property
    def table(self) -> RouteTable:
        """The app's route table (Python and constant routes, in order), includes applied."""
        self._materialize()
        return self._table

    @property
    def routes(self) -> list[Any]:
        self._materialize()
        return list(self._all)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        self._materialize()
        return url_path_for(self._all, name, path_params)

    def middleware(self, middleware_type: str = "http") -> Callable[[F], F]:
        """The app's middleware (``app.middleware``)."""
        decorator: Callable[[F], F] = self.app.middleware(middleware_type)
        return decorator

    def add_http_middleware(self, func: Callable[..., Any]) -> None:
        self.app.add_http_middleware(func)

    def add_exception_handler(self, key: Union[int, type[Exception]], handler: Callable[..., Any]) -> None:
        self.app.add_exception_handler(key, handler)

    def include_router(self, router: APIRouter, **options: Any) -> None:
        super().include_router(router, **options)
        self.app.on_startup_handlers.extend(self.on_startup)
        self.app.on_shutdown_handlers.extend(self.on_shutdown)
        self.on_startup.clear()
        self.on_shutdown.clear()

    def native_registrations(self) -> Iterator[tuple[str, str, Route | ConstantRoute, bool]]:
        """The table's (see `RouteTable.native_registrations`), with the catch-all for unmatched requests when the
        app has HTTP middleware or handlers for 404/405 (they must see those, as in FastAPI)."""
        return self.table.native_registrations(catch_all=self.app.needs_unmatched_in_python())


APIWebSocketRoute = WebSocketRoute
Mount = StaticMount  # app.routes' entry of ``app.mount(path, StaticFiles(...))`` (a mounted app adds its routes)
