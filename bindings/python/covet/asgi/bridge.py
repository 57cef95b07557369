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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Optional, Union

from covet.datastructures import MutableHeaders
from covet.requests import Request
from covet.responses import Response, StreamingResponse

from .messages import AsgiResponder, ClientGone, ScopeRequest, read_body, route_path
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["call_asgi", "send_response", "http_middleware_layer", "NoResponse"]

logger = logging.getLogger("covet")

_RUNNING: set[asyncio.Task[None]] = set()  # apps still running after their response was handed over
_DROPPED = frozenset({"content-length", "transfer-encoding"})  # the engine frames the body itself


class NoResponse(RuntimeError):
    """The ASGI app returned without sending a response."""


def _finished(task: asyncio.Task[None]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("an ASGI application raised after its response was sent", exc_info=task.exception())


async def call_asgi(app: ASGIApp, scope: Scope, request: Request) -> Response:
    """`app`'s response to `request` (whose body it reads), with `scope` as the request's ASGI scope."""
    loop = asyncio.get_running_loop()
    body = request.stream()
    body_done = False
    response_done = asyncio.Event()
    ready: asyncio.Future[Response] = loop.create_future()
    chunks: asyncio.Queue[Union[bytes, BaseException, None]] = asyncio.Queue(maxsize=1)
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
                ready.set_result(_streamed(head, _stream(chunks)))
            if chunk:
                await chunks.put(chunk)
            if not more:
                finished = True
                response_done.set()
                await chunks.put(None)
        # other messages (extensions the app may try: trailers, pathsend ...) are not offered in the scope

    async def run() -> None:
        await app(scope, receive, send)

    running = loop.create_task(run())
    waiting: set[asyncio.Future[Any]] = {ready, running}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        exc = running.exception()
        if exc is not None:
            raise exc
        raise NoResponse("the ASGI application returned without sending a response")

    def ended(task: asyncio.Task[None]) -> None:
        response_done.set()
        if not finished:  # a stream cut short: the reader sees the failure (or the end)
            failure = None if task.cancelled() else task.exception()
            chunks.put_nowait(failure if failure is not None else RuntimeError(
                "the ASGI application returned before completing its streamed response"))
        _finished(task)

    _RUNNING.add(running)
    running.add_done_callback(ended)
    return ready.result()


def _whole(head: tuple[int, list[tuple[str, str]]], body: bytes) -> Response:
    response = Response(body, status_code=head[0])
    response.headers = MutableHeaders(head[1])
    return response


def _streamed(head: tuple[int, list[tuple[str, str]]], chunks: AsyncIterator[bytes]) -> Response:
    response = StreamingResponse(chunks, status_code=head[0])
    response.headers = MutableHeaders(head[1])
    return response


async def _stream(chunks: asyncio.Queue[Union[bytes, BaseException, None]]) -> AsyncIterator[bytes]:
    while True:
        item = await chunks.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


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
