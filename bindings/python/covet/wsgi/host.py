"""`WsgiHost`: a WSGI application (PEP 3333: Flask, Django, ...) served on the native engine.

Threads. The engine hands requests to the event-loop thread (`WsgiDispatcher.on_readable`), which builds each one's
environ (only this thread reads the engine's request: see `_Exchange`) and puts it on the pool's queue: the app runs
in one of the pool's `threads` threads, which answers through the request's ``NativeResponder`` itself. The
responder is safe to use from any thread in both engine modes: a call from a thread that is not the connection's
posts the work to the connection's thread (the I/O thread with the engine's ``threads>=1``; with the embedded
engine, ``threads=0``, the loop thread, which the pool thread then asks for a poll: `WsgiDispatcher.kick`). So a
response with one body costs one hand-off (loop -> pool) and one post to the engine; with an I/O thread nothing goes
back through the event loop. A streamed request body and a streamed response's flow control wait in the pool thread
on an Event that the loop sets from the engine's ``take_body`` news. ``threads=0`` runs the app on the loop thread
itself, one request at a time (no hand-off at all); its waits drive the engine in place
(`WsgiDispatcher.wait_inline`).

Responses. The first non-empty body chunk is held: when the iterable ends after it, the whole response goes
out in one ``send`` (Content-Length); a second chunk (or ``write()``) starts a chunked stream with back-pressure
(the pool thread waits while more than the engine's ``stream_send_buffer`` is unsent). A `FileWrapper` of a
regular file is sent from the file (``send_file``: sendfile on plain TCP). ``close()`` of the app's iterable is
always called, after the response was handed to the engine.

Errors. The app raising before its response started: 500 and a log line with the traceback; after: the log
line, and the connection is closed without the end of the body (the client sees it incomplete). A bad status
line or headers raise from ``start_response`` in the app (TypeError/ValueError naming the fault), so the same
500 follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import queue
import re
import select
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Optional

from covet.logger import request_ids
from covet.routing import METHODS
from covet.server.dispatch import EngineDriver
from covet.server.engine import Engine, Responder, request_gone_types
from covet.server.hosted import RequestGate, span_headers

from .environ import EnvironBuilder
from .streams import BodyInput, ClientDisconnected, EngineNews, FileWrapper, RequestBodyError

__all__ = ["WsgiApp", "WsgiDispatcher", "WsgiHost"]

logger = logging.getLogger("covet")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_ERROR_HEADERS: list[tuple[str, str]] = [("content-type", "text/plain; charset=utf-8")]
_ERROR_BODY = b"Internal Server Error"
# Inline mode (threads=0) waiting for the engine's news: the embedded engine's fd at most this long, then a poll;
# with an I/O thread, sleeps this long between checks.
_INLINE_WAIT = 0.01
_INLINE_SLEEP = 0.0005
# Embedded engine: seconds between the loop's safety polls (WsgiDispatcher._tick).
_TICK = 0.25
# A HEAD answer whose app gave Content-Length and no body: that many zero bytes go to the engine, which announces
# their length and sends none of them (up to this size; beyond, the answer is chunked without a length).
_HEAD_PAD_LIMIT = 16 * 1024 * 1024

# Response header names seen (bounded cache): 0 passed on, 1 Content-Length, 2 hop-by-hop (dropped, as gunicorn).
_ORDINARY, _LENGTH, _HOP = 0, 1, 2
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                         "transfer-encoding", "upgrade"})
_NAMES: dict[str, int] = {}
_STATUSES: dict[str, int] = {}
_CACHE_LIMIT = 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _status_code(status: Any) -> int:
    code = _STATUSES.get(status)
    if code is not None:
        return code
    if not isinstance(status, str):
        raise TypeError(f"start_response(): the status must be a str such as '200 OK', not {type(status).__name__} "
                        f"{status!r} (PEP 3333)")
    if len(status) < 3 or not status[:3].isdigit() or (len(status) > 3 and status[3] != " ") \
            or not 100 <= int(status[:3]) <= 599 or "\r" in status or "\n" in status:
        raise ValueError(f"start_response(): bad status line {status!r}: it must be a 3-digit code from 100 to 599, "
                         f"a space and a reason phrase, such as '200 OK' (PEP 3333)")
    code = int(status[:3])
    if len(_STATUSES) < _CACHE_LIMIT:
        _STATUSES[status] = code
    return code


def _header_kind(name: Any) -> int:
    kind = _NAMES.get(name)
    if kind is not None:
        return kind
    if not isinstance(name, str):
        raise TypeError(f"start_response(): a header name must be a str, not {type(name).__name__} {name!r}")
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"start_response(): bad header name {name!r}: a name is a token (letters, digits and "
                         f"!#$%&'*+-.^_`|~, no spaces or colons)")
    lower = name.lower()
    kind = _LENGTH if lower == "content-length" else _HOP if lower in _HOP_BY_HOP else _ORDINARY
    if len(_NAMES) < _CACHE_LIMIT:
        _NAMES[name] = kind
    return kind


def _engine_headers(headers: Any) -> tuple[list[tuple[str, Any]], int]:
    """The app's headers as the engine takes them, and its Content-Length (-1: none). Checked here, so that a
    fault raises from start_response in the app; values outside ASCII go as latin-1 bytes (PEP 3333). The
    engine frames the body itself (it drops Content-Length and Transfer-Encoding), so the app's list is passed
    on as it is unless it holds a hop-by-hop header or a value outside ASCII."""
    if headers.__class__ is not list:
        if not isinstance(headers, (list, tuple)):
            raise TypeError(f"start_response(): the headers must be a list of (name, value) tuples, not "
                            f"{type(headers).__name__} (PEP 3333)")
        headers = list(headers)
    declared = -1
    rebuild = False
    names = _NAMES
    for item in headers:
        if item.__class__ is not tuple or len(item) != 2:
            raise TypeError(f"start_response(): each header must be a (name, value) tuple of str, not {item!r}")
        name, value = item
        kind = names.get(name)
        if kind is None:
            kind = _header_kind(name)
        if value.__class__ is not str:
            raise TypeError(f"start_response(): the value of header {name!r} must be a str, not "
                            f"{type(value).__name__} {value!r}")
        if kind:
            if kind == _LENGTH:
                text = value.strip()
                if not text.isdigit():
                    raise ValueError(f"start_response(): bad Content-Length {value!r}: it must be a decimal number")
                declared = int(text)
            else:
                rebuild = True
        elif not value.isascii():
            rebuild = True
    if not rebuild:
        return headers, declared
    out: list[tuple[str, Any]] = []
    for name, value in headers:
        if _header_kind(name) == _HOP:
            continue  # not the app's to send (the engine manages the connection)
        if not value.isascii():
            try:
                value = value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"start_response(): the value of header {name!r} has characters outside latin-1 "
                                 f"(PEP 3333: encode it, e.g. RFC 8187 for filenames): {value!r}") from None
        out.append((name, value))
    return out, declared


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"the WSGI app's body must be an iterable of bytes; it gave {type(chunk).__name__} "
                    f"{chunk!r:.80} (encode text, e.g. .encode('utf-8'))")


class _Exchange:
    """One request: its environ, made on the loop thread as the engine hands it over (`prepare`); then, in a pool
    thread, the app with start_response/write and the response (`run`).

    Only the loop thread reads the native request: the engine owns it, and its thread (the loop thread itself
    with the embedded engine, inside ``poll``) may end it at any time (a body the engine refused, a reset), so a
    pool thread reading it would race the engine. The pool thread uses the responder and the streamed body's
    queue, which are made for other threads (their work is posted to the connection's thread)."""

    __slots__ = ("dispatcher", "environ", "responder", "status", "headers", "declared", "sent", "streaming",
                 "news", "flow_id", "first_chunk", "gated", "context")

    def __init__(self, dispatcher: WsgiDispatcher, responder: Any) -> None:
        self.dispatcher = dispatcher
        self.environ: dict[str, Any] = {}
        self.responder = responder
        self.status = 0  # 0: start_response not called yet
        self.headers: list[tuple[str, Any]] = []
        self.declared = -1
        self.sent = 0
        self.streaming = False
        self.news: Optional[EngineNews] = None
        self.flow_id = 0
        self.first_chunk: Any = None
        self.gated = False  # counted by --limit-concurrency's gate: `_leave` once
        # Tracing / access log: the context the app runs in, holding the request's ids (covet.logger.request_ids:
        # log records, the app's current OpenTelemetry span); None: the pool thread's own.
        self.context: Optional[contextvars.Context] = None

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[
            [bytes], None]:
        if exc_info is not None:
            try:
                if self.streaming:  # too late to change the response: PEP 3333 re-raises the app's error
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status:
            raise AssertionError("start_response() was called a second time without exc_info (PEP 3333: only an "
                                 "error handler may replace the response, passing sys.exc_info())")
        code = _status_code(status)
        self.headers, self.declared = _engine_headers(headers)
        self.status = code
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write() callable: the data goes out now (a chunked stream), waiting while the client is
        slow. Raises ClientDisconnected when the client went away."""
        if not self.status:
            raise AssertionError("write() was called before start_response()")
        if data.__class__ is not bytes:
            data = _as_bytes(data)
        if not data:
            return
        if not self.streaming:
            self._start()
        if not self._write(data):
            raise ClientDisconnected("the client went away while the response was being written")

    # -- the response ------------------------------------------------------------------------------
    def prepare(self, native: Any) -> bool:
        """The environ of `native` (on the loop thread); False when it could not be made (answered 500), or when
        the request is gone already."""
        if native.streaming:
            # A streamed body's news first: a body the engine refused (it answered 413/408 itself) or a client gone
            # ended the exchange, and then the request itself may be gone: it is not read at all.
            first = native.read_body()
            if first.__class__ is tuple:
                logger.info("a request's body failed before the WSGI app was called (%s: %s)", *first)
                self._done()
                return False
            self.first_chunk = first
        try:
            self.environ = self.dispatcher.environ.build(native, self._body_input)
            if self.dispatcher.trace_ids:
                ids = self.dispatcher.trace_ids_of(native)
                self.context = contextvars.Context()
                self.context.run(request_ids.set, ids)
                header = span_headers(ids)
                if header is not None:  # the app's own instrumentation continues the engine's span
                    self.environ["HTTP_TRACEPARENT"] = header[0]
                    if header[1]:
                        self.environ["HTTP_TRACESTATE"] = header[1]
                    else:
                        self.environ.pop("HTTP_TRACESTATE", None)
            return True
        except self.dispatcher.gone as exc:  # the engine refused the body meanwhile (and answered it)
            logger.info("%s", exc)
            self._done()
            return False
        except Exception as exc:
            self._fail(exc, "a request")
            self._done()
            return False

    def run(self) -> None:
        if self.context is not None:
            self.context.run(self._run)
        else:
            self._run()

    def _run(self) -> None:
        dispatcher = self.dispatcher
        environ = self.environ
        result: Any = None
        try:
            result = dispatcher.app(environ, self.start_response)
            self._respond(result)
        except Exception as exc:
            self._fail(exc, f"{environ['REQUEST_METHOD']} {environ['RAW_URI']}")
        finally:
            if result is not None:
                close = getattr(result, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:
                        logger.exception("the WSGI app's response close() failed")
            self._done()

    def _done(self) -> None:
        if self.news is not None:
            self.news.release()
        self._leave()

    def _leave(self) -> None:
        """Out of --limit-concurrency's count (on the loop thread), before the final answer goes to the engine:
        the loop runs it before it can take the client's next request."""
        if not self.gated:
            return
        self.gated = False
        dispatcher = self.dispatcher
        gate = dispatcher.gate
        assert gate is not None
        if dispatcher.pool is None:
            gate.leave()
        else:
            dispatcher.loop.call_soon_threadsafe(gate.leave)

    def _respond(self, result: Any) -> None:
        if result.__class__ is FileWrapper and self.status and not self.streaming:
            region = result.region()
            if region is not None:
                path, offset, count = region
                if 0 <= self.declared < count:
                    count = self.declared
                self._leave()
                self.responder.send_file(self.status, self.headers, path, offset, count)
                self._kick()
                return
        pending: Optional[bytes] = None
        for chunk in result:
            if chunk.__class__ is not bytes:
                chunk = _as_bytes(chunk)
            if not chunk:
                continue
            if self.streaming:
                if not self._write(chunk):
                    self._leave()
                    self.responder.end()  # the client went away: stop producing (close() still runs)
                    self._kick()
                    return
            elif pending is None:
                if not self.status:
                    raise RuntimeError("the WSGI app produced body bytes before calling start_response()")
                pending = chunk
            else:
                self._start()
                if not self._write(pending) or not self._write(chunk):
                    self._leave()
                    self.responder.end()
                    self._kick()
                    return
                pending = None
        if self.streaming:
            self._leave()
            self.responder.end()
            self._kick()
            return
        if not self.status:
            raise RuntimeError("the WSGI app returned without calling start_response() (PEP 3333)")
        self._send(pending if pending is not None else b"")

    def _send(self, body: bytes) -> None:
        declared = self.declared
        if declared >= 0 and len(body) != declared:
            if len(body) > declared:  # PEP 3333: never more than the app's Content-Length
                body = body[:declared]
            elif not body and self.environ["REQUEST_METHOD"] == "HEAD":  # the length a GET would have, no body
                if declared > _HEAD_PAD_LIMIT:
                    self._start()
                    self._leave()
                    self.responder.end()
                    self._kick()
                    return
                body = bytes(declared)
        self._leave()
        self.responder.send(self.status, self.headers, body)
        kick = self.dispatcher.kick
        if kick is not None:
            kick()

    def _kick(self) -> None:
        kick = self.dispatcher.kick
        if kick is not None:
            kick()

    def _body_input(self, native: Any) -> BodyInput:
        return BodyInput(native, self._news(), self.dispatcher.kick, self.first_chunk)

    def _news(self) -> EngineNews:
        news = self.news
        if news is None:
            news = self.news = EngineNews() if self.dispatcher.pool is not None else _InlineNews(self.dispatcher)
        return news

    def _start(self) -> None:
        responder = self.responder
        responder.start_stream(self.status, self.headers)
        self.streaming = True
        self.flow_id = responder.flow_id
        self._news()

    def _write(self, chunk: bytes) -> bool:
        """Writes one chunk of a started stream, waiting while too much is unsent; False: the client is gone."""
        declared = self.declared
        if declared >= 0:
            room = declared - self.sent
            if room <= 0:
                return True
            if len(chunk) > room:
                chunk = chunk[:room]
            self.sent += len(chunk)
        responder = self.responder
        if not responder.write(chunk):
            return False
        self._kick()
        news = self.news
        assert news is not None
        while True:
            news.arm(self.flow_id)  # before flow_state arms the engine's event: a wake-up in between is kept
            state: int = responder.flow_state()
            if state != 1:
                return state == 0
            news.wait()

    def _fail(self, exc: Exception, where: str) -> None:
        responder = self.responder
        if self.streaming:
            logger.error("the WSGI app failed after its response to %s started: the connection is closed", where,
                         exc_info=exc)
            self._leave()
            responder.abort()
            self._kick()
            return
        if isinstance(exc, RequestBodyError):
            logger.info("%s: %s", where, exc)
            headers, body = _ERROR_HEADERS, exc.reason.encode("utf-8", "replace")
            status = exc.status
        elif isinstance(exc, ClientDisconnected):
            logger.debug("%s: %s", where, exc)
            headers, body, status = _ERROR_HEADERS, b"Client disconnected", 400
        else:
            logger.error("the WSGI app failed on %s", where, exc_info=exc)
            headers, body, status = _ERROR_HEADERS, _ERROR_BODY, 500
        try:
            self._leave()
            responder.send(status, headers, body)
            self._kick()
        except Exception:  # answered already (send_file failed after sending), or the engine refused it
            logger.debug("no error response could be sent for %s", where, exc_info=True)


class _Pool:
    """`size` threads running exchanges from a queue."""

    def __init__(self, dispatcher: WsgiDispatcher, size: int) -> None:
        self.queue: queue.SimpleQueue[Optional[_Exchange]] = queue.SimpleQueue()
        self.dispatcher = dispatcher
        self.threads = [threading.Thread(target=self._run, name=f"covet-wsgi-{i}", daemon=True)
                        for i in range(size)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        get = self.queue.get
        while True:
            exchange = get()
            if exchange is None:
                return
            try:
                exchange.run()
            except BaseException:  # never lose a pool thread
                logger.exception("the WSGI pool thread's request failed")
            # Not held while waiting for the next request: the engine's exchange ends with its last reference.
            exchange = None

    def stop(self) -> None:
        for _ in self.threads:
            self.queue.put(None)

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)


class WsgiDispatcher(EngineDriver):
    """Takes the engine's requests on the loop thread (`EngineDriver`) and runs them in the host's pool."""

    def __init__(self, host: WsgiHost, server: Engine, loop: asyncio.AbstractEventLoop, root_path: str,
                 gate: Optional[RequestGate] = None) -> None:
        super().__init__(server, loop)
        self.app = host.app
        self.gate = gate
        self.gone = request_gone_types()  # the engine's RequestGone: a request it answered itself
        config = getattr(server, "config", None)
        server_name = getattr(config, "host", "") or "localhost"
        self.environ = EnvironBuilder(server_name, server.port, root_path, host.threads > 1, host.multiprocess,
                                      FileWrapper)
        # threads=0: the app runs on the loop thread itself (no pool, no hand-off).
        self.pool = _Pool(self, host.threads) if host.threads else None
        # Embedded engine: what a pool thread posts to the engine waits for the loop thread's next poll; the
        # post's own wake-up does not reach the loop, so the pool thread asks for that poll (`kick`).
        self.kick: Optional[Callable[[], None]] = None
        self._tick_handle: Optional[asyncio.TimerHandle] = None
        if self.embedded:
            if self.pool is not None:
                self.kick = self._kick
            self._tick_handle = loop.call_later(_TICK, self._tick)

    def dispatch(self, items: Sequence[tuple[int, Any, Responder]]) -> None:
        gate = self.gate
        pool = self.pool
        run = pool.queue.put if pool is not None else _Exchange.run  # inline: one after the other, here
        for _, native, responder in items:
            if gate is not None and not gate.enter():
                responder.send(503, _ERROR_HEADERS, b"Service Unavailable")
                continue
            exchange = _Exchange(self, responder)
            exchange.gated = gate is not None
            if exchange.prepare(native):
                run(exchange)

    def _tick(self) -> None:
        """Embedded engine: a poll every `_TICK` seconds. Work posted to the engine from another thread (or its
        own stop request) wakes the engine's ring, but that wake-up does not always reach the loop's reader
        (io_uring's deferred task work); the kicks cover the pool's posts, this tick whatever else is posted."""
        self.on_readable()
        stopped = self.engine_stopped
        if stopped is None or not stopped.done():
            self._tick_handle = self.loop.call_later(_TICK, self._tick)

    def close(self, timeout: float = 0.0) -> None:
        """Stops the pool threads once they finish their requests (`timeout`: seconds to wait for them)."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self.pool is not None:
            self.pool.stop()
            if timeout > 0:
                self.pool.join(timeout)

    def wait_inline(self) -> None:
        """Inline (threads=0): the engine's news for the exchange running on this thread, by driving the engine
        here (the loop is inside this exchange): the embedded engine polled, or a short sleep for the I/O thread's."""
        server = self.server
        if self.embedded:
            waiter = select.poll()  # poll, not select: the engine's fd may be above FD_SETSIZE (1024)
            waiter.register(server.fileno(), select.POLLIN)
            waiter.poll(_INLINE_WAIT * 1000)
            server.poll()
            server.flush()
        else:
            time.sleep(_INLINE_SLEEP)
        server.take_body()  # only this exchange waits for news (one at a time): the caller re-checks its own


class WsgiHost:
    """A WSGI application served by the engine: ``covet run module:app`` builds one for a WSGI callable
    (``--wsgi-threads N``: the pool's size); every request of every method reaches it."""

    interface = "wsgi"

    def __init__(self, app: WsgiApp, threads: int = 4, *, multiprocess: Optional[bool] = None) -> None:
        """`threads`: the pool running the app (size it for the app's blocking work, as gunicorn's ``--threads``;
        4 by default, as waitress); 0 runs the app on the event-loop thread itself, one request at a time (as a
        gunicorn sync worker: no hand-off, the cheapest per request, for apps that do not block);
        `multiprocess`: ``wsgi.multiprocess`` (True when several worker processes serve the app); None (the
        default) says so when ``COVET_WORKERS`` is above 1, as ``covet run --workers N`` sets it for its workers."""
        if not callable(app):
            raise TypeError(f"WsgiHost needs a WSGI application (a callable app(environ, start_response)), not "
                            f"{type(app).__name__}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"WsgiHost(threads=...) must be 0 (inline) or a positive integer, not {threads!r}")
        self.app = app
        self.wrapped: Any = app  # as given (covet.observability.setup_observability marks it)
        self.threads = threads
        self.multiprocess = _several_workers() if multiprocess is None else multiprocess
        self.dispatchers: list[WsgiDispatcher] = []

    def register(self, server: Engine) -> None:
        """Every path and method goes to the app (route id 0)."""
        for method in METHODS:
            # The engine's name for a catch-all (it matches "/" too): requests count and trace with no http.route
            # (the app's own routes are unknown), not with this pattern
            server.add_route(method, "/{covet_unmatched:path}", 0)

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """WSGI has no lifespan; leaving it stops the pools of the dispatchers made inside it."""
        try:
            yield
        finally:
            dispatchers, self.dispatchers = self.dispatchers, []
            for dispatcher in dispatchers:
                dispatcher.close()
            if dispatchers:
                await asyncio.to_thread(_join_all, dispatchers, 5.0)

    def dispatcher(self, server: Engine, loop: asyncio.AbstractEventLoop, root_path: str,
                   gate: Optional[RequestGate] = None) -> WsgiDispatcher:
        dispatcher = WsgiDispatcher(self, server, loop, root_path, gate)
        self.dispatchers.append(dispatcher)
        return dispatcher


class _InlineNews(EngineNews):
    """Inline mode's waiting: no other thread wakes this one; it drives the engine until its news came."""

    __slots__ = ("_dispatcher",)

    def __init__(self, dispatcher: WsgiDispatcher) -> None:
        super().__init__()
        self._dispatcher = dispatcher

    def arm(self, event_id: int) -> None:
        pass

    def wait(self) -> None:
        self._dispatcher.wait_inline()


def _join_all(dispatchers: list[WsgiDispatcher], timeout: float) -> None:
    for dispatcher in dispatchers:
        if dispatcher.pool is not None:
            dispatcher.pool.join(timeout)


def _several_workers() -> bool:
    """Whether this process is one of several workers: ``covet run --workers N`` exports the number of worker
    processes it starts as ``COVET_WORKERS`` (which its workers inherit)."""
    from covet.server.supervisor import resolve_workers  # deferred: the supervisor's module, for this one call

    try:
        return resolve_workers(os.environ.get("COVET_WORKERS", "1").strip()) > 1
    except ValueError:  # not a count: the supervisor refuses it before starting any worker
        return False
