"""The `Request` object handlers receive (Starlette-like), built lazily over the native request.

Nothing is copied out of the engine until it is used: a handler that only reads ``request.method`` pays
for one attribute, not for the headers, the query string or the body.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from .datastructures import URL, Address, FormData, Headers, QueryParams, State
from .encoders import loads as _json_loads
from .exceptions import HTTPException

if TYPE_CHECKING:
    from .app import CovetPy

__all__ = ["Request", "parse_cookies", "STREAM_CHUNK_SIZE"]

STREAM_CHUNK_SIZE = 64 * 1024
"""The size of the chunks `Request.stream` yields from a buffered body (the last one may be shorter)."""

# urllib.parse and json are imported where they are needed (percent-encoded values, query parsing, invalid
# JSON): an app that never meets those does not pay their import time and memory.


def parse_cookies(header: str) -> dict[str, str]:
    """``Cookie: a=1; b="two"`` → ``{"a": "1", "b": "two"}`` (lenient, like browsers send them)."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep:  # a bare value counts as a value with no name, as browsers do
            name, value = "", name
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name or value:
            out[name] = unquote(value)
    return out


class Request:
    """One HTTP request.

    Attributes: ``method``, ``url`` (``.path``, ``.query``, ``.hostname`` ...), ``path``, ``headers``
    (case-insensitive), ``query_params``, ``cookies``, ``path_params`` (decoded strings), ``client``
    (``(host, port)``), ``http_version``, ``state``, ``app``; and ``await body()``, ``await json()``,
    ``await form()`` (URL-encoded and multipart forms, files as `UploadFile`), ``async for chunk in stream()``.

    The engine keeps the request's bytes only until the response has been sent. CovetPy copies what is
    still unread at that point if the request object is still referenced elsewhere (a background task),
    so a kept `Request` stays usable.
    """

    __slots__ = (
        "_native",
        "_app",
        "_method",
        "_raw_path",
        "_path",
        "_query_string",
        "_headers",
        "_query_params",
        "_cookies",
        "_body",
        "_body_source",
        "_json",
        "_form",
        "_path_params",
        "_client",
        "_http_version",
        "_scheme",
        "_tls",
        "_state",
        "_route",
        "__weakref__",
    )

    def __init__(self, native: Any, app: Optional["CovetPy"] = None) -> None:
        self._native = native
        self._app = app
        self._method: Optional[str] = None
        self._raw_path: Optional[str] = None
        self._path: Optional[str] = None
        self._query_string: Optional[str] = None
        self._headers: Optional[Headers] = None
        self._query_params: Optional[QueryParams] = None
        self._cookies: Optional[dict[str, str]] = None
        self._body: Optional[bytes] = None
        self._body_source: Optional[BodySource] = None  # set once stream() started reading the body
        self._json: Any = _UNSET
        self._form: Optional[FormData] = None
        self._path_params: Optional[dict[str, str]] = None
        self._client: Optional[Address] = None
        self._http_version: Optional[str] = None
        self._scheme: Optional[str] = None
        self._tls: Any = _UNSET
        self._state: Optional[State] = None
        self._route: Any = None

    # -- scalar attributes ------------------------------------------------------------------------
    @property
    def app(self) -> "CovetPy":
        if self._app is None:
            raise AttributeError("this request is not attached to an app")
        return self._app

    @property
    def method(self) -> str:
        if self._method is None:
            self._method = self._native.method
        return self._method

    @property
    def raw_path(self) -> str:
        """The path as sent (still percent-encoded)."""
        if self._raw_path is None:
            self._raw_path = self._native.path
        return self._raw_path

    @property
    def path(self) -> str:
        """The percent-decoded path."""
        if self._path is None:
            raw = self.raw_path
            if "%" in raw:
                from urllib.parse import unquote

                raw = unquote(raw)
            self._path = raw
        return self._path

    @property
    def query_string(self) -> str:
        if self._query_string is None:
            self._query_string = self._native.query_string
        return self._query_string

    @property
    def http_version(self) -> str:
        if self._http_version is None:
            self._http_version = self._native.http_version
        return self._http_version

    @property
    def scheme(self) -> str:
        """``"https"`` on a TLS connection, else ``"http"``."""
        if self._scheme is None:
            self._scheme = getattr(self._native, "scheme", "http")
        return self._scheme

    @property
    def tls(self) -> Optional[dict[str, Any]]:
        """The TLS session (``tls_version``, ``cipher_suite``, ``alpn_protocol``, ``server_name``,
        ``client_cert_verified``, ``client_cert_name`` (RFC 2253 subject), ``client_cert_common_name``), or None."""
        if self._tls is _UNSET:
            self._tls = getattr(self._native, "tls", None)
        return self._tls  # type: ignore[no-any-return]

    @property
    def scope(self) -> dict[str, Any]:
        """An ASGI-style scope for code written against Starlette/FastAPI (built on each access)."""
        scope: dict[str, Any] = {
            "type": "http", "http_version": self.http_version, "method": self.method, "scheme": self.scheme,
            "path": self.path, "raw_path": self.raw_path.encode("latin-1"),
            "query_string": self.query_string.encode("latin-1"),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.raw],
            "client": tuple(self.client), "path_params": self.path_params, "extensions": {},
        }
        if self.tls is not None:
            scope["extensions"]["tls"] = dict(self.tls)
        return scope

    @property
    def client(self) -> Address:
        if self._client is None:
            host, port = self._native.client
            self._client = Address(host, port)
        return self._client

    # -- parsed attributes ------------------------------------------------------------------------
    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._native.headers)
        return self._headers

    @property
    def url(self) -> URL:
        host = self.headers.get("host", "")
        return URL(self.scheme, host, self.path, self.query_string, self.raw_path)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.headers.get('host', '')}/"

    @property
    def query_params(self) -> QueryParams:
        if self._query_params is None:
            from urllib.parse import parse_qsl

            self._query_params = QueryParams(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query_params

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            cookie_headers = self.headers.getlist("cookie")
            self._cookies = parse_cookies("; ".join(cookie_headers)) if cookie_headers else {}
        return self._cookies

    @property
    def path_params(self) -> dict[str, str]:
        if self._path_params is None:
            raw: Mapping[str, str] = self._native.params
            params: dict[str, str] = {}
            for k, v in raw.items():
                if "%" in v:
                    from urllib.parse import unquote

                    v = unquote(v)
                params[k] = v
            self._path_params = params
        return self._path_params

    @property
    def state(self) -> State:
        """Per-request attributes; starts as a copy of the state a lifespan context yielded (if any)."""
        if self._state is None:
            initial = self._app._lifespan_state if self._app is not None else None
            self._state = State(initial)
        return self._state

    # -- body ---------------------------------------------------------------------------------------
    def _body_now(self) -> bytes:
        body = self._body
        if body is None:
            source = self._body_source
            if source is None:
                body = self._native.body
            elif source.consumed:
                raise RuntimeError("Stream consumed")
            else:  # stream() was left part way: the rest, as Starlette's body() would collect it
                body = source.rest()
            self._body = body
        return body

    async def body(self) -> bytes:
        """The whole body. Raises ``RuntimeError("Stream consumed")`` once `stream` has read it to the end
        (unless ``body()`` was called before that), as in Starlette."""
        return self._body_now()

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The body in chunks, as Starlette's ``request.stream()``::

            async for chunk in request.stream():   # bytes; the last one is b""
                digest.update(chunk)

        The rules are Starlette's: after ``await request.body()`` (or a parameter that read the body) it
        yields the whole body once and then ``b""``; otherwise it yields the body's chunks as they come and
        then ``b""``, and the body is consumed: another ``stream()``, ``body()``, ``json()`` or ``form()``
        raises ``RuntimeError("Stream consumed")``. A stream left part way resumes where it stopped.

        Today the engine receives the whole body before the handler runs (up to the server's
        ``max_body_bytes``), so the chunks are `STREAM_CHUNK_SIZE` slices of that buffer: each is copied
        out as it is yielded, never the whole body at once. The chunks come from a `BodySource`, the place
        where a body streamed by the engine will plug in.
        """
        if self._body is not None:
            yield self._body
            yield b""
            return
        source = self._body_source
        if source is None:
            source = self._body_source = BufferedBody(self._native.body)
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
            self._json = _json_loads(self._body_now())
        return self._json

    def form(
        self,
        *,
        max_files: Union[int, float] = 1000,
        max_fields: Union[int, float] = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> "_FormReader":
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
            from .formparsers import is_form_media_type, parse_form

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
        return False

    # -- lifetime -----------------------------------------------------------------------------------
    def _detach(self) -> None:
        """Copy everything still unread out of the engine (called before the response is sent)."""
        native = self._native
        if native is None:
            return
        self.method, self.raw_path, self.query_string, self.http_version, self.client, self.scheme, self.tls  # noqa: B018
        self.headers, self.path_params  # noqa: B018
        if self._body_source is None:  # a started stream holds its own copy of the body
            self._body_now()
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
        from .formparsers import MultiPartException

        try:
            return self._request._form_now(*self._limits)
        except MultiPartException as exc:
            raise HTTPException(400, exc.message) from exc

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._result().__await__()

    async def _result(self) -> FormData:
        return self._parse()

    async def __aenter__(self) -> FormData:
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


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
