"""`RequestPlan`: how a request becomes a handler's keyword arguments, built once per route (by
`covet.params.planner`) and run per request.

One path fills every plan: `RequestPlan.collect` reads the plan's own parameters (path, query, headers,
cookies, a JSON or form body) into the keyword arguments and their problems into a list. A plan without
dependencies is run synchronously by `RequestPlan.extract`; a plan with dependencies by ``async with
plan.solve(request, executor) as kwargs`` (`DependencyScope`), which calls `collect` for the handler and each
dependency, the JSON body parsed once for the whole tree, and runs the teardown of ``yield`` dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from types import TracebackType
from typing import Any, Literal, Optional

from covet.background import RequestExtras, request_extras
from covet.connection import HTTPConnection
from covet.datastructures import FormData, UploadFile
from covet.encoders import loads as json_loads
from covet.exceptions import HTTPException, RequestValidationError
from covet.formparsers import MultiPartException
from covet.requests import Request
from covet.responses import Response

from .markers import SecurityBase, SecurityScopes
from .types import Converter, errors_of, validation_error

__all__ = ["ParamSpec", "RequestPlan", "Dependency", "DependencyScope", "LifespanValues", "CallKind", "call_kind"]

CallKind = Literal["async", "sync", "asyncgen", "gen"]


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
    # query/header/cookie: a pydantic model read from several keys: ((model key, request key, many) per field,
    # Optional[Model], the model takes extra keys (extra="allow"/"forbid") — see RequestPlan._collect_group.
    group: Optional[tuple[tuple[tuple[str, str, bool], ...], bool, bool]] = None
    default_factory: Optional[Callable[[], Any]] = None  # Query(default_factory=...): the default, per request

    def default_value(self) -> Any:
        """The value of an absent optional parameter."""
        return self.default if self.default_factory is None else self.default_factory()


def _missing(loc: tuple[Any, ...]) -> dict[str, Any]:
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


def _query_last(qs: str) -> dict[str, str]:
    """Query parameters, the last value of a repeated key winning (as FastAPI does for scalars)."""
    if not qs:
        return {}
    if "%" in qs or "+" in qs:
        from urllib.parse import parse_qsl  # deferred: start-up cost (see covet.connection)

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
        from urllib.parse import parse_qsl  # deferred: start-up cost (see covet.connection)

        pairs: Sequence[tuple[str, str]] = parse_qsl(qs, keep_blank_values=True)
    else:  # the common, unencoded case without parse_qsl's overhead
        pairs = [(key, value) for key, _, value in (part.partition("=") for part in qs.split("&") if part)]
    for key, value in pairs:
        values = out.get(key)
        if values is None:
            out[key] = [value]
        else:
            values.append(value)
    return out


def _is_json_media_type(content_type: Optional[str], strict: bool = True) -> bool:
    if content_type == "application/json":  # what nearly every client sends: no parsing
        return True
    if not content_type:
        return not strict  # FastAPI (0.132+, strict_content_type=True) does not parse it as JSON
    media_type = content_type.partition(";")[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


_NO_BODY: Any = object()  # no body (or no such field in it)
_UNPARSED: Any = object()  # the body is not parsed yet


class RequestPlan:
    """How to turn a native request into a handler's keyword arguments (built once per route)."""

    __slots__ = ("specs", "path", "query", "query_lists", "header", "cookie", "body", "request_arg",
                 "needs_request", "trivial", "dependencies", "form", "json_in_tree", "form_in_tree",
                 "body_in_tree", "scopes_arg", "scopes", "strict_content_type", "header_groups", "extras",
                 "extras_in_tree")

    def __init__(self, specs: list[ParamSpec], request_arg: Optional[str],
                 dependencies: Sequence[Dependency] = (), extras: Sequence[tuple[str, str]] = (), *,
                 scopes_arg: Optional[str] = None,
                 scopes: tuple[str, ...] = (), strict_content_type: bool = True) -> None:
        self.specs = specs
        self.request_arg = request_arg
        self.dependencies = tuple(dependencies)
        # Security: the argument receiving `SecurityScopes`, and the scopes declared on the way to this plan.
        self.scopes_arg = scopes_arg
        self.scopes = scopes
        self.strict_content_type = strict_content_type  # a JSON body needs a JSON Content-Type
        # (argument, "response" | "background"): the request's `Response` / `BackgroundTasks` (covet.background)
        self.extras = tuple(extras)
        self.extras_in_tree: bool = bool(self.extras) or any(d.plan.extras_in_tree for d in self.dependencies)
        self.path = tuple(s for s in specs if s.location == "path")
        self.query = tuple(s for s in specs if s.location == "query")
        self.query_lists = any(s.many or s.group is not None for s in self.query)
        self.header = tuple(s for s in specs if s.location == "header")
        self.header_groups = any(s.group is not None for s in self.header)  # then every header is read
        self.cookie = tuple(s for s in specs if s.location == "cookie")
        self.body = tuple(s for s in specs if s.location == "body")
        self.form = any(s.form for s in self.body)  # the body is a form (then every body spec is a form field)
        # Whether this plan or a dependency's reads a JSON / form body (dependencies share the parsed body).
        self.json_in_tree: bool = (bool(self.body) and not self.form) or any(
            d.plan.json_in_tree for d in self.dependencies)
        self.form_in_tree: bool = self.form or any(d.plan.form_in_tree for d in self.dependencies)
        # Either: parameters are read from the whole body, so a body the engine streams is collected first.
        self.body_in_tree = self.json_in_tree or self.form_in_tree
        # Path and query values and a JSON body are read straight from the native request (a body the engine
        # streams is collected through a Request first: the dispatcher makes one then); everything else goes
        # through a Request object (which caches what it parses).
        self.needs_request = bool(request_arg or self.header or self.cookie or self.form or self.dependencies)
        self.trivial = (not specs and request_arg is None and not self.dependencies and scopes_arg is None
                        and not self.extras)

    def replaced(self, specs: list[ParamSpec], dependencies: Sequence[Dependency]) -> RequestPlan:
        """This plan with other specs and dependencies (the rest kept)."""
        return RequestPlan(specs, self.request_arg, dependencies, self.extras, scopes_arg=self.scopes_arg,
                           scopes=self.scopes, strict_content_type=self.strict_content_type)

    def security_requirements(self) -> list[tuple[SecurityBase, tuple[str, ...]]]:
        """The security schemes in this plan's dependency tree, each with the OAuth2 scopes declared on the
        way to it, in FastAPI's order (depth first, as declared; a dependency reached again with the same
        cache key is not visited twice) — what OpenAPI lists as the operation's ``security``."""
        found: list[tuple[SecurityBase, tuple[str, ...]]] = []
        visited: set[Any] = set()
        stack = list(reversed(self.dependencies))
        while stack:
            dependency = stack.pop()
            key = dependency.cache_key if dependency.cache_key is not None else dependency.call
            if key in visited:
                continue
            visited.add(key)
            call: Any = dependency.call
            while isinstance(call, functools.partial):
                call = call.func
            if isinstance(call, SecurityBase):
                found.append((call, dependency.plan.scopes))
            stack.extend(reversed(dependency.plan.dependencies))
        return found

    @property
    def path_names(self) -> list[str]:
        return [s.key for s in self.path]

    def extract(self, native: Any, request: Optional[HTTPConnection]) -> dict[str, Any]:
        """The handler's keyword arguments, for a plan without dependencies (`solve` runs the others); raises
        `RequestValidationError` listing every problem. `request` may be None when the plan does not need
        one (`needs_request`): path and query values are then read from the engine's request `native`."""
        kwargs: dict[str, Any] = {}
        if self.trivial:
            return kwargs
        errors: list[dict[str, Any]] = []
        body = self.collect(native, request, kwargs, errors)
        if errors:
            raise RequestValidationError(errors, body=self.error_body(request, body))
        return kwargs

    def collect(self, native: Any, request: Optional[HTTPConnection], kwargs: dict[str, Any],
                errors: list[dict[str, Any]], body: Any = _UNPARSED) -> Any:
        """Adds this plan's own parameters to `kwargs` and their problems to `errors`; returns the body it read
        (for the error). The one extraction path: `extract` and `DependencyScope` (for the handler and each
        dependency) both come here.

        Path and query values come from `request`, or from `native` when there is no Request. `body` is the
        JSON body `read_tree_body` parsed for the whole dependency tree, or `_UNPARSED`: parse it here."""
        if self.request_arg is not None:
            kwargs[self.request_arg] = request
        if self.scopes_arg is not None:
            kwargs[self.scopes_arg] = SecurityScopes(list(self.scopes))
        if self.extras:
            _fill_extras(self.extras, kwargs)
        if self.path:
            self._collect_path(request.path_params if request is not None else native.params, kwargs, errors)
        if self.query:
            qs = request.query_string if request is not None else native.query_string
            if self.query_lists:
                self._collect_values(_query_multi(qs), True, self.query, kwargs, errors)
            else:
                self._collect_values(_query_last(qs), False, self.query, kwargs, errors)
        if self.header:
            assert request is not None  # needs_request
            headers = request.headers
            if self.header_groups:
                every: dict[str, list[str]] = {}
                for name, value in headers.items():
                    every.setdefault(name.lower(), []).append(value)
                self._collect_values(every, True, self.header, kwargs, errors)
            else:
                self._collect_values({s.key: headers.getlist(s.key) for s in self.header}, True, self.header,
                                     kwargs, errors)
        if self.cookie:
            assert request is not None  # needs_request
            self._collect_values(request.cookies, False, self.cookie, kwargs, errors)
        if not self.body:
            return body
        if self.form:
            assert isinstance(request, Request)  # needs_request; a WebSocket route has no body parameters
            return self._collect_form(request, kwargs, errors)
        if body is _UNPARSED:
            reported = len(errors)
            if request is None:  # a JSON body the engine has whole (a streamed one comes with a Request)
                body = _parse_raw_body(native.body, native.header("content-type"), errors, self.strict_content_type)
            else:
                assert isinstance(request, Request)  # a WebSocket route has no body parameters
                body = _parse_body(request, errors, self.strict_content_type)
            if len(errors) != reported:  # not JSON: reported, nothing to validate
                return body
        self._bind_body(body, kwargs, errors)
        return body

    # -- plans with dependencies -------------------------------------------------------------------------
    def solve(self, request: HTTPConnection, executor: Optional[Executor] = None,
              after_response: bool = False) -> DependencyScope:
        """``async with plan.solve(request, executor) as kwargs``: calls the dependencies (sync ones in
        `executor`, or directly when it is None) and gives the handler's keyword arguments; on exit, runs the
        teardown of generator dependencies (after ``yield``), passing them the exception of the block.

        `after_response` (the server's choice): when the block ends without an exception, the teardown of
        request-scoped generators (the default scope; not ``Depends(scope="function")``) is left in
        ``request._teardown`` for the server to run once the response is sent, as FastAPI does."""
        return DependencyScope(self, request, executor, after_response)

    def read_tree_body(self, request: HTTPConnection) -> Any:
        """The JSON body, parsed once for this plan and its dependencies (`_UNPARSED` if none reads it).

        Invalid JSON raises `RequestValidationError` before any dependency runs, as in FastAPI."""
        if not self.json_in_tree:
            return _UNPARSED
        assert isinstance(request, Request)  # a WebSocket route has no body parameters
        errors: list[dict[str, Any]] = []
        value = _parse_body(request, errors, self.strict_content_type)
        if errors:
            raise RequestValidationError(errors, body=value)
        return value

    def error_body(self, request: Optional[HTTPConnection], body: Any) -> Any:
        """The body to attach to a `RequestValidationError`: what `collect` / `read_tree_body` read."""
        if body is not _UNPARSED and body is not _NO_BODY:
            return body
        if self.form_in_tree and isinstance(request, Request) and request._form is not None:
            return request._form
        return None

    # -- sources ------------------------------------------------------------------------------------------
    def _collect_path(self, params: Mapping[str, str], kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        for spec in self.path:
            raw = params[spec.key]
            if "%" in raw:
                from urllib.parse import unquote  # deferred: start-up cost (see covet.connection)

                raw = unquote(raw)
            convert = spec.convert
            if convert is None:
                kwargs[spec.name] = raw
                continue
            try:
                kwargs[spec.name] = convert(raw)
            except validation_error() as exc:
                errors.extend(errors_of(exc, ("path", spec.key)))

    @staticmethod
    def _collect_values(
        source: Mapping[str, Any], lists: bool, specs: Sequence[ParamSpec], kwargs: dict[str, Any],
        errors: list[dict[str, Any]],
    ) -> None:
        """`source` maps keys to lists of values when `lists`, else to single values."""
        for spec in specs:
            if spec.group is not None:
                RequestPlan._collect_group(spec, source, lists, kwargs, errors)
                continue
            raw: Any = source.get(spec.key)
            if raw is None or (lists and not raw):
                if spec.required:
                    errors.append(_missing((spec.location, spec.key)))
                else:
                    kwargs[spec.name] = spec.default_value()
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
                errors.extend(errors_of(exc, (spec.location, spec.key)))

    @staticmethod
    def _collect_group(spec: ParamSpec, source: Mapping[str, Any], lists: bool, kwargs: dict[str, Any],
                       errors: list[dict[str, Any]]) -> None:
        """A pydantic model from several query keys / headers / cookies (FastAPI's parameter models): its
        fields by their keys, and every other key too, for the model's ``extra`` policy."""
        assert spec.group is not None and spec.convert is not None
        fields, optional, takes_extra = spec.group
        data: dict[str, Any] = {}
        seen: set[str] = set()
        renamed: dict[str, str] = {}  # model key -> request key, to report a header under its name
        own = False
        for key, request_key, many in fields:
            seen.add(request_key)
            seen.add(key)
            if request_key != key:
                renamed[key] = request_key
            raw = source.get(request_key)
            if raw is None or (lists and not raw):
                continue
            own = True
            data[key] = (raw if many else raw[-1]) if lists else ([raw] if many else raw)
        for key, raw in source.items():
            if key not in seen:
                data[key] = (raw[0] if len(raw) == 1 else raw) if lists else raw
        if optional and not (own or (takes_extra and data)):
            if spec.required:
                errors.append(_missing((spec.location,)))
            else:
                kwargs[spec.name] = spec.default_value()
            return
        try:
            kwargs[spec.name] = spec.convert(data)
        except validation_error() as exc:
            for error in errors_of(exc, (spec.location,)):
                loc = error["loc"]
                if len(loc) > 1 and loc[1] in renamed:
                    error["loc"] = (loc[0], renamed[loc[1]], *loc[2:])
                errors.append(error)

    def _bind_body(self, value: Any, kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        """Validates the parsed JSON body (`_NO_BODY` when empty) into the body parameters."""
        if len(self.body) == 1 and not self.body[0].embed:
            self._validate_body(self.body[0], value, ("body",), kwargs, errors)
            return
        fields = value if isinstance(value, dict) else {}
        for spec in self.body:
            self._validate_body(spec, fields.get(spec.key, _NO_BODY), ("body", spec.key), kwargs, errors)

    def _collect_form(self, request: Request, kwargs: dict[str, Any], errors: list[dict[str, Any]]) -> FormData:
        try:
            form = request._form_now()
        except MultiPartException as exc:  # FastAPI: Starlette's message (request.form() raises it as a 400)
            raise HTTPException(400, exc.message) from exc
        for spec in self.body:
            if spec.form_fields is not None:
                self._validate_form_model(spec, form, kwargs, errors)
                continue
            value = _form_value(form, spec.key, spec.many)
            if value is _NO_BODY:
                if spec.required:
                    errors.append(_missing(("body", spec.key)))
                else:
                    kwargs[spec.name] = spec.default_value()
                continue
            if spec.read_bytes:
                value = [_file_content(v) for v in value] if spec.many else _file_content(value)
            if spec.convert is None:
                kwargs[spec.name] = value
                continue
            try:
                kwargs[spec.name] = spec.convert(value)
            except validation_error() as exc:
                errors.extend(errors_of(exc, ("body", spec.key)))
        return form

    @staticmethod
    def _validate_form_model(spec: ParamSpec, form: FormData, kwargs: dict[str, Any],
                             errors: list[dict[str, Any]]) -> None:
        assert spec.form_fields is not None and spec.convert is not None
        data: dict[str, Any] = {}
        for key, many in spec.form_fields:
            value = _form_value(form, key, many)
            if value is not _NO_BODY:
                data[key] = value
        own = bool(data)
        keys = {key for key, _ in spec.form_fields}
        for key in dict.fromkeys(k for k, _ in form.multi_items() if k not in keys):  # for extra="forbid"
            values = form.getlist(key)
            data[key] = values[0] if len(values) == 1 else values
        if not own and not spec.required:
            kwargs[spec.name] = spec.default_value()
            return
        try:
            kwargs[spec.name] = spec.convert(data)
        except validation_error() as exc:
            errors.extend(errors_of(exc, ("body",)))

    @staticmethod
    def _validate_body(
        spec: ParamSpec, value: Any, loc: tuple[Any, ...], kwargs: dict[str, Any], errors: list[dict[str, Any]]
    ) -> None:
        if value is _NO_BODY:
            if spec.required:
                errors.append(_missing(loc))
            else:
                kwargs[spec.name] = spec.default_value()
            return
        if spec.convert is None:
            kwargs[spec.name] = value
            return
        try:
            kwargs[spec.name] = spec.convert(value)
        except validation_error() as exc:
            errors.extend(errors_of(exc, loc))

def _fill_extras(extras: Sequence[tuple[str, str]], kwargs: dict[str, Any]) -> None:
    """The request's `Response` and `BackgroundTasks` arguments: one object each per request (the runtime sets
    `request_extras` for routes that take them, and merges them into what it sends)."""
    holder = request_extras.get()
    if holder is None:  # called outside the runtime (a direct plan.extract): a private set of objects
        holder = RequestExtras()
        request_extras.set(holder)
    for name, kind in extras:
        if kind == "background":
            kwargs[name] = holder.background_tasks()
            continue
        if holder.response is None:
            response = Response()
            response.status_code = None  # type: ignore[assignment]  # FastAPI's: None until the handler sets it
            holder.response = response
        kwargs[name] = holder.response


def _parse_body(request: Request, errors: list[dict[str, Any]], strict_content_type: bool = True) -> Any:
    """The request body: parsed JSON, `_NO_BODY` when empty, the bytes when not JSON (validation then
    reports the type mismatch, as FastAPI does); invalid JSON adds its error and returns the bytes. Without
    a Content-Type the body is JSON only when not `strict_content_type`."""
    return _parse_raw_body(request._body_now(), request._header_now("content-type"), errors, strict_content_type)


def _parse_raw_body(raw: bytes, content_type: Optional[str], errors: list[dict[str, Any]],
                    strict_content_type: bool) -> Any:
    """`_parse_body` of a body and its Content-Type read already (from a Request or the engine's request)."""
    if not raw:
        return _NO_BODY
    if _is_json_media_type(content_type, strict_content_type):
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
        from json import JSONDecodeError  # deferred: json is imported only for an invalid body (start-up cost)

        from covet._json_fallback import JSONNestingError

        if isinstance(exc, JSONDecodeError) and not isinstance(exc, JSONNestingError):
            errors.append({"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {},
                           "ctx": {"error": exc.msg}})
            return _INVALID
        raise HTTPException(400, "There was an error parsing the body") from exc


# --- dependencies -----------------------------------------------------------------------------------


def call_kind(call: Callable[..., Any]) -> CallKind:
    """How `call` is run: awaited, called (in the thread pool), or entered as an (async) generator."""
    target: Any = call
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isclass(target):
        return "sync"
    for candidate in (target, getattr(target, "__call__", None)):
        if inspect.isasyncgenfunction(candidate):
            return "asyncgen"
        if inspect.isgeneratorfunction(candidate):
            return "gen"
        if inspect.iscoroutinefunction(candidate):
            return "async"
    return "sync"


@dataclasses.dataclass(frozen=True, eq=False)
class Dependency:
    """One declared dependency of a plan (built when the route is added)."""

    name: Optional[str]  # the parameter receiving the value; None for a route's dependencies=[...]
    call: Callable[..., Any]
    use_cache: bool
    plan: RequestPlan  # how to fill the dependency's own parameters
    kind: CallKind
    path_names: tuple[str, ...]  # the route's path parameters (for plans of overrides)
    planner: Callable[..., RequestPlan]  # planner.build_dependency_plan
    embed_body: bool = False  # several body parameters in the route's tree: each is a field of the body
    own_scopes: tuple[str, ...] = ()  # Security(..., scopes=[...]): the scopes this declaration adds
    scope: Optional[str] = None  # Depends(scope=...): "function" tears a yield dependency down before sending
    cache_key: Any = None  # the per-request cache key: `call`, with the scopes when its value may depend on them
    _override_plans: dict[Any, tuple[RequestPlan, CallKind]] = dataclasses.field(
        default_factory=dict, repr=False)

    def overridden(self, replacement: Callable[..., Any]) -> tuple[RequestPlan, CallKind]:
        """The plan and kind of `replacement` (from ``app.dependency_overrides``), built on first use."""
        found = self._override_plans.get(replacement)
        if found is None:
            found = (self.planner(replacement, self.path_names, self.embed_body, self.plan.scopes),
                     call_kind(replacement))
            self._override_plans[replacement] = found
        return found


_SWALLOWED = (
    "No response object was returned: the handler raised an exception and a dependency with yield caught it "
    "without raising it again (a bare 'except:' or 'except Exception:' around the yield must re-raise)"
)


class LifespanValues:
    """The values of an app's lifespan-scoped dependencies (``Depends(f, scope="lifespan")``): each made once,
    by the first request that needs it (concurrent ones wait for it), and kept until the app shuts down,
    when the code after their ``yield`` runs (`aclose`, last made first)."""

    __slots__ = ("_values", "_stack")

    def __init__(self) -> None:
        self._values: dict[Any, asyncio.Future[Any]] = {}
        self._stack = contextlib.AsyncExitStack()

    async def get(self, key: Any, make: Callable[[contextlib.AsyncExitStack], Awaitable[Any]]) -> Any:
        """The value for `key`, made by ``await make(stack)`` the first time. A failure is not kept: the next
        request tries again."""
        future = self._values.get(key)
        if future is not None:
            return future.result() if future.done() else await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._values[key] = future
        try:
            value = await make(self._stack)
        except BaseException as exc:
            del self._values[key]
            future.set_exception(exc)
            future.exception()  # retrieved: only waiters, if any, see it
            raise
        future.set_result(value)
        return value

    async def aclose(self) -> None:
        """Tears every value down (the code after ``yield``), ready for another serving period."""
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        self._values.clear()
        await stack.aclose()


class _ThreadedContext:
    """A sync context manager (a ``def`` generator dependency) entered and exited in the thread pool."""

    __slots__ = ("_cm", "_executor")

    def __init__(self, cm: contextlib.AbstractContextManager[Any], executor: Executor) -> None:
        self._cm = cm
        self._executor = executor

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        call = functools.partial(contextvars.copy_context().run, func, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def __aenter__(self) -> Any:
        return await self._run(self._cm.__enter__)

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> Optional[bool]:
        return await self._run(self._cm.__exit__, exc_type, exc, tb)  # type: ignore[no-any-return]


class DependencyScope:
    """The dependencies of one request: ``async with plan.solve(request, executor) as kwargs``.

    Entering calls the dependencies (sub-dependencies first, each once unless ``use_cache=False``) and
    returns the handler's keyword arguments, or raises `RequestValidationError` with every parameter
    problem of the whole tree, or what a dependency raised (an `HTTPException` ...). Exiting runs the
    teardown of generator dependencies, last entered first, with the exception the body raised, if any.
    Sync dependencies run in `executor`, or directly when it is None.
    """

    __slots__ = ("_plan", "_request", "_executor", "_stack", "_request_stack", "_lifespan")

    def __init__(self, plan: RequestPlan, request: HTTPConnection, executor: Optional[Executor] = None,
                 after_response: bool = False) -> None:
        self._plan = plan
        self._request = request
        self._executor = executor
        self._stack = contextlib.AsyncExitStack()  # torn down when the block ends
        # Request-scoped generators, torn down after the response is sent (when `after_response`).
        self._request_stack: Optional[contextlib.AsyncExitStack] = (
            contextlib.AsyncExitStack() if after_response and isinstance(request, Request) else None)
        app = request._app
        lifespan = getattr(app, "_lifespan_dependencies", None) if app is not None else None
        # Depends(scope="lifespan") values, kept by the app while it serves (none: computed per request).
        self._lifespan: Optional[LifespanValues] = lifespan if isinstance(lifespan, LifespanValues) else None

    async def __aenter__(self) -> dict[str, Any]:
        try:
            return await self._solve_root()
        except BaseException as exc:
            await self._close(type(exc), exc, exc.__traceback__, defer=False)
            raise

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self._close(exc_type, exc, tb, defer=exc is None)
        # A swallowed BaseException (a cancellation) is re-raised: this method never suppresses.

    async def _close(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                     tb: Optional[TracebackType], defer: bool) -> None:
        """The function-scoped teardown now; the request-scoped one now too, or (`defer`) handed to the
        server in ``request._teardown``. An exception swallowed by a teardown is a `RuntimeError`."""
        suppressed = await self._stack.__aexit__(exc_type, exc, tb)
        request_stack = self._request_stack
        if request_stack is not None:
            if defer:
                assert isinstance(self._request, Request)
                self._request._teardown = request_stack
            elif await request_stack.__aexit__(exc_type, exc, tb):
                suppressed = True
        if suppressed and isinstance(exc, Exception):
            raise RuntimeError(_SWALLOWED) from exc

    async def _solve_root(self) -> dict[str, Any]:
        plan = self._plan
        request = self._request
        body = plan.read_tree_body(request)  # parsed once for the whole tree; invalid JSON raises here
        app = request._app
        overrides = getattr(app, "dependency_overrides", None) if app is not None else None
        errors: list[dict[str, Any]] = []
        kwargs = await self._solve(plan, body, {}, overrides or None, errors)
        if errors:
            raise RequestValidationError(errors, body=plan.error_body(request, body))
        return kwargs

    async def _solve(self, plan: RequestPlan, body: Any, cache: dict[Any, Any],
                     overrides: Optional[dict[Any, Any]], errors: list[dict[str, Any]]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for dependency in plan.dependencies:
            call = dependency.call
            sub_plan = dependency.plan
            kind = dependency.kind
            if overrides is not None:
                replacement = overrides.get(call)
                if replacement is not None:
                    call = replacement
                    sub_plan, kind = dependency.overridden(replacement)
            if dependency.scope == "lifespan" and self._lifespan is not None:
                value = await self._lifespan.get(call, functools.partial(
                    self._make_lifespan_value, call, kind, sub_plan, body, cache, overrides, errors))
                if dependency.name is not None:
                    kwargs[dependency.name] = value
                continue
            reported = len(errors)
            values = await self._solve(sub_plan, body, cache, overrides, errors)
            if len(errors) != reported:
                continue  # its parameters are invalid: not called (the errors are reported together)
            key = dependency.cache_key if dependency.cache_key is not None else dependency.call
            if dependency.use_cache and key in cache:
                value = cache[key]
            else:
                if dependency.scope == "function" or self._request_stack is None:
                    stack = self._stack
                else:
                    stack = self._request_stack
                value = await self._call(call, kind, values, stack, self._executor)
                cache.setdefault(key, value)
            if dependency.name is not None:
                kwargs[dependency.name] = value
        plan.collect(None, self._request, kwargs, errors, body)
        return kwargs

    async def _make_lifespan_value(self, call: Callable[..., Any], kind: CallKind, plan: RequestPlan, body: Any,
                                   cache: dict[Any, Any], overrides: Optional[dict[Any, Any]],
                                   errors: list[dict[str, Any]], stack: contextlib.AsyncExitStack) -> Any:
        """A lifespan-scoped dependency's value (its teardown in the app's `stack`); sync ones run on the loop
        thread: the thread pool may be gone when the app shuts down."""
        values = await self._solve(plan, body, cache, overrides, errors)
        return await self._call(call, kind, values, stack, None)

    @staticmethod
    async def _call(call: Callable[..., Any], kind: CallKind, values: dict[str, Any],
                    stack: contextlib.AsyncExitStack, executor: Optional[Executor]) -> Any:
        if kind == "async":
            return await call(**values)
        if kind == "sync":
            if executor is None:
                return call(**values)
            run = functools.partial(contextvars.copy_context().run, call, **values)
            return await asyncio.get_running_loop().run_in_executor(executor, run)
        if kind == "asyncgen":
            return await stack.enter_async_context(contextlib.asynccontextmanager(call)(**values))
        cm = contextlib.contextmanager(call)(**values)
        if executor is None:
            return stack.enter_context(cm)
        return await stack.enter_async_context(_ThreadedContext(cm, executor))
