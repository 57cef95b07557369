"""WebSockets, Starlette's API on the native RFC 6455 engine.

::

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str):
        await websocket.accept()
        async for message in websocket.iter_text():
            await websocket.send_text(message)

The native engine validates the handshake, parses and checks every frame (masking, UTF-8, sizes, control
frames), answers pings and runs the closing handshake. Python sees whole messages. The handler decides the
handshake, as under uvicorn: ``accept()`` sends the ``101`` (with the chosen subprotocol, permessage-deflate
negotiated natively, and any extra headers); closing before it refuses the connection with HTTP 403,
``send_denial_response(response)`` with that response, and a handler that fails (or returns) before
accepting gets HTTP 500.

Broadcast: ``await websocket.subscribe(topic)`` and ``app.publish(topic, message)`` (or
``websocket.publish``) fan a message out to every subscriber of this worker process natively: framed once,
no Python per recipient.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from . import encoders
from .connection import HTTPConnection

if TYPE_CHECKING:
    from .responses import Response

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketState", "WebSocketHub"]


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


class WebSocketHub(Protocol):
    """The serving side's broadcast (`covet.server.websockets.WebSocketDispatch`): topics of this worker process."""

    def subscribe(self, connection: Any, topic: str) -> None: ...

    def unsubscribe(self, connection: Any, topic: str) -> None: ...

    def publish(self, topic: str, data: Union[str, bytes]) -> int: ...


class WebSocket(HTTPConnection):
    """One WebSocket connection. The upgrade request's data is there as on `Request` (`HTTPConnection`:
    ``headers``, ``query_params``, ``path_params``, ``url`` with scheme ``ws``/``wss``, ``client``, ``cookies``)."""

    __slots__ = ("_ws", "_inbox", "_waiter", "_close_code", "_close_reason", "client_state", "application_state",
                 "_drained", "_hub")

    def __init__(self, native: Any, app: Any, hub: WebSocketHub, root_path: str = "") -> None:
        super().__init__(native, app, root_path)
        self._ws = native
        self._inbox: deque[Any] = deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._close_code = 1000
        self._close_reason = ""
        self._drained: Optional[asyncio.Future[None]] = None
        self._hub = hub
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
        """Accepts the connection: the engine answers the handshake (``101``) with `subprotocol` (None: the one
        the route's ``subprotocols=`` negotiated, if any; see ``selected_subprotocol``) and the extra `headers`
        (``(name, value)`` pairs of str or bytes, as Starlette's), then messages flow."""
        if self.application_state is WebSocketState.DISCONNECTED:
            raise RuntimeError("accept() after close()")
        if self.application_state is WebSocketState.CONNECTING:
            native_accept = getattr(self._ws, "accept", None)  # an engine without deferred accepts answered already
            if native_accept is not None:
                native_accept(subprotocol or "", _header_pairs(headers))
        self.application_state = WebSocketState.CONNECTED
        accepted = getattr(self._hub, "accepted", None)  # the serving side (the test client waits for it)
        if accepted is not None:
            accepted(self)

    async def send_denial_response(self, response: Response) -> None:
        """Refuses the connection with an HTTP response instead of accepting it (Starlette's, the ASGI
        ``websocket.http.response`` extension): its status, headers and body go out, then the connection
        closes. Only before ``accept()``."""
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError("send_denial_response() must come before accept() and close()")
        self._deny(response.status_code, list(response.headers._raw), bytes(response.body), response.status_code)

    def _deny(self, status: int, headers: list[tuple[str, str]], body: bytes, code: int,
              reason: str = "") -> None:
        """Refuses the handshake with this HTTP response (the serving side hears `code` and `reason`: the test
        client raises them as Starlette's does)."""
        self.application_state = WebSocketState.DISCONNECTED
        denied = getattr(self._hub, "denied", None)
        if denied is not None:
            denied(self, code, reason)
        native_deny = getattr(self._ws, "deny", None)
        if native_deny is not None:
            native_deny(status, headers, body)
        else:  # an engine without deferred accepts: the handshake is complete, so close the connection
            self._ws.close(1011 if status >= 500 else 1008, "")

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
            await self.accept(message.get("subprotocol"), message.get("headers"))
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
        """Closes the connection with `code`; before ``accept()`` it refuses the handshake with HTTP 403
        instead, as uvicorn does (the test client raises `WebSocketDisconnect` with `code`, as Starlette's)."""
        if self.application_state is WebSocketState.DISCONNECTED:
            return
        if self.application_state is WebSocketState.CONNECTING:
            self._deny(403, [], b"", code, reason or "")
            return
        self.application_state = WebSocketState.DISCONNECTED
        self._ws.close(code, reason or "")

    # -- broadcast ------------------------------------------------------------------------------------
    async def subscribe(self, topic: str) -> None:
        """Receive what is published to `topic` (this worker process), until unsubscribed or closed."""
        self._hub.subscribe(self._ws, topic)

    async def unsubscribe(self, topic: str) -> None:
        self._hub.unsubscribe(self._ws, topic)

    async def publish(self, topic: str, data: Union[str, bytes]) -> int:
        """Sends `data` to every subscriber of `topic` in this worker process (this connection included if
        subscribed); returns how many it was queued to."""
        return self._hub.publish(topic, data)



def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    """``accept(headers=...)``: pairs of str or bytes (latin-1, as HTTP header bytes) as str pairs."""
    if not headers:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    return [(_text(name), _text(value)) for name, value in items]


def _text(value: Union[str, bytes]) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
