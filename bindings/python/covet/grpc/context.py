"""`ServicerContext`: what a servicer method gets as ``context``, with grpcio's API (``grpc.aio`` and sync).

Methods grpcio makes coroutines in ``grpc.aio`` (``abort``, ``send_initial_metadata``, ``read``, ``write``) work
awaited or called plainly here, so one servicer class runs unchanged whichever grpcio API it was written for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from .status import AbortError, Code, status_number
from .wire import Metadata, outgoing_metadata

if TYPE_CHECKING:
    from .call import Call

__all__ = ["ServicerContext"]

logger = logging.getLogger("covet.grpc")


class _Done:
    """An already-finished awaitable: the result of a call grpc.aio awaits and sync grpcio does not."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # makes this a generator


_DONE = _Done()


class ServicerContext:
    """The call's context: its metadata, deadline and peer; how it ends (code, details, trailing metadata)."""

    __slots__ = ("_call", "_callbacks")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._callbacks: list[Callable[..., Any]] = []

    # -- what the client sent ---------------------------------------------------------------------------------
    def invocation_metadata(self) -> Metadata:
        """The request's metadata: ``(key, value)`` entries (``.key``, ``.value``), ``-bin`` values as bytes."""
        return self._call.metadata

    def peer(self) -> str:
        """The client's address as grpcio writes it: ``ipv4:127.0.0.1:50000``, ``ipv6:[::1]:50000``."""
        client: Any = self._call.client
        if not client:
            return "unknown"
        host, port = client[0], client[1]
        return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"

    def peer_identities(self) -> Optional[list[bytes]]:
        return None

    def peer_identity_key(self) -> Optional[str]:
        return None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the call's deadline (``grpc-timeout``), None without one."""
        deadline = self._call.deadline
        if deadline is None:
            return None
        return max(0.0, deadline - time.monotonic())

    # -- the answer ---------------------------------------------------------------------------------------------
    def send_initial_metadata(self, initial_metadata: Any) -> _Done:
        """Sends the response's headers now, with this metadata (once, before the first message)."""
        call = self._call
        if call is None or call.ended:
            raise RuntimeError("send_initial_metadata: the call has ended")
        if call.headers_sent:
            raise RuntimeError("send_initial_metadata: the response's headers were already sent")
        call.initial_metadata = outgoing_metadata(initial_metadata)
        if threading.get_ident() == call.loop_thread:
            call.send_headers()
        else:  # a sync method in a pool thread: the engine's responder is the loop's (ahead of the next message)
            call.loop.call_soon_threadsafe(call.send_headers)
        return _DONE

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._call.trailing_metadata = outgoing_metadata(trailing_metadata)

    def trailing_metadata(self) -> list[tuple[str, str]]:
        return list(self._call.trailing_metadata)

    def set_code(self, code: Code) -> None:
        self._call.code = status_number(code)

    def code(self) -> Optional[int]:
        return self._call.code

    def set_details(self, details: str) -> None:
        self._call.details = details

    def details(self) -> Optional[str]:
        return self._call.details

    def abort(self, code: Code, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        """Ends the call with `code` and `details` (raises; ``await context.abort(...)`` works the same)."""
        if status_number(code) == 0:
            raise ValueError("abort() needs an error code, not OK")
        if trailing_metadata:
            self._call.trailing_metadata = outgoing_metadata(trailing_metadata)
        raise AbortError(code, details)

    def abort_with_status(self, status: Any) -> NoReturn:
        """grpcio's ``abort_with_status(grpc.Status)`` (e.g. from ``grpc_status.rpc_status.to_status``)."""
        self.abort(status.code, getattr(status, "details", ""), getattr(status, "trailing_metadata", ()))

    def set_compression(self, compression: Any) -> None:
        """Compresses the response's messages (``grpc.Compression.Gzip``/``Deflate``/``NoCompression``, or the
        names), if the client accepts that encoding."""
        self._call.choose_compression(compression)

    def disable_next_message_compression(self) -> None:
        self._call.skip_next_compression = True

    # -- streaming from inside a coroutine (grpc.aio's read/write) ----------------------------------------------
    async def read(self) -> Any:
        """The next request message, or ``grpc.aio.EOF`` after the last one."""
        return await self._call.read_one()

    async def write(self, message: Any) -> None:
        """Sends one response message (a server-streaming method's alternative to ``yield``)."""
        await self._call.write(message)

    # -- state ----------------------------------------------------------------------------------------------------
    def cancelled(self) -> bool:
        """True once the client cancelled the call (reset the stream, went away) or its deadline passed."""
        return self._call.cancelled

    def done(self) -> bool:
        return self._call.ended

    def is_active(self) -> bool:
        return not self._call.ended and not self._call.cancelled

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        """Calls `callback()` when the call ends (sync grpcio's name); always accepted."""
        self._callbacks.append(lambda _context: callback())
        return True

    def add_done_callback(self, callback: Callable[[Any], Any]) -> None:
        """Calls `callback(context)` when the call ends (grpc.aio's name)."""
        self._callbacks.append(callback)

    def _run_callbacks(self) -> None:
        for callback in self._callbacks:
            try:
                callback(self)
            except Exception:  # a callback's failure is its own; the others still run
                logger.exception("a gRPC call's done callback failed")
