"""The WSGI streams: ``wsgi.input`` for a body the engine streams, and ``wsgi.file_wrapper``.

A body under the engine's ``stream_body_threshold`` arrives whole and is a ``BytesIO``. A larger one streams:
`BodyInput` takes the engine's chunks (64 KiB) as the app reads, so the upload is never held whole and the
engine reads more from the client only as the app consumes (back-pressure). When no chunk is there the pool
thread waits for the engine's news for this body (the dispatcher's ``take_body`` wakes it).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Any, Optional

from covet import _events

__all__ = ["BodyInput", "ClientDisconnected", "EngineNews", "FileWrapper", "RequestBodyError"]

# Seconds between re-checks while waiting for the engine's news (it wakes the waiter; this only bounds a miss).
_WAIT_CHECK = 1.0


class EngineNews:
    """A pool thread waiting for the engine's news about one exchange (a streamed body's chunk, a streamed
    response's room). The loop thread's driver hands the engine's body events to ``covet._events.wake``, which
    resolves what is registered under the id: this object stands there as a future would (`done`, `set_result`)."""

    __slots__ = ("_event", "_ids")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._ids: set[int] = set()

    def done(self) -> bool:
        return False

    def set_result(self, _result: object) -> None:  # the loop thread, with the engine's event for an id
        self._event.set()

    def arm(self, event_id: int) -> None:
        """Before the engine call that asks for news (read_body, flow_state): a wake-up after it is kept."""
        _events.WAITERS[event_id] = self  # type: ignore[assignment]  # a future's two methods, thread-safe
        self._ids.add(event_id)
        self._event.clear()

    def wait(self) -> None:
        self._event.wait(_WAIT_CHECK)

    def release(self) -> None:
        """The exchange is over: its ids leave the registry."""
        waiters: dict[int, object] = _events.WAITERS  # type: ignore[assignment]
        for event_id in self._ids:
            if waiters.get(event_id) is self:
                del waiters[event_id]
        self._ids.clear()


class ClientDisconnected(OSError):
    """Raised by ``wsgi.input`` when the client went away before the request body ended."""


class RequestBodyError(OSError):
    """Raised by ``wsgi.input`` when the engine refused the rest of the body (``status``: 413 over
    ``--max-stream-body-bytes``, 408 too slow, 400 malformed); uncaught, the server answers with that status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"the request body was refused ({status}): {reason}")
        self.status = status
        self.reason = reason


class BodyInput:
    """``wsgi.input`` of a streamed request body: read(n), readline, readlines and iteration over lines."""

    def __init__(self, native: Any, news: EngineNews, kick: Optional[Callable[[], None]] = None,
                 first: Optional[bytes] = None) -> None:
        """`news`: the exchange's waiter for the engine's events; `kick`: called after taking a chunk (the
        embedded engine reads more once the loop polls); `first`: what ``read_body()`` gave already (a chunk,
        b"" at the end, None while nothing was there)."""
        self._native = native
        self._news = news
        self._id: int = native.body_id
        self._kick = kick
        # What was taken from the engine and not yet read: a bytearray, so that appending a chunk and taking the
        # front off are amortised O(1) (a body read whole in many chunks is not copied over and over).
        self._buffer = bytearray(first or b"")
        self._ended = first == b""

    def _more(self) -> bool:
        """Appends the engine's next chunk to the buffer; False once the body has ended."""
        if self._ended:
            return False
        native = self._native
        news = self._news
        while True:
            news.arm(self._id)  # before read_body arms the engine's event: a wake-up in between is kept
            chunk = native.read_body()
            if chunk is None:  # nothing yet: the engine's event for this body wakes us
                news.wait()
                continue
            if chunk.__class__ is tuple:
                status, reason = chunk
                self._ended = True
                if status:
                    raise RequestBodyError(status, reason)
                raise ClientDisconnected(f"the client went away before the request body ended: {reason}")
            if not chunk:
                self._ended = True
                return False
            if self._kick is not None:
                self._kick()
            self._buffer += chunk
            return True

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            while self._more():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._more():
            pass
        return self._take(size)

    def _take(self, size: int) -> bytes:
        """The first `size` bytes of the buffer (all of it if shorter), taken off it."""
        buffer = self._buffer
        out = bytes(buffer[:size]) if size < len(buffer) else bytes(buffer)
        del buffer[:size]
        return out

    def readline(self, size: Optional[int] = -1) -> bytes:
        limit = -1 if size is None else size
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if 0 <= limit <= len(buffer):
                end = limit
                break
            start = len(buffer)
            if not self._more():
                end = len(buffer)
                break
        if 0 <= limit < end:
            end = limit
        return self._take(end)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        pass


class FileWrapper:
    """``wsgi.file_wrapper``: a file-like object as the response body. A regular file the app returns this way
    (its current position to the end, or ``Content-Length`` bytes) is sent by the engine from the file
    (sendfile on plain TCP, ``NativeResponder.send_file``); anything else is read in `blksize` blocks."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def region(self) -> Optional[tuple[str, int, int]]:
        """(a path the engine can open, offset, bytes to the end) of a regular file, else None."""
        try:
            fd = self.filelike.fileno()
            offset = self.filelike.tell()
            info = os.fstat(fd)
        except (AttributeError, OSError, ValueError):
            return None
        if not stat.S_ISREG(info.st_mode) or offset > info.st_size:
            return None
        # The engine opens the file itself (a new description: this one's position is untouched).
        return f"/proc/self/fd/{fd}", offset, info.st_size - offset

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.blksize
        while True:
            block = read(size)
            if not block:
                return
            yield block
