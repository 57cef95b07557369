"""WebSockets, Starlette's API on the native RFC 6455 engine.

::

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str):
        await websocket.accept()
        async for message in websocket.iter_text():
            await websocket.send_text(message)

The native engine validates the handshake, answers ``101`` (negotiating permessage-deflate), parses and
checks every frame (masking, UTF-8, sizes, control frames), answers pings and runs the closing handshake.
Python sees whole messages. Because the handshake is already complete when the handler starts,
``accept()`` only records the state, and closing before it closes the connection with the given code
(Starlette answers HTTP 403 there instead).

Broadcast: ``await websocket.subscribe(topic)`` and ``app.publish(topic, message)`` (or
``websocket.publish``) fan a message out to every subscriber of this worker process natively: framed once,
no Python per recipient.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from . import encoders
from .requests import Request

if TYPE_CHECKING:
    from .app import CovetPy
    from .params import RequestPlan

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketState", "WebSocketRoute"]

logger = logging.getLogger("covet")

# Event kinds from the engine (module.cpp, take_ws).
OPEN, MESSAGE, CLOSE, DRAIN = 0, 1, 2, 3


class WebSocketState(enum.Enum):
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2


class WebSocketDisconnect(Exception):
    """Raised by ``receive_*`` when the client has closed (``code``: its close code, 1005 if none; 1006 when
    the connection dropped without a close frame)."""

    def __init__(self, code: int = 1000, reason: Optional[str] = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason or ""


_DISCONNECT = object()


class WebSocket(Request):
    """One WebSocket connection. The upgrade request's data is there as on `Request` (``headers``,
    ``query_params``, ``path_params``, ``url`` with scheme ``ws``/``wss``, ``client``, ``cookies``)."""

    __slots__ = ("_ws", "_inbox", "_waiter", "_close_code", "_close_reason", "client_state", "application_state",
                 "_drained", "_dispatch")

    def __init__(self, native: Any, app: Optional[CovetPy], dispatch: WebSocketDispatch) -> None:
        super().__init__(native, app)
        self._ws = native
        self._inbox: deque[Any] = deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._close_code = 1000
        self._close_reason = ""
        self._drained: Optional[asyncio.Future[None]] = None
        self._dispatch = dispatch
        self.client_state = WebSocketState.CONNECTED
        self.application_state = WebSocketState.CONNECTING

    # -- engine events (loop thread) ----------------------------------------------------------------
    def _deliver(self, item: Any) -> None:
        self._inbox.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _closed(self, code: int, reason: str) -> None:
        self._close_code, self._close_reason = code, reason
        self.client_state = WebSocketState.DISCONNECTED
        self._deliver(_DISCONNECT)
        self._on_drain()  # a sender waiting for room will not get it now

    def _on_drain(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- the Starlette API --------------------------------------------------------------------------
    async def accept(self, subprotocol: Optional[str] = None, headers: Any = None) -> None:
        """Marks the connection accepted. The engine has already answered the handshake; a subprotocol is
        chosen natively from the route's ``subprotocols=`` (see ``selected_subprotocol``)."""
        if self.application_state is WebSocketState.DISCONNECTED:
            raise RuntimeError("accept() after close()")
        self.application_state = WebSocketState.CONNECTED

    @property
    def selected_subprotocol(self) -> Optional[str]:
        return self._ws.subprotocol or None

    async def receive(self) -> dict[str, Any]:
        """The next message as an ASGI event: ``{"type": "websocket.receive", "text" | "bytes": ...}`` or
        ``{"type": "websocket.disconnect", "code": ...}``."""
        while not self._inbox:
            if self.client_state is WebSocketState.DISCONNECTED and not self._inbox:
                return {"type": "websocket.disconnect", "code": self._close_code, "reason": self._close_reason}
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._inbox.popleft()
        if item is _DISCONNECT:
            self._inbox.appendleft(item)  # every later receive sees it too
            return {"type": "websocket.disconnect", "code": self._close_code, "reason": self._close_reason}
        if isinstance(item, str):
            return {"type": "websocket.receive", "text": item}
        return {"type": "websocket.receive", "bytes": item}

    async def _receive_data(self) -> Union[str, bytes]:
        if self.application_state is WebSocketState.CONNECTING:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message["code"], message.get("reason"))
        data: Union[str, bytes] = message["text"] if "text" in message else message["bytes"]
        return data

    async def receive_text(self) -> str:
        data = await self._receive_data()
        return data if isinstance(data, str) else data.decode()

    async def receive_bytes(self) -> bytes:
        data = await self._receive_data()
        return data if isinstance(data, bytes) else data.encode()

    async def receive_json(self, mode: str = "text") -> Any:
        """The next message parsed as JSON, as Starlette's ``json.loads`` does: a message that is not JSON
        raises ``json.JSONDecodeError`` (also for nesting over 1024 levels, where the stdlib parser would
        raise `RecursionError`); uncaught, it closes the connection with 1011 like any handler error."""
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        return encoders.loads(await self._receive_data())

    async def iter_text(self) -> AsyncIterator[str]:
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI-style: ``websocket.send`` (``text`` or ``bytes``), ``websocket.close``, ``websocket.accept``."""
        kind = message.get("type")
        if kind == "websocket.accept":
            await self.accept(message.get("subprotocol"))
        elif kind == "websocket.send":
            if message.get("text") is not None:
                await self.send_text(message["text"])
            else:
                await self.send_bytes(message.get("bytes") or b"")
        elif kind == "websocket.close":
            await self.close(message.get("code", 1000), message.get("reason"))
        else:
            raise RuntimeError(f"unknown WebSocket message type {kind!r}")

    async def _send(self, send: Callable[[Any], bool], data: Any) -> None:
        if self.application_state is WebSocketState.CONNECTING:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
        while not send(data):
            # Refused: closed, or the unsent bytes are over the route's max_send_buffer. Wait for the
            # engine's drain event (back-pressure), unless the connection is gone.
            if self.client_state is WebSocketState.DISCONNECTED or not self._ws.is_open:
                raise WebSocketDisconnect(self._close_code, self._close_reason)
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._drained
            finally:
                self._drained = None

    async def send_text(self, data: str) -> None:
        await self._send(self._ws.send_text, data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self._ws.send_bytes, bytes(data))

    async def send_json(self, data: Any, mode: str = "text") -> None:
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        payload = encoders.dumps(encoders.jsonable(data))
        if mode == "text":
            await self.send_text(payload.decode())
        else:
            await self.send_bytes(payload)

    async def close(self, code: int = 1000, reason: Optional[str] = None) -> None:
        if self.application_state is WebSocketState.DISCONNECTED:
            return
        self.application_state = WebSocketState.DISCONNECTED
        self._ws.close(code, reason or "")

    # -- broadcast ------------------------------------------------------------------------------------
    async def subscribe(self, topic: str) -> None:
        """Receive what is published to `topic` (this worker process), until unsubscribed or closed."""
        self._dispatch.server.ws_subscribe(self._ws, topic)

    async def unsubscribe(self, topic: str) -> None:
        self._dispatch.server.ws_unsubscribe(self._ws, topic)

    async def publish(self, topic: str, data: Union[str, bytes]) -> int:
        """Sends `data` to every subscriber of `topic` in this worker process (this connection included if
        subscribed); returns how many it was queued to."""
        return self._dispatch.publish(topic, data)


class WebSocketRoute:
    """``@app.websocket(path)``: the endpoint and the plan for its parameters."""

    __slots__ = ("path", "endpoint", "name", "native_pattern", "plan", "options")

    def __init__(self, path: str, endpoint: Callable[..., Any], *, name: Optional[str] = None,
                 dependencies: Any = (), **options: Any) -> None:
        from .params import build_plan
        from .routing import parse_path

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


class WebSocketDispatch:
    """The engine's WebSocket events on the loop thread: starts each connection's endpoint and routes its
    messages and close to it."""

    def __init__(self, app: CovetPy, server: Any, routes: list[WebSocketRoute], loop: asyncio.AbstractEventLoop,
                 tasks: Any) -> None:
        self.app = app
        self.server = server
        self.routes = routes
        self.loop = loop
        self.tasks = tasks
        self.connections: dict[int, WebSocket] = {}

    def publish(self, topic: str, data: Union[str, bytes]) -> int:
        return int(self.server.ws_publish(topic, data))

    def handle(self, events: list[tuple[int, int, Any, Any, int]]) -> None:
        for route_id, kind, native, data, code in events:
            key = native.id
            if kind == OPEN:
                websocket = WebSocket(native, self.app, self)
                self.connections[key] = websocket
                self.tasks.add(self.loop.create_task(self._run(self.routes[route_id], websocket, key)))
                continue
            websocket_or_none = self.connections.get(key)
            if websocket_or_none is None:
                continue
            if kind == MESSAGE:
                websocket_or_none._deliver(data)
            elif kind == CLOSE:
                websocket_or_none._closed(code, data or "")
            elif kind == DRAIN:
                websocket_or_none._on_drain()

    async def _run(self, route: WebSocketRoute, websocket: WebSocket, key: int) -> None:
        from .exceptions import RequestValidationError

        try:
            try:
                if route.plan.dependencies:
                    async with route.plan.solve(websocket) as kwargs:
                        await route.endpoint(**kwargs)
                else:
                    kwargs = route.plan.extract(websocket._ws, websocket)
                    await route.endpoint(**kwargs)
            except RequestValidationError as exc:
                logger.info("websocket %s: invalid parameters, closing with 1008: %s", route.path, exc)
                await websocket.close(1008, "invalid parameters")
                return
            if websocket.application_state is not WebSocketState.DISCONNECTED:
                await websocket.close(1000)
        except WebSocketDisconnect:
            pass
        except Exception:
            logger.exception("websocket handler %s failed", route.name)
            if websocket.application_state is not WebSocketState.DISCONNECTED:
                await websocket.close(1011, "internal error")
        finally:
            self.connections.pop(key, None)
