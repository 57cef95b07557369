"""One gRPC call: reads the request's messages, runs the servicer method, writes its messages, ends with the status.

The call runs inside the route's response (`GrpcResponse._send`), so its headers, messages and trailers go out as
the method produces them, with the engine's back-pressure, while the request's messages still arrive (full duplex:
bidirectional streams answer each message as it comes). The engine watches the exchange for the call: once the
client resets the stream or goes away, the method's task is cancelled where it waits (grpc.aio's behaviour), so a
method waiting for an event that will not come does not outlive its client.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn, Optional

from covet import _events
from covet.exceptions import HTTPException
from covet.requests import ClientDisconnect

from .context import ServicerContext
from .status import AbortError, StatusCode, status_fields
from .wire import ACCEPT_ENCODING, CODECS, MessageReader, Metadata, WireError, frame

__all__ = ["Call", "Method", "CallCancelled", "EOF"]

logger = logging.getLogger("covet.grpc")


_FLOW_GO, _FLOW_CLOSED = 0, 2  # NativeResponder.flow_state() (covet.responses)
_DEADLINE_EXCEEDED = (int(StatusCode.DEADLINE_EXCEEDED), "Deadline Exceeded")


class CallCancelled(Exception):
    """The client went away (closed the connection, reset the stream): nothing more can be sent."""


class _Eof:
    def __repr__(self) -> str:
        return "<EOF>"


EOF: Any = _Eof()  # context.read()'s end, unless grpc.aio is loaded (then its own EOF, which servicers compare to)


def _eof() -> Any:
    aio = sys.modules.get("grpc.aio")
    return getattr(aio, "EOF", EOF) if aio is not None else EOF


class Method:
    """A servicer method as grpcio's ``RpcMethodHandler`` describes it, with what the call needs to know once."""

    __slots__ = ("handler", "request_streaming", "response_streaming", "function", "is_async", "deserialize",
                 "serialize")

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.request_streaming = bool(handler.request_streaming)
        self.response_streaming = bool(handler.response_streaming)
        attribute = ("stream_" if self.request_streaming else "unary_") + (
            "stream" if self.response_streaming else "unary")
        function = getattr(handler, attribute)
        if function is None:
            raise TypeError(f"the RPC method handler has no {attribute} behaviour although its streaming flags "
                            "say it is one")
        self.function: Callable[..., Any] = function
        marked = getattr(function, "_covet_async", None)  # covet.grpc.typed's adapter of a one-parameter function
        self.is_async = marked if marked is not None else (
            inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function))
        self.deserialize: Optional[Callable[[bytes], Any]] = handler.request_deserializer
        self.serialize: Optional[Callable[[Any], bytes]] = handler.response_serializer


class Call:
    """The state of one call: what was sent of the response, the status the method set, the request's messages."""

    __slots__ = ("method", "path", "client", "responder", "metadata", "deadline", "max_send", "http2", "context",
                 "code", "details", "initial_metadata", "trailing_metadata", "headers_sent", "ended", "cancelled",
                 "out_encoding", "skip_next_compression", "accepted_encodings", "loop", "loop_thread", "_reader",
                 "_body", "_pending", "_flow_waiter", "_task", "_native", "_stop", "_reply", "_timer")

    def __init__(self, method: Method, path: str, client: Any, body: Any, native: Any, responder: Any,
                 metadata: Metadata, deadline: Optional[float], reader: MessageReader, accepted: str,
                 max_send: Optional[int], compression: Any, http2: bool) -> None:
        self.method = method
        self.path = path
        self.client = client
        self.responder = responder
        self.http2 = http2
        self.metadata = metadata
        self.deadline = deadline  # time.monotonic() value, or None
        self.max_send = max_send
        self.code: Optional[int] = None
        self.details: Optional[str] = None
        self.initial_metadata: list[tuple[str, str]] = []
        self.trailing_metadata: list[tuple[str, str]] = []
        self.headers_sent = False
        self.ended = False
        self.cancelled = False
        self.accepted_encodings = accepted
        self.out_encoding: Optional[str] = None
        self.skip_next_compression = False
        if compression is not None:
            self.choose_compression(compression)
        self._reader = reader
        self._body = body  # covet.requests' body source: receive() -> the next chunk (b"" at the end), consumed
        self._pending: collections.deque[bytes] = collections.deque()
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self._flow_waiter: Optional[asyncio.Future[None]] = None
        self._task: Optional[asyncio.Task[Any]] = None
        self._native = native
        self._stop: Optional[str] = None  # why the method's task was cancelled: "client" or "deadline"
        self._reply: Optional[bytes] = None  # a unary call's framed reply, sent with the trailers in one go
        self._timer: Optional[asyncio.TimerHandle] = None  # the deadline's
        self.context = ServicerContext(self)

    # -- the response -----------------------------------------------------------------------------------------
    def choose_compression(self, compression: Any) -> None:
        name = _compression_name(compression)
        if name is None or name not in self.accepted_encodings.split(","):
            self.out_encoding = None  # the client does not accept it: identity (as grpcio does)
            return
        if self.headers_sent and self.out_encoding != name:
            raise RuntimeError("set_compression: the response's headers were already sent with another encoding")
        self.out_encoding = name

    def _head(self) -> list[tuple[str, str]]:
        fields = [("content-type", "application/grpc"), ("grpc-accept-encoding", ACCEPT_ENCODING)]
        if self.out_encoding is not None:
            fields.append(("grpc-encoding", self.out_encoding))
        fields += self.initial_metadata
        return fields

    def send_headers(self) -> None:
        if self.headers_sent or self.ended:
            return
        self.responder.start_stream(200, self._head())
        self.headers_sent = True  # (after: a refused header leaves the exchange unanswered, for finish's fallback)

    async def write(self, message: Any) -> None:
        """Sends one response message; returns once the engine has room for more (back-pressure)."""
        data = self._encoded(self._framed(message))
        self.send_headers()
        responder = self.responder
        if responder.write(data) is False:
            self._gone()
        flow_state = getattr(responder, "flow_state", None)
        while flow_state is not None:  # over the engine's send limit: wait for room (or the end)
            state = flow_state()
            if state == _FLOW_GO:
                break
            if state == _FLOW_CLOSED:
                self._gone()
            await asyncio.shield(self._flow_event())

    def _framed(self, message: Any) -> bytes:
        """`message` serialized, checked against the size limit and framed (compressed if so chosen)."""
        if self.ended:
            raise RuntimeError("the call has ended: no more messages can be sent")
        if self.cancelled:
            raise CallCancelled()
        serialize = self.method.serialize
        try:
            payload = serialize(message) if serialize is not None else bytes(message)
        except Exception as exc:
            raise WireError(StatusCode.INTERNAL, f"could not serialize the response message: {exc}") from exc
        if self.max_send is not None and len(payload) > self.max_send:
            raise WireError(StatusCode.RESOURCE_EXHAUSTED,
                            f"a response message of {len(payload)} bytes is larger than the server's limit of "
                            f"{self.max_send} bytes (max_send_message_length)")
        encoding = self.out_encoding
        if self.skip_next_compression:
            encoding, self.skip_next_compression = None, False
        return frame(payload, encoding)

    def _encoded(self, data: bytes) -> bytes:
        """The bytes of a framed message as the transport sends them (gRPC-Web text: base64)."""
        return data

    def _status_fields(self, code: int, details: str) -> list[tuple[str, str]]:
        return status_fields(code, details) + self.trailing_metadata

    def finish(self, code: int, details: str) -> None:
        """Ends the response with the status (and the trailing metadata) in trailers: with a unary reply in one
        go (HEADERS, DATA, trailing HEADERS), without any message as Trailers-Only (one HEADERS)."""
        if self.ended:
            return
        self.ended = True
        trailers = self._status_fields(code, details)
        responder = self.responder
        if not self.headers_sent:
            reply = self._reply if code == 0 else None
            if reply is None:
                responder.send(200, self._head() + trailers, b"")  # Trailers-Only
                return
            send_with_trailers = getattr(responder, "send_with_trailers", None)
            if send_with_trailers is not None and self.http2:
                send_with_trailers(200, self._head(), reply, trailers)
                return
            self.send_headers()
            responder.write(reply)
        self.send_headers()
        send_trailers = getattr(self.responder, "send_trailers", None)
        if send_trailers is None:  # a responder without trailers (a test double): the body ends there
            self.responder.end()
        else:
            send_trailers(trailers)

    def abandon(self) -> None:
        """The client is gone: drop the response, started or not, so that the engine releases the exchange now
        (a started stream left open would hold its connection until the responder is collected)."""
        if self.ended:
            return
        self.ended = True
        self._release_responder()

    def _release_responder(self) -> None:
        """Ends the exchange whatever state the answer is in: a started stream is aborted, an unanswered one gets
        CANCELLED (its client is gone or it cannot be answered otherwise)."""
        responder = self.responder
        try:
            if not responder.answered:
                responder.send(200, [("content-type", "application/grpc"),
                                     *status_fields(int(StatusCode.CANCELLED), "")], b"")
                return
            abort = getattr(responder, "abort", None)
            if abort is not None:
                abort()
            else:  # a responder without abort (a test double)
                responder.end()
        except Exception:  # the exchange is over already
            logger.debug("gRPC call %s: nothing left to release", self.path, exc_info=True)

    # -- the engine's news about the exchange: room to send, or its end -----------------------------------------
    def _gone(self) -> NoReturn:
        self.cancelled = True
        raise CallCancelled()

    def _flow_event(self) -> asyncio.Future[None]:
        """The future the engine's next event for this exchange resolves (one for the writer and the watch)."""
        waiter = self._flow_waiter
        if waiter is None or waiter.done():
            waiter = self._flow_waiter = self.loop.create_future()
            _events.WAITERS[self.responder.flow_id] = waiter
            waiter.add_done_callback(self._on_flow_event)
        return waiter

    def _watch(self) -> None:
        """Asks the engine to report the exchange's end; cancels the method's task when it comes."""
        native = self._native
        if native is None or not hasattr(native, "watch_disconnect") or not hasattr(self.responder, "flow_id"):
            return  # a test double: no watch
        try:
            over = native.watch_disconnect()
        except Exception:  # the engine's request is gone (RequestGone): so is its client
            over = True
        if over:
            self._client_left()
        else:
            self._flow_event()

    def _on_flow_event(self, waiter: asyncio.Future[None]) -> None:
        if waiter.cancelled() or self.ended or self._task is None:
            return
        self._watch()  # over: cancels the task; else armed again (the event was room to send)

    def _client_left(self) -> None:
        self._stop_task("client")

    def _stop_task(self, why: str) -> None:
        """Cancels the method where it waits: the client went away, or the deadline passed."""
        if self.ended or self._stop is not None:
            return
        self._stop = why
        self.cancelled = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    def _unwatch(self) -> None:
        """The call is over: no more deadline or watch."""
        timer = self._timer
        if timer is not None:
            timer.cancel()
        waiter = self._flow_waiter
        if waiter is not None:
            flow_id = getattr(self.responder, "flow_id", None)
            if flow_id is not None and _events.WAITERS.get(flow_id) is waiter:
                del _events.WAITERS[flow_id]
            waiter.cancel()

    # -- the request's messages -----------------------------------------------------------------------------
    async def next_raw(self) -> Optional[bytes]:
        """The next request message's bytes, None after the last."""
        pending = self._pending
        while not pending:
            body = self._body
            if body.consumed:
                return None
            try:
                chunk = await body.receive()
            except (ClientDisconnect, HTTPException):  # gone, or the engine refused the body and answered
                self.cancelled = True
                raise CallCancelled() from None
            if chunk:
                pending.extend(self._reader.feed(self._decoded(chunk)))
            if body.consumed:
                self._reader.finish()
        return pending.popleft()

    def _decoded(self, chunk: bytes) -> bytes:
        """A request body chunk as framed messages (gRPC-Web text: from base64)."""
        return chunk

    def parse(self, raw: bytes) -> Any:
        deserialize = self.method.deserialize
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except Exception as exc:
            raise WireError(StatusCode.INTERNAL, f"could not deserialize the request message: {exc}") from exc

    async def read_one(self) -> Any:
        raw = await self.next_raw()
        return _eof() if raw is None else self.parse(raw)

    async def single_request(self) -> Any:
        """A unary method's one request message (a call with none or more is refused)."""
        raw = await self.next_raw()
        if raw is None:
            raise WireError(StatusCode.UNIMPLEMENTED, "a unary method got no request message (expected exactly one)")
        if await self.next_raw() is not None:
            raise WireError(StatusCode.UNIMPLEMENTED, "a unary method got more than one request message")
        return self.parse(raw)

    async def requests(self) -> AsyncIterator[Any]:
        """The request's messages for a client-streaming method (grpc.aio: an async iterator)."""
        while True:
            raw = await self.next_raw()
            if raw is None:
                return
            yield self.parse(raw)

    def blocking_requests(self, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
        """The same for a sync method in a pool thread: each message is awaited on the loop."""
        while True:
            raw = asyncio.run_coroutine_threadsafe(self.next_raw(), loop).result()
            if raw is None:
                return
            yield self.parse(raw)

    # -- running it -----------------------------------------------------------------------------------------
    async def run(self, executor: Any) -> None:
        """Runs the method and ends the call with its status; never raises (but CancelledError)."""
        code: int = 0
        details = ""
        self._task = asyncio.current_task()
        self._watch()
        if self.deadline is not None:
            loop = self.loop
            self._timer = loop.call_at(loop.time() + (self.deadline - time.monotonic()), self._stop_task, "deadline")
        try:
            await self._invoke(executor)
            code, details = self.code or 0, self.details or ""
            if self._stop is not None:  # the method swallowed its cancellation: it still happened
                if self._stopped():
                    return
                code, details = _DEADLINE_EXCEEDED
        except AbortError as exc:
            code, details = exc.code, exc.details
        except WireError as exc:
            code, details = int(exc.code), str(exc)
        except CallCancelled:
            if self._stop is None:  # a read or write found the client gone
                self._end_cancelled()
                return
            if self._stopped():  # (the deadline's: the method swallowed its cancel and tried to answer)
                return
            code, details = _DEADLINE_EXCEEDED
        except asyncio.CancelledError:
            task = self._task
            if self._stop is None or task is None or task.cancelling() != 1:
                self._end_cancelled()
                raise  # not (only) this call's own cancel: the server stops
            if self._stopped():  # the call ends here; the dispatcher's task goes on
                return
            code, details = _DEADLINE_EXCEEDED
        except Exception as exc:
            if self.code not in (None, 0):
                # grpcio's rule: a status set with set_code() stands (grpcio-tools' default servicer methods
                # set UNIMPLEMENTED, then raise NotImplementedError)
                code, details = int(self.code or 0), self.details or ""
                logger.debug("gRPC method %s raised after setting status %d", self.path, code,
                             exc_info=True)
            else:
                logger.exception("gRPC method %s failed", self.path)
                code, details = int(StatusCode.UNKNOWN), f"Exception calling application: {exc}"
        self._unwatch()
        try:
            self.finish(code, details)
        except Exception:
            logger.warning("gRPC call %s: its end could not be sent", self.path, exc_info=True)
            self._release_responder()
        self.context._run_callbacks()
        self.context = None  # type: ignore[assignment]  # no Call <-> context cycle for the GC (a kept context works)

    def _stopped(self) -> bool:
        """After this call's own stop (`_stop_task`: the client left, or the deadline passed) took the method out,
        however the method took it: the task's cancel is taken back; True when the call ends here (the client
        left), False when its status is DEADLINE_EXCEEDED."""
        task = self._task
        if task is not None and task.cancelling():
            task.uncancel()
        if self._stop == "client":
            self._end_cancelled()
            return True
        return False

    def _end_cancelled(self) -> None:
        self.cancelled = True
        self._unwatch()
        self.abandon()
        self.context._run_callbacks()
        self.context = None  # type: ignore[assignment]  # no Call <-> context cycle for the GC (a kept context works)

    async def _invoke(self, executor: Any) -> None:
        method = self.method
        function = method.function
        context = self.context
        loop = asyncio.get_running_loop()
        if not method.request_streaming:
            request = await self.single_request()
            if method.is_async:
                result = function(request, context)
            else:
                result = await self._in_pool(executor, function, request, context,
                                             generator=method.response_streaming)
        elif method.is_async:
            result = function(self.requests(), context)
        else:
            result = await self._in_pool(executor, function, self.blocking_requests(loop), context,
                                         generator=method.response_streaming)
        if method.response_streaming:
            await self._stream_out(result, executor)
        else:
            if inspect.isawaitable(result):
                result = await result
            await self._unary_response(result)

    async def _in_pool(self, executor: Any, function: Callable[..., Any], argument: Any, context: Any,
                       generator: bool) -> Any:
        loop = asyncio.get_running_loop()
        if generator and inspect.isgeneratorfunction(function):
            return function(argument, context)  # runs none of its code: its steps go to the pool (_stream_out)
        # Anything else may block (a plain function returning an iterable may read the request stream, which
        # waits on this loop): the pool.
        return await loop.run_in_executor(executor, function, argument, context)

    async def _unary_response(self, response: Any) -> None:
        if response is None:
            if self.code not in (None, 0):  # set_code() to an error and returned nothing: the status says it
                return
            raise WireError(StatusCode.INTERNAL, "the method returned None instead of a response message")
        if self.code not in (None, 0):
            return  # an error status set with set_code(): grpcio sends no message then
        if self.headers_sent:
            await self.write(response)
        else:
            self._reply = self._framed(response)  # sent by finish(), with the trailers

    async def _stream_out(self, result: Any, executor: Any) -> None:
        if hasattr(result, "__aiter__"):
            async for message in result:
                await self.write(message)
            return
        if inspect.isawaitable(result):  # a coroutine that writes with context.write()
            await result
            return
        if result is None:
            return
        loop = asyncio.get_running_loop()
        iterator = iter(result)
        done = object()
        step: Optional[asyncio.Future[Any]] = None
        try:
            while True:
                step = loop.run_in_executor(executor, next, iterator, done)
                message = await step
                step = None
                if message is done:
                    return
                await self.write(message)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                if step is not None and not step.done():
                    # Cancelled while the pool thread is inside next(): close the generator once that step
                    # returns (closing it meanwhile raises "generator already executing").
                    step.add_done_callback(lambda _step: loop.run_in_executor(executor, close))
                else:
                    await loop.run_in_executor(executor, close)


def _compression_name(compression: Any) -> Optional[str]:
    """``grpc.Compression.Gzip`` / ``"gzip"`` -> ``"gzip"``; no compression -> None."""
    if compression is None:
        return None
    name = getattr(compression, "name", compression)
    name = str(name).lower()
    if name in ("nocompression", "identity", "none", ""):
        return None
    if name not in CODECS:
        raise ValueError(f"unsupported compression {compression!r} (supported: gzip, deflate)")
    return name
