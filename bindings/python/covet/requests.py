"""The `Request` object handlers receive (Starlette-like), built lazily over the native request.

The connection's attributes (method, headers, query ...) come from `covet.connection.HTTPConnection`; this
module adds the body: ``body()``, ``json()``, ``form()``, ``stream()``, read from the engine only when used.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Generator, Iterable
from types import TracebackType
from typing import Any, Optional, Protocol, Union

from . import _events
from .connection import _UNSET, HTTPConnection, RequestScope, parse_cookies
from .datastructures import EngineHeaders, FormData, Headers
from .encoders import loads as _json_loads
from .exceptions import HTTPException
from .formparsers import MultiPartException, is_form_media_type, parse_form

__all__ = ["Request", "ClientDisconnect", "parse_cookies", "STREAM_CHUNK_SIZE", "wake_body_readers"]

STREAM_CHUNK_SIZE = 64 * 1024
"""The size of the chunks `Request.stream` yields from a buffered body (the last one may be shorter)."""


class ClientDisconnect(Exception):
    """The request body will not arrive in full: the client went away (or the response was already sent)
    while the handler read it. Starlette's name."""


# Streamed bodies that a reader waits for, by the engine's body id (and streamed responses waiting for room,
# covet.responses): the dispatcher resolves them when the engine reports news for that id.
_BODY_WAITERS = _events.WAITERS
_new_engine_headers = object.__new__


def wake_body_readers(ids: Iterable[int]) -> None:
    """Called by the dispatcher with the engine's body events (``server.take_body()``)."""
    _events.wake(ids)


class Request(HTTPConnection):
    """One HTTP request.

    Attributes (`HTTPConnection`): ``method``, ``url`` (``.path``, ``.query``, ``.hostname`` ...), ``path``,
    ``headers`` (case-insensitive), ``query_params``, ``cookies``, ``path_params`` (decoded strings), ``client``
    (``(host, port)``), ``http_version``, ``state``, ``app``; and ``await body()``, ``await json()``,
    ``await form()`` (URL-encoded and multipart forms, files as `UploadFile`), ``async for chunk in stream()``.

    The engine keeps the request's bytes only until the response has been sent. CovetPy copies what is
    still unread at that point if the request object is still referenced elsewhere (a background task),
    so a kept `Request` stays usable.
    """

    # _probe (set by _detach only): the engine's request, kept for is_disconnected() once detached.
    # _origin (set for ``Request(request.scope, request.receive)`` only): the request it was made from; that one's
    # _derived lists them, to detach them with it.
    # _received (set by receive() only): the body was handed out as an ``http.request`` message.
    # The body read so far is `_body_cache` (None: unread); `_body` is Starlette's name for it (see below).
    __slots__ = ("_body_cache", "_body_source", "_json", "_form", "_route", "_teardown", "_probe", "_origin",
                 "_derived", "_received")
    _origin: Request
    _derived: list[Request]
    _received: bool

    def __init__(self, native: Any, app: Any = None, root_path: str = "") -> None:
        """`native`: the engine's request (see `HTTPConnection`). ``Request(request.scope, request.receive)``
        (FastAPI's custom Request classes: ``GzipRequest(request.scope, request.receive)``) makes a request over
        the same one: same engine request, app, root path and ``state``; the body not read yet."""
        if native.__class__ is RequestScope:
            self._init_from(native.connection)
            return
        HTTPConnection.__init__(self, native, app, root_path)  # not super(): 3.11 builds its object every call
        self._body_cache: Optional[bytes] = None
        self._body_source: Optional[BodySource] = None  # set once stream() started reading the body
        self._json: Any = _UNSET
        self._form: Optional[FormData] = None
        self._route: Any = None  # the matched route, for the middleware chain (covet.server.dispatch)
        # Request-scoped ``yield`` dependencies to tear down once the response is sent (covet.params.plan).
        self._teardown: Optional[contextlib.AsyncExitStack] = None

    def _init_from(self, origin: HTTPConnection) -> None:
        if not isinstance(origin, Request):
            raise TypeError("Request(scope, receive) takes the scope of an HTTP request (request.scope), not a "
                            f"{type(origin).__name__}'s")
        Request.__init__(self, origin._native, origin._app, origin._server_root)
        self._root_path = origin._root_path
        self._state = origin.state  # shared, as Starlette's scope["state"] is
        self._route = origin._route
        self._origin = origin
        derived: list[Request] = getattr(origin, "_derived", None) or []
        derived.append(self)
        origin._derived = derived

    @property
    def _body(self) -> bytes:
        """Starlette's attribute for the body once read: absent (AttributeError) until then, settable — so that
        a subclass written for Starlette (``if not hasattr(self, "_body"): ... self._body = body``) works."""
        body = self._body_cache
        if body is None:
            raise AttributeError("_body: the body has not been read yet (await request.body())")
        return body

    @_body.setter
    def _body(self, body: bytes) -> None:
        self._body_cache = body

    async def receive(self) -> dict[str, Any]:
        """ASGI's ``receive`` over this request, as Starlette's ``request.receive`` (what
        ``Request(request.scope, request.receive)`` is given): the whole body in one ``http.request`` message,
        then ``http.disconnect``."""
        if getattr(self, "_received", False):
            return {"type": "http.disconnect"}
        self._received = True
        return {"type": "http.request", "body": await self.body(), "more_body": False}

    @property
    def headers(self) -> Headers:
        """The request's headers (case-insensitive). They stay in the engine: ``get``, ``[]``, ``in`` and ``getlist``
        look one name up there, and only what needs them all converts them (`covet.datastructures.EngineHeaders`)."""
        headers = self._headers
        if headers is None:
            # Made without a Python __init__ frame: this runs for every request that reads a header.
            headers = self._headers = _new_engine_headers(EngineHeaders)
            headers._source = self._native
            headers._lower = None
        return headers

    # -- body ---------------------------------------------------------------------------------------
    def _streaming(self) -> bool:
        """The engine streams this request's body (it is large and was still arriving when the handler ran)."""
        native = self._native
        return native is not None and getattr(native, "streaming", False)

    def _header_now(self, name: str) -> Optional[str]:
        """``self.headers.get(name)`` in one call for a plain Request whose headers were not asked for: the engine's
        lookup, without making `headers` (a JSON body's content type). A subclass (a route_class's custom
        Request) is asked through ``headers``: it may override them."""
        if self._headers is None and type(self) is Request:
            value: Optional[str] = self._native.header(name)
            return value
        return self.headers.get(name)

    def _body_now(self) -> bytes:
        body = self._body_cache
        if body is None:
            source = self._body_source
            if self._streaming() and (source is None or not source.consumed):
                raise RuntimeError("the request body is still arriving: read it with `await request.body()` "
                                   "(or `request.stream()`) first")
            if source is None:
                body = self._native.body
            elif source.consumed:
                raise RuntimeError("Stream consumed")
            else:  # stream() was left part way: the rest, as Starlette's body() would collect it
                body = source.rest()
            self._body_cache = body
        return body

    async def body(self) -> bytes:
        """The whole body. Raises ``RuntimeError("Stream consumed")`` once `stream` has read it to the end
        (unless ``body()`` was called before that), as in Starlette.

        A large body the engine streams is collected here, up to the server's ``max_body_bytes``: a longer
        one raises ``HTTPException(413)`` (read such bodies with `stream` instead)."""
        if self._body_cache is None:
            source = self._body_source
            if source is None and self._streaming():
                source = self._body_source = StreamedBody(self._native)
            if isinstance(source, StreamedBody):  # (it outlives the engine's request: a kept Request)
                if source.consumed:
                    raise RuntimeError("Stream consumed")
                self._body_cache = await source.collect(self.headers.get("content-length"))
        return self._body_now()

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The body in chunks, as Starlette's ``request.stream()``::

            async for chunk in request.stream():   # bytes; the last one is b""
                digest.update(chunk)

        The rules are Starlette's: after ``await request.body()`` (or a parameter that read the body) it
        yields the whole body once and then ``b""``; otherwise it yields the body's chunks as they come and
        then ``b""``, and the body is consumed: another ``stream()``, ``body()``, ``json()`` or ``form()``
        raises ``RuntimeError("Stream consumed")``. A stream left part way resumes where it stopped.

        A small body arrives whole before the handler runs; its chunks are `STREAM_CHUNK_SIZE` slices of it.
        A large one (over the server's ``stream_body_threshold``, 64 KiB by default), and one without a
        declared length (chunked, or HTTP/2 without content-length) still arriving, streams: the handler
        runs as soon as its head has arrived, and each chunk is what has arrived since the last one (at most
        `STREAM_CHUNK_SIZE`; the first bytes come at once, so a handler may answer a message before the
        body ends: full duplex), within ``max_stream_body_bytes`` (1 GiB by default), not
        ``max_body_bytes``. The engine reads ahead only about ``max_buffered_input`` bytes (1 MiB) beyond
        what the handler has taken, so a slow consumer slows the upload down instead of filling memory. If
        the client goes away midway, `ClientDisconnect` is raised; if the engine refuses the rest (over
        ``max_stream_body_bytes``, too slow), an `HTTPException` with its status is raised and the engine
        has answered the client itself.
        """
        if self._body_cache is not None:
            yield self._body_cache
            yield b""
            return
        source = self._body_source
        if source is None:
            source = self._body_source = (StreamedBody(self._native) if self._streaming()
                                          else BufferedBody(self._native.body))
        elif source.consumed:
            raise RuntimeError("Stream consumed")
        while not source.consumed:
            chunk = await source.receive()
            if chunk:
                yield chunk
        yield b""

    async def json(self) -> Any:
        """The body parsed as JSON, as Starlette's ``json.loads(body)`` does (``NaN``, UTF-16 ... included).

        Raises ``json.JSONDecodeError`` (with the stdlib's message and position) if the body is not JSON,
        also when it nests arrays/objects more than 1024 levels deep (then the subclass
        `covet._json_fallback.JSONNestingError`; Starlette's parser fails there with a `RecursionError`).
        Bytes that are not text raise ``UnicodeDecodeError``. All of these are ``ValueError``s."""
        if self._json is _UNSET:
            self._json = _json_loads(await self.body())
        return self._json

    def form(
        self,
        *,
        max_files: Union[int, float] = 1000,
        max_fields: Union[int, float] = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> _FormReader:
        """The form fields of a ``multipart/form-data`` or ``application/x-www-form-urlencoded`` body (an
        empty `FormData` for other bodies), as in Starlette: ``form = await request.form()``, or
        ``async with request.form() as form:`` to close the uploaded files afterwards.

        Files are `UploadFile` values. A malformed body or one over a limit raises ``HTTPException(400)``.
        The form is parsed once; later calls return the same `FormData`.
        """
        return _FormReader(self, max_files, max_fields, max_part_size)

    def _form_now(
        self,
        max_files: Union[int, float] = 1000,
        max_fields: Union[int, float] = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> FormData:
        """The parsed form (raises `MultiPartException` for a malformed body)."""
        if self._form is None:
            content_type = self.headers.get("content-type", "")
            body = self._body_now() if is_form_media_type(content_type) else b""  # as Starlette: others unread
            self._form = parse_form(body, content_type, max_files=max_files, max_fields=max_fields,
                                    max_part_size=max_part_size)
        return self._form

    async def close(self) -> None:
        """Closes the files of a parsed form."""
        if self._form is not None:
            await self._form.close()

    async def is_disconnected(self) -> bool:
        """True once the client went away (closed the connection, reset its HTTP/2 stream) — or once the
        response has ended. The first call starts watching the connection."""
        native = self._native
        if native is None:  # detached (kept by a generator or a background task): ask the engine still
            native = getattr(self, "_probe", None)
            if native is None:
                return False
        return bool(getattr(native, "disconnected", False))

    # -- lifetime -----------------------------------------------------------------------------------
    def _detach(self) -> None:
        """Copy everything still unread out of the engine (called before the response is sent)."""
        for derived in getattr(self, "_derived", ()):  # kept with it (the origin is referenced by them)
            derived._detach()
        native = self._native
        if native is None:
            return
        self._read_all()
        if self._body_source is None:  # a started stream holds its own copy (or the engine's queue)
            if self._streaming():
                self._body_source = StreamedBody(native)  # what has arrived stays readable
            elif self._body_cache is None:  # kept, still unread (a subclass's body() may read it its own way)
                self._body_source = BufferedBody(native.body)
        self._probe = native
        self._native = None

    def __repr__(self) -> str:
        try:
            return f"<Request {self.method} {self.raw_path}>"
        except Exception:  # the engine's request is gone and nothing was read
            return "<Request (answered)>"


class _FormReader:
    """What ``request.form()`` returns: awaitable (the `FormData`) and an async context manager that
    closes the uploaded files on exit (Starlette's ``AwaitableOrContextManager``)."""

    __slots__ = ("_request", "_limits", "_form")

    def __init__(self, request: Request, max_files: Union[int, float], max_fields: Union[int, float],
                 max_part_size: int) -> None:
        self._request = request
        self._limits = (max_files, max_fields, max_part_size)
        self._form: Optional[FormData] = None

    def _parse(self) -> FormData:
        try:
            return self._request._form_now(*self._limits)
        except MultiPartException as exc:
            raise HTTPException(400, exc.message) from exc

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._result().__await__()

    async def _collect(self) -> None:
        """A streamed form body is collected first (forms are parsed from the whole body)."""
        request = self._request
        if (request._form is None and request._body_cache is None and request._streaming()
                and is_form_media_type(request.headers.get("content-type", ""))):
            await request.body()

    async def _result(self) -> FormData:
        await self._collect()
        return self._parse()

    async def __aenter__(self) -> FormData:
        await self._collect()
        self._form = self._parse()
        return self._form

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if self._form is not None:
            await self._form.close()


class BodySource(Protocol):
    """Where `Request.stream` takes the body from, chunk by chunk.

    `BufferedBody` serves a body the engine has received whole (all of them today). A source fed by the
    engine while the body arrives implements the same three members.
    """

    @property
    def consumed(self) -> bool:
        """True once the last chunk has been handed out (then `receive` gives b"" only)."""

    async def receive(self) -> bytes:
        """The next chunk (b"" when the body is empty); marks the source consumed with the last one."""

    def rest(self) -> bytes:
        """Everything not yet received, at once; marks the source consumed."""


class BufferedBody:
    """A `BodySource` over a body received whole: `chunk_size` slices of it, in order."""

    __slots__ = ("_data", "_pos", "_chunk_size", "consumed")

    def __init__(self, data: bytes, chunk_size: int = STREAM_CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._data = data
        self._pos = 0
        self._chunk_size = chunk_size
        self.consumed = False

    async def receive(self) -> bytes:
        data, start = self._data, self._pos
        end = start + self._chunk_size
        if end >= len(data):
            self.consumed = True
            self._pos = len(data)
            return data if start == 0 else data[start:]  # a body of one chunk is not copied
        self._pos = end
        return data[start:end]

    def rest(self) -> bytes:
        data, start = self._data, self._pos
        self.consumed = True
        self._pos = len(data)
        return data if start == 0 else data[start:]


class StreamedBody:
    """A `BodySource` fed by the engine while the body arrives (a large body: see `Request.stream`).

    Each chunk taken is acknowledged to the engine, which reads more from the client only as chunks are
    taken: the upload goes at the pace of its reader."""

    __slots__ = ("_native", "_limit", "_route_limit", "_taken", "consumed")

    def __init__(self, native: Any) -> None:
        self._native = native
        self._limit: int = native.max_body_bytes
        # The route's own limit (max_body_size=; 0: none): held by stream() too, not only by collect().
        self._route_limit: int = getattr(native, "route_max_body_bytes", 0)
        self._taken = 0
        self.consumed = False

    async def receive(self) -> bytes:
        native = self._native
        while True:
            result = native.read_body()
            if result is None:  # nothing yet: wait for the engine's event for this body
                loop = asyncio.get_running_loop()
                future: asyncio.Future[None] = loop.create_future()
                body_id = native.body_id
                _BODY_WAITERS[body_id] = future
                try:
                    await future
                finally:
                    if _BODY_WAITERS.get(body_id) is future:
                        del _BODY_WAITERS[body_id]
                continue
            if result.__class__ is tuple:
                self.consumed = True
                status, reason = result
                if status:
                    raise HTTPException(status, f"the request body was refused: {reason}")
                raise ClientDisconnect(reason)
            if not result:
                self.consumed = True
            chunk: bytes = result
            if self._route_limit:
                self._taken += len(chunk)
                if self._taken > self._route_limit:
                    self.consumed = True
                    raise _too_large(self._route_limit, route=True)
            return chunk

    def rest(self) -> bytes:
        raise RuntimeError("a streamed body is collected with `await request.body()`")

    async def collect(self, content_length: Optional[str] = None) -> bytes:
        """The rest of the body at once, refused (413) as soon as it is known to exceed the server's
        ``max_body_bytes``."""
        limit, route = self._limit, bool(self._route_limit)
        # (More than 18 digits is over any limit, and int() of thousands of them raises ValueError.)
        if content_length is not None and content_length.isdigit() and (
                len(content_length) > 18 or int(content_length) > limit):
            self.consumed = True
            raise _too_large(limit, route)
        parts: list[bytes] = []
        size = 0
        while not self.consumed:
            chunk = await self.receive()
            size += len(chunk)
            if size > limit:
                self.consumed = True
                raise _too_large(limit, route)
            parts.append(chunk)
        return b"".join(parts)


def _too_large(limit: int, route: bool = False) -> HTTPException:
    if route:
        return HTTPException(413, f"The request body is larger than this route's limit of {limit} bytes "
                                  "(max_body_size=); send less, or raise the route's limit")
    return HTTPException(
        413,
        f"The request body is larger than the server's limit of {limit} bytes (max_body_bytes) for bodies read "
        "whole; raise it with --limit-max-body or COVET_LIMIT_MAX_BODY (serve(..., max_body_bytes=...)), or read "
        "large bodies with request.stream()",
    )

