"""Both directions between CovetPy's request/response objects and ASGI messages.

- `ScopeRequest`: an ASGI HTTP scope (and its collected body) with the engine's request interface
  (``covet._native.NativeRequest``), so that `covet.requests.Request` and the route plans read it as they read
  the engine's.
- `AsgiResponder`: the engine's responder interface (``NativeResponder``: ``send``, or ``start_stream`` /
  ``write`` / ``end``) turned into ASGI ``http.response.*`` messages, sent by `AsgiResponder.pump`; a streamed
  body is written one chunk at a time (a producer waits while a chunk is unsent, the back-pressure of
  ``covet.responses``).
- `read_body`: the whole request body from ``http.request`` messages (``more_body``).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Optional, Union
from urllib.parse import quote

from covet import _events

from .types import Receive, Scope, Send

__all__ = ["ScopeRequest", "AsgiResponder", "read_body", "route_path", "ClientGone"]

_NO_CONTENT_LENGTH = frozenset({204, 304})
_FLOW_GO, _FLOW_WAIT, _FLOW_CLOSED = 0, 1, 2  # covet.responses' flow states


class ClientGone(Exception):
    """The client went away (``http.disconnect``) before the request body was read."""


def route_path(scope: Scope) -> str:
    """The path routes see: the raw (percent-encoded) path without the scope's ``root_path`` (Starlette's
    ``get_route_path``, on the raw path as the engine routes)."""
    raw: Optional[bytes] = scope.get("raw_path")
    root: str = scope.get("root_path", "") or ""
    path = raw.decode("latin-1").partition("?")[0] if raw else quote(scope.get("path", "/"), safe="/:@!$&'()*+,;=")
    if root:
        quoted_root = quote(root, safe="/:@!$&'()*+,;=")
        if path.startswith(quoted_root) and (len(path) == len(quoted_root) or path[len(quoted_root)] == "/"):
            path = path[len(quoted_root):]
    return path or "/"


async def first_body(receive: Receive) -> tuple[bytes, bool]:
    """The first ``http.request`` message's body, and whether more follows (``more_body``)."""
    message = await receive()
    if message.get("type") == "http.disconnect":
        raise ClientGone("the client went away before sending the request body")
    return bytes(message.get("body", b"")), bool(message.get("more_body", False))


async def read_body(receive: Receive) -> bytes:
    """The request body: every ``http.request`` message's ``body`` until ``more_body`` is false."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                parts.append(bytes(chunk))
            if not message.get("more_body", False):
                return b"".join(parts)
        elif kind == "http.disconnect":
            raise ClientGone("the client went away while sending the request body")


class ScopeRequest:
    """An ASGI HTTP scope as the engine's request object (``NativeRequest``).

    The body: whole (`body`), or, given `receive` (the client sent more after `body`), streamed as the engine
    streams a large one — the handler runs at once, ``request.stream()`` yields the chunks as they come (each
    ``receive`` made only when the reader waits for more), ``request.body()`` and body parameters collect them."""

    max_body_bytes = 1 << 62  # no limit of its own: the ASGI server's, if any

    def __init__(self, scope: Scope, path: str, body: bytes, params: dict[str, str],
                 receive: Optional[Receive] = None) -> None:
        self.method: str = scope.get("method", "GET")
        self.path = path
        query: bytes = scope.get("query_string", b"") or b""
        self.query_string = query.decode("latin-1")
        self.target = f"{path}?{self.query_string}" if self.query_string else path
        self.headers: list[tuple[str, str]] = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope.get("headers", ())]
        self.body = body
        self.params = params
        client = scope.get("client")
        self.client: tuple[str, int] = (str(client[0]), int(client[1])) if client else ("", 0)
        self.http_version: str = scope.get("http_version", "1.1")
        self.scheme: str = scope.get("scheme", "http")
        self.tls: Optional[dict[str, Any]] = (scope.get("extensions") or {}).get("tls")
        self.disconnected = False
        self.streaming = receive is not None
        self.body_id = id(self)
        self._receive = receive
        self._chunks: collections.deque[bytes] = collections.deque([body] if body and receive is not None else ())
        self._ended = receive is None
        self._pulling: Optional[asyncio.Task[None]] = None
        self._index: Optional[dict[str, list[str]]] = None  # _by_name

    def header(self, name: str) -> Optional[str]:
        """The first `name` header (case-insensitive) or None: ``NativeRequest.header``'s lookup."""
        values = self._by_name().get(name.lower())
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every `name` header's value (case-insensitive): ``NativeRequest.header_values``."""
        return list(self._by_name().get(name.lower(), ()))

    def _by_name(self) -> dict[str, list[str]]:
        """The headers' values by lower-cased name, built on the first lookup (a request's `EngineHeaders` may make
        several)."""
        index = self._index
        if index is None:
            index = self._index = {}
            for key, value in self.headers:
                index.setdefault(key.lower(), []).append(value)
        return index

    def read_body(self) -> Union[bytes, tuple[int, str], None]:
        """The next chunk; b"" at the end; ``(0, reason)`` when the client went away; None: not yet (the
        reader waits for `body_id`'s event, sent once the next message arrived)."""
        if self._chunks:
            return self._chunks.popleft()
        if self._ended:
            return b""
        if self.disconnected:
            return 0, "the client went away while sending the request body"
        if self._pulling is None:
            self._pulling = asyncio.get_running_loop().create_task(self._pull())
        return None

    async def _pull(self) -> None:
        assert self._receive is not None
        try:
            message = await self._receive()
        finally:
            self._pulling = None
        kind = message.get("type")
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                self._chunks.append(bytes(chunk))
            if not message.get("more_body", False):
                self._ended = True
        elif kind == "http.disconnect":
            self.disconnected = True
        _events.wake((self.body_id,))


class AsgiResponder:
    """The engine's responder interface over ASGI ``send`` (see the module's doc). `pump` sends what the
    response's code queued, in order, until the response is complete."""

    def __init__(self, head: bool = False) -> None:
        self.head = head  # HEAD: the headers of the response, no body
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wakeup: Optional[asyncio.Future[None]] = None
        self._answered = False
        self.started = False  # http.response.start was sent
        self.complete = False
        self.closed = False  # sending failed: the client is gone
        # Exceptions no handler took (`covet.asgi.host`): a whole response is then not sent, the caller raises.
        self.failures: list[BaseException] = []

    # -- the engine's responder interface (called synchronously by the response's code) --------------------
    @property
    def answered(self) -> bool:
        return self._answered

    @property
    def flow_id(self) -> int:
        return id(self)

    def flow_state(self) -> int:
        if self.closed:
            return _FLOW_CLOSED
        return _FLOW_WAIT if any(item[0] == "chunk" for item in self._queue) else _FLOW_GO

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if self._answered:
            raise RuntimeError("the response was already sent")
        self._answered = True
        self._push(("whole", status, headers, body))

    def start_stream(self, status: int, headers: list[tuple[str, str]]) -> None:
        if self._answered:
            raise RuntimeError("the response was already sent")
        self._answered = True
        self._push(("start", status, headers))

    def write(self, chunk: bytes) -> bool:
        if self.closed:
            return False
        self._push(("chunk", chunk))
        return True

    def end(self) -> None:
        self._push(("end",))

    def abort(self) -> None:
        self._push(("abort",))

    def _push(self, item: tuple[Any, ...]) -> None:
        self._queue.append(item)
        self._wake()

    def _wake(self, _: Any = None) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    # -- the ASGI side ----------------------------------------------------------------------------------
    async def pump(self, send: Send, done: asyncio.Future[Any]) -> None:
        """Sends the queued response as ASGI messages until it is complete, or until `done` (the code producing
        the response) finishes without completing it (it then stops; the caller decides what that means)."""
        queue = self._queue
        if not done.done():
            done.add_done_callback(self._wake)
        while not self.complete:
            if not queue:
                if done.done():
                    return
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
                self._wakeup = None
                continue
            item = queue.popleft()
            try:
                await self._send_item(send, item)
            except OSError:
                self.closed = True
                self.complete = True
            if item[0] == "chunk" and not any(i[0] == "chunk" for i in queue):
                _events.wake((id(self),))  # room again for the producer (covet.responses._write)
        _events.wake((id(self),))

    async def _send_item(self, send: Send, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "whole":
            if self.failures:
                self.complete = True
                return
            _, status, headers, body = item
            raw = _raw_headers(headers)
            if status not in _NO_CONTENT_LENGTH and not (100 <= status < 200) and not _has_length(headers):
                raw.append((b"content-length", str(len(body)).encode()))
            self.started = True
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": b"" if self.head else body, "more_body": False})
            self.complete = True
        elif kind == "start":
            _, status, headers = item
            self.started = True
            await send({"type": "http.response.start", "status": status, "headers": _raw_headers(headers)})
        elif kind == "chunk":
            if not self.head:
                await send({"type": "http.response.body", "body": item[1], "more_body": True})
        elif kind == "end":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.complete = True
        else:  # abort: ASGI has no way to cut a response short but raising, which makes the server close
            self.complete = True
            raise RuntimeError("the streamed response failed midway (see the log above); the connection is "
                               "closed so that the client sees an incomplete body")


def _raw_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _has_length(headers: list[tuple[str, str]]) -> bool:
    return any(name.lower() == "content-length" for name, _ in headers)
