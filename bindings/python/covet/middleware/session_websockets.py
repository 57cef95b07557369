"""The open WebSockets of server-side sessions, closed when their session ends.

A WebSocket keeps the session it was opened with for as long as it stays open, and a logout cannot reach it
through a cookie. `SessionMiddleware` (with a `store`) therefore tracks, per event loop, which open WebSockets
belong to which session id and closes them with 1008 (policy violation, reason "session ended"):
- at once when this worker ends the session: a logout, or a login that retired the id (``regenerate()``);
- within `interval` seconds when it ends anywhere else: another worker process or machine, an OpenID back-channel
  logout, the store's expiry, an operator deleting the record. A task per event loop loads each tracked id from
  the store every `interval` seconds (one ``load`` per open session, not per WebSocket) while any is open.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Optional

from covet.security.sessions import SessionStore

if TYPE_CHECKING:
    from covet.websockets import WebSocket

__all__ = ["SessionWebSockets", "SESSION_ENDED_CODE"]

logger = logging.getLogger("covet.sessions")

SESSION_ENDED_CODE = 1008  # RFC 6455 policy violation: the session that authorised the connection is gone
SESSION_ENDED_REASON = "session ended"


class _LoopSockets:
    """One event loop's share: WebSockets run on the loop that accepted them, and are closed from it."""

    def __init__(self) -> None:
        self.by_session: dict[str, weakref.WeakSet[WebSocket]] = {}
        self.watcher: Optional[asyncio.Task[None]] = None


class SessionWebSockets:
    def __init__(self, store: SessionStore, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the WebSockets' session check interval is in seconds, > 0 (None turns it off)")
        self.store = store
        self.interval = interval
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSockets] = (
            weakref.WeakKeyDictionary())
        self.closed = 0  # WebSockets closed because their session ended

    def _here(self) -> _LoopSockets:
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is None:
            found = self._loops[loop] = _LoopSockets()
        return found

    def track(self, session_id: str, websocket: WebSocket) -> None:
        """`websocket` was opened with the stored session `session_id`."""
        here = self._here()
        here.by_session.setdefault(session_id, weakref.WeakSet()).add(websocket)
        if here.watcher is None or here.watcher.done():
            here.watcher = asyncio.get_running_loop().create_task(self._watch(here))

    async def end(self, session_id: str) -> None:
        """This worker ended `session_id` (its record is deleted): its WebSockets on this loop close now."""
        sockets = self._here().by_session.pop(session_id, None)
        if sockets:
            await self._close(sockets)

    async def _close(self, sockets: weakref.WeakSet[WebSocket]) -> None:
        from covet.websockets import WebSocketState

        for websocket in list(sockets):
            if websocket.application_state is WebSocketState.CONNECTED:
                await websocket.close(SESSION_ENDED_CODE, SESSION_ENDED_REASON)
                self.closed += 1

    async def _watch(self, here: _LoopSockets) -> None:
        while here.by_session:
            await asyncio.sleep(self.interval)
            for session_id, sockets in list(here.by_session.items()):
                if not sockets:  # every one of them finished (the set holds them weakly)
                    here.by_session.pop(session_id, None)
                    continue
                try:
                    alive = await self.store.load(session_id) is not None
                except Exception:  # the store is unreachable: keep the connections, say so, try again later
                    logger.warning("checking the session of open WebSockets failed; they stay open until the "
                                   "store answers", exc_info=True)
                    break
                if not alive and here.by_session.get(session_id) is sockets:
                    del here.by_session[session_id]
                    await self._close(sockets)
