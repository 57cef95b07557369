"""Hosting an ASGI 3 application on the native engine: `AsgiHost` (``covet run module:app`` for a Starlette, FastAPI,
Litestar or Django app, or a bare ``async def app(scope, receive, send)``; see covet.server.hosted).

The engine routes every path and method to one catch-all route (and every WebSocket upgrade to one catch-all
WebSocket route); `AsgiDispatcher` takes the requests in batches on the loop thread and runs each one's
``app(scope, receive, send)`` as the request's Task itself, started eagerly where the loop allows (no wrapper
coroutine, no extra Task): an app that answers without waiting has answered when its Task's first step returns.
What happens after (a missing response, an exception, a response cut short) is settled by the Task's done callback,
as uvicorn does: no response -> 500 and a log line; an exception before the response started -> 500 and the
traceback logged; an exception (or a return) after it started -> the response is cut short (the connection closes).

`HttpCycle` is one request: the scope (built once, from the engine's request), ``receive`` (the body whole, or
streamed from the engine with back-pressure: the engine reads on only as chunks are taken; then
``http.disconnect`` once the client is gone or the response is complete) and ``send`` (a single-body response is
one ``responder.send``; ``more_body`` streams through the engine's flow control, so ``send`` waits while the client
reads slowly; ``http.response.pathsend`` is sent from the file by the engine; ``http.response.trailers`` and
``http.response.early_hint`` where the engine has them). `WebSocketCycle` is one WebSocket connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Optional, Union

from covet import _events
from covet.concurrency import TaskSet, eager_start_available, start_task
from covet.logger import request_ids
from covet.routing import METHODS
from covet.server.dispatch import EngineDriver
from covet.server.engine import Engine, Responder, WebSocketEvent, native_module, request_gone_types
from covet.server.hosted import RequestGate, StartupFailed, span_headers

from .types import ASGIApp, Message

__all__ = ["AsgiHost", "AsgiDispatcher", "ClientDisconnected", "HttpCycle", "WebSocketCycle"]

logger = logging.getLogger("covet")

CATCH_ALL = "/{covet_unmatched:path}"
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_ERROR_HEADERS = [("content-type", "text/plain; charset=utf-8")]
_ERROR_BODY = b"Internal Server Error"
_TLS_VERSIONS = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303, "TLSv1.1": 0x0302, "TLSv1": 0x0301}
_FLOW_WAIT, _FLOW_CLOSED = 1, 2  # NativeResponder.flow_state()
# Where the response of one request is: nothing sent, head given (not yet out), body streaming, body ended and
# trailers pending, complete.
_INIT, _STARTED, _STREAMING, _TRAILERS, _DONE = range(5)


class ClientDisconnected(OSError):
    """``send`` on a connection the client has closed (the ASGI spec: a server-specific subclass of OSError)."""


def _latin1(value: Union[bytes, str]) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _str_headers(headers: Any) -> list[tuple[str, str]]:
    return [(_latin1(name), _latin1(value)) for name, value in headers]


def _tls_extension(tls: dict[str, Any]) -> dict[str, Any]:
    """The engine's TLS session as the ASGI ``tls`` extension (with the engine's own names kept as well)."""
    verified = bool(tls.get("client_cert_verified"))
    out = dict(tls)
    out.update(server_cert=None, client_cert_chain=[], client_cert_name=tls.get("client_cert_name"),
               client_cert_error=None if verified or tls.get("client_cert_name") is None else "not verified",
               tls_version=_TLS_VERSIONS.get(str(tls.get("tls_version"))), cipher_suite=None,
               cipher_name=tls.get("cipher_suite"))
    return out


def _present_span(scope: dict[str, Any], ids: tuple[Any, ...]) -> None:
    """The scope's traceparent/tracestate name the engine's span of the request (`span_headers`)."""
    header = span_headers(ids)
    if header is None:
        return
    traceparent, tracestate = header
    headers = [h for h in scope["headers"] if h[0] != b"traceparent" and h[0] != b"tracestate"]
    headers.append((b"traceparent", traceparent.encode("ascii")))
    if tracestate:
        headers.append((b"tracestate", tracestate.encode("latin-1")))
    scope["headers"] = headers


def _awaiting(app: Any) -> ASGIApp:
    async def call(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    return call


class AsgiHost:
    """An ASGI 3 application served by the engine (a `covet.server.hosted.HostedApp`)."""

    interface = "asgi3"

    def __init__(self, app: ASGIApp, *, max_message_bytes: int = 16 * 1024 * 1024) -> None:
        """`max_message_bytes`: the largest WebSocket message accepted (uvicorn's ``--ws-max-size``, 16 MiB)."""
        self.wrapped: Any = app  # as given (covet.observability.setup_observability marks it)
        if not (inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(getattr(app, "__call__", None))):
            app = _awaiting(app)  # a sync callable returning an awaitable: its Task needs a coroutine
        self.app = app
        self.state: dict[str, Any] = {}  # the lifespan state; each request's scope gets a shallow copy
        self.max_message_bytes = max_message_bytes
        self.deferred_accept = False  # the engine sends the 101 when the app accepts (websocket.http.response)

    # -- HostedApp ----------------------------------------------------------------------------------------
    def register(self, server: Engine) -> None:
        for method in METHODS:
            server.add_route(method, CATCH_ALL, 0)
        options: dict[str, Any] = {"max_message_bytes": self.max_message_bytes, "idle_timeout_ms": 60_000,
                                   "ping_interval_ms": 20_000, "max_send_buffer": 4 * 1024 * 1024,
                                   "permessage_deflate": True, "subprotocols": []}
        add_websocket_route: Any = server.add_websocket_route
        try:  # an engine that lets the app decide the handshake (accept with a subprotocol, or deny)
            add_websocket_route(CATCH_ALL, 0, defer_accept=True, **options)
            self.deferred_accept = True
        except TypeError:
            add_websocket_route(CATCH_ALL, 0, **options)

    def lifespan_context(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._lifespan()

    def dispatcher(self, server: Engine, loop: asyncio.AbstractEventLoop, root_path: str,
                   gate: Optional[RequestGate] = None) -> AsgiDispatcher:
        return AsgiDispatcher(self, server, loop, root_path, gate)

    # -- lifespan -----------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        """The ASGI lifespan protocol around the serving period, as uvicorn's ``--lifespan auto``: an app that
        raises on the lifespan scope before answering startup does not support it and is served anyway."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        startup: asyncio.Future[Optional[str]] = loop.create_future()  # None: complete; str: failed (message)
        shutdown: asyncio.Future[Optional[str]] = loop.create_future()
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}

        async def receive() -> Message:
            return await inbox.get()

        async def send(message: Message) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete" and not startup.done():
                startup.set_result(None)
            elif kind == "lifespan.startup.failed" and not startup.done():
                startup.set_result(str(message.get("message", "")) or "lifespan.startup.failed")
            elif kind == "lifespan.shutdown.complete" and not shutdown.done():
                shutdown.set_result(None)
            elif kind == "lifespan.shutdown.failed" and not shutdown.done():
                shutdown.set_result(str(message.get("message", "")) or "lifespan.shutdown.failed")
            else:
                raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:
                if not startup.done():  # raised before answering startup: no lifespan support (uvicorn's auto)
                    logger.info("ASGI 'lifespan' protocol appears unsupported (%s: %s); serving without it",
                                type(exc).__name__, exc)
                    startup.set_result(None)
                    return
                if startup.result() is not None:
                    return  # the failure is reported by the startup
                logger.error("exception in the ASGI 'lifespan' protocol", exc_info=exc)
            finally:
                for future in (startup, shutdown):
                    if not future.done():
                        future.set_result(None)

        task = loop.create_task(run())
        await inbox.put({"type": "lifespan.startup"})
        failure = await startup
        if failure is not None:
            await asyncio.gather(task, return_exceptions=True)
            raise StartupFailed(failure)
        try:
            yield
        finally:
            if not task.done():
                await inbox.put({"type": "lifespan.shutdown"})
                failed = await shutdown
                if failed is not None:
                    logger.error("application shutdown failed: %s", failed)
                if not task.done():
                    task.cancel()
                await asyncio.gather(task, return_exceptions=True)


class AsgiDispatcher(EngineDriver):
    """Starts the ASGI app for each request the engine hands over (`EngineDriver` drives the engine)."""

    def __init__(self, host: AsgiHost, server: Engine, loop: asyncio.AbstractEventLoop, root_path: str,
                 gate: Optional[RequestGate] = None) -> None:
        super().__init__(server, loop)
        self.tasks = _CycleTasks(log_failures=False)  # the cycles' done callbacks handle the outcomes
        self.host = host
        self.app = host.app
        self.root_path = root_path
        self.gate = gate
        self.eager = eager_start_available(loop)
        config = getattr(server, "config", None)
        self.server_address: Optional[tuple[str, int]] = (str(getattr(config, "host", "")), server.port)
        self.tls = bool(getattr(server, "tls", False))
        native: Any = native_module()
        # What every scope shares, for the engine's native scope builder (NativeRequest.asgi_scope): root_path, the
        # server, the lifespan state (copied per scope), the HTTP extensions the responders support (copied too).
        self.shared_scope = native.AsgiScope(root_path, self.server_address, host.state,
                                             _http_extensions(native.NativeResponder), ASGI_VERSION)
        self.websockets: dict[int, WebSocketCycle] = {}
        # What `HttpCycle.send` gives for a message it handled at once: an awaitable that is already complete.
        self.sent: asyncio.Future[None] = loop.create_future()
        self.sent.set_result(None)
        self.websocket_events = self._websocket_events
        self._gone = request_gone_types()

    def dispatch(self, items: Sequence[tuple[int, Any, Responder]]) -> None:
        app = self.app
        loop = self.loop
        tasks = self.tasks
        eager = self.eager
        base = self._base_context
        new_context = base.copy
        gate = self.gate
        # Tracing / access log (covet.server.serve.Worker): the request's ids in its own context.
        context_with = self.context_with if self.trace_ids else None
        ids_of = self.trace_ids_of
        for _, native, responder in items:
            if gate is not None and not gate.enter():
                responder.send(503, _ERROR_HEADERS, b"Service Unavailable")
                continue
            try:
                cycle = HttpCycle(self, native, responder)
            except self._gone as exc:  # the engine refused its streamed body and answered it itself
                logger.info("%s", exc)
                if gate is not None:
                    gate.leave()
                continue
            if context_with is None:
                context = new_context()
            else:  # the request's ids: log records, the app's current OpenTelemetry span
                ids = ids_of(native)
                context = context_with(base, request_ids, ids)
                if ids[0]:
                    _present_span(cycle.scope, ids)
            call: Any = app(cycle.scope, cycle.receive, cycle.send)  # the app's coroutine is the request's Task
            start_task(call, loop, tasks, eager=eager, context=context, on_done=cycle.finished)

    # -- WebSocket ----------------------------------------------------------------------------------------
    def _websocket_events(self, events: Sequence[tuple[int, int, Any, Any, int]]) -> None:
        for _, kind, native, data, code in events:
            key = native.id
            if kind == WebSocketEvent.OPEN:
                cycle = WebSocketCycle(self, native)
                self.websockets[key] = cycle
                call: Any = self.app(cycle.scope, cycle.receive, cycle.send)
                start_task(call, self.loop, self.tasks, eager=self.eager, context=self._base_context.copy(),
                           on_done=cycle.finished)
                continue
            found = self.websockets.get(key)
            if found is None:
                continue
            if kind == WebSocketEvent.MESSAGE:
                found.deliver({"type": "websocket.receive", "text": data} if isinstance(data, str)
                              else {"type": "websocket.receive", "bytes": data})
            elif kind == WebSocketEvent.CLOSE:
                found.closed(code, data or "")
            elif kind == WebSocketEvent.DRAIN:
                found.wake()


class _CycleTasks(TaskSet):
    """The running cycles' Tasks: each cycle's done callback (``finished``) takes its Task out, so a Task has one
    done callback, not two (each is a callback the loop schedules when the Task ends)."""

    def add(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)


def _http_extensions(responder: Any) -> dict[str, Any]:
    """The HTTP scope's ``extensions`` this engine's responders (an instance or the class) support."""
    extensions: dict[str, Any] = {}
    if hasattr(responder, "send_file"):
        extensions["http.response.pathsend"] = {}
    if hasattr(responder, "send_trailers"):
        extensions["http.response.trailers"] = {}
    if hasattr(responder, "early_hint"):
        extensions["http.response.early_hint"] = {}
    return extensions


class HttpCycle:
    """One HTTP request's ``scope``, ``receive`` and ``send``."""

    __slots__ = ("dispatcher", "native", "responder", "scope", "_state", "_status", "_headers", "_trailers",
                 "_pending_trailers", "_body_done", "_flow_waiter")

    def __init__(self, dispatcher: AsgiDispatcher, native: Any, responder: Responder) -> None:
        self.dispatcher = dispatcher
        self.native = native
        self.responder = responder
        # The scope, built at once (the engine's request is gone once the response is sent), natively.
        scope = self.scope = native.asgi_scope(dispatcher.shared_scope)
        if dispatcher.tls:
            tls = native.tls
            if tls is not None:
                scope["extensions"]["tls"] = _tls_extension(tls)
        self._state = _INIT
        self._status = 200
        self._headers: Any = ()
        self._trailers = False
        self._pending_trailers: Optional[list[tuple[str, str]]] = None
        self._body_done = False
        self._flow_waiter: Optional[asyncio.Future[None]] = None

    # -- receive --------------------------------------------------------------------------------------------
    async def receive(self) -> Message:
        if not self._body_done:
            native = self.native
            if not native.streaming:
                self._body_done = True
                return {"type": "http.request", "body": native.body, "more_body": False}
            while True:
                result = native.read_body()
                if result is None:  # nothing yet: the engine reports news for this body through take_body()
                    await _events.wait(native.body_id)
                    continue
                if result.__class__ is tuple:  # the client went away, or the engine refused the rest (answered)
                    self._body_done = True
                    return {"type": "http.disconnect"}
                if not result:
                    self._body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return {"type": "http.request", "body": result, "more_body": True}
        # The body is read: the next message is the disconnect, once the client is gone or the response complete.
        # The engine watches the exchange from the first wait on (no timer): its end (the client closed the
        # connection or reset the stream, or the response completed) comes as an event with the flow's id.
        while not self._gone():
            await self._wait_flow()
        return {"type": "http.disconnect"}

    def _gone(self) -> bool:
        """Whether the exchange is over; if not, the engine is armed to report its end (`_wait_flow` waits)."""
        if self._state == _DONE:
            return True
        try:
            return bool(self.native.watch_disconnect())
        except Exception:  # the engine's request is gone (RequestGone): so is its client
            return True

    def _client_gone(self) -> bool:
        """Whether the client is gone (a request the engine refused or dropped counts as gone)."""
        try:
            return bool(self.native.disconnected)
        except Exception:  # the engine's request is gone (RequestGone): so is its client
            return True

    async def _wait_flow(self) -> None:
        """Waits for the engine's next news about this exchange's flow (room to send, or closed); ``receive``
        (waiting for the disconnect) and ``send`` (waiting for room) may wait at once: they share one future."""
        waiter = self._flow_waiter
        if waiter is None or waiter.done():
            waiter = self._flow_waiter = self.dispatcher.loop.create_future()
            _events.WAITERS[self.responder.flow_id] = waiter  # type: ignore[attr-defined]
        await asyncio.shield(waiter)

    # -- send -----------------------------------------------------------------------------------------------
    def send(self, message: Message) -> Awaitable[None]:
        """ASGI ``send``. The common messages, a response's start and then its one body, are handled here at once
        and give an awaitable that is already complete (no coroutine to make and run per message); the others
        (a streamed body, trailers, pathsend, early hints, a message out of order) go to the coroutine `_send`."""
        state = self._state
        if state == _INIT:
            if message["type"] == "http.response.start":
                self._status = int(message["status"])
                headers = message.get("headers", ())
                self._headers = headers if headers.__class__ is list else list(headers)
                self._trailers = bool(message.get("trailers", False))
                self._state = _STARTED
                return self.dispatcher.sent
        elif (state == _STARTED and not self._trailers and message["type"] == "http.response.body"
              and not message.get("more_body", False)):
            body = message.get("body", b"")
            self._state = _DONE
            try:
                self.responder.send(self._status, self._headers, body if body.__class__ is bytes else bytes(body))
            except ValueError:
                self._state = _INIT  # a header refused (CR, LF, NUL): nothing went out; finished() answers 500
                raise
            return self.dispatcher.sent
        return self._send(message)

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        state = self._state
        if state == _INIT:
            if kind == "http.response.start":
                self._status = int(message["status"])
                headers = message.get("headers", ())
                self._headers = headers if headers.__class__ is list else list(headers)
                self._trailers = bool(message.get("trailers", False))
                self._state = _STARTED
                return
            if kind == "http.response.early_hint":
                early_hint = getattr(self.responder, "early_hint", None)
                if early_hint is not None and not self.native.disconnected:
                    links = message.get("links")
                    hints = ([("link", _latin1(link)) for link in links] if links is not None
                             else _str_headers(message.get("headers", ())))
                    early_hint(hints)
                return
            raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
        if state == _STARTED:
            if kind == "http.response.body":
                body = message.get("body", b"")
                more = message.get("more_body", False)
                try:
                    if not more and not self._trailers:
                        self._state = _DONE
                        self.responder.send(self._status, self._headers,
                                            body if body.__class__ is bytes else bytes(body))
                        return
                    self.responder.start_stream(self._status, self._headers)
                except ValueError:
                    self._state = _INIT  # a header the engine refuses (CR, LF, NUL): nothing went out; 500 follows
                    raise
                self._state = _STREAMING
                if body:
                    await self._write(bytes(body))
                if not more:
                    self._end_body()
                return
            if kind == "http.response.pathsend":
                path = os.fspath(message["path"])
                size = os.stat(path).st_size
                self._state = _DONE
                send_file: Any = self.responder.send_file  # type: ignore[attr-defined]
                send_file(self._status, self._headers, path, 0, size)
                return
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
        if state == _STREAMING:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
            body = message.get("body", b"")
            if body:
                await self._write(bytes(body))
            if not message.get("more_body", False):
                self._end_body()
            return
        if state == _TRAILERS:
            if kind != "http.response.trailers":
                raise RuntimeError(f"Expected ASGI message 'http.response.trailers', but got {kind!r}.")
            trailers = (self._pending_trailers or []) + _str_headers(message.get("headers", ()))
            self._pending_trailers = trailers
            if not message.get("more_trailers", False):
                self._state = _DONE
                send_trailers = getattr(self.responder, "send_trailers", None)
                if send_trailers is not None:
                    send_trailers(trailers)
                else:
                    self.responder.end()
            return
        raise RuntimeError(f"Unexpected ASGI message {kind!r} sent, after response already completed.")

    def _end_body(self) -> None:
        if self._trailers:  # http.response.trailers comes next
            self._state = _TRAILERS
        else:
            self._state = _DONE
            self.responder.end()

    async def _write(self, chunk: bytes) -> None:
        responder: Any = self.responder
        if responder.write(chunk) is False:
            raise ClientDisconnected("the client went away")
        while True:
            flow = responder.flow_state()
            if flow == _FLOW_WAIT:  # over the engine's send buffer: wait until the client has read some
                await self._wait_flow()
                continue
            if flow == _FLOW_CLOSED:
                raise ClientDisconnected("the client went away")
            return

    # -- the end of the app's Task ---------------------------------------------------------------------------
    def finished(self, task: asyncio.Task[Any]) -> None:
        dispatcher = self.dispatcher
        dispatcher.tasks.tasks.discard(task)
        gate = dispatcher.gate
        if gate is not None:
            gate.leave()
        state = self._state
        failure = asyncio.CancelledError() if task.cancelled() else task.exception()
        if state == _DONE:
            if failure is not None and not isinstance(failure, (asyncio.CancelledError, ClientDisconnected)):
                logger.error("Exception in ASGI application (after its response was sent)", exc_info=failure)
            return
        if state == _TRAILERS and failure is None:  # returned without the trailers: the body is complete
            self._state = _DONE
            self.responder.end()
            return
        responder: Any = self.responder
        where = f"{self.scope['method']} {self.scope['raw_path'].decode('latin-1')}"
        if failure is not None and not isinstance(failure, (asyncio.CancelledError, ClientDisconnected)):
            logger.error("Exception in ASGI application (%s)", where, exc_info=failure)
        elif failure is None:
            # An app whose client went away may return without answering (Django's ASGIHandler does): nobody is
            # left to see a 500, and uvicorn logs nothing then.
            level = logging.DEBUG if self._client_gone() else logging.ERROR
            logger.log(level, "ASGI callable returned without %s response (%s)",
                       "starting" if state == _INIT else "completing", where)
        try:
            if state == _INIT:
                if not responder.answered:
                    responder.send(500, _ERROR_HEADERS, _ERROR_BODY)
            else:  # the response started: cut it short (the client sees the connection close, not a whole body)
                if state == _STARTED:
                    responder.start_stream(self._status, self._headers)
                responder.abort()
        except Exception:
            logger.debug("could not end the response to %s", where, exc_info=True)
        self._state = _DONE


def _mark_coroutine_function(func: Callable[..., Any]) -> None:
    """Marks `func`, which returns an awaitable, as a coroutine function for the checks libraries make
    (asgiref's and asyncio's iscoroutinefunction; inspect's on Python >= 3.12)."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        mark(func)
    else:
        func._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]


_mark_coroutine_function(HttpCycle.send)


class WebSocketCycle:
    """One WebSocket connection's ``scope``, ``receive`` and ``send`` (the engine's events arrive through
    `deliver`, `closed` and `wake`)."""

    __slots__ = ("dispatcher", "native", "scope", "_inbox", "_waiter", "_connected", "_accepted", "_closed",
                 "_close_code", "_close_reason", "_disconnected", "_denial", "_denial_body", "_drained")

    def __init__(self, dispatcher: AsgiDispatcher, native: Any) -> None:
        self.dispatcher = dispatcher
        self.native = native
        # Built natively, as the HTTP scope (the scheme is "ws", or "wss" under TLS or behind a trusted proxy's).
        scope = self.scope = native.asgi_scope(dispatcher.shared_scope)
        offered = [value.decode("latin-1") for name, value in scope["headers"] if name == b"sec-websocket-protocol"]
        scope["subprotocols"] = [p.strip() for value in offered for p in value.split(",") if p.strip()]
        extensions: dict[str, Any] = {}
        if dispatcher.host.deferred_accept:
            extensions["websocket.http.response"] = {}
        tls = native.tls
        if tls is not None:
            extensions["tls"] = _tls_extension(tls)
        scope["extensions"] = extensions
        self._inbox: collections.deque[Message] = collections.deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._connected = False  # websocket.connect handed out
        self._accepted = False  # the app sent websocket.accept
        self._closed = False  # by either side
        self._close_code = 1005
        self._disconnected = False  # the engine reported the connection closed
        self._close_reason = ""
        self._denial: Optional[tuple[int, list[tuple[str, str]]]] = None
        self._denial_body: list[bytes] = []
        self._drained: Optional[asyncio.Future[None]] = None

    # -- engine events ----------------------------------------------------------------------------------------
    def deliver(self, message: Message) -> None:
        self._inbox.append(message)
        self._wake_receiver()

    def closed(self, code: int, reason: str) -> None:
        self._disconnected = True
        if not self._closed:
            self._closed = True
            self._close_code, self._close_reason = code or 1005, reason
        self._inbox.append({"type": "websocket.disconnect", "code": self._close_code, "reason": self._close_reason})
        self._wake_receiver()
        self.wake()

    def wake(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake_receiver(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- receive ------------------------------------------------------------------------------------------------
    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        while not self._inbox:
            if self._disconnected:  # the disconnect was handed out already: nothing more will come
                return {"type": "websocket.disconnect", "code": self._close_code, "reason": self._close_reason}
            self._waiter = self.dispatcher.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._inbox.popleft()

    # -- send ---------------------------------------------------------------------------------------------------
    async def send(self, message: Message) -> None:
        kind = message["type"]
        native = self.native
        deferred = self.dispatcher.host.deferred_accept
        if self._denial is not None:  # a denial response in progress
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body', but got {kind!r}.")
            self._denial_body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                status, headers = self._denial
                self._closed = True
                native.deny(status, headers, b"".join(self._denial_body))
            return
        if self._closed:
            raise ClientDisconnected(f"the WebSocket is closed (code {self._close_code}): cannot send {kind!r}")
        if not self._accepted:
            if kind == "websocket.accept":
                self._accepted = True
                if deferred:
                    native.accept(message.get("subprotocol") or "", _str_headers(message.get("headers", ())))
                return
            if kind == "websocket.close":
                self._closed = True
                if deferred:
                    native.deny(403, [], b"")
                else:
                    native.close(int(message.get("code", 1000)), message.get("reason") or "")
                return
            if kind == "websocket.http.response.start" and deferred:
                self._denial = (int(message["status"]), _str_headers(message.get("headers", ())))
                return
            raise RuntimeError(f"Expected ASGI message 'websocket.accept', 'websocket.close' or "
                               f"'websocket.http.response.start', but got {kind!r}.")
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                await self._send(native.send_text, text)
            else:
                await self._send(native.send_bytes, bytes(message.get("bytes") or b""))
            return
        if kind == "websocket.close":
            self._closed = True
            native.close(int(message.get("code", 1000)), message.get("reason") or "")
            return
        raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {kind!r}.")

    async def _send(self, send: Any, data: Any) -> None:
        while not send(data):  # refused: closed, or over the send buffer (the engine reports the drain)
            if self._closed or not self.native.is_open:
                raise ClientDisconnected("the WebSocket is closed")
            self._drained = self.dispatcher.loop.create_future()
            try:
                await self._drained
            finally:
                self._drained = None

    def finished(self, task: asyncio.Task[Any]) -> None:
        self.dispatcher.tasks.tasks.discard(task)
        self.dispatcher.websockets.pop(self.native.id, None)
        failure = None if task.cancelled() else task.exception()
        if failure is not None and not isinstance(failure, ClientDisconnected):
            logger.error("Exception in ASGI application (websocket %s)", self.scope["path"], exc_info=failure)
        if self._closed:
            return
        self._closed = True
        try:
            if not self._accepted:  # never accepted: an HTTP answer (500 after an exception, else 403)
                if self.dispatcher.host.deferred_accept:
                    if failure is not None:
                        self.native.deny(500, list(_ERROR_HEADERS), _ERROR_BODY)
                    else:
                        self.native.deny(403, [], b"")
                else:
                    self.native.close(1011 if failure is not None else 1008, "")
            else:  # 1012: the worker is shutting down (the Task was cancelled), as uvicorn
                self.native.close(1011 if failure is not None else 1012 if task.cancelled() else 1000, "")
        except Exception:
            logger.debug("could not close the WebSocket", exc_info=True)
