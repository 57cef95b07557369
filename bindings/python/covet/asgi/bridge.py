"""Calling an ASGI application from CovetPy's side: with a `Request`, for a `Response`.

`call_asgi` runs an ASGI app (the user's pure ASGI middleware around the app, an app mounted with
``app.mount``) for one request: ``receive`` gives the request's body (``request.stream()``, in chunks with
``more_body``) then ``http.disconnect`` once the response is complete; what it sends becomes a `Response` (a
whole body) or a `StreamingResponse` (``more_body``: each chunk as the app sends it, the app's next ``send``
waiting until the previous chunk is taken). The app keeps running after the response is handed over (its
background work), and an exception it raises after its response started cuts that response short.

`send_response` is the other way: a `Response` sent as ASGI messages (an ``@app.middleware("http")`` function
placed among pure ASGI middleware, `http_middleware_layer`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Optional, Union

from covet.concurrency import TaskSet, eager_start_available, start_task
from covet.datastructures import MutableHeaders
from covet.requests import Request
from covet.responses import Response, StreamingResponse

from .messages import AsgiResponder, ClientGone, ScopeRequest, read_body, route_path
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["call_asgi", "send_response", "http_middleware_layer", "NoResponse"]

logger = logging.getLogger("covet")

_RUNNING = TaskSet()  # apps still running after their response was handed over
_DROPPED = frozenset({"content-length", "transfer-encoding"})  # the engine frames the body itself


class NoResponse(RuntimeError):
    """The ASGI app returned without sending a response."""


async def call_asgi(app: ASGIApp, scope: Scope, request: Request) -> Response:
    """`app`'s response to `request` (whose body it reads), with `scope` as the request's ASGI scope."""
    loop = asyncio.get_running_loop()
    scope.setdefault("asgi", {"version": "3.0", "spec_version": "2.4"})
    body = request.stream()
    body_done = False
    response_done = asyncio.Event()
    ready: asyncio.Future[Response] = loop.create_future()
    chunks = _Chunks()
    head: Optional[tuple[int, list[tuple[str, str]]]] = None
    finished = False

    async def receive() -> Message:
        nonlocal body_done
        if not body_done:
            try:
                chunk = await body.__anext__()
            except StopAsyncIteration:
                chunk = b""
            if chunk:
                return {"type": "http.request", "body": chunk, "more_body": True}
            body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await response_done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal head, finished
        kind = message.get("type")
        if kind == "http.response.start":
            if head is not None:
                raise RuntimeError("http.response.start sent twice")
            headers = [(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in message.get("headers", ())]
            head = int(message["status"]), [(n, v) for n, v in headers if n.lower() not in _DROPPED]
        elif kind == "http.response.body":
            if head is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if finished:
                raise RuntimeError("http.response.body sent after the response was complete")
            chunk = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if not ready.done():
                if not more:
                    finished = True
                    response_done.set()
                    ready.set_result(_whole(head, chunk))
                    return
                ready.set_result(_streamed(head, chunks.stream()))
            if chunk:
                await chunks.put(chunk)
            if not more:
                finished = True
                response_done.set()
                chunks.end(None)
        # other messages (extensions the app may try: trailers, pathsend ...) are not offered in the scope

    failure: Optional[BaseException] = None

    async def run() -> None:
        nonlocal failure
        try:
            await app(scope, receive, send)
        except Exception as exc:  # kept for `ended` (the Task itself ends cleanly)
            failure = exc

    def ended(task: asyncio.Task[None]) -> None:
        nonlocal failure
        response_done.set()
        if task.cancelled():
            if not ready.done():
                ready.cancel()
                return
            failure = failure or RuntimeError("the ASGI application was cancelled")
        if not ready.done():  # no response: the caller gets the app's exception (or NoResponse)
            ready.set_exception(failure if failure is not None else NoResponse(
                "the ASGI application returned without sending a response (it must send "
                "http.response.start, then http.response.body)"))
            return
        if not finished:  # a stream cut short: its reader sees the failure (or the early end)
            chunks.end(failure if failure is not None else RuntimeError(
                "the ASGI application returned before completing its streamed response"))
        elif failure is not None:
            logger.error("an ASGI application raised after its response was sent", exc_info=failure)

    # Eager where the loop allows: an app that answers without waiting has answered on return.
    running = start_task(run(), loop, _RUNNING, eager=eager_start_available(loop))
    running.add_done_callback(ended)
    try:
        return await ready
    except BaseException:
        running.cancel()
        raise


def _whole(head: tuple[int, list[tuple[str, str]]], body: bytes) -> Response:
    response = Response(body, status_code=head[0])
    response.headers = MutableHeaders(head[1])
    return response


def _streamed(head: tuple[int, list[tuple[str, str]]], chunks: AsyncIterator[bytes]) -> Response:
    response = StreamingResponse(chunks, status_code=head[0])
    response.headers = MutableHeaders(head[1])
    return response


class _Chunks:
    """A streamed body from the app's ``send`` to the response's writer, one chunk at a time: ``send`` returns
    once its chunk was taken for writing (the writer's back-pressure reaches the app); once the writer stops
    (the client went away), ``send`` raises OSError, as a server's send does for a gone client."""

    def __init__(self) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._end: Optional[Union[BaseException, bool]] = None  # True: complete; an exception: failed
        self._reader: Optional[asyncio.Future[None]] = None  # the writer waiting for a chunk
        self._taken: Optional[asyncio.Future[None]] = None  # the app waiting for its chunk to be taken
        self._closed = False

    @staticmethod
    def _resolve(future: Optional[asyncio.Future[None]]) -> None:
        if future is not None and not future.done():
            future.set_result(None)

    async def put(self, chunk: bytes) -> None:
        if self._closed:
            raise OSError("the client went away")
        self._items.append(chunk)
        self._resolve(self._reader)
        self._taken = asyncio.get_running_loop().create_future()
        await self._taken

    def end(self, failure: Optional[BaseException]) -> None:
        if self._end is None:
            self._end = failure if failure is not None else True
        self._resolve(self._reader)

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            while True:
                if self._items:
                    chunk = self._items.popleft()
                    yield chunk
                    self._resolve(self._taken)  # written: the app may send the next one
                    continue
                end = self._end
                if end is True:
                    return
                if isinstance(end, BaseException):
                    raise end
                self._reader = asyncio.get_running_loop().create_future()
                await self._reader
                self._reader = None
        finally:
            self._closed = True
            self._resolve(self._taken)


async def send_response(response: Response, send: Send, *, head: bool = False) -> None:
    """`response` as ASGI messages (a streamed one chunk by chunk), then its background tasks."""
    responder = AsgiResponder(head=head)
    sending = asyncio.get_running_loop().create_task(response._send(responder, None))
    try:
        await responder.pump(send, sending)
    finally:
        if not sending.done():
            sending.cancel()
    await sending
    if response.background is not None:
        await response.background()


HttpMiddleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]


def http_middleware_layer(middleware: HttpMiddleware, inner: ASGIApp, app: Any) -> ASGIApp:
    """An ``@app.middleware("http")`` function (or BaseHTTPMiddleware) as an ASGI layer around `inner`, for
    such a function added outside a pure ASGI middleware: ``call_next`` runs `inner`."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await inner(scope, receive, send)
            return
        try:
            body = await read_body(receive)
        except ClientGone:
            return
        root_path: str = scope.get("root_path", "") or ""
        request = Request(ScopeRequest(scope, route_path(scope), body, {}), app, root_path)

        async def call_next(request: Request) -> Response:
            return await call_asgi(inner, scope, request)

        response = await middleware(request, call_next)
        await send_response(response, send, head=scope.get("method") == "HEAD")

    return layer
