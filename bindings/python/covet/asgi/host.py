"""A CovetPy app as an ASGI 3 application: `AppHost` serves its ``http``, ``websocket`` and ``lifespan`` scopes.

Requests go through the app's own runtime: routing as the engine routes (`covet.asgi.router`), then the
dispatcher (`covet.server.dispatch`: HTTP middleware, parameters, handlers, exception handlers, rendering,
streaming, background tasks) with the ASGI scope as its request and ASGI messages as its responder
(`covet.asgi.messages`); WebSocket endpoints run as on the engine (`covet.server.websockets`), their messages
carried by ASGI events. So ``uvicorn module:app`` serves a CovetPy app, and any ASGI app can mount one.

Not available without the engine: constant routes answer from Python (the same bytes), `StaticFiles` mounts
(served by the engine only) answer 404, and the engine's native middleware (CORS, GZip, ...) do not run.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import logging
import traceback
from collections.abc import Sequence
from typing import Any, Optional, Union, cast

from covet.concurrency import eager_start_available, start_task
from covet.routing import ConstantRoute, Route, WebSocketRoute
from covet.server.dispatch import SERVER_ERROR_BODY, SERVER_ERROR_HEADERS, Dispatcher
from covet.server.engine import Engine
from covet.server.interface import Middleware, ServedApp
from covet.server.websockets import WebSocketDispatch
from covet.websockets import WebSocket

from .messages import AsgiResponder, ClientGone, ScopeRequest, first_body, route_path
from .router import PythonRouter
from .types import Message, Receive, Scope, Send

__all__ = ["AppHost"]

logger = logging.getLogger("covet")

_JSON = [("content-type", "application/json")]
# The exceptions no handler took, of the request being served (`AppHost.http`): they propagate as in Starlette.
_FAILURES: contextvars.ContextVar[Optional[list[BaseException]]] = contextvars.ContextVar("covet_asgi_failures",
                                                                                          default=None)


async def _propagate(request: Any, exc: Exception) -> Any:
    """The dispatcher's 500 handler under ASGI: records the exception, which `AppHost.http` raises instead of
    sending the response, so that it goes up through the ASGI middleware to the outermost layer (`ServerErrors`
    under an ASGI server, the engine's 500 on the engine) as Starlette's ServerErrorMiddleware sees it."""
    failures = _FAILURES.get()
    if failures is not None:
        failures.append(exc)
    return 500, SERVER_ERROR_HEADERS, SERVER_ERROR_BODY


class _Hub:
    """The engine's part the dispatcher calls besides requests: WebSocket topics (in this process)."""

    embedded = False

    def __init__(self) -> None:
        self.topics: dict[str, dict[int, AsgiWebSocket]] = {}

    def set_output_hook(self, hook: Any) -> None:
        pass

    def ws_subscribe(self, connection: Any, topic: str) -> None:
        self.topics.setdefault(topic, {})[id(connection)] = connection

    def ws_unsubscribe(self, connection: Any, topic: str) -> None:
        members = self.topics.get(topic)
        if members is not None:
            members.pop(id(connection), None)
            if not members:
                del self.topics[topic]

    def ws_publish(self, topic: str, data: Union[str, bytes]) -> int:
        count = 0
        for connection in list(self.topics.get(topic, {}).values()):
            sent = connection.send_text(data) if isinstance(data, str) else connection.send_bytes(data)
            count += bool(sent)
        return count

    def forget(self, connection: AsgiWebSocket) -> None:
        for topic in list(self.topics):
            self.ws_unsubscribe(connection, topic)


class _WebSockets(WebSocketDispatch):
    """The engine's WebSocket dispatch, told when an endpoint accepts (ASGI sends ``websocket.accept`` then)."""

    def accepted(self, websocket: WebSocket) -> None:
        super().accepted(websocket)
        connection = websocket._ws
        if isinstance(connection, AsgiWebSocket):
            connection.accept()


class AsgiWebSocket:
    """An ASGI WebSocket scope with the engine's connection interface (``NativeWebSocket``): what the endpoint
    sends is queued as ASGI messages and sent by `pump`; what the client sends is delivered by `read`."""

    def __init__(self, scope: Scope, path: str, params: dict[str, str], route: WebSocketRoute,
                 hub: _Hub) -> None:
        self.id = id(self)
        self.method = "GET"
        self.path = path
        query: bytes = scope.get("query_string", b"") or b""
        self.query_string = query.decode("latin-1")
        self.target = f"{path}?{self.query_string}" if self.query_string else path
        self.headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope.get("headers", ())]
        self.body = b""
        self.params = params
        client = scope.get("client")
        self.client: tuple[str, int] = (str(client[0]), int(client[1])) if client else ("", 0)
        self.http_version: str = scope.get("http_version", "1.1")
        self.scheme: str = scope.get("scheme", "ws")
        self.tls: Optional[dict[str, Any]] = (scope.get("extensions") or {}).get("tls")
        self._denial_responses = "websocket.http.response" in (scope.get("extensions") or {})
        offered = list(scope.get("subprotocols") or ())
        supported = list(route.options.get("subprotocols", ()))
        self.subprotocol = next((p for p in offered if p in supported), "")
        self.is_open = False  # accepted and not closed
        self.buffered_amount = 0
        self._hub = hub
        self._accepted = False
        self._closed = False
        self._outbox: collections.deque[Message] = collections.deque()
        self._wakeup: Optional[asyncio.Future[None]] = None

    def _push(self, message: Message) -> None:
        self._outbox.append(message)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def accept(self, subprotocol: str = "", headers: Optional[list[tuple[str, str]]] = None) -> None:
        if self._accepted or self._closed:
            return
        if subprotocol:
            self.subprotocol = subprotocol
        self._accepted = self.is_open = True
        self._push({"type": "websocket.accept", "subprotocol": self.subprotocol or None,
                    "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers or ()]})

    def deny(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Refuses the handshake with this response where the server offers the ASGI denial-response extension,
        else with the server's 403 (a close before the accept)."""
        if self._accepted or self._closed:
            return
        if not self._denial_responses:
            self.close(1000, "")
            return
        self._closed = True
        self._push({"type": "websocket.http.response.start", "status": status,
                    "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]})
        self._push({"type": "websocket.http.response.body", "body": body, "more_body": False})

    def send_text(self, text: str) -> bool:
        if not self.is_open:
            return False
        self._push({"type": "websocket.send", "text": text})
        return True

    def send_bytes(self, data: bytes) -> bool:
        if not self.is_open:
            return False
        self._push({"type": "websocket.send", "bytes": bytes(data)})
        return True

    def ping(self, payload: bytes = b"") -> bool:
        return self.is_open  # the ASGI server pings by itself

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self.is_open = False
        # Before accept(): the ASGI server refuses the handshake (HTTP 403), as Starlette does.
        self._push({"type": "websocket.close", "code": code, "reason": reason})

    async def read(self, receive: Receive, websocket: WebSocket) -> None:
        """Delivers the client's messages to the endpoint until it disconnects."""
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "websocket.receive":
                text = message.get("text")
                websocket._deliver(text if text is not None else bytes(message.get("bytes") or b""))
            elif kind == "websocket.disconnect":
                self.is_open = False
                self._closed = True
                websocket._closed(int(message.get("code", 1005)), str(message.get("reason") or ""))
                return

    async def pump(self, send: Send, done: asyncio.Future[Any]) -> None:
        """Sends the queued messages until the connection is closed or `done` (the endpoint) finished."""
        outbox = self._outbox
        while True:
            if outbox:
                message = outbox.popleft()
                try:
                    await send(message)
                except Exception:  # the client is gone (the server raises on a send after the disconnect)
                    self.is_open = False
                    self._closed = True
                    return
                if message["type"] in ("websocket.close", "websocket.http.response.body"):
                    return
                continue
            if done.done():
                return
            self._wakeup = asyncio.get_running_loop().create_future()
            await asyncio.wait({self._wakeup, done}, return_when=asyncio.FIRST_COMPLETED)
            self._wakeup = None


class AppHost:
    """Serves one app's ASGI scopes on one event loop (made at the first scope on that loop)."""

    def __init__(self, app: ServedApp, loop: asyncio.AbstractEventLoop, middleware: Sequence[Middleware]) -> None:
        """`middleware`: the app's HTTP middleware functions the dispatcher runs (those added inside any pure
        ASGI middleware; `covet.asgi.build_stack` wraps the others)."""
        self.app = app
        self.middleware = list(middleware)
        self.loop = loop
        self.hub = _Hub()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=app.thread_pool_size,
                                                              thread_name_prefix="covet-asgi")
        self.router = PythonRouter((method, pattern, route)
                                   for method, pattern, route, _ in app.router.native_registrations())
        self.ws_routes = list(app.websocket_routes)
        self.ws_router = PythonRouter(("GET", route.native_pattern, route) for route in self.ws_routes)
        self._dispatchers: dict[str, Dispatcher] = {}
        self.eager = eager_start_available(loop)
        self._websockets: dict[str, _WebSockets] = {}

    def _dispatcher(self, root_path: str) -> Dispatcher:
        dispatcher = self._dispatchers.get(root_path)
        if dispatcher is None:
            dispatcher = self._dispatchers[root_path] = Dispatcher(
                self.app, cast(Engine, self.hub), [], self.loop, self.executor, root_path=root_path)
            dispatcher._error_handler = _propagate
            if len(self.middleware) != len(self.app.user_middleware):  # some run outside pure ASGI middleware
                dispatcher._middleware = list(self.middleware)
                dispatcher._chain = dispatcher._build_chain() if self.middleware else None
        return dispatcher

    def _ws_dispatch(self, root_path: str) -> _WebSockets:
        dispatch = self._websockets.get(root_path)
        if dispatch is None:
            dispatch = self._websockets[root_path] = _WebSockets(
                self.app, cast(Engine, self.hub), self.ws_routes, self.loop, self._dispatcher(root_path).tasks,
                root_path)
        return dispatch

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope.get("method", "GET")
        path = route_path(scope)
        kind, target, params = self.router.match(method, path)
        responder = AsgiResponder(head=method == "HEAD")
        if kind == "not_found":
            responder.send(404, _JSON, b'{"detail":"Not Found"}')
        elif kind == "method_not_allowed":
            responder.send(405, [*_JSON, ("allow", target)], b'{"detail":"Method Not Allowed"}')
        elif isinstance(target, ConstantRoute):
            headers = [("content-type", target.content_type)] if target.content_type else []
            responder.send(target.status_code, [*headers, *target.headers], target.body)
        else:
            assert isinstance(target, Route)
            try:
                body, more = await first_body(receive)
            except ClientGone:
                return
            native = ScopeRequest(scope, path, body, params, receive if more else None)
            root_path: str = scope.get("root_path", "") or ""
            failures: list[BaseException] = []
            responder.failures = failures
            token = _FAILURES.set(failures)
            try:
                dispatcher = self._dispatcher(root_path)
                # Eager where the loop allows (as the engine's requests): a handler that never waits has queued
                # its response when the pump starts.
                handling = start_task(dispatcher._handle(target, native, responder), self.loop, dispatcher.tasks,
                                      eager=self.eager)
            finally:
                _FAILURES.reset(token)
            try:
                await responder.pump(send, handling)
            except BaseException:
                if not handling.done():
                    handling.cancel()
                raise
            await handling  # background tasks and dependency teardown run after the response
            if failures and not responder.started:
                raise failures[0]
            return
        await responder.pump(send, self.loop.create_future())

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message.get("type") != "websocket.connect":
            return
        path = route_path(scope)
        kind, route, params = self.ws_router.match("GET", path)
        if kind != "found":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})  # Starlette: 403 to the handshake
            return
        root_path: str = scope.get("root_path", "") or ""
        dispatch = self._ws_dispatch(root_path)
        connection = AsgiWebSocket(scope, path, params, route, self.hub)
        websocket = WebSocket(connection, self.app, dispatch, root_path)
        running = self.loop.create_task(dispatch._run(route, websocket, connection.id))
        reading = self.loop.create_task(connection.read(receive, websocket))
        try:
            await connection.pump(send, running)
            await running
        finally:
            reading.cancel()
            self.hub.forget(connection)
            if not running.done():
                running.cancel()

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's startup and shutdown (handlers, ``lifespan=``, lifespan-scoped dependencies) around the
        server's serving period."""
        message = await receive()
        if message.get("type") != "lifespan.startup":
            return
        context = self.app.lifespan_context()
        try:
            await context.__aenter__()
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed", "message": _describe(exc)})
            if isinstance(exc, Exception):
                return
            raise
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await context.__aexit__(None, None, None)
        except BaseException as exc:
            await send({"type": "lifespan.shutdown.failed", "message": _describe(exc)})
            if isinstance(exc, Exception):
                return
            raise
        finally:
            self.executor.shutdown(wait=False)
        await send({"type": "lifespan.shutdown.complete"})


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
