"""Per-request work on the event-loop thread: from a queued native request to the response.

`Dispatcher.on_readable` is the event loop's reader callback for the engine's eventfd. It takes the queued
requests in one batch and starts each one's pipeline coroutine in a Task, eagerly where the app and the
event loop allow it: then a handler that never suspends is answered within that callback (see
`concurrency`; ``CovetPy(eager_async=)`` and ``eager=`` on a route choose). The pipeline:

    middleware (outermost = registered last) → parameters → handler → result rendering
    exception handlers (HTTPException, validation errors, registered types) inside the middleware,
    the 500 handler outside it.

Sync handlers run in the app's thread pool unless declared ``inline``. Everything else — middleware,
async handlers, rendering, calls into the engine — runs on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import operator
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Optional, Union

from covet import background as background_tasks
from covet import encoders
from covet.background import BackgroundTask, RequestExtras, request_extras
from covet.concurrency import TaskSet, eager_start_available, start_task
from covet.datastructures import EngineHeaders, MutableHeaders
from covet.exceptions import HTTPException, RequestValidationError, ResponseValidationError
from covet.logger import request_ids
from covet.params import validation_error
from covet.requests import ClientDisconnect, Request, wake_body_readers
from covet.responses import FileResponse, Response, StreamingResponse
from covet.routing import Route, route_pipeline

from .engine import Engine, Responder, native_module, request_gone_types
from .filesend import send_file_region
from .interface import CallNext, Middleware, ServedApp
from .websockets import WebSocketDispatch

__all__ = ["Dispatcher", "EngineDriver", "SERVER_ERROR_HEADERS", "SERVER_ERROR_BODY"]

logger = logging.getLogger("covet")

JSON_HEADERS: list[tuple[str, str]] = [("content-type", "application/json")]


class _Expiring:
    """The responder a timed route's pipeline answers through (`Dispatcher._handle_timed`): once its time is up
    and 503 went out, what the pipeline still sends is dropped and it reads as answered."""

    __slots__ = ("_responder", "expired")

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self.expired = False

    @property
    def answered(self) -> bool:
        return self.expired or self._responder.answered

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._responder, name)
        return _dropped if self.expired and callable(value) else value


def _dropped(*args: Any, **kwargs: Any) -> None:
    return None
# An unhandled exception's answer: Starlette's ServerErrorMiddleware sends this plain text, not JSON.
SERVER_ERROR_HEADERS: list[tuple[str, str]] = [("content-type", "text/plain; charset=utf-8")]
SERVER_ERROR_BODY = b"Internal Server Error"
# (status, headers, body) for the common case, or a Response object.
Rendered = Union[tuple[int, list[tuple[str, str]], bytes], Response]

_NO_BODY_STATUSES = frozenset({204, 304})
_NO_BODY_STATUSES_ALL = frozenset({204, 205, 304})  # with 1xx: statuses a route's result gets no body for
_getrefcount = sys.getrefcount
# References that `_kept` counts to a request (to its `EngineHeaders`) that nobody else kept: the name it is read
# from (the caller's variable; the request's slot) and getrefcount's argument.
_OWN_REFERENCES = 2


def _kept(request: Request) -> bool:
    """Whether `request` or its headers alone are referenced beyond the dispatcher (a background task, a stream's
    generator): then they are copied out of the engine (`Request._detach`) before the answer lets it go. `_handle`
    inlines this test (it runs for every request)."""
    return _getrefcount(request) > _OWN_REFERENCES + 1 or (  # + 1: this function's argument
        type(request._headers) is EngineHeaders and _getrefcount(request._headers) > _OWN_REFERENCES)


def _as_response(rendered: Rendered) -> Response:
    if isinstance(rendered, Response):
        return rendered
    status, headers, body = rendered
    response = Response.__new__(Response)
    response.status_code = status
    response.body = body
    response.media_type = "application/json"
    response.headers = MutableHeaders(headers)
    return response


def _body_allowed(status: int) -> bool:
    """FastAPI's is_body_allowed_for_status_code: no body on 1xx, 204, 205, 304."""
    return not (status < 200 or status in _NO_BODY_STATUSES_ALL)


def _default_body(status: int, detail: Any) -> bytes:
    return b"" if status in _NO_BODY_STATUSES else encoders.dumps({"detail": encoders.jsonable(detail)})


def _context_with_py(context: contextvars.Context, var: contextvars.ContextVar[Any], value: Any) -> contextvars.Context:
    """`covet._native.context_with` for an engine module without it: a copy of `context` with `var` = `value`."""
    copy = context.copy()
    copy.run(var.set, value)
    return copy


def _request_contexts(base: contextvars.Context, trace_ids: Callable[[Any], Any]) -> Optional[Any]:
    """A covet._native.RequestContexts over `base` for covet.logger.request_ids, or None when the engine module has
    none."""
    pool_type = getattr(native_module(), "RequestContexts", None)
    return None if pool_type is None else pool_type(base, request_ids, trace_ids)


# A trivial plan's keyword arguments (none), shared: the handler is called with **{} and cannot keep it.
_NO_ARGUMENTS: Mapping[str, Any] = {}


class EngineDriver:
    """Drives one native server on the thread running `loop`: the engine-facing half of a dispatcher, shared by
    CovetPy's `Dispatcher` and the hosted apps' dispatchers (covet.server.hosted).

    `on_readable` is the loop's reader callback for the engine's fd: with the embedded engine (``threads=0``) it
    runs the engine's I/O (`poll`), then takes the queued requests in one batch and hands them to `dispatch` (the
    subclass's per-request loop), wakes the readers of streamed bodies and the writers waiting for room (the
    engine's body events), passes WebSocket events to `websocket_events`, and (embedded) submits the responses
    completed meanwhile (`flush`). Responses completed later are submitted by a flush scheduled through the
    engine's output hook, once per loop turn.
    """

    def __init__(self, server: Engine, loop: asyncio.AbstractEventLoop, batch: int = 256) -> None:
        self.server = server
        self.loop = loop
        self.batch = batch
        self.tasks = TaskSet()
        # Every request's Task runs in its own copy of this context, and the loop callbacks that take
        # requests run in it: never in a request's context (a flush scheduled from a handler's send would
        # otherwise hand that request's contextvars to the next batch).
        self._base_context = contextvars.copy_context()
        # Tracing or the access log on: each request's context gets the engine's request as covet.logger.request_ids
        # (its trace, span and request ids, read on demand), for log records and the handler's OpenTelemetry span
        # (the Worker sets it).
        self.trace_ids = False
        # What gives a request's ids: the engine's C function (no pybind11 call machinery), else the property.
        self.trace_ids_of: Callable[[Any], Any] = (getattr(native_module(), "trace_ids", None)
                                                   or operator.attrgetter("trace_ids"))
        # A copy of a context with one variable set (the request's, covet.logger.request_ids): the engine's C
        # function (a copy, then Context.run of ContextVar.set, would cost the interpreter two calls per request).
        self.context_with: Callable[[contextvars.Context, contextvars.ContextVar[Any], Any], contextvars.Context] = (
            getattr(native_module(), "context_with", None) or _context_with_py)
        # The same contexts reused (covet._native.RequestContexts): a request's context goes back into the pool when
        # nothing can see it any more (its Task done in its first step, no copy, nothing else set in it), so that
        # a request that completes at once costs no new context. None: made per request with context_with (an
        # engine module without it).
        self.request_contexts: Optional[Any] = _request_contexts(self._base_context, self.trace_ids_of)
        # Its take and settle, bound once (bound methods made per batch would cost as much as what they save).
        self._context_calls: Optional[tuple[Callable[[Any], contextvars.Context], Callable[[], bool]]] = (
            None if self.request_contexts is None else (self.request_contexts.take, self.request_contexts.settle))
        # Embedded engine (threads=0): the engine's I/O runs in on_readable on this thread; responses
        # completed later are submitted by a flush scheduled through the output hook.
        self.embedded = server.embedded
        self.engine_stopped: Optional[asyncio.Future[None]] = None
        self._flush_scheduled = False
        self._kick_pending = False
        if self.embedded:
            self.engine_stopped = loop.create_future()
            server.set_output_hook(self._schedule_flush)
        # Called with each batch of the engine's WebSocket events (None: the app has no WebSocket routes).
        self.websocket_events: Optional[Callable[[Sequence[tuple[int, int, Any, Any, int]]], None]] = None

    def dispatch(self, items: Sequence[tuple[int, Any, Responder]]) -> None:
        """Starts the work for a batch of requests taken from the engine: ``(route id, request, responder)``."""
        raise NotImplementedError

    # -- reader callback ----------------------------------------------------------------------------
    def on_readable(self) -> None:
        server = self.server
        embedded = self.embedded
        try:
            if embedded and not server.poll():  # stopped and drained
                stopped = self.engine_stopped
                if stopped is not None and not stopped.done():
                    stopped.set_result(None)
            items = server.take(self.batch)
            body_events = server.take_body()  # streamed request bodies, streamed responses' room: news for waiters
            if body_events:
                wake_body_readers(body_events)
            websocket_events = self.websocket_events
            if websocket_events is not None:
                websocket_events(server.take_ws())
        except Exception:
            logger.exception("taking requests from the engine failed")
            return
        if items:
            self.dispatch(items)
        if embedded:
            more = len(items) == self.batch
            try:
                more = server.flush() or more
            except Exception:
                logger.exception("submitting responses to the engine failed")
            if more:  # completions are already waiting: come back after the loop's other ready callbacks
                self.loop.call_soon(self.on_readable, context=self._base_context)

    def _schedule_flush(self) -> None:  # called from handlers' Tasks: not in their context
        if self._flush_scheduled:  # one flush per loop turn covers everything queued until then
            return
        self._flush_scheduled = True
        self.loop.call_soon(self._flush, context=self._base_context)

    def _kick(self) -> None:
        """From a thread that is not the loop's (a pool thread), after it answered through a responder: with the
        embedded engine the answer is posted to the engine and waits for the loop thread's next poll, which the
        post's own wake-up does not always bring (io_uring's deferred task work), so this asks the loop for it.
        One request is pending at a time: a burst of answers costs one wake-up of the loop."""
        if self._kick_pending:
            return
        self._kick_pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            self.loop.call_soon_threadsafe(self._kicked, context=self._base_context)

    def _kicked(self) -> None:
        self._kick_pending = False  # before polling: an answer posted after this asks again
        self.on_readable()

    def _flush(self) -> None:
        self._flush_scheduled = False
        try:
            more = self.server.flush()
        except Exception:
            logger.exception("submitting responses to the engine failed")
            return
        if more:
            self.on_readable()


class Dispatcher(EngineDriver):
    """Serves one app's Python routes for one native server, on the thread running `loop`."""

    def __init__(
        self,
        app: ServedApp,
        server: Engine,
        targets: list[Route],
        loop: asyncio.AbstractEventLoop,
        executor: Executor,
        batch: int = 256,
        middleware: Sequence[Middleware] = (),
        root_path: str = "",
        trace_ids: bool = False,
    ) -> None:
        """`middleware`: the runtime's own (request limits), outside the app's; `root_path`: the server's
        (``covet run --root-path``), in every request's ``path``/``url``/``root_path``. `trace_ids`: each request's
        context gets the engine's ids (covet.logger.request_ids: log records, the handler's OpenTelemetry span)."""
        super().__init__(server, loop, batch)
        self.trace_ids = trace_ids
        self.app = app
        self.root_path = root_path
        self.targets = targets  # by native route id
        self.executor = executor
        self.inline_default = app.sync_handlers == "inline"
        self._middleware = [*app.user_middleware, *middleware]
        self._chain: Optional[CallNext] = self._build_chain() if self._middleware else None
        self._handlers = dict(app.exception_handlers)
        self._gone = request_gone_types()  # the engine's RequestGone: a request it answered itself
        self._error_handler = self._handlers.pop(Exception, None) or self._handlers.pop(500, None)
        self._router_chains: dict[int, CallNext] = {}  # id(route) -> its routers' middleware chain
        self._eager = self._eager_starts(app, targets, loop)
        # Each route id's pipeline: `_handle`, or for a route with a time limit `_handle_timed` around it.
        self._pipelines = [self._handle_raw if route.raw is not None and self._bare_pipeline(route)
                           else self._handle if route.timeout is None else self._handle_timed for route in targets]
        # Routes whose whole pipeline is the handler and its rendering (decided once, here): `_handle` calls
        # them directly, without `_route_response`'s coroutine and checks.
        self._direct = frozenset(route for route in targets if self._direct_route(route))
        # Their sync counterparts: the sync lane (`_start_sync`) runs handler, rendering and sending in the pool
        # thread (True) or, for a route that runs inline, on the loop thread (False), with no Task, coroutine or
        # future on the loop.
        self._sync_lane = {route: not self._runs_inline(route) for route in targets if self._sync_lane_route(route)}
        self._run_soon = detached_runner(executor)
        self._answered_elsewhere = self._kick if self.embedded else None
        # What APIRoute.get_route_handler()'s handler runs (route_class=), in every request's context.
        self._base_context.run(route_pipeline.set, self._route_pipeline)
        self.websockets: Optional[WebSocketDispatch] = None
        if app.websocket_routes:
            # Sends need no flush of their own: the engine's output hook schedules it, as for responses.
            self.websockets = WebSocketDispatch(app, server, app.websocket_routes, loop, self.tasks,
                                                root_path)
            app.set_publisher(self.websockets.publish)
            self.websocket_events = self.websockets.handle

    @staticmethod
    def _eager_starts(app: ServedApp, targets: list[Route], loop: asyncio.AbstractEventLoop) -> list[bool]:
        """Per native route id: start its Tasks eagerly? ``eager_async="auto"`` means wherever `loop`
        allows it; asking for eager starts where it cannot is logged and falls back to plain Tasks."""
        available = eager_start_available(loop)
        setting = app.eager_async
        default = available if setting == "auto" else bool(setting)
        wanted = [default if route.eager is None else route.eager for route in targets]
        if not available and any(w and route.is_async for w, route in zip(wanted, targets, strict=True)):
            asked = "eager_async=True" if setting is True else "eager=True on a route"
            logger.warning(
                "%s: this event loop (%s) cannot start Tasks eagerly on Python %d.%d (that needs Python >= 3.12, "
                "or asyncio's own event loop on 3.11); async handlers start as ordinary Tasks, one loop turn "
                "later",
                asked, type(loop).__name__, *sys.version_info[:2],
            )
        return [w and available for w in wanted]

    def _direct_route(self, route: Route) -> bool:
        """Whether `route`'s requests need nothing of `_route_response` beyond calling the handler with its
        parameters and rendering the result: an async handler, no middleware around it, no dependencies,
        Response/BackgroundTasks parameters or streamed result."""
        return route.is_async and self._bare_pipeline(route)

    def _sync_lane_route(self, route: Route) -> bool:
        """Whether `route` takes the sync lane (`_start_sync`): a sync handler, no middleware around it, no
        dependencies, Response/BackgroundTasks parameters, form or streamed result, and no Request parameter
        (headers, cookies and a JSON body are read on the loop thread before the handler runs)."""
        plan = route.plan
        return not route.is_async and self._bare_pipeline(route) and plan.request_arg is None and not plan.form_in_tree

    def _runs_inline(self, route: Route) -> bool:
        return route.inline if route.inline is not None else self.inline_default

    def _bare_pipeline(self, route: Route) -> bool:
        """No middleware around `route`, no route_class handler wrapping it, no dependencies, no
        Response/BackgroundTasks parameters, no streamed (generator) result."""
        plan = route.plan
        if getattr(route, "route_handler", None) is not None:  # route_class=: its handler wraps the pipeline
            return False
        return (self._chain is None and not route.middleware and route.stream is None and not plan.dependencies
                and not plan.extras_in_tree and route.timeout is None)

    # -- the requests of one batch (EngineDriver.on_readable) --------------------------------------------
    def dispatch(self, items: Sequence[tuple[int, Any, Responder]]) -> None:
        targets = self.targets
        eager = self._eager
        pipelines = self._pipelines
        loop = self.loop
        tasks = self.tasks
        start = start_task
        base = self._base_context
        new_context = base.copy
        sync_lane = self._sync_lane
        context_calls = self._context_calls if self.trace_ids else None
        if context_calls is not None:
            take, settle = context_calls
            own_context = self.context_with
            # The request itself in its context, a reused one when it can be (RequestContexts): its ids are
            # formatted only when read (covet.logger.ids_of). No reference to the context is kept here: the next
            # take() (or the settle() after the batch) reuses it only when the pool's own is the last one (its Task
            # done and gone, nothing copied from it).
            for route_id, native, responder in items:
                route = targets[route_id]
                pooled = sync_lane.get(route)
                # (A pool thread's request holds its context past this loop: one of its own, not the pool's.)
                if pooled is not None and self._start_sync(
                        route, native, responder, own_context(base, request_ids, native) if pooled else take(native),
                        pooled):
                    continue
                start(pipelines[route_id](route, native, responder), loop, tasks, eager=eager[route_id],
                      context=take(native))
            settle()
            return
        # The request itself in its context: its ids are formatted only when read (covet.logger.ids_of).
        context_with = self.context_with if self.trace_ids else None
        for route_id, native, responder in items:
            route = targets[route_id]
            context = new_context() if context_with is None else context_with(base, request_ids, native)
            pooled = sync_lane.get(route)
            if pooled is not None and self._start_sync(route, native, responder, context, pooled):
                continue
            start(pipelines[route_id](route, native, responder), loop, tasks, eager=eager[route_id], context=context)

    # -- the sync lane ------------------------------------------------------------------------------
    def _start_sync(self, route: Route, native: Any, responder: Responder, context: contextvars.Context,
                    pooled: bool) -> bool:
        """Runs a sync-lane request (`_sync_lane_route`): its parameters are extracted here (only the loop thread
        reads the engine's request), then `_run_sync` runs in `context`, in a pool thread (`pooled`) or here.
        False when the request takes the ordinary way instead: a body the engine streams, parameters that fail
        validation (the ordinary pipeline extracts them again and answers 422), a pool that is shut down."""
        plan = route.plan
        try:
            if plan.trivial:
                kwargs = _NO_ARGUMENTS
            elif plan.json_in_tree and getattr(native, "streaming", False):
                return False
            elif not plan.needs_request:  # path and query values, a JSON body: straight from the engine's request
                kwargs = plan.extract(native, None)
            else:  # headers, cookies: through a Request, dropped once they are read
                kwargs = plan.extract(native, Request(native, self.app, self.root_path))
            if pooled:
                self._run_soon(functools.partial(context.run, self._run_sync, route, native, responder, kwargs, True))
                return True
        except Exception:
            return False
        context.run(self._run_sync, route, native, responder, kwargs, False)  # catches everything itself
        return True

    def _run_sync(self, route: Route, native: Any, responder: Responder, kwargs: Mapping[str, Any],
                  pooled: bool) -> None:
        """In the request's context, on a pool thread (`pooled`) or the loop's: the handler, its rendering and the
        answer, sent from here. An exception, a streamed body or background tasks go on in a Task on the loop
        (`_finish_on_loop`)."""
        try:
            result = route.endpoint(**kwargs)
            rendered: Rendered = result if isinstance(result, Response) else self._render(route, result)
        except Exception as exc:
            self._finish_on_loop(route, native, responder, None, exc)
            return
        if not self._send_now(route, responder, rendered):
            self._finish_on_loop(route, native, responder, rendered, None)
            return
        answered = self._answered_elsewhere
        if pooled and answered is not None:
            answered()

    def _finish_on_loop(self, route: Route, native: Any, responder: Responder, rendered: Optional[Rendered],
                        exc: Optional[Exception]) -> None:
        """From a pool thread (or the loop's): `_finish_sync` in a Task on the loop, in (a copy of) the request's
        context."""
        coro = self._finish_sync(route, native, responder, rendered, exc)
        start = functools.partial(start_task, coro, self.loop, self.tasks, eager=False,
                                  context=contextvars.copy_context())
        try:
            self.loop.call_soon_threadsafe(start, context=self._base_context)
        except RuntimeError:  # the loop is closed: the server is gone
            coro.close()

    async def _finish_sync(self, route: Route, native: Any, responder: Responder, rendered: Optional[Rendered],
                           exc: Optional[Exception]) -> None:
        """The rest of a sync-lane request on the loop: its exception handled as `_route_response` and `_handle`
        would (a registered handler, else the 500), or its response with what follows it (`_send_later`)."""
        request: Optional[Request] = None
        if exc is not None:
            try:
                handler = self._find_handler(exc, route.exception_handlers)
                if handler is None:
                    raise exc
                request = Request(native, self.app, self.root_path)
                rendered = await self._call_handler(handler, request, exc)
            except Exception as error:
                if request is None:
                    request = Request(native, self.app, self.root_path)
                rendered = await self._server_error(error, request, route)
        assert rendered is not None
        if request is not None and _kept(request):
            request._detach()
        await self._send_later(route, native, responder, request, rendered)

    # -- the pipeline -------------------------------------------------------------------------------
    async def _handle_timed(self, route: Route, native: Any, responder: Responder) -> None:
        """A route with ``timeout=``: `_handle` in a Task of its own (this request's context), answering through a
        `_Expiring` responder; when it has not begun to answer in time the client gets 503 and what the pipeline
        sends later is dropped. An async handler is cancelled then. A sync handler's pool thread cannot be stopped:
        its pipeline is left to finish (its ``yield`` dependencies' teardown after the handler, as always), and its
        result is dropped. An answer that began in time (a stream) is left to finish."""
        assert route.timeout is not None
        expiring = _Expiring(responder)
        inner = self.loop.create_task(self._handle(route, native, expiring), context=contextvars.copy_context())
        try:
            done, _ = await asyncio.wait((inner,), timeout=route.timeout)
        except asyncio.CancelledError:  # the server's shutdown cancels this Task: the pipeline goes with it
            inner.cancel()
            raise
        if done or responder.answered:
            await inner
            return
        expiring.expired = True
        if route.is_async:
            inner.cancel()
        # Whatever the pipeline still raises (reading a request answered here) is not news.
        inner.add_done_callback(lambda task: task.cancelled() or task.exception())
        self.tasks.add(inner)  # owned (cancelled at shutdown) until it ends
        logger.warning("%s took longer than its timeout of %g s: answered 503", route.describe(), route.timeout)
        detail = f"the request took longer than this route's time limit of {route.timeout:g} s"
        self._send_whole(route, responder, (503, [*JSON_HEADERS, ("retry-after", "1")],
                                            json.dumps({"detail": detail}).encode()))

    async def _handle_raw(self, route: Route, native: Any, responder: Responder) -> None:
        """A route whose `raw` answers from the engine's request itself (covet.grpc): no Request, parameters,
        rendering. What it raises is logged and answered 500 if nothing was sent yet."""
        assert route.raw is not None
        try:
            await route.raw(native, responder, self.executor)
        except Exception:
            logger.exception("%s failed", route.describe())
            if not responder.answered:
                self._send_fallback_500(responder)

    async def _handle(self, route: Route, native: Any, responder: Responder) -> None:
        request: Optional[Request] = None
        try:
            if route in self._direct:  # `_route_response`'s work for such a route, in this coroutine
                plan = route.plan
                streamed = plan.body_in_tree and getattr(native, "streaming", False)
                if plan.needs_request or streamed:
                    request = Request(native, self.app, self.root_path)
                try:
                    if streamed:
                        assert request is not None
                        await request.body()  # a large body the engine streams: parameters read from the whole
                    result = await (route.endpoint() if plan.trivial
                                    else route.endpoint(**plan.extract(native, request)))
                    # A Response is sent as it is (`_render` with no Response/BackgroundTasks parameter).
                    rendered: Rendered = result if isinstance(result, Response) else self._render(route, result)
                except Exception as exc:
                    handler = self._find_handler(exc, route.exception_handlers)
                    if handler is None:
                        raise
                    if request is None:
                        request = Request(native, self.app, self.root_path)
                    rendered = await self._call_handler(handler, request, exc)
            elif self._chain is not None:
                request = Request(native, self.app, self.root_path)
                request._route = route
                rendered = await self._chain(request)
            elif route.middleware:  # an APIRouter's own middleware
                request = Request(native, self.app, self.root_path)
                rendered = await self._router_chain(route)(request)
            else:
                if route.plan.needs_request:
                    request = Request(native, self.app, self.root_path)
                rendered = await self._route_response(route, native, request)
        except ClientDisconnect:
            # The client went away while the handler read the body: nobody is left to answer.
            rendered = 400, JSON_HEADERS, b'{"detail":"Client disconnected"}'
        except self._gone as exc:
            # The engine refused the request's streamed body (413 over max_stream_body_bytes, 408, 400) and answered
            # it itself while the handler read the request: there is nothing left to read or to answer.
            logger.info("%s", exc)
            return
        except Exception as exc:
            if request is None:
                request = Request(native, self.app, self.root_path)
            rendered = await self._server_error(exc, request, route)
        if request is not None and (_getrefcount(request) > _OWN_REFERENCES or (  # `_kept(request)`, inlined
                type(request._headers) is EngineHeaders and _getrefcount(request._headers) > _OWN_REFERENCES)):
            request._detach()  # kept (by a background task...): copied out before the engine reuses it
        if (request is None or request._teardown is None) and self._send_now(route, responder, rendered):
            return
        await self._send_later(route, native, responder, request, rendered)

    def _send_now(self, route: Route, responder: Responder, rendered: Rendered) -> bool:
        """Sends `rendered` when nothing follows it (no streamed body, no background tasks): True. False: not
        sent, `_send_later`'s work."""
        if not isinstance(rendered, tuple) and (rendered._streams or rendered.background is not None):
            return False
        self._send_whole(route, responder, rendered)
        return True

    def _send_whole(self, route: Route, responder: Responder, rendered: Rendered) -> None:
        """Sends a response whose body is all there (not streamed); a failure is logged and answered 500."""
        try:
            if isinstance(rendered, tuple):
                responder.send(*rendered)
            else:
                responder.send(rendered.status_code, rendered.headers._raw, rendered.body)
        except Exception:
            self._send_failed(route, responder)

    def _send_failed(self, route: Route, responder: Responder) -> None:
        logger.exception("sending the response for %s %s failed", route.methods[0], route.path)
        self._send_fallback_500(responder)

    async def _send_later(self, route: Route, native: Any, responder: Responder, request: Optional[Request],
                          rendered: Rendered) -> None:
        """Sends `rendered` with what follows it: its background tasks, a streamed body, the request-scoped
        teardown of ``yield`` dependencies."""
        background: Optional[BackgroundTask] = None if isinstance(rendered, tuple) else rendered.background
        if background is not None:
            background_tasks._started()  # before sending: whoever has the response sees the work pending
        if isinstance(rendered, tuple) or not rendered._streams:
            self._send_whole(route, responder, rendered)
        else:
            rendered._request_head = native  # a FileResponse answers HEAD, Range and If-Range from it
            try:
                if not send_file_region(responder, rendered):  # a file body goes out natively (filesend.py)
                    await rendered._send(responder, self.executor)
            except Exception:
                self._send_failed(route, responder)
        if background is not None:
            await self._run_background(background, route)
        if request is not None and request._teardown is not None:  # request-scoped `yield` dependencies
            await _teardown_after_response(request._teardown, route)

    @staticmethod
    async def _run_background(background: BackgroundTask, route: Route) -> None:
        """The response's background tasks, once it is handed to the engine (Starlette's order: one after the
        other; one that raises is logged and the rest are skipped)."""
        try:
            await asyncio.sleep(0)  # let the loop turn submit the response first (embedded engine's flush)
            await background()
        except Exception:
            logger.exception("a background task of %s %s failed", route.methods[0], route.path)
        finally:
            background_tasks._finished()

    async def _route_response(self, route: Route, native: Any, request: Optional[Request],
                              handled: bool = True) -> Rendered:
        """The route's response, with HTTPException, validation errors and registered types handled (unless
        not `handled`: then they propagate, for a route_class's handler to see)."""
        made_here = False  # a Request made below, which `_handle` does not see (checked here whether it was kept)
        try:
            if route.route_handler is not None and handled:  # route_class= wrapping this pipeline
                assert request is not None  # such routes' plans need a Request
                return await route.route_handler(request)
            plan = route.plan
            extras: Optional[RequestExtras] = None
            if plan.extras_in_tree:  # a Response / BackgroundTasks parameter: one of each for this request
                extras = RequestExtras()
                request_extras.set(extras)  # in this request's own context (its Task's)
            if plan.body_in_tree and getattr(native, "streaming", False):
                # A large body the engine streams: parameters are read from the whole of it (within
                # max_body_bytes, else 413), collected here, where waiting is possible. (A plan whose only
                # Request need is a JSON body has none yet: the engine's request holds such a body whole.)
                if request is None:
                    request, made_here = Request(native, self.app, self.root_path), True
                await request.body()
            if plan.dependencies:  # Depends(...): solved asynchronously (such plans always get a Request)
                assert request is not None
                return await self._dependant_response(route, request, extras)
            kwargs = plan.extract(native, request)
            endpoint = route.endpoint
            if route.stream is not None:  # a generator: its items are streamed as they come
                return self._stream(route, endpoint(**kwargs), extras)
            if route.is_async:
                result = await endpoint(**kwargs)
            elif self._runs_inline(route):
                result = endpoint(**kwargs)
            else:
                call = functools.partial(contextvars.copy_context().run, endpoint, **kwargs)
                result = await self.loop.run_in_executor(self.executor, call)
            return self._render(route, result, extras)
        except Exception as exc:
            if not handled:
                raise
            handler = self._find_handler(exc, route.exception_handlers)
            if handler is None:
                raise
            if request is None or made_here:  # made here, so `_handle` does not see it: checked here if it was kept
                if request is None:
                    request = Request(native, self.app, self.root_path)
                rendered = await self._call_handler(handler, request, exc)
                if _kept(request):
                    request._detach()
                return rendered
            return await self._call_handler(handler, request, exc)

    async def _route_pipeline(self, route: Route, request: Request) -> Response:
        """The handler an APIRoute subclass's get_route_handler() wraps (covet.routing.route_pipeline)."""
        return _as_response(await self._route_response(route, request._native, request, handled=False))

    async def _dependant_response(self, route: Route, request: Request, extras: Optional[RequestExtras]) -> Rendered:
        """`_route_response`'s work for a route with dependencies (``Depends``): solved first, sync ones in the
        pool unless the route runs inline; the teardown of ``yield`` dependencies runs once the result is
        rendered, and sees the handler's exception — or, for a streamed response (a generator handler, a
        StreamingResponse), once the stream has been sent (as FastAPI does), so that what the stream's producer
        uses (a database session ...) stays open while it runs."""
        inline = self._runs_inline(route)
        async with route.plan.solve(request, None if inline else self.executor, after_response=True) as kwargs:
            endpoint = route.endpoint
            if route.stream is not None:
                rendered: Rendered = self._stream(route, endpoint(**kwargs), extras)
            else:
                if route.is_async:
                    result = await endpoint(**kwargs)
                elif inline:
                    result = endpoint(**kwargs)
                else:
                    call = functools.partial(contextvars.copy_context().run, endpoint, **kwargs)
                    result = await self.loop.run_in_executor(self.executor, call)
                rendered = self._render(route, result, extras)
        return rendered

    def _render(self, route: Route, result: Any, extras: Optional[RequestExtras] = None) -> Rendered:
        """The response for a handler's `result`, as FastAPI builds it: a Response as it is (given the request's
        background tasks unless it has its own); anything else validated by the declared type, dumped with the
        route's response_model_* options and wrapped in its response_class (JSON bytes straight from
        pydantic-core by default), then the headers and status of the request's `Response` parameter."""
        if isinstance(result, Response):
            if extras is not None and extras.tasks is not None and result.background is None:
                result.background = extras.tasks
            return result
        status = route.status_code
        sub = extras.response if extras is not None else None
        if sub is not None and sub.status_code:
            status = sub.status_code
        cls = route.response_class
        if cls is None:
            # No body on a 204/205/304; a 204/304 still says application/json, as FastAPI's JSONResponse does.
            allowed = _body_allowed(status)
            body = self._json_body(route, result) if allowed else b""
            headers = JSON_HEADERS if allowed or status in _NO_BODY_STATUSES else []
            if extras is None or (sub is None and extras.tasks is None):
                return status, headers, body
            response = _as_response((status, headers, body))
        else:
            content = self._json_content(route, result)
            if route.status_code_set or status != route.status_code:
                response = cls(content, status_code=status)
            else:  # the class's own default status (307 for a RedirectResponse)
                response = cls(content)
            if not _body_allowed(response.status_code):
                response.body = b""
        if sub is not None:
            for key, value in sub.headers._raw:
                response.headers.append(key, value)
        if extras is not None and extras.tasks is not None:
            response.background = extras.tasks
        return response

    @staticmethod
    def _json_body(route: Route, result: Any) -> bytes:
        """`result` as JSON bytes: through the declared type (validated, then pydantic-core's dump_json with the
        route's response_model_* options), else the fastest encoder that gives FastAPI's bytes."""
        if route.response_adapter is not None:
            try:
                return route.response_json(result)  # validated, then dumped (covet/_model_json.py)
            except validation_error() as exc:
                raise ResponseValidationError([dict(e) for e in exc.errors(include_url=False)]) from exc
        serializer = getattr(type(result), "__pydantic_serializer__", None)
        if serializer is not None:  # a pydantic model (or pydantic dataclass): its own Rust serializer
            return serializer.to_json(result, by_alias=True)  # type: ignore[no-any-return]
        if route.declared_result:  # -> dict, -> list, -> Any: pydantic's serialisation, as FastAPI's
            return encoders.dumps_declared(result)
        return encoders.dumps(result)

    @staticmethod
    def _json_content(route: Route, result: Any) -> Any:
        """`result` as JSON-compatible Python values, for a response_class to render (FastAPI's
        ``serialize_response`` without dump_json)."""
        adapter = route.response_adapter
        if adapter is not None:
            try:
                value = adapter.validate_python(result, from_attributes=True)
            except validation_error() as exc:
                raise ResponseValidationError([dict(e) for e in exc.errors(include_url=False)]) from exc
            return adapter.dump_python(value, mode="json", **route.dump_options)
        return encoders.jsonable(result)

    def _stream(self, route: Route, items: Any, extras: Optional[RequestExtras]) -> Response:
        """The streamed response of a generator handler (`items`: the generator it returned): JSON Lines,
        Server-Sent Events, or `items` handed to its response_class (FastAPI 0.134/0.135)."""
        from covet import sse  # deferred: pydantic, for apps with generator handlers only

        sub = extras.response if extras is not None else None
        status = sub.status_code if sub is not None and sub.status_code else route.status_code
        response: Response
        if route.stream == "raw":
            cls = route.response_class
            assert cls is not None
            response = (cls(items, status_code=status) if route.status_code_set or status != route.status_code
                        else cls(items))
        else:
            serialize = sse.item_serializer(route.stream_item_adapter, route.dump_options)
            if route.stream == "sse":
                chunks = sse.with_pings(sse.serialized(items, sse.sse_serializer(serialize), self.executor))
                response = StreamingResponse(chunks, status_code=status, media_type="text/event-stream")
                response.headers["Cache-Control"] = "no-cache"
                response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the events
            else:
                chunks = sse.serialized(items, serialize, self.executor, b"\n")
                response = StreamingResponse(chunks, status_code=status, media_type="application/jsonl")
        if sub is not None:
            for key, value in sub.headers._raw:
                response.headers.append(key, value)
        if extras is not None and extras.tasks is not None:
            response.background = extras.tasks
        return response

    # -- middleware ---------------------------------------------------------------------------------
    def _build_chain(self) -> CallNext:
        async def endpoint_layer(request: Request) -> Response:
            route: Route = request._route
            if route.middleware:
                return await self._router_chain(route)(request)
            return _decided(_as_response(await self._route_response(route, request._native, request)), request)

        call_next: CallNext = endpoint_layer
        for middleware in self._middleware:  # the last one registered ends up outermost
            call_next = _bind_middleware(middleware, call_next)
        return call_next

    def _router_chain(self, route: Route) -> CallNext:
        """The middleware of the routers that include `route` around it (outermost first in
        ``route.middleware``), built on first use."""
        chain = self._router_chains.get(id(route))
        if chain is None:
            async def route_layer(request: Request) -> Response:
                return _decided(_as_response(await self._route_response(route, request._native, request)), request)

            chain = route_layer
            for middleware in reversed(route.middleware):
                chain = _bind_middleware(middleware, chain)
            self._router_chains[id(route)] = chain
        return chain

    # -- exceptions ---------------------------------------------------------------------------------
    def _find_handler(self, exc: Exception, route_handlers: Mapping[Any, Callable[..., Any]]
                      ) -> Optional[Callable[..., Any]]:
        if route_handlers:  # an APIRouter's own exception handlers come first
            if isinstance(exc, HTTPException) and exc.status_code in route_handlers:
                return route_handlers[exc.status_code]
            for cls in type(exc).__mro__:
                handler = route_handlers.get(cls)
                if handler is not None:
                    return handler
        handlers = self._handlers
        if handlers:
            if isinstance(exc, HTTPException) and exc.status_code in handlers:
                return handlers[exc.status_code]
            for cls in type(exc).__mro__:
                handler = handlers.get(cls)
                if handler is not None:
                    return handler
        if isinstance(exc, HTTPException):
            return _http_exception_handler
        if isinstance(exc, RequestValidationError):
            return _validation_error_handler
        return None

    async def _call_handler(self, handler: Callable[..., Any], request: Request, exc: Exception) -> Rendered:
        result = handler(request, exc)
        if isinstance(result, Awaitable):
            result = await result
        if isinstance(result, Response) or result.__class__ is tuple:
            rendered: Rendered = result
            return rendered
        return Response(result)

    async def _server_error(self, exc: Exception, request: Request, route: Route) -> Rendered:
        if self._error_handler is not None:
            try:
                return await self._call_handler(self._error_handler, request, exc)
            except Exception:
                logger.exception("the app's 500 handler failed")
        if isinstance(exc, ResponseValidationError):
            logger.error("%s returned a value that does not match its declared type: %s", route.name, exc.errors(),
                         exc_info=exc)
        else:
            try:
                where = f"{request.method} {request.raw_path}"
            except Exception:
                where = route.path
            logger.error("unhandled exception in %s (%s)", route.name, where, exc_info=exc)
        return 500, SERVER_ERROR_HEADERS, SERVER_ERROR_BODY

    @staticmethod
    def _send_fallback_500(responder: Responder) -> None:
        with contextlib.suppress(Exception):  # already answered (e.g. a stream failed midway)
            responder.send(500, SERVER_ERROR_HEADERS, SERVER_ERROR_BODY)


def detached_runner(executor: Executor) -> Callable[[Callable[[], object]], None]:
    """How to run a call on `executor` without waiting for it: its ``run_soon`` (covet.server.sync_pool.SyncPool),
    else ``submit`` with the Future dropped (the call handles its own exceptions)."""
    run_soon: Optional[Callable[[Callable[[], object]], None]] = getattr(executor, "run_soon", None)
    if run_soon is not None:
        return run_soon
    submit = executor.submit

    def run(call: Callable[[], object]) -> None:
        submit(call)

    return run


def _decided(response: Response, request: Request) -> Response:
    """A handler's response as the middleware around it see it: a FileResponse decides its Range (206/416, HEAD)
    from the request now, as its ASGI call would have before Starlette's call_next returned it."""
    if isinstance(response, FileResponse):
        response._request_head = request._native
        response._prepare()
        if response._replacement is not None:  # a 400/416 instead of the file: what the middleware see
            return response._replacement
    return response


def _bind_middleware(middleware: Middleware, call_next: CallNext) -> CallNext:
    async def layer(request: Request) -> Response:
        return await middleware(request, call_next)

    return layer


async def _teardown_after_response(teardown: contextlib.AsyncExitStack, route: Route) -> None:
    """The code after ``yield`` of request-scoped dependencies, once the response is sent (FastAPI's default
    scope): an exception there cannot change the response any more, it is logged."""
    try:
        await teardown.aclose()
    except Exception:
        logger.exception("a dependency's code after 'yield' failed after the response to %s %s was sent (the "
                         "response is unchanged; use Depends(..., scope=\"function\") for a teardown that may "
                         "still change it)", route.methods[0], route.path)


def _http_exception_handler(request: Request, exc: HTTPException) -> Rendered:
    headers = JSON_HEADERS if not exc.headers else [*JSON_HEADERS, *exc.headers.items()]
    return exc.status_code, headers, _default_body(exc.status_code, exc.detail)


def _validation_error_handler(request: Request, exc: RequestValidationError) -> Rendered:
    return 422, JSON_HEADERS, encoders.dumps({"detail": encoders.jsonable(exc.errors())})
