"""`GrpcServer`: grpcio servicers served by a CovetPy app, on its listener, next to its REST routes.

``add_XServicer_to_server(servicer, server)`` (grpcio-tools' generated code) registers the service's methods
through `add_generic_rpc_handlers` / `add_registered_method_handlers`; each service becomes one route of the
app, ``POST /<package.Service>/{method}``, whose response runs the call (`covet.grpc.call`). Requests whose
content-type is not ``application/grpc`` get 415, as the gRPC spec asks; an unknown method of a known service
gets the gRPC status UNIMPLEMENTED; an unknown service is the app's 404, which gRPC clients read as UNIMPLEMENTED.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Optional, TypeVar

from covet.requests import BufferedBody, Request, StreamedBody
from covet.responses import Response

from .call import Call, Method
from .status import StatusCode, status_fields
from .typed import rpc_method_handler, split_method_name
from .web import WebCall, content_kind
from .wire import MessageReader, Metadata, WireError, parse_timeout, read_head

__all__ = ["GrpcServer", "server", "HandlerCallDetails"]

logger = logging.getLogger("covet.grpc")

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024  # grpcio's default max_receive_message_length
# Paths whose Method (from a generic handler or an interceptor) is kept for the next call; past it the store starts
# over (a catch-all generic handler would otherwise keep one per path a client makes up).
RESOLVED_LIMIT = 1024


class HandlerCallDetails(NamedTuple):
    """What a generic handler's ``service()`` is given (grpcio's ``grpc.HandlerCallDetails``)."""

    method: str
    invocation_metadata: Metadata


class GrpcServer:
    """The object grpcio's generated ``add_XServicer_to_server(servicer, server)`` takes.

    ``GrpcServer(app)`` (a CovetPy app, or anything with its ``add_api_route``) serves the services on `app`'s
    listener (h2c, or HTTP/2 over TLS when the app is served with a certificate); ``app.grpc_server`` is the app's
    own, made on first use.
    `max_receive_message_length` (4 MiB by default, as grpcio) and `max_send_message_length` (unlimited) bound a
    message; `compression` (``grpc.Compression.Gzip``, ``"gzip"``) compresses responses for clients that accept it.
    """

    def __init__(self, app: Any, *, max_receive_message_length: int = DEFAULT_MAX_RECEIVE,
                 max_send_message_length: Optional[int] = None, compression: Any = None,
                 interceptors: Iterable[Any] = ()) -> None:
        self.app = app
        self._interceptors = list(interceptors)
        kinds = {inspect.iscoroutinefunction(i.intercept_service) for i in self._interceptors}
        if len(kinds) > 1:
            raise TypeError("interceptors must be all grpc.aio.ServerInterceptor (async intercept_service) or all "
                            "grpc.ServerInterceptor (sync), not a mix")
        self._async_interceptors = kinds == {True}
        if max_receive_message_length <= 0:
            raise ValueError("max_receive_message_length must be positive")
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length
        self.compression = compression
        self._methods: dict[str, Method] = {}
        self._resolved: dict[str, Method] = {}  # path -> the Method of the handler it last resolved to (not by name)
        self._generic: list[Any] = []
        self._chain = self._interceptor_chain()
        self._routed: set[str] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self.health: Any = None  # the grpc.health.v1 servicer, once enable_health() added it

    # -- grpcio's registration API ------------------------------------------------------------------------------
    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[Any]) -> None:
        """Adds ``grpc.GenericRpcHandler`` objects: ``service(handler_call_details)`` gives a method's handler."""
        for handler in generic_rpc_handlers:
            if not callable(getattr(handler, "service", None)):
                raise TypeError(f"{handler!r} is not a gRPC generic RPC handler (it has no service() method)")
            self._generic.append(handler)
            service_name = getattr(handler, "service_name", None)
            self._route(service_name() if callable(service_name) else None)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, Any]) -> None:
        """Adds a service's methods by name (``{"Method": grpc.unary_unary_rpc_method_handler(...), ...}``)."""
        for name, handler in method_handlers.items():
            self._methods[f"/{service_name}/{name}"] = Method(handler)
        self._route(service_name)

    def rpc(self, name: str) -> Callable[[F], F]:
        """Decorator: the function serves the method `name` (``"package.Service/Method"``), its messages and shape
        read from its annotations (`covet.grpc.typed`)."""
        service, method = split_method_name(name)

        def register(function: F) -> F:
            self.add_registered_method_handlers(service, {method: rpc_method_handler(function, name)})
            return function

        return register

    def service_names(self) -> list[str]:
        """The services registered so far, by full name (``package.Service``)."""
        return sorted(name for name in self._routed if name)

    # -- the standard services (covet.grpc.services) -------------------------------------------------------------
    def enable_health(self) -> Any:
        """Adds ``grpc.health.v1.Health``, SERVING while the server is ready (see `covet.grpc.services`)."""
        from .services import enable_health

        return enable_health(self)

    def enable_reflection(self, service_names: Optional[Iterable[str]] = None) -> None:
        """Adds server reflection for grpcurl and the like (see `covet.grpc.services`)."""
        from .services import enable_reflection

        enable_reflection(self, service_names)

    def _route(self, service_name: Optional[str]) -> None:
        key = service_name or ""
        if key in self._routed:
            return
        self._routed.add(key)
        path = f"/{service_name}/{{grpc_method}}" if service_name else "/{grpc_service}/{grpc_method}"
        route = self.app.add_api_route(path, self._endpoint, methods=["POST"], include_in_schema=False,
                                       response_model=None)
        if route is not None:
            route.raw = self.serve_native  # the dispatcher's short way, where no HTTP middleware wraps the route

    # -- grpc.aio.Server's lifetime API: the app's server runs the calls -------------------------------------
    def add_insecure_port(self, address: str) -> int:
        raise RuntimeError(_SERVED_BY_APP)

    def add_secure_port(self, address: str, server_credentials: Any) -> int:
        raise RuntimeError(_SERVED_BY_APP)

    def start(self) -> None:
        raise RuntimeError(_SERVED_BY_APP)

    # -- serving --------------------------------------------------------------------------------------------
    def find(self, path: str, metadata: Metadata) -> Optional[Method]:
        """The method for `path` (``/package.Service/Method``): registered ones first, then generic handlers
        (without interceptors: `lookup` applies them)."""
        method = self._methods.get(path)
        if method is not None:
            return method
        handler = self._generic_handler(HandlerCallDetails(path, metadata))
        return self._resolve(path, handler) if handler is not None else None

    def _method(self, path: str, handler: Any) -> Optional[Method]:
        """The `Method` of the handler the interceptors gave for a call to `path`: the registered one when they
        passed it on, else as `_resolve` has it."""
        if handler is None:
            return None
        method = self._methods.get(path)
        if method is not None and method.handler is handler:
            return method
        return self._resolve(path, handler)

    def _resolve(self, path: str, handler: Any) -> Method:
        """The `Method` of a handler a generic handler or an interceptor gave for `path`. They are asked on every
        call (they see its metadata), but a handler given again is not made a Method again: each path keeps the
        Method of the handler it last resolved to."""
        resolved = self._resolved
        method = resolved.get(path)
        if method is not None and method.handler is handler:
            return method
        method = Method(handler)
        if len(resolved) >= RESOLVED_LIMIT:
            resolved.clear()
        resolved[path] = method
        return method

    def _generic_handler(self, details: HandlerCallDetails) -> Any:
        for generic in self._generic:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None

    def _handler(self, details: HandlerCallDetails) -> Any:
        method = self._methods.get(details.method)
        return method.handler if method is not None else self._generic_handler(details)

    def _interceptor_chain(self) -> Optional[Callable[[HandlerCallDetails], Any]]:
        """The interceptors around `_handler`, the first given outermost, made once: a call passes its own
        HandlerCallDetails down (each interceptor gives the next one the details it chooses, as grpcio does)."""
        if not self._interceptors:
            return None
        if self._async_interceptors:
            async_chain: Callable[[Any], Any] = _async_terminal(self._handler)
            for interceptor in reversed(self._interceptors):
                async_chain = _async_step(interceptor, async_chain)
            return async_chain
        chain: Callable[[Any], Any] = self._handler
        for interceptor in reversed(self._interceptors):
            chain = functools.partial(interceptor.intercept_service, chain)
        return chain

    async def lookup(self, path: str, metadata: Metadata) -> Optional[Method]:
        """`find` through the interceptors (grpcio's ``intercept_service(continuation, handler_call_details)``,
        the first given outermost): each may return another handler (wrapping the method) or None (refusing)."""
        chain = self._chain
        if chain is None:
            return self.find(path, metadata)
        handler = chain(HandlerCallDetails(path, metadata))
        if self._async_interceptors:
            handler = await handler
        return self._method(path, handler)

    async def _endpoint(self, request: Request) -> Response:
        """The route's endpoint, where HTTP middleware wraps the route (else the dispatcher runs `serve_native`)."""
        return GrpcResponse(self, request)

    async def serve_native(self, native: Any, responder: Any, executor: Any) -> None:
        """Runs the call straight from the engine's request (the route's ``raw`` pipeline: no Request object)."""
        body = StreamedBody(native) if getattr(native, "streaming", False) else BufferedBody(native.body)
        await self.serve(native.headers, native.path, native.client, body, native, responder, executor,
                         native.http_version == "2")

    async def serve(self, headers: list[tuple[str, str]], path: str, client: Any, body: Any, native: Any,
                    responder: Any, executor: Any, http2: bool) -> None:
        """Runs the call the request asks for and answers it on `responder`. `body` has `receive()` (the next
        chunk, b"" at the end) and `consumed` (covet.requests' body sources); `native` is the engine's request
        (None: no disconnect watch)."""
        head = read_head(headers)
        content_type = head.content_type
        kind = content_kind(content_type)
        if not kind:
            responder.send(415, [("content-type", "text/plain; charset=utf-8")],
                           b"gRPC requests need content-type application/grpc (HTTP/2), or application/grpc-web\n")
            return
        web = kind != "grpc"
        try:
            if head.error is not None:
                raise head.error
            deadline = time.monotonic() + parse_timeout(head.timeout) if head.timeout else None
            method = await self.lookup(path, head.metadata)
        except WireError as exc:
            _refuse(responder, web, content_type, int(exc.code), str(exc))
            return
        except Exception as exc:  # an interceptor or a generic handler failed
            logger.exception("gRPC method lookup for %s failed", path)
            _refuse(responder, web, content_type, int(StatusCode.UNKNOWN), f"Exception calling application: {exc}")
            return
        if method is None:
            _refuse(responder, web, content_type, int(StatusCode.UNIMPLEMENTED), f"Method not found: {path}")
            return
        reader = MessageReader(self.max_receive_message_length, head.encoding)
        arguments = (method, path, client, body, native, responder, head.metadata, deadline, reader, head.accepted,
                     self.max_send_message_length, self.compression, http2)
        call = WebCall(*arguments, text=kind == "web-text") if web else Call(*arguments)
        await call.run(executor)


class GrpcResponse(Response):
    """The route's response where HTTP middleware wraps it: its `_send` runs the call."""

    _streams = True

    def __init__(self, server: GrpcServer, request: Request) -> None:
        super().__init__(None, status_code=200, media_type="application/grpc")
        self._server = server
        self._request = request

    async def _send(self, responder: Any, executor: Any) -> None:
        request = self._request
        native = getattr(request, "_native", None) or getattr(request, "_probe", None)
        await self._server.serve(list(request.headers.items()), request.url.path, request.client,
                                 _StreamSource(request), native, responder, executor, request.http_version == "2")


class _StreamSource:
    """`Request.stream()` as a body source (`receive`, `consumed`): what middleware left of the body."""

    __slots__ = ("_chunks", "consumed")

    def __init__(self, request: Request) -> None:
        self._chunks = request.stream().__aiter__()
        self.consumed = False

    async def receive(self) -> bytes:
        try:
            chunk: bytes = await self._chunks.__anext__()
        except StopAsyncIteration:
            chunk = b""
        if not chunk:
            self.consumed = True
        return chunk


def _async_terminal(find: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def terminal(details: Any) -> Any:
        return find(details)

    return terminal


def _async_step(interceptor: Any, continuation: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def step(details: Any) -> Any:
        return await interceptor.intercept_service(continuation, details)

    return step


def _refuse(responder: Any, web: bool, content_type: str, code: int, details: str) -> None:
    """A call that cannot start, answered with its status only (Trailers-Only; gRPC-Web: the status in the
    headers too, which its clients read when the body is empty)."""
    responder.send(200, [("content-type", content_type if web else "application/grpc"),
                         *status_fields(code, details)], b"")


_SERVED_BY_APP = ("a covet.grpc.GrpcServer is served by its CovetPy app, on the app's port: run the app "
                  "(`covet run module:app`); there is no port of its own to add or server to start")


def server(app: Any, **options: Any) -> GrpcServer:
    """A `GrpcServer` for `app` (the name mirrors ``grpc.aio.server()``)."""
    return GrpcServer(app, **options)
