"""The engine's WebSocket events on the loop thread (`covet.websockets.WebSocket` is the handlers' side)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from covet.concurrency import TaskSet
from covet.datastructures import Address
from covet.exceptions import ValidationException, WebSocketException
from covet.routing import WebSocketRoute
from covet.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .engine import Engine, WebSocketEvent
from .interface import ServedApp

__all__ = ["WebSocketDispatch"]

logger = logging.getLogger("covet")

# A handshake the endpoint failed before accepting (uvicorn's answer there).
_SERVER_ERROR_HEADERS = [("content-type", "text/plain; charset=utf-8")]
_SERVER_ERROR_BODY = b"Internal Server Error"


class WebSocketDispatch:
    """The engine's WebSocket events on the loop thread: starts each connection's endpoint and routes its
    messages and close to it."""

    def __init__(self, app: ServedApp, server: Engine, routes: Sequence[WebSocketRoute],
                 loop: asyncio.AbstractEventLoop, tasks: TaskSet, root_path: str = "") -> None:
        self.app = app
        self.root_path = root_path
        self.server = server
        self.routes = routes
        self.loop = loop
        self.tasks = tasks
        self.connections: dict[int, WebSocket] = {}
        # Set by the test client: told of each exception an endpoint did not handle (with the peer's real
        # port, to find the test's connection), and the address endpoints see as `websocket.client`.
        self.on_error: Optional[Callable[[int, BaseException], None]] = None
        self.client_address: Optional[Address] = None
        # Also set by the test client: told whether each endpoint accepted the connection (True, when it
        # calls accept()) or ended without accepting it (False), as Starlette's test session waits for it.
        self.on_decided: Optional[Callable[[int, bool], None]] = None
        # Also set by the test client: told of each connection an endpoint refused before accepting it (the
        # peer's port, and the close code and reason Starlette's test session raises for it).
        self.on_denied: Optional[Callable[[int, int, str], None]] = None
        self._accepted: set[int] = set()

    # -- WebSocketHub: what WebSocket.subscribe / unsubscribe / publish call -----------------------------
    def subscribe(self, connection: Any, topic: str) -> None:
        self.server.ws_subscribe(connection, topic)

    def unsubscribe(self, connection: Any, topic: str) -> None:
        self.server.ws_unsubscribe(connection, topic)

    def publish(self, topic: str, data: Union[str, bytes]) -> int:
        return int(self.server.ws_publish(topic, data))

    def accepted(self, websocket: WebSocket) -> None:
        """`WebSocket.accept()` was called."""
        if self.on_decided is not None:
            self._accepted.add(websocket._ws.id)
            self.on_decided(websocket._native.client[1], True)

    def denied(self, websocket: WebSocket, code: int, reason: str) -> None:
        """The endpoint refused the handshake (closed before `accept()`, or failed): the engine answers HTTP."""
        if self.on_denied is not None:
            self.on_denied(websocket._native.client[1], code, reason)

    def handle(self, events: Sequence[tuple[int, int, Any, Any, int]]) -> None:
        for route_id, kind, native, data, code in events:
            key = native.id
            if kind == WebSocketEvent.OPEN:
                websocket = WebSocket(native, self.app, self, self.root_path)
                if self.client_address is not None:
                    websocket._client = self.client_address
                self.connections[key] = websocket
                self.tasks.add(self.loop.create_task(self._run(self.routes[route_id], websocket, key)))
                continue
            websocket_or_none = self.connections.get(key)
            if websocket_or_none is None:
                continue
            if kind == WebSocketEvent.MESSAGE:
                websocket_or_none._deliver(data)
            elif kind == WebSocketEvent.CLOSE:
                websocket_or_none._closed(code, data or "")
            elif kind == WebSocketEvent.DRAIN:
                websocket_or_none._on_drain()

    async def _run(self, route: WebSocketRoute, websocket: WebSocket, key: int) -> None:
        try:
            try:
                for websocket_connect in getattr(self.app, "websocket_middleware", ()):
                    if not await websocket_connect(websocket):
                        return  # refused the handshake (an HTTP answer), before the endpoint
                if route.plan.dependencies:
                    async with route.plan.solve(websocket) as kwargs:
                        await route.endpoint(**kwargs)
                else:
                    kwargs = route.plan.extract(websocket._ws, websocket)
                    await route.endpoint(**kwargs)
            except ValidationException as exc:
                # Before accept(): HTTP 403, as FastAPI's handler (a close with 1008) gets under uvicorn.
                logger.info("websocket %s: invalid parameters, closing with 1008: %s", route.path, exc)
                await websocket.close(1008, "invalid parameters")
                return
            except WebSocketException as exc:  # the endpoint chose the close code (Starlette's handler)
                await websocket.close(exc.code, exc.reason)
                return
            if websocket.application_state is WebSocketState.CONNECTING:
                # Returned without accepting or closing: uvicorn answers 500 ("returned without sending handshake").
                logger.error("websocket handler %s returned without accepting or closing the connection", route.name)
                websocket._deny(500, _SERVER_ERROR_HEADERS, _SERVER_ERROR_BODY, 1000)
            elif websocket.application_state is not WebSocketState.DISCONNECTED:
                await websocket.close(1000)
        except WebSocketDisconnect:
            pass
        except Exception as exc:
            if self.on_error is not None:
                self.on_error(websocket._native.client[1], exc)
            logger.exception("websocket handler %s failed", route.name)
            if websocket.application_state is WebSocketState.CONNECTING:  # not accepted: HTTP 500, as uvicorn
                websocket._deny(500, _SERVER_ERROR_HEADERS, _SERVER_ERROR_BODY, 1011, "internal error")
            elif websocket.application_state is not WebSocketState.DISCONNECTED:
                await websocket.close(1011, "internal error")
        finally:
            self.connections.pop(key, None)
            if self.on_decided is not None and key not in self._accepted:
                self.on_decided(websocket._native.client[1], False)
            self._accepted.discard(key)
