"""`CovetPy`, the application object: routes, middleware, exception handlers, lifespan."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Optional, TypedDict, TypeVar, Union, cast

from . import encoders
from .datastructures import State
from .middleware import Middleware as MiddlewareEntry
from .middleware.base import BaseHTTPMiddleware
from .middleware.native import NativeMiddleware
from .params import Depends
from .responses import Response, StreamingResponse
from .routing import ConstantRoute, Route, RouteOptions, RouteTable, WebSocketRoute, parse_path
from .server.interface import ExceptionHandler, Middleware, Publisher, ServedApp
from .server.options import ENGINE_OPTIONS
from .server.serve import configure_logging, exit_on_listen_error, serve
from .server.supervisor import Supervisor, WorkerOptions, resolve_workers
from .tls import TransportOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CovetPy", "DecoratorOptions", "RouteOptions", "WebSocketOptions"]

F = TypeVar("F", bound=Callable[..., Any])
Lifespan = Callable[["CovetPy"], contextlib.AbstractAsyncContextManager[Any]]


class DecoratorOptions(RouteOptions, total=False):
    """The keyword options of ``@app.get(path, ...)`` and the other method decorators: `RouteOptions` and
    ``constant`` (see `CovetPy.route`)."""

    constant: bool


class WebSocketOptions(TypedDict, total=False):
    """The keyword options of ``@app.websocket(path, ...)`` (see `CovetPy.add_websocket_route`)."""

    max_size: int
    idle_timeout: float
    ping_interval: float
    max_send_buffer: int
    compression: bool
    subprotocols: Sequence[str]


class CovetPy:
    """A CovetPy application.

    ::

        app = CovetPy()

        @app.get("/users/{user_id}")
        async def get_user(user_id: int, verbose: bool = False) -> dict:
            return {"id": user_id}

        app.run(host="0.0.0.0", port=8000)

    Options:
      on_startup / on_shutdown: callables (sync or async) run before serving / after the last request.
      lifespan: ``lifespan(app)`` returning an async context manager around the whole serving period;
        a mapping it yields becomes the initial ``request.state`` of every request.
      sync_handlers: ``"threadpool"`` (default, like FastAPI: a blocking ``def`` handler does not stall
        others) or ``"inline"`` (run ``def`` handlers directly on the event-loop thread: fastest, for
        handlers that never block). Per route: ``@app.get(..., inline=True)``.
      thread_pool_size: threads for sync handlers and blocking iterators (default 40).
      eager_async: start an ``async def`` handler's Task eagerly — its first step runs right away, inside
        the callback that received the request, so a handler that never suspends needs no loop turn.
        Handlers always run in a real Task (``asyncio.current_task()``, ``asyncio.timeout()``, TaskGroup,
        cancellation and contextvars as usual). ``"auto"`` (default): eager wherever the event loop allows it
        (Python >= 3.12; asyncio's own loop on 3.11), else Tasks started on the next loop turn. ``True``
        asks for it (logged when the loop cannot), ``False`` turns it off. Per route: ``eager=``.
      dependencies: ``[Depends(f), ...]`` run before every route's handler (values unused).
      title, version, description, summary, servers, openapi_url, docs_url, redoc_url, openapi_tags,
        terms_of_service, contact, license_info: FastAPI's OpenAPI metadata, stored as attributes (no schema or
        docs pages are served yet).
      redirect_slashes: a path no route matches, but would with its trailing slash added or removed, answers
        307 to that form (any method, query string kept), as in FastAPI/Starlette. Default True.
      middleware: ``[Middleware(cls, **options), ...]``, the first outermost (as `add_middleware` in reverse).

    ``app.dependency_overrides[original] = replacement`` replaces a dependency (for tests), as in FastAPI.
    """

    def __init__(
        self,
        *,
        title: str = "CovetPy",
        version: str = "0.1.0",
        debug: bool = False,
        on_startup: Optional[Sequence[Callable[[], Any]]] = None,
        on_shutdown: Optional[Sequence[Callable[[], Any]]] = None,
        lifespan: Optional[Lifespan] = None,
        exception_handlers: Optional[Mapping[Union[int, type[Exception]], ExceptionHandler]] = None,
        sync_handlers: Literal["threadpool", "inline"] = "threadpool",
        thread_pool_size: int = 40,
        eager_async: Union[bool, Literal["auto"]] = "auto",
        dependencies: Optional[Sequence[Depends]] = None,
        redirect_slashes: bool = True,
        description: str = "",
        summary: Optional[str] = None,
        servers: Optional[Sequence[Mapping[str, Any]]] = None,
        openapi_url: Optional[str] = "/openapi.json",
        docs_url: Optional[str] = "/docs",
        redoc_url: Optional[str] = "/redoc",
        openapi_tags: Optional[Sequence[Mapping[str, Any]]] = None,
        terms_of_service: Optional[str] = None,
        contact: Optional[Mapping[str, Any]] = None,
        license_info: Optional[Mapping[str, Any]] = None,
        middleware: Optional[Sequence[MiddlewareEntry]] = None,
    ) -> None:
        if sync_handlers not in ("threadpool", "inline"):
            raise ValueError("sync_handlers must be 'threadpool' or 'inline'")
        if eager_async not in (True, False, "auto"):
            raise ValueError(f"eager_async must be True, False or 'auto', not {eager_async!r}")
        self.title = title
        self.version = version
        # OpenAPI metadata (FastAPI's keywords), kept for the schema; CovetPy serves no schema or docs pages yet.
        self.description = description
        self.summary = summary
        self.servers: list[dict[str, Any]] = [dict(server) for server in servers or ()]
        self.openapi_url = openapi_url
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        self.openapi_tags: Optional[list[dict[str, Any]]] = (
            [dict(tag) for tag in openapi_tags] if openapi_tags is not None else None)
        self.terms_of_service = terms_of_service
        self.contact: Optional[dict[str, Any]] = dict(contact) if contact is not None else None
        self.license_info: Optional[dict[str, Any]] = dict(license_info) if license_info is not None else None
        self.debug = debug
        self.state = State()
        self.router = RouteTable(redirect_slashes=redirect_slashes)
        self.websocket_routes: list[WebSocketRoute] = []
        self._publish: Optional[Publisher] = None  # set while serving (publish)
        self.user_middleware: list[Middleware] = []
        self.exception_handlers: dict[Union[int, type[Exception]], ExceptionHandler] = dict(exception_handlers or {})
        self.on_startup_handlers: list[Callable[[], Any]] = list(on_startup or [])
        self.on_shutdown_handlers: list[Callable[[], Any]] = list(on_shutdown or [])
        self.lifespan = lifespan
        self.sync_handlers = sync_handlers
        self.thread_pool_size = thread_pool_size
        self.eager_async = eager_async
        self.dependencies: list[Depends] = list(dependencies or [])
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._lifespan_state: Optional[dict[str, Any]] = None
        self._native_middleware: list[NativeMiddleware] = []  # in the order added: the last is outermost
        for entry in reversed(middleware or ()):
            cls, args, kwargs = entry
            self.add_middleware(cls, *args, **kwargs)

    # -- routes ---------------------------------------------------------------------------------------
    @property
    def routes(self) -> list[Union[Route, ConstantRoute]]:
        """Every route in registration order (``route.path``, ``route.methods``, ``route.name``)."""
        return list(self.router.routes)

    def add_api_route(self, path: str, endpoint: Callable[..., Any], *, methods: Optional[Sequence[str]] = None,
                      **options: Unpack[RouteOptions]) -> Route:
        """Adds `endpoint` for `methods` (default GET) on `path`; raises ValueError on a duplicate.

        `options` (`RouteOptions`): ``status_code``, ``name``, ``response_model`` (overrides the return
        annotation; ``None`` turns result checking off), ``inline`` (a sync handler on the loop thread),
        ``eager`` (``False`` starts an async handler's Task on the next loop turn), ``dependencies``
        (``[Depends(f), ...]`` run before the handler, after the app's own), and FastAPI's OpenAPI keywords
        ``tags``, ``summary``, ``description``, ``responses``, ``deprecated``, ``openapi_extra``,
        ``operation_id``, ``include_in_schema``, ``response_description`` — kept on the route for the schema,
        they do not change how it is served."""
        options["dependencies"] = [*self.dependencies, *(options.get("dependencies") or ())]
        route = Route.build(path, endpoint, methods or ("GET",), **options)
        self.router.add(route)
        return route

    def route(self, path: str, methods: Optional[Sequence[str]] = None,
              **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        """Decorator form of `add_api_route`, with one more option: ``constant=True`` calls the handler once,
        now, and lets the engine serve its result forever after (the handler must take no arguments)."""
        constant = options.get("constant", False)
        route_options = cast(RouteOptions, {k: v for k, v in options.items() if k != "constant"})
        if constant:
            if options.get("dependencies") or self.dependencies:
                raise TypeError(f"constant route {path}: a constant route cannot have dependencies")
            extra = set(route_options) - {"status_code", "dependencies"}
            if extra:
                raise TypeError(f"constant route {path}: only status_code= applies to a constant route, not "
                                f"{', '.join(sorted(extra))}")

        def decorator(func: F) -> F:
            if constant:
                self._add_constant_from_handler(path, func, methods or ("GET",), options.get("status_code"))
            else:
                self.add_api_route(path, func, methods=methods, **route_options)
            return func

        return decorator

    def get(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        return self.route(path, ["GET"], **options)

    def post(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        return self.route(path, ["POST"], **options)

    def put(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        return self.route(path, ["PUT"], **options)

    def patch(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        return self.route(path, ["PATCH"], **options)

    def delete(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        return self.route(path, ["DELETE"], **options)

    def head(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        return self.route(path, ["HEAD"], **options)

    def options(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]:
        return self.route(path, ["OPTIONS"], **options)

    # -- WebSocket routes -----------------------------------------------------------------------------
    def add_websocket_route(self, path: str, endpoint: Callable[..., Any], *, name: Optional[str] = None,
                            dependencies: Optional[Sequence[Depends]] = None,
                            **options: Unpack[WebSocketOptions]) -> WebSocketRoute:
        """A WebSocket endpoint (``async def ws(websocket: WebSocket, ...)``). Options: ``max_size`` (bytes,
        default 1 MiB: larger messages close with 1009), ``idle_timeout`` and ``ping_interval`` (seconds,
        60 and 20), ``max_send_buffer`` (bytes, 4 MiB: sends wait above it), ``compression`` (permessage-deflate,
        default True), ``subprotocols`` (the route's, preferred first)."""
        unknown = set(options) - {"max_size", "idle_timeout", "ping_interval", "max_send_buffer", "compression",
                                  "subprotocols"}
        if unknown:
            raise TypeError(f"websocket route {path}: unknown options {sorted(unknown)}")
        route = WebSocketRoute(path, endpoint, name=name, dependencies=[*self.dependencies, *(dependencies or ())],
                               **options)
        if any(r.native_pattern == route.native_pattern for r in self.websocket_routes):
            raise ValueError(f"websocket route conflict: {path} is already registered")
        self.websocket_routes.append(route)
        return route

    def websocket(self, path: str, *, name: Optional[str] = None, dependencies: Optional[Sequence[Depends]] = None,
                  **options: Unpack[WebSocketOptions]) -> Callable[[F], F]:
        """Decorator form of `add_websocket_route`."""

        def decorator(func: F) -> F:
            self.add_websocket_route(path, func, name=name, dependencies=dependencies, **options)
            return func

        return decorator

    def publish(self, topic: str, data: Union[str, bytes]) -> int:
        """Sends `data` to every WebSocket subscribed to `topic` in this worker process (see
        `WebSocket.subscribe`); the fan-out is native. Returns how many connections it was queued to."""
        if self._publish is None:
            raise RuntimeError("publish() needs the app to be serving")
        return self._publish(topic, data)

    def set_publisher(self, publish: Optional[Publisher]) -> None:
        """Called by the runtime (`covet.server`): the serving worker's broadcast, or None once it stops."""
        self._publish = publish

    # -- constant routes ------------------------------------------------------------------------------
    def add_constant_route(
        self,
        path: str,
        content: Any,
        *,
        methods: Sequence[str] = ("GET",),
        status_code: Optional[int] = None,
        media_type: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> ConstantRoute:
        """A route the engine answers by itself with a fixed response; it never enters Python.

        `content` is anything a handler may return (dict/list/model → JSON, str → JSON string) or a
        `Response`; a str or bytes with an explicit `media_type` is sent as is.
        """
        if isinstance(content, Response):
            if status_code is not None or media_type is not None or headers is not None:
                raise TypeError("pass status_code/media_type/headers in the Response, not next to it")
            response = content
        elif media_type is not None:
            response = Response(content, status_code=status_code or 200, media_type=media_type, headers=headers)
        else:
            response = Response(encoders.dumps(content), status_code=status_code or 200,
                                media_type="application/json", headers=headers)
        if isinstance(response, StreamingResponse):
            raise TypeError("a streaming response cannot be a constant route")
        parse_path(path)
        content_type = ""
        extra: list[tuple[str, str]] = []
        for name, value in response.headers.raw:
            if name.lower() == "content-type":
                content_type = value
            else:
                extra.append((name, value))
        route = ConstantRoute(
            path=path,
            methods=tuple(dict.fromkeys(m.upper() for m in methods)),
            status_code=response.status_code,
            content_type=content_type,
            body=response.body,
            headers=extra,
        )
        self.router.add(route)
        return route

    def _add_constant_from_handler(self, path: str, func: Callable[..., Any], methods: Sequence[str],
                                   status_code: Optional[int]) -> None:
        if inspect.signature(func).parameters:
            raise TypeError(f"constant route {path}: the handler must take no arguments")
        result = func()
        if inspect.iscoroutine(result):
            try:
                result.send(None)
            except StopIteration as stop:
                result = stop.value
            else:
                result.close()
                raise TypeError(f"constant route {path}: the handler must not await anything")
        if isinstance(result, Response):
            self.add_constant_route(path, result, methods=methods)
        else:
            self.add_constant_route(path, result, methods=methods, status_code=status_code)

    # -- middleware and exception handlers ------------------------------------------------------------
    def middleware(self, middleware_type: str = "http") -> Callable[[F], F]:
        """``@app.middleware("http")`` on ``async def mw(request, call_next) -> Response``.

        The middleware registered last runs first (outermost), as in FastAPI.
        """
        if middleware_type != "http":
            raise ValueError("only 'http' middleware is supported")

        def decorator(func: F) -> F:
            self.add_http_middleware(func)
            return func

        return decorator

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        """``app.add_middleware(cls, **options)``, as in FastAPI: the last added is the outermost.

        `CORSMiddleware`, `GZipMiddleware`, `TrustedHostMiddleware` and `HTTPSRedirectMiddleware` (covet.middleware)
        run natively in the engine, on every response (Python routes, constant routes, 404/405), outside the
        Python middleware; a `BaseHTTPMiddleware` subclass runs like an ``@app.middleware("http")`` function.
        """
        if isinstance(middleware_class, type) and issubclass(middleware_class, NativeMiddleware):
            self._native_middleware.append(middleware_class(self, *args, **kwargs))
        elif isinstance(middleware_class, type) and issubclass(middleware_class, BaseHTTPMiddleware):
            instance = middleware_class(self, *args, **kwargs)
            self.add_http_middleware(instance.dispatch_func)
        else:
            name = getattr(middleware_class, "__qualname__", repr(middleware_class))
            raise TypeError(
                f"add_middleware({name}): CovetPy runs CORSMiddleware, GZipMiddleware, TrustedHostMiddleware and "
                "HTTPSRedirectMiddleware (from covet.middleware) natively, and BaseHTTPMiddleware subclasses; pure "
                "ASGI middleware needs ASGI hosting, which is not supported yet (issue 15). Write it as "
                '@app.middleware("http") or a BaseHTTPMiddleware subclass')

    @property
    def native_middleware(self) -> list[tuple[str, dict[str, Any]]]:
        """The engine's middleware as ``(kind, options)``, the outermost first (the runtime installs them)."""
        return [(m.native_kind, m.native_options()) for m in reversed(self._native_middleware)]

    def add_http_middleware(self, func: Middleware) -> None:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("middleware must be an async function: async def mw(request, call_next)")
        self.user_middleware.append(func)

    def exception_handler(self, exc_class_or_status_code: Union[int, type[Exception]]) -> Callable[[F], F]:
        """``@app.exception_handler(MyError)`` on ``(async) def handler(request, exc) -> Response``.

        An int key handles `HTTPException` with that status; ``Exception`` (or 500) replaces the
        default 500 answer to unhandled exceptions.
        """

        def decorator(func: F) -> F:
            self.add_exception_handler(exc_class_or_status_code, func)
            return func

        return decorator

    def add_exception_handler(self, key: Union[int, type[Exception]], handler: ExceptionHandler) -> None:
        self.exception_handlers[key] = handler

    # -- lifespan -------------------------------------------------------------------------------------
    def on_event(self, event_type: Literal["startup", "shutdown"]) -> Callable[[F], F]:
        """``@app.on_event("startup")``: deprecated, as in FastAPI (a DeprecationWarning), and still works;
        use ``CovetPy(lifespan=...)`` instead."""
        warnings.warn(
            "on_event is deprecated, use lifespan event handlers instead: CovetPy(lifespan=...), an async "
            "context manager around the serving period (see docs/python.md)",
            DeprecationWarning,
            stacklevel=2,
        )

        def decorator(func: F) -> F:
            self.add_event_handler(event_type, func)
            return func

        return decorator

    def add_event_handler(self, event_type: str, func: Callable[[], Any]) -> None:
        if event_type == "startup":
            self.on_startup_handlers.append(func)
        elif event_type == "shutdown":
            self.on_shutdown_handlers.append(func)
        else:
            raise ValueError("event_type must be 'startup' or 'shutdown'")

    @property
    def lifespan_state(self) -> Optional[dict[str, Any]]:
        """What the `lifespan` context yielded (while it runs): the initial ``request.state`` of each request."""
        return self._lifespan_state

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """Startup handlers, then the `lifespan` context, serving (the body), then shutdown, in reverse."""
        for handler in self.on_startup_handlers:
            await _call_maybe_async(handler)
        try:
            if self.lifespan is not None:
                async with self.lifespan(self) as state:
                    self._lifespan_state = dict(state) if state is not None else None
                    try:
                        yield
                    finally:
                        self._lifespan_state = None
            else:
                yield
        finally:
            for handler in self.on_shutdown_handlers:
                await _call_maybe_async(handler)

    # -- running ----------------------------------------------------------------------------------------
    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        workers: Union[int, str] = 1,
        threads: int = 0,
        log_level: str = "info",
        **server_options: Any,
    ) -> None:
        """Serve until SIGINT/SIGTERM, then shut down gracefully and return.

        ``threads=0`` (default) runs the engine on the event-loop thread (io_uring; one native I/O thread
        when io_uring is unavailable); ``threads=N`` gives it N native I/O threads feeding the loop. ``workers=N`` (or
        ``"auto"``: one per CPU) runs N worker processes sharing the port under a supervisor, like
        ``covet run module:app --workers N``; the app must then be importable as a module attribute.

        HTTPS: ``ssl_certfile=``, ``ssl_keyfile=`` (and ``ssl_ca_certs=`` for client certificates, see
        `covet.tls`); HTTP/2 is on unless ``http2=False``. SIGHUP reloads the certificates.
        """
        if workers != 1:
            transport, server_options = TransportOptions.split(server_options)
            engine_kwargs = {o.kwarg for o in ENGINE_OPTIONS}
            unknown = sorted(k for k in server_options if k not in engine_kwargs)
            if unknown:
                raise TypeError(f"options {unknown} are not supported with workers != 1 (engine limits such as "
                                "max_body_bytes=... are; see docs/operations.md)")
            spec, app_dir = _import_string(self)
            options = WorkerOptions(app=spec, host=host, port=port, threads=threads, log_level=log_level,
                                    app_dir=app_dir, transport=transport, engine=dict(server_options))
            Supervisor(options, resolve_workers(workers)).run()
            return
        configure_logging(log_level)
        app: ServedApp = self  # the runtime sees only this interface
        with exit_on_listen_error():  # a taken port is a one-line message, not a traceback
            serve(app, host, port, threads, **server_options)

    def __repr__(self) -> str:
        return f"<CovetPy {self.title!r} with {len(self.router.routes)} routes>"


def _import_string(app: CovetPy) -> tuple[str, str]:
    """``("module:attribute", directory)`` under which worker processes can import `app`."""
    for name, module in list(sys.modules.items()):
        if module is None or name == "__main__":
            continue
        for attr, value in list(vars(module).items()):
            if value is app:
                return f"{name}:{attr}", "."
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main is not None and main_file:
        for attr, value in list(vars(main).items()):
            if value is app:
                stem = os.path.splitext(os.path.basename(main_file))[0]
                return f"{stem}:{attr}", os.path.dirname(os.path.abspath(main_file))
    raise RuntimeError("app.run(workers=N) needs the app to be a module-level variable "
                       "(or use: covet run module:app --workers N)")


async def _call_maybe_async(func: Callable[[], Any]) -> None:
    if inspect.iscoroutinefunction(func):
        await func()
    else:
        result = func()
        if inspect.isawaitable(result):
            await result

