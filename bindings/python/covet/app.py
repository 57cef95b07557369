"""`CovetPy`, the application object: routes, middleware, exception handlers, lifespan."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Optional, Protocol, TypedDict, TypeVar, Union, cast

from . import asgi, encoders
from .datastructures import State, URLPath
from .exceptions import HTTPException
from .middleware import Middleware as MiddlewareEntry
from .middleware.base import BaseHTTPMiddleware
from .middleware.native import NativeMiddleware
from .openapi import docs as openapi_docs
from .params import Depends, LifespanValues
from .requests import Request
from .responses import HTMLResponse, Response, StreamingResponse
from .routing import (
    METHODS,
    APIRouter,
    AppRouter,
    ConstantRoute,
    MethodDecorators,
    Route,
    RouteOptions,
    WebSocketRoute,
    parse_path,
)
from .server.interface import ExceptionHandler, Middleware, Publisher, ServedApp
from .server.ops import OpsOptions
from .server.options import ENGINE_OPTIONS
from .server.serve import configure_logging, exit_on_listen_error, serve
from .staticfiles import StaticFiles, StaticMount
from .tls import TransportOptions
from .utils import check_root_path, generate_unique_id

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from covet.grpc import GrpcServer

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


class AppDecorator(Protocol):
    """``app.get(path, **options)`` & co.: the options are `DecoratorOptions` (``constant`` and `RouteOptions`)."""

    def __call__(self, path: str, **options: Unpack[DecoratorOptions]) -> Callable[[F], F]: ...


class CovetPy(MethodDecorators[AppDecorator]):
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
      title, version, description, summary, servers, openapi_tags, terms_of_service, contact, license_info,
        separate_input_output_schemas, openapi_external_docs: FastAPI's OpenAPI metadata (`openapi`);
        openapi_url (default ``/openapi.json``, None: not served) serves the schema.
      docs_url (``/docs``: Swagger UI), redoc_url (``/redoc``: ReDoc), swagger_ui_oauth2_redirect_url
        (``/docs/oauth2-redirect``), swagger_ui_init_oauth, swagger_ui_parameters: FastAPI's docs pages, served
        when ``openapi_url`` is set (None turns a page off), left out of the schema and of the app's
        ``dependencies``. Their scripts and styles are bundled with CovetPy (no CDN: they work offline) and
        served under ``docs_assets_url`` (default ``/_covet/docs``). To load them from elsewhere, turn the page
        off (``docs_url=None``) and serve your own with `covet.openapi.docs.get_swagger_ui_html` and its
        ``swagger_js_url=`` & co., as in FastAPI.
      redirect_slashes: a path no route matches, but would with its trailing slash added or removed, answers
        307 to that form (any method, query string kept), as in FastAPI/Starlette. Default True.
      duplicate_routes: ``"first"`` (default, as FastAPI): of two routes with the same method and path shape the
        first registered answers (both are listed in ``app.routes``); ``"error"``: the second is refused
        (ValueError naming both) — a start-up check against accidental shadowing.
      auto_head: False (default, as FastAPI): HEAD on a GET-only route answers 405 (``Allow: GET``); True: every
        GET route answers HEAD too (headers of the GET response, no body), natively.
      generate_unique_id_function: ``f(route) -> str``, the schema's operation ids (FastAPI's keyword; default
        `covet.utils.generate_unique_id`); routers and routes may set their own.
      webhooks: an `APIRouter` for the schema's webhooks (``app.webhooks``; FastAPI's); never served.
      root_path: the ASGI root_path behind a proxy that strips this prefix (FastAPI's keyword, deprecated as there:
        give the server's instead, ``covet run --root-path /api/v1``); paths starting with it route without it.
        root_path_in_servers: list the request's root path first in the served schema's ``servers`` (default True).

    Routers: ``app.include_router(router, prefix=..., tags=..., dependencies=...)`` (`covet.APIRouter`).
    ``app.router`` is the app's own router (``routes``, ``include_router``, ``url_path_for``).
    Requests no route answers (404, 405) reach the app's HTTP middleware and its 404/405 handlers as in FastAPI;
    an app without either gets the engine's 404 without entering Python.
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
        duplicate_routes: Literal["first", "error"] = "first",
        auto_head: bool = False,
        generate_unique_id_function: Callable[[Any], str] = generate_unique_id,
        webhooks: Optional[APIRouter] = None,
        description: str = "",
        summary: Optional[str] = None,
        servers: Optional[Sequence[Mapping[str, Any]]] = None,
        openapi_url: Optional[str] = "/openapi.json",
        docs_url: Optional[str] = "/docs",
        redoc_url: Optional[str] = "/redoc",
        swagger_ui_oauth2_redirect_url: Optional[str] = "/docs/oauth2-redirect",
        swagger_ui_init_oauth: Optional[Mapping[str, Any]] = None,
        swagger_ui_parameters: Optional[Mapping[str, Any]] = None,
        docs_assets_url: str = openapi_docs.DOCS_ASSETS_URL,
        openapi_tags: Optional[Sequence[Mapping[str, Any]]] = None,
        terms_of_service: Optional[str] = None,
        contact: Optional[Mapping[str, Any]] = None,
        license_info: Optional[Mapping[str, Any]] = None,
        strict_content_type: bool = True,
        default_response_class: Optional[type[Response]] = None,
        separate_input_output_schemas: bool = True,
        openapi_external_docs: Optional[Mapping[str, Any]] = None,
        root_path: str = "",
        root_path_in_servers: bool = True,
        middleware: Optional[Sequence[MiddlewareEntry]] = None,
    ) -> None:
        if sync_handlers not in ("threadpool", "inline"):
            raise ValueError("sync_handlers must be 'threadpool' or 'inline'")
        if eager_async not in (True, False, "auto"):
            raise ValueError(f"eager_async must be True, False or 'auto', not {eager_async!r}")
        self.title = title
        self.version = version
        # A JSON body needs a JSON Content-Type (FastAPI 0.132+); False also parses a body without one.
        self.strict_content_type = strict_content_type
        # OpenAPI metadata (FastAPI's keywords), for the schema and the docs pages.
        self.description = description
        self.summary = summary
        self.servers: list[dict[str, Any]] = [dict(server) for server in servers or ()]
        # The ASGI root_path (behind a proxy that strips a prefix); the server's (--root-path) applies when "".
        self.root_path = check_root_path(root_path, "CovetPy(root_path=...)")
        if root_path:
            warnings.warn("CovetPy(root_path=...) is deprecated, as FastAPI's root_path parameter: give the "
                          "server's root path instead (covet run app:app --root-path /api/v1, or "
                          "app.run(root_path='/api/v1'))", DeprecationWarning, stacklevel=2)
        # Whether the served /openapi.json lists the request's root_path first in `servers` (FastAPI's).
        self.root_path_in_servers = root_path_in_servers
        self.openapi_url = openapi_url
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        self.swagger_ui_oauth2_redirect_url = swagger_ui_oauth2_redirect_url
        self.swagger_ui_init_oauth: Optional[dict[str, Any]] = (
            dict(swagger_ui_init_oauth) if swagger_ui_init_oauth is not None else None)
        self.swagger_ui_parameters: Optional[dict[str, Any]] = (
            dict(swagger_ui_parameters) if swagger_ui_parameters is not None else None)
        self.docs_assets_url = docs_assets_url
        self.openapi_tags: Optional[list[dict[str, Any]]] = (
            [dict(tag) for tag in openapi_tags] if openapi_tags is not None else None)
        self.terms_of_service = terms_of_service
        self.contact: Optional[dict[str, Any]] = dict(contact) if contact is not None else None
        self.license_info: Optional[dict[str, Any]] = dict(license_info) if license_info is not None else None
        self.openapi_version = "3.1.0"
        self.separate_input_output_schemas = separate_input_output_schemas
        self.openapi_external_docs: Optional[dict[str, Any]] = (
            dict(openapi_external_docs) if openapi_external_docs is not None else None)
        # The generated schema (`openapi`), built at the first request for it and kept; None until then.
        self.openapi_schema: Optional[dict[str, Any]] = None
        self._openapi_routes_version: Optional[int] = None
        # ((id of the schema, the root path in its servers), its JSON): the body last served
        self._openapi_body: Optional[tuple[tuple[int, str], bytes]] = None
        self.debug = debug
        # The response_class of routes that give none (None: JSON, FastAPI's default JSONResponse).
        self.default_response_class = default_response_class
        self.state = State()
        self.generate_unique_id_function = generate_unique_id_function
        self.webhooks = webhooks if webhooks is not None else APIRouter()
        self.router = AppRouter(self, {"redirect_slashes": redirect_slashes, "duplicate_routes": duplicate_routes,
                                       "auto_head": auto_head})
        self.static_mounts: list[StaticMount] = []  # app.mount(path, StaticFiles(...)): served by the engine
        # @app.readiness_check functions (GET /_ready: covet.server.ops) and enable_metrics()'s options
        self.readiness_checks: list[Callable[[], Any]] = []
        self.ops_options: dict[str, Any] = {}
        self._publish: Optional[Publisher] = None  # set while serving (publish)
        self.user_middleware: list[Middleware] = []
        # What a middleware does for WebSocket handshakes (``websocket_connect(websocket) -> bool``: a
        # `SessionMiddleware` loads ``websocket.session`` and checks the Origin), the outermost first; run by
        # `covet.server.websockets.WebSocketDispatch` before the endpoint, which does not run when one is False.
        self.websocket_middleware: list[Callable[[Any], Awaitable[bool]]] = []
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
        # Depends(scope="lifespan") values: made once while serving, torn down at shutdown (covet.params).
        self._lifespan_dependencies = LifespanValues()
        # Native middleware added after the last Python middleware (so outside all of them), in the order added:
        # the engine runs these (`native_middleware`). One that a Python middleware is added after moves into
        # `user_middleware` at its position, as its Python implementation (`_settle_native_middleware`).
        self._native_middleware: list[NativeMiddleware] = []
        self._native_positions: list[int] = []  # for each: len(user_middleware) when it was added
        # Pure ASGI middleware, in the order added (covet.asgi.build_stack), and the stack built from them.
        self._asgi_middleware: list[asgi.AsgiMiddlewareEntry] = []
        self._asgi_stack: Optional[tuple[int, asgi.ASGIApp]] = None
        for entry in reversed(middleware or ()):
            cls, args, kwargs = entry
            self.add_middleware(cls, *args, **kwargs)
        if self.openapi_url:
            self._add_openapi_route(self.openapi_url)
        self._setup_docs()

    # -- OpenAPI --------------------------------------------------------------------------------------
    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 schema of the app (`covet.openapi.get_openapi`), generated at the first call and kept
        in ``app.openapi_schema`` (generated again if routes were added since). As in FastAPI, an app may
        replace this method (``app.openapi = custom_openapi``) to adjust the schema; ``openapi_url`` serves
        whatever it returns."""
        version = len(self.router.routes)
        if self.openapi_schema is None or self._openapi_routes_version != version:
            from .openapi.utils import get_openapi  # deferred: pydantic's schema machinery, only when asked

            webhooks = getattr(self, "webhooks", None)
            self.openapi_schema = get_openapi(
                title=self.title,
                version=self.version,
                openapi_version=self.openapi_version,
                summary=self.summary,
                description=self.description,
                terms_of_service=self.terms_of_service,
                contact=self.contact,
                license_info=self.license_info,
                routes=self.routes,
                webhooks=getattr(webhooks, "routes", None),
                tags=self.openapi_tags,
                servers=self.servers,
                separate_input_output_schemas=self.separate_input_output_schemas,
                external_docs=self.openapi_external_docs,
            )
            self._openapi_routes_version = version
        return self.openapi_schema

    def _add_openapi_route(self, url: str) -> None:
        """``GET openapi_url`` (and HEAD, as Starlette's add_route): the schema as JSON — a plain route, absent
        from the schema, that runs none of the app's dependencies (FastAPI's ``setup``)."""

        async def openapi(request: Request) -> Response:
            schema = self.openapi()
            root_path = _root_path(request)
            key = (id(schema), root_path if self.root_path_in_servers else "")
            cached = self._openapi_body
            if cached is None or cached[0] != key:
                served = schema
                if key[1] and key[1] not in {server.get("url") for server in schema.get("servers", ())}:
                    # FastAPI: behind a proxy (root_path), the schema's first server is that prefix.
                    served = {**schema, "servers": [{"url": key[1]}, *schema.get("servers", ())]}
                cached = self._openapi_body = (key, encoders.dumps(served))
            return Response(cached[1], media_type="application/json")

        route = Route.build(url, openapi, ("GET", "HEAD"), include_in_schema=False, response_model=None)
        route.plain = True
        self.router.add_listed(route)

    # -- the docs pages (FastAPI's setup(): registered first, outside the schema and the app's dependencies) ----
    def _add_internal_route(self, path: str, endpoint: Callable[..., Any]) -> None:
        route = Route.build(path, endpoint, ("GET", "HEAD"), include_in_schema=False, response_model=None)
        route.plain = True
        self.router.add_listed(route)

    def _setup_docs(self) -> None:
        openapi_url = self.openapi_url
        if not openapi_url:
            return
        assets = self.docs_assets_url
        if not assets.startswith("/") or assets.rstrip("/") == "":
            raise ValueError(f"docs_assets_url must be a path below '/' (default {openapi_docs.DOCS_ASSETS_URL!r}), "
                             f"not {assets!r}")

        def asset_url(root_path: str, name: str) -> str:
            return root_path + openapi_docs.docs_asset_url(name, assets)

        if self.docs_url:
            redirect_url = self.swagger_ui_oauth2_redirect_url

            async def swagger_ui_html(request: Request) -> HTMLResponse:
                root_path = _root_path(request)
                return openapi_docs.get_swagger_ui_html(
                    openapi_url=root_path + openapi_url, title=f"{self.title} - Swagger UI",
                    swagger_js_url=asset_url(root_path, "swagger-ui-bundle.js"),
                    swagger_css_url=asset_url(root_path, "swagger-ui.css"),
                    swagger_favicon_url=asset_url(root_path, "favicon.png"),
                    oauth2_redirect_url=root_path + redirect_url if redirect_url else None,
                    init_oauth=self.swagger_ui_init_oauth, swagger_ui_parameters=self.swagger_ui_parameters)

            self._add_internal_route(self.docs_url, swagger_ui_html)
            if redirect_url:
                async def swagger_ui_redirect() -> HTMLResponse:
                    return openapi_docs.get_swagger_ui_oauth2_redirect_html()

                self._add_internal_route(redirect_url, swagger_ui_redirect)
        if self.redoc_url:
            async def redoc_html(request: Request) -> HTMLResponse:
                root_path = _root_path(request)
                return openapi_docs.get_redoc_html(
                    openapi_url=root_path + openapi_url, title=f"{self.title} - ReDoc",
                    redoc_js_url=asset_url(root_path, "redoc.standalone.js"),
                    redoc_favicon_url=asset_url(root_path, "favicon.png"))

            self._add_internal_route(self.redoc_url, redoc_html)
        if self.docs_url or self.redoc_url:
            for name in openapi_docs.DOCS_ASSETS:
                self._add_internal_route(f"{assets.rstrip('/')}/{name}", _docs_asset_endpoint(name))

    # -- routes ---------------------------------------------------------------------------------------
    @property
    def routes(self) -> list[Union[Route, ConstantRoute, WebSocketRoute, StaticMount]]:
        """Every route in registration order (``route.path``, ``route.methods``, ``route.name``): HTTP, constant
        and WebSocket routes, included routers' with their prefixes applied; then the mounts."""
        return [*self.router.routes, *self.static_mounts]

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Optional[Sequence[Any]] = None,
        dependencies: Optional[Sequence[Depends]] = None,
        default_response_class: Any = None,
        responses: Optional[Mapping[Union[int, str], Mapping[str, Any]]] = None,
        callbacks: Optional[Sequence[Any]] = None,
        deprecated: Optional[bool] = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Optional[Callable[[Any], str]] = None,
    ) -> None:
        """Adds `router`'s routes (`covet.APIRouter`) under `prefix`, with these tags, dependencies ... first
        (FastAPI's ``include_router``); the routes are built here, once, into the app's table."""
        self.router.include_router(
            router, prefix=prefix, tags=tags, dependencies=dependencies, default_response_class=default_response_class,
            responses=responses, callbacks=callbacks, deprecated=deprecated, include_in_schema=include_in_schema,
            generate_unique_id_function=generate_unique_id_function)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """The path of the route named `name` (``name=``, default the handler's name) with these path parameters
        filled in; `covet.routing.NoMatchFound` if no route has that name and exactly those parameters."""
        return self.router.url_path_for(name, **path_params)

    def needs_unmatched_in_python(self) -> bool:
        """Must requests no route answers (404/405) reach Python? Yes when the app has HTTP middleware or an
        exception handler that FastAPI would call for them (404, 405, HTTPException or a base of it)."""
        if self.user_middleware:
            return True
        for key in self.exception_handlers:
            if key in (404, 405):
                return True
            if isinstance(key, type) and key not in (Exception, BaseException) and issubclass(HTTPException, key):
                return True
        return False

    def mount(self, path: str, app: Any, name: Optional[str] = None) -> None:
        """``app.mount("/static", StaticFiles(directory="static"), name="static")``: files served by the engine
        under `path`; or another CovetPy app, whose routes (and mounts) are served under `path`.

        A mounted CovetPy app contributes its routes only: the outer app's middleware, exception handlers and
        dependency overrides apply to them (Starlette would run the sub-app's own). Any other ASGI application
        (a Starlette or FastAPI app, a hand-written ``async def app(scope, receive, send)``) answers every HTTP
        request under `path` (``path`` itself redirects to ``path/``), with its scope as Starlette's ``Mount``
        makes it: ``root_path`` extended by `path`, ``path`` the full path; the outer app's HTTP middleware run
        around it. WebSocket scopes are not passed to a mounted ASGI app.
        """
        if not path.startswith("/") or "{" in path:
            raise ValueError(f"mount path must be a literal path starting with '/', not {path!r}")
        prefix = path.rstrip("/")
        if isinstance(app, StaticFiles):  # directories are opened at start-up (check_dir=False: made by then)
            self.static_mounts.append(StaticMount(prefix or "/", app, name))
            return
        if isinstance(app, CovetPy):
            for route in app.router.routes:
                if isinstance(route, Route):
                    self.router.add_listed(dataclasses.replace(
                        route, path=prefix + route.path, native_pattern=prefix + route.native_pattern,
                        fallback_pattern=None if route.fallback_pattern is None else prefix + route.fallback_pattern))
                elif isinstance(route, ConstantRoute):
                    self.router.add_listed(dataclasses.replace(route, path=prefix + route.path))
                else:
                    moved = WebSocketRoute.__new__(WebSocketRoute)
                    for slot in WebSocketRoute.__slots__:
                        setattr(moved, slot, getattr(route, slot))
                    moved.path, moved.native_pattern = prefix + route.path, prefix + route.native_pattern
                    self.router.add_listed(moved)
            for mount in app.static_mounts:
                self.static_mounts.append(StaticMount(prefix + mount.path.rstrip("/"), mount.app, mount.name))
            return
        if not callable(app):
            raise TypeError(f"app.mount({path!r}, {type(app).__name__}): mount StaticFiles, a CovetPy app or an ASGI "
                            "application (a callable taking scope, receive, send)")
        endpoint = asgi.mounted_endpoint(app, prefix)
        route = Route.build(prefix + "/{path:path}", endpoint, METHODS, name=name or None, include_in_schema=False,
                            response_model=None)
        route.plain = True
        self.router.add_listed(route)
        if prefix:
            redirect = dataclasses.replace(self.router.table.slash_redirect_route(), path=prefix,
                                           native_pattern=prefix, fallback_pattern=None, methods=METHODS,
                                           include_in_schema=False)
            self.router.add_listed(redirect)

    def add_api_route(self, path: str, endpoint: Callable[..., Any], *, methods: Optional[Sequence[str]] = None,
                      **options: Unpack[RouteOptions]) -> Route:
        """Adds `endpoint` for `methods` (default GET) on `path`. A duplicate (same method and path shape as an
        earlier route) is listed but the earlier route answers, unless ``CovetPy(duplicate_routes="error")``.

        `options` (`RouteOptions`): ``status_code``, ``name``, ``response_model`` (overrides the return
        annotation; ``None`` turns result checking off), ``inline`` (a sync handler on the loop thread),
        ``eager`` (``False`` starts an async handler's Task on the next loop turn), ``dependencies``
        (``[Depends(f), ...]`` run before the handler, after the app's own), and FastAPI's OpenAPI keywords
        ``tags``, ``summary``, ``description``, ``responses``, ``deprecated``, ``openapi_extra``,
        ``operation_id``, ``include_in_schema``, ``response_description`` — kept on the route for the schema,
        they do not change how it is served."""
        self.router.add_api_route(path, endpoint, methods=methods, **options)
        route: Route = self.router._all[-1]
        return route

    def api_route(self, path: str, methods: Optional[Sequence[str]] = None,
                  **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Decorator form of `add_api_route` (FastAPI's ``app.api_route``; default method GET)."""
        return self.router.api_route(path, methods, **options)

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

    def _decorate(self, methods: list[str], path: str, **options: Any) -> Callable[[F], F]:
        return self.route(path, methods, **options)

    # -- WebSocket routes -----------------------------------------------------------------------------
    def add_websocket_route(self, path: str, endpoint: Callable[..., Any], *, name: Optional[str] = None,
                            dependencies: Optional[Sequence[Depends]] = None,
                            **options: Unpack[WebSocketOptions]) -> WebSocketRoute:
        """A WebSocket endpoint (``async def ws(websocket: WebSocket, ...)``). Options: ``max_size`` (bytes,
        default 1 MiB: larger messages close with 1009), ``idle_timeout`` and ``ping_interval`` (seconds,
        60 and 20), ``max_send_buffer`` (bytes, 4 MiB: sends wait above it), ``compression`` (permessage-deflate,
        default True), ``subprotocols`` (the route's, preferred first)."""
        route = self.build_websocket_route(path, endpoint, name=name, dependencies=dependencies, **options)
        if any(r.native_pattern == route.native_pattern for r in self.websocket_routes):
            raise ValueError(f"websocket route conflict: {path} is already registered")
        self.router.add_listed(route)
        return route

    def build_websocket_route(self, path: str, endpoint: Callable[..., Any], *, name: Optional[str] = None,
                              dependencies: Optional[Sequence[Depends]] = None,
                              **options: Unpack[WebSocketOptions]) -> WebSocketRoute:
        """The WebSocket route `add_websocket_route` adds (the app's dependencies first), not added."""
        unknown = set(options) - {"max_size", "idle_timeout", "ping_interval", "max_send_buffer", "compression",
                                  "subprotocols"}
        if unknown:
            raise TypeError(f"websocket route {path}: unknown options {sorted(unknown)}")
        return WebSocketRoute(path, endpoint, name=name, dependencies=[*self.dependencies, *(dependencies or ())],
                              **options)

    @property
    def websocket_routes(self) -> list[WebSocketRoute]:
        """The WebSocket routes, in registration order (included routers' too)."""
        return [r for r in self.router.routes if isinstance(r, WebSocketRoute)]

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
        self.router.add_listed(route)
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
        """``app.add_middleware(cls, **options)``, as in FastAPI: every middleware nests by the order added, the
        last added outermost.

        `CORSMiddleware`, `GZipMiddleware`, `TrustedHostMiddleware` and `HTTPSRedirectMiddleware` (covet.middleware)
        added after every Python middleware (so outside them all: the usual setup) run natively in the engine, on
        every response (Python routes, constant routes, static files, 404/405), for no Python cost. One added
        before a Python middleware (``@app.middleware("http")``, a `BaseHTTPMiddleware`) sits inside it, as in
        FastAPI: it then runs at that position in Python, with the same options and Starlette's behaviour. A
        `BaseHTTPMiddleware` subclass runs like an ``@app.middleware("http")`` function.
        Any other class is pure ASGI middleware, as in Starlette: ``cls(app, **options)`` wraps the app and is
        called ``await instance(scope, receive, send)``. It may rewrite the scope, wrap ``send``, answer by
        itself or read the body through ``receive``. With such middleware every HTTP request the engine takes
        goes through them (engine → `covet.asgi` → the middleware, the last added outermost, with the
        ``@app.middleware("http")`` functions at the places they were added → the app's routing and handlers);
        static files, WebSocket routes and the native middleware added after them stay outside them (native ones
        added before an ASGI middleware run inside it, in Python, as above). Without any, nothing
        changes (no cost).
        """
        if isinstance(middleware_class, type) and issubclass(middleware_class, NativeMiddleware):
            self._native_middleware.append(middleware_class(self, *args, **kwargs))
            self._native_positions.append(len(self.user_middleware))
        elif isinstance(middleware_class, type) and issubclass(middleware_class, BaseHTTPMiddleware):
            instance = middleware_class(self, *args, **kwargs)
            self.add_http_middleware(instance.dispatch_func)
            websocket_connect = getattr(instance, "websocket_connect", None)
            if websocket_connect is not None:  # the last added is outermost: it runs first
                self.websocket_middleware.insert(0, websocket_connect)
        elif callable(middleware_class):  # pure ASGI middleware: cls(app, **options), called with an ASGI scope
            # native middleware added before it sit inside it: they move into user_middleware (in Python) first
            self._settle_native_middleware(before_asgi=True)
            self._asgi_middleware.append((len(self.user_middleware), middleware_class, args, dict(kwargs)))
            self._asgi_stack = None
        else:
            raise TypeError(
                f"add_middleware({middleware_class!r}): give a middleware class — covet.middleware's CORSMiddleware, "
                "GZipMiddleware, TrustedHostMiddleware, HTTPSRedirectMiddleware, a BaseHTTPMiddleware subclass, or "
                "pure ASGI middleware (a class taking `app` and defining `async __call__(scope, receive, send)`)")

    @property
    def native_middleware(self) -> list[tuple[str, dict[str, Any]]]:
        """The engine's middleware as ``(kind, options)``, the outermost first (the runtime installs them): the
        native middleware added after the last Python middleware."""
        self._settle_native_middleware()
        installed: list[NativeMiddleware] = list(reversed(self._native_middleware))
        from .ratelimit import route_limit_middleware  # deferred: only apps served by the engine need it

        route_limits = route_limit_middleware(self, installed)  # @rate_limit / Depends(Limit) on routes
        if route_limits is not None:
            installed.insert(0, route_limits)
        return [(m.native_kind, m.native_options()) for m in installed]

    def add_http_middleware(self, func: Middleware) -> None:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("middleware must be an async function: async def mw(request, call_next)")
        self.user_middleware.append(func)
        self._settle_native_middleware()
        self._asgi_stack = None

    def _settle_native_middleware(self, before_asgi: bool = False) -> None:
        """Native middleware that a Python middleware was added after (so it is inside that one, in FastAPI's
        order) move into `user_middleware` at the position they were added at, as their Python implementation:
        the engine runs only those outside every Python middleware."""
        count = len(self.user_middleware)
        positions = self._native_positions
        # before_asgi: a pure ASGI middleware is being added, outside every native one added so far (a native one
        # added later settles at a position >= the ASGI one's, so theirs never shift)
        while positions and (positions[0] < count or before_asgi):
            # the earliest added first: each goes in before the Python middleware added after it, and after
            # the native ones moved before it (their positions then shift by one)
            position = positions.pop(0)
            middleware = self._native_middleware.pop(0)
            middleware.behind_http_middleware = _streams_responses(self.user_middleware[:position])
            self.user_middleware.insert(position, middleware.python_middleware())
            positions[:] = [p + 1 for p in positions]
            count += 1
        streamed = _streams_responses(self.user_middleware)
        for middleware in self._native_middleware:
            middleware.behind_http_middleware = streamed

    # -- ASGI -------------------------------------------------------------------------------------------
    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        """The app as an ASGI 3 application (``uvicorn module:app``, or mounted in a Starlette/FastAPI app):
        ``http`` (routes, middleware, exception handlers, streaming, background tasks), ``websocket`` (the
        app's WebSocket routes) and ``lifespan`` (startup/shutdown handlers and ``lifespan=``), through its pure
        ASGI middleware if any (`covet.asgi`). Without the engine, StaticFiles mounts and the native
        middleware (CORS, GZip, TrustedHost, HTTPSRedirect) are not served: add them in the outer ASGI app."""
        await asgi.serve_errors(self, self.asgi_stack(), scope, receive, send)

    def asgi_stack(self) -> asgi.ASGIApp:
        """The app's ASGI stack without the outermost 500 layer (the engine's own answers there): its pure ASGI
        middleware around the app (`covet.asgi.build_stack`), built on first use."""
        key = len(self.user_middleware) + len(self._asgi_middleware)
        built = self._asgi_stack
        if built is None or built[0] != key:
            built = self._asgi_stack = (key, asgi.build_stack(self, self._asgi_middleware))
        return built[1]

    def engine_app(self) -> ServedApp:
        """What the engine serves (the runtime asks, `covet.server.serve.Worker`): the app itself, or, when it
        has pure ASGI middleware, `_AsgiServed`: every HTTP request goes through its ASGI stack."""
        if not self._asgi_middleware:
            return self
        return _AsgiServed(self)

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

    # -- operations -----------------------------------------------------------------------------------
    @property
    def grpc_server(self) -> GrpcServer:
        """The app's gRPC server (`covet.grpc.GrpcServer`, made on first use): give it to grpcio-tools' generated
        ``add_XServicer_to_server(servicer, app.grpc_server)``; its services answer on the app's port, over HTTP/2."""
        server = self.__dict__.get("_grpc_server")
        if server is None:
            from covet.grpc import GrpcServer

            server = self.__dict__["_grpc_server"] = GrpcServer(self)
        return server

    def grpc(self, method: str) -> Callable[[F], F]:
        """``@app.grpc("package.Service/Method")``: the function serves that gRPC method; its request and return
        annotations name the protobuf message classes (``AsyncIterator[Message]`` for a stream; docs/grpc.md)."""
        return self.grpc_server.rpc(method)

    def readiness_check(self, func: F) -> F:
        """``@app.readiness_check``: a function (sync or async) that GET /_ready requires to pass (return a true
        value or None; false or an exception is "not ready", 503). The worker runs the checks every few seconds
        on its event loop, off the request path; the probe itself is answered natively."""
        self.readiness_checks.append(func)
        return func

    @property
    def metrics(self) -> Any:
        """The JSON view of the native metrics (``app.metrics.requests_per_second``, ``.latency_p99``,
        ``.active_connections``, ``.cpu_usage``, ``.memory_usage``): see covet.observability.metrics."""
        from covet.observability.metrics import MetricsView  # deferred: only for apps that read it

        view = self.__dict__.get("_metrics_view")
        if view is None:
            view = self.__dict__["_metrics_view"] = MetricsView()
        return view

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
                        try:
                            await self._lifespan_dependencies.aclose()
                        finally:
                            self._lifespan_state = None
            else:
                try:
                    yield
                finally:
                    await self._lifespan_dependencies.aclose()
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
        `covet.tls`); HTTP/2 is on unless ``http2=False``; ``http3=True`` adds HTTP/3 over QUIC (UDP, same port
        number). SIGHUP reloads the certificates.

        ``root_path="/api/v1"``: served behind a proxy that strips that prefix (``covet run --root-path``).
        """
        if workers != 1:
            from .server.supervisor import Supervisor, WorkerOptions, resolve_workers  # deferred: only a master

            root_path = str(server_options.pop("root_path", ""))
            # /_metrics, /_health, /_ready: the worker processes read them from the environment
            OpsOptions.take(server_options, self).export()
            transport, server_options = TransportOptions.split(server_options)
            engine_kwargs = {o.kwarg for o in ENGINE_OPTIONS}
            unknown = sorted(k for k in server_options if k not in engine_kwargs)
            if unknown:
                raise TypeError(f"options {unknown} are not supported with workers != 1 (engine limits such as "
                                "max_body_bytes=... are; see docs/operations.md)")
            spec, app_dir = _import_string(self)
            compat = sys.modules.get("covet.compat")  # the FastAPI shim: installed here, the workers install it
            options = WorkerOptions(app=spec, host=host, port=port, threads=threads, log_level=log_level,
                                    app_dir=app_dir, transport=transport, engine=dict(server_options),
                                    root_path=check_root_path(root_path, "root_path"),
                                    compat="fastapi" if compat is not None and compat.installed() else None)
            Supervisor(options, resolve_workers(workers)).run()
            return
        configure_logging(log_level)
        app: ServedApp = self  # the runtime sees only this interface
        with exit_on_listen_error():  # a taken port is a one-line message, not a traceback
            serve(app, host, port, threads, **server_options)

    def __repr__(self) -> str:
        return f"<CovetPy {self.title!r} with {len(self.router.routes)} routes>"


class _AsgiServed(CovetPy):
    """The engine's view of an app with pure ASGI middleware: one route takes every HTTP request and runs the
    app's ASGI stack (``app(scope, receive, send)``) for it (`covet.asgi.call_asgi`); the app's static mounts,
    WebSocket routes, native middleware, lifespan and 500 handler are served as they are."""

    def __init__(self, app: CovetPy) -> None:
        super().__init__(openapi_url=None, redirect_slashes=False, auto_head=True, sync_handlers=app.sync_handlers,
                         thread_pool_size=app.thread_pool_size, eager_async=app.eager_async)
        self.app = app
        self.state = app.state
        self.readiness_checks = app.readiness_checks
        self.ops_options = app.ops_options
        self.dependency_overrides = app.dependency_overrides
        self._lifespan_dependencies = app._lifespan_dependencies
        self._native_middleware = app._native_middleware
        self.static_mounts = app.static_mounts
        self.websocket_middleware = app.websocket_middleware
        for key in (Exception, 500):
            if key in app.exception_handlers:
                self.exception_handlers[key] = app.exception_handlers[key]
        for ws_route in app.websocket_routes:
            self.router.add_listed(ws_route)

        async def asgi_stack(request: Request) -> Response:
            scope = request.scope
            del scope["path_params"]  # the server's scope: routing (and its path parameters) comes later
            return await asgi.call_asgi(app.asgi_stack(), scope, request)

        self.router.add_listed(Route.build("/{covet_asgi:path}", asgi_stack, METHODS, include_in_schema=False,
                                           response_model=None))

    @property
    def lifespan_state(self) -> Optional[dict[str, Any]]:
        return self.app.lifespan_state

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        async with self.app.lifespan_context():
            yield

    def set_publisher(self, publish: Optional[Publisher]) -> None:
        self.app.set_publisher(publish)


def _root_path(request: Request) -> str:
    """The ASGI ``root_path`` the app is served under (behind a proxy that strips a prefix), without its final
    slash: prefixed to the URLs the docs pages load, as FastAPI does."""
    return request.root_path.rstrip("/")


def _docs_asset_endpoint(name: str) -> Callable[[Request], Awaitable[Response]]:
    """The handler serving bundled docs asset `name` (ETag, Cache-Control, 304 on a matching If-None-Match)."""

    async def docs_asset(request: Request) -> Response:
        return openapi_docs.docs_asset_response(name, request.headers.get("if-none-match"))

    docs_asset.__name__ = f"docs_asset_{name.replace('-', '_').replace('.', '_')}"
    return docs_asset


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


def _streams_responses(middleware: Sequence[Middleware]) -> bool:
    """Is one of these an HTTP middleware of the BaseHTTPMiddleware kind (``@app.middleware("http")``), which passes
    responses on as a stream in FastAPI? (Not the Python forms of the native middleware: they mark themselves
    ``passes_response_whole``.)"""
    return any(not getattr(m, "passes_response_whole", False) for m in middleware)
