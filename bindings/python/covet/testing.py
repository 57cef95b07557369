"""Test clients that exercise the full path: a real server on a free port, real HTTP/1.1.

::

    from covet.testing import TestClient

    with TestClient(app) as client:          # runs the lifespan (startup/shutdown)
        r = client.get("/users/1", params={"verbose": "true"})
        assert r.status_code == 200 and r.json() == {"id": 1}

It behaves as Starlette's (httpx-based) ``TestClient``: URLs are resolved against ``base_url``
(``http://testserver``; ``"items/"`` and ``"/items/"`` alike), redirects are followed (``follow_redirects=``),
cookies the app sets are kept in ``client.cookies`` and sent back, ``client.headers`` are sent with every
request (``User-Agent: testclient``), the app sees ``request.client.host == "testclient"``, and an exception
the app does not handle is raised again in the test (``raise_server_exceptions=``), WebSocket endpoints'
included. Without ``with``, the server starts on the first request and the lifespan does not run (as in
Starlette); call ``close()`` when done. `AsyncTestClient` is the same for ``async`` tests::

    async with AsyncTestClient(app) as client:
        r = await client.post("/users", json={"name": "Ann"})
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import contextvars
import http.client
import http.cookiejar
import inspect
import json as _json
import os
import re
import threading
import urllib.request
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from email.message import Message
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from . import background
from ._ws_client import WebSocketTestSession
from .datastructures import URL, Address, Headers, MutableHeaders
from .loadtest import LoadTester, LoadTestResult
from .server.dispatch import SERVER_ERROR_BODY, SERVER_ERROR_HEADERS
from .server.serve import ThreadedWorker
from .tls import TransportOptions

if TYPE_CHECKING:
    from .app import CovetPy
    from .requests import Request
    from .responses import Response

__all__ = ["TestClient", "AsyncTestClient", "TestResponse", "Cookies", "TooManyRedirects",
           "LoadTester", "LoadTestResult"]

Params = Union[Mapping[str, Any], Sequence[tuple[str, Any]], str, None]
Files = Union[Mapping[str, Any], Sequence[tuple[str, Any]], None]
HeaderTypes = Union[Mapping[str, str], Sequence[tuple[str, str]], None]
CookieTypes = Union["Cookies", Mapping[str, str], Sequence[tuple[str, str]], http.cookiejar.CookieJar, None]

MAX_REDIRECTS = 20  # httpx's default
BACKGROUND_TASKS_TIMEOUT = 30.0  # seconds a request waits for the background tasks of its response (then returns)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The real client port of the request being handled (the app sees ``request.client`` as "testclient").
_PEER_PORT: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("covet_testclient_peer", default=None)


# Clients whose server runs: closed at interpreter exit, so that a client made at module level and never
# closed (FastAPI's documented `client = TestClient(app)`) stops its server before the interpreter goes away.
_SERVING: weakref.WeakSet[TestClient] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for client in list(_SERVING):
        with contextlib.suppress(Exception):
            client.close()


class TooManyRedirects(Exception):
    """More than `MAX_REDIRECTS` redirects in a row (httpx's ``TooManyRedirects``)."""


class _JarRequest(urllib.request.Request):
    """What `http.cookiejar` reads of a request: its URL and headers (the Cookie header is written back)."""

    def __init__(self, url: str, headers: list[tuple[str, str]]) -> None:
        super().__init__(url, headers=dict(headers), method="GET")
        self.cookie_header: Optional[str] = None

    def add_unredirected_header(self, key: str, val: str) -> None:
        super().add_unredirected_header(key, val)
        if key.lower() == "cookie":
            self.cookie_header = val


class _JarResponse:
    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def info(self) -> Message:
        message = Message()
        for name, value in self._headers.raw:
            message[name] = value
        return message


class Cookies(MutableMapping[str, str]):
    """A cookie jar, as httpx's ``Cookies``: ``set(name, value, domain="", path="/")``, ``get(name)``,
    ``delete``, ``clear``, mapping access by name; keeps what responses set (``Set-Cookie``, with their
    domain, path and expiry rules) and sends what applies to each request."""

    def __init__(self, cookies: CookieTypes = None) -> None:
        if isinstance(cookies, http.cookiejar.CookieJar):
            self.jar = cookies
            return
        self.jar = http.cookiejar.CookieJar()
        if isinstance(cookies, Cookies):
            for cookie in cookies.jar:
                self.jar.set_cookie(cookie)
        elif cookies:
            for name, value in (cookies.items() if isinstance(cookies, Mapping) else cookies):
                self.set(name, value)

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        self.jar.set_cookie(http.cookiejar.Cookie(
            version=0, name=name, value=value, port=None, port_specified=False, domain=domain,
            domain_specified=bool(domain), domain_initial_dot=domain.startswith("."), path=path,
            path_specified=bool(path), secure=False, expires=None, discard=True, comment=None, comment_url=None,
            rest={"HttpOnly": ""}, rfc2109=False))

    def get(self, name: str, default: Optional[str] = None, domain: Optional[str] = None,  # type: ignore[override]
            path: Optional[str] = None) -> Optional[str]:
        value: Optional[str] = None
        for cookie in self.jar:
            if cookie.name == name and (domain is None or cookie.domain == domain) and \
                    (path is None or cookie.path == path):
                if value is not None and value != cookie.value:
                    raise KeyError(f"several cookies named {name!r} (give domain= and path= to choose one)")
                value = cookie.value
        return default if value is None else value

    def delete(self, name: str, domain: Optional[str] = None, path: Optional[str] = None) -> None:
        for cookie in [c for c in self.jar if c.name == name and (domain is None or c.domain == domain)
                       and (path is None or c.path == path)]:
            self.jar.clear(cookie.domain, cookie.path, cookie.name)

    def clear(self, domain: Optional[str] = None, path: Optional[str] = None) -> None:
        if domain is None:
            self.jar.clear()
        elif path is None:
            self.jar.clear(domain)
        else:
            self.jar.clear(domain, path)

    def update(self, cookies: CookieTypes = None, /, **kwargs: str) -> None:  # type: ignore[override]
        for cookie in Cookies(cookies).jar:
            self.jar.set_cookie(cookie)
        for name, value in kwargs.items():
            self.set(name, value)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if self.get(name) is None:
            raise KeyError(name)
        self.delete(name)

    def __iter__(self) -> Iterator[str]:
        return iter([cookie.name for cookie in self.jar])

    def __len__(self) -> int:
        return len(self.jar)

    def __bool__(self) -> bool:
        return any(True for _ in self.jar)

    def __repr__(self) -> str:
        return "<Cookies[" + ", ".join(f"<Cookie {c.name}={c.value} for {c.domain} />" for c in self.jar) + "]>"

    # -- what the client does with it ------------------------------------------------------------------
    def header_for(self, url: str, headers: list[tuple[str, str]]) -> Optional[str]:
        """The ``Cookie`` header this jar sends to `url`, or None."""
        request = _JarRequest(url, headers)
        self.jar.add_cookie_header(request)
        return request.cookie_header

    def extract(self, url: str, request_headers: list[tuple[str, str]], response_headers: Headers) -> None:
        """Keeps the cookies a response to `url` sets (and forgets those it expires)."""
        if "set-cookie" in response_headers:
            self.jar.extract_cookies(_JarResponse(response_headers), _JarRequest(url, request_headers))  # type: ignore[arg-type]


class TestResponse:
    """A received response, as httpx's: ``status_code``, ``headers`` (case-insensitive), ``content`` (decoded
    from gzip/deflate), ``text``, ``json()``, ``cookies``, ``url``, ``history`` (the redirects followed)."""

    __test__ = False  # not a pytest test class

    def __init__(self, status_code: int, reason: str, headers: list[tuple[str, str]], content: Optional[bytes],
                 http_version: str, url: str, method: str = "GET", *,
                 stream: Optional[http.client.HTTPResponse] = None,
                 finish: Optional[Callable[[], None]] = None) -> None:
        self.status_code = status_code
        self.reason_phrase = reason
        self.headers = Headers(headers)
        self._content = None if content is None else _decoded(content, self.headers.get("content-encoding", ""))
        self.http_version = http_version
        parts = urlsplit(url)
        self.url = URL(parts.scheme, parts.netloc, unquote(parts.path), parts.query, parts.path)  # == the str too
        self.method = method
        self.history: list[TestResponse] = []
        self._stream = stream  # `client.stream(...)`: the body is read as the test iterates it
        self._finish = finish

    @property
    def content(self) -> bytes:
        """The whole body (decoded from gzip/deflate); a streamed response's rest is read first."""
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    def read(self) -> bytes:
        return self.content

    def iter_bytes(self, chunk_size: Optional[int] = None) -> Iterator[bytes]:
        """The body in pieces as they arrive (`client.stream`), or of `chunk_size` bytes."""
        if self._stream is None:
            body = self.content
            size = chunk_size or len(body) or 1
            yield from (body[i:i + size] for i in range(0, len(body), size))
            return
        raw, self._stream = self._stream, None
        decoder = _Decoder(self.headers.get("content-encoding", ""))
        parts: list[bytes] = []
        try:
            while True:
                data = raw.read1(chunk_size or 65536)
                if not data:
                    break
                data = decoder.decode(data)
                if data:
                    parts.append(data)
                    yield data
            tail = decoder.flush()
            if tail:
                parts.append(tail)
                yield tail
        finally:
            self._content = b"".join(parts)
            self._done()

    def iter_text(self, chunk_size: Optional[int] = None) -> Iterator[str]:
        import codecs

        decoder = codecs.getincrementaldecoder(self.charset)(errors="replace")
        for chunk in self.iter_bytes(chunk_size):
            text = decoder.decode(chunk)
            if text:
                yield text
        text = decoder.decode(b"", final=True)
        if text:
            yield text

    def iter_lines(self) -> Iterator[str]:
        """The body's lines as they arrive, without their line endings (as httpx's)."""
        pending = ""
        for text in self.iter_text():
            lines = (pending + text).splitlines(keepends=True)
            pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
            yield from (line.rstrip("\r\n") for line in lines)
        if pending:
            yield pending

    def close(self) -> None:
        """Ends a streamed response without reading the rest."""
        if self._stream is not None:
            self._stream = None
            self._content = self._content or b""
            self._done()

    def _done(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()

    @property
    def charset(self) -> str:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        return self.content.decode(self.charset, errors="replace")

    def json(self, **kwargs: Any) -> Any:
        return _json.loads(self.content, **kwargs)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECT_STATUSES and "location" in self.headers

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.status_code < 500

    @property
    def is_server_error(self) -> bool:
        return 500 <= self.status_code < 600

    @property
    def is_error(self) -> bool:
        return 400 <= self.status_code < 600

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this response sets (name → value)."""
        out = {}
        for line in self.headers.getlist("set-cookie"):
            name, _, rest = line.partition("=")
            out[name.strip()] = rest.split(";", 1)[0]
        return out

    def raise_for_status(self) -> TestResponse:
        if self.status_code >= 400:
            raise AssertionError(f"{self.status_code} {self.reason_phrase} for {self.url}: {self.text[:200]}")
        return self

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code} {self.reason_phrase}]>"


class _Decoder:
    """`_decoded` for a body that arrives in pieces (gzip or deflate, the codings the client asks for)."""

    def __init__(self, encoding: str) -> None:
        coding = encoding.split(",")[-1].strip().lower()
        self._zlib: Optional[Any] = None
        self._raw_deflate = False
        if coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            self._zlib = zlib.decompressobj()
            self._raw_deflate = True

    def decode(self, data: bytes) -> bytes:
        if self._zlib is None:
            return data
        try:
            out: bytes = self._zlib.decompress(data)
        except zlib.error:
            if not self._raw_deflate:
                raise
            self._zlib, self._raw_deflate = zlib.decompressobj(-zlib.MAX_WBITS), False  # deflate without header
            out = self._zlib.decompress(data)
        self._raw_deflate = False
        return out

    def flush(self) -> bytes:
        return b"" if self._zlib is None else bytes(self._zlib.flush())


def _decoded(content: bytes, encoding: str) -> bytes:
    """The body with its ``Content-Encoding`` undone (gzip, deflate; httpx does the same)."""
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding in ("gzip", "x-gzip"):
            content = zlib.decompress(content, zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            try:
                content = zlib.decompress(content)
            except zlib.error:  # raw deflate, without the zlib header
                content = zlib.decompress(content, -zlib.MAX_WBITS)
        elif coding != "identity":
            break  # br, zstd: not advertised by the client; left as received
    return content


def _file_part(value: Any) -> tuple[Optional[str], bytes, Optional[str], Mapping[str, str]]:
    """(filename, content, content type, extra headers) of one entry of httpx's `files` argument."""
    filename: Optional[str] = None
    content_type: Optional[str] = None
    headers: Mapping[str, str] = {}
    if isinstance(value, tuple):
        filename, content, *rest = value
        if rest:
            content_type = rest[0]
        if len(rest) > 1:
            headers = rest[1]
    else:
        content = value
        name = getattr(value, "name", None)
        filename = os.path.basename(name) if isinstance(name, str) else "upload"  # httpx's default
    if hasattr(content, "read"):
        content = content.read()
    if isinstance(content, str):
        content = content.encode()
    if content_type is None and filename:
        import mimetypes

        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return filename, bytes(content), content_type, headers


def _quote_option(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _encode_multipart(data: Mapping[str, Any], files: Files) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (fields first, then files, as httpx sends them) and its Content-Type."""
    boundary = os.urandom(16).hex()
    chunks: list[bytes] = []
    for name, value in data.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            text = "true" if v is True else "false" if v is False else str(v)
            chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_option(name)}"\r\n\r\n'
                          .encode() + text.encode() + b"\r\n")
    assert files is not None
    entries = files.items() if isinstance(files, Mapping) else files
    for name, value in entries:
        filename, content, content_type, extra = _file_part(value)
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_option(name)}"'
        if filename is not None:
            head += f'; filename="{_quote_option(filename)}"'
        head += "\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        for header, header_value in extra.items():
            head += f"{header}: {header_value}\r\n"
        chunks.append(head.encode() + b"\r\n" + content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _encode_params(params: Params) -> str:
    if params is None:
        return ""
    if isinstance(params, str):
        return params
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((key, "true" if v is True else "false" if v is False else str(v)) for v in values)
    return urlencode(pairs)


def _server_option_names(native: Any) -> Optional[frozenset[str]]:
    """The keywords the engine's ``NativeServer`` accepts (from its signature, or a pybind11 docstring)."""
    cls = getattr(native, "NativeServer", None)
    if cls is None:
        return None
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # a pybind11 class: its signature is the first line of its docstring
        doc = getattr(cls.__init__, "__doc__", None) or ""
        names = re.findall(r"[(,]\s*(\w+):", doc.split("\n", 1)[0])
        return frozenset(names) - {"self"} if names else None
    if any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters):
        return None  # takes anything: nothing to check against
    return frozenset(p.name for p in parameters) - {"self"}


_OWN_OPTIONS = ("host", "port", "threads")  # chosen by the test client itself


def _check_server_options(options: Mapping[str, Any]) -> None:
    """A clear TypeError for a keyword neither the test client nor the server takes."""
    from .server.engine import native_module

    try:
        engine = _server_option_names(native_module())
    except ImportError:  # no engine: starting the server will say so
        return
    if engine is None:
        return
    transport = set(TransportOptions.__dataclass_fields__)
    accepted = (engine | transport) - set(_OWN_OPTIONS)
    unknown = [name for name in options if name not in accepted]
    if unknown:
        raise TypeError(
            f"TestClient() got an unexpected keyword argument {unknown[0]!r}. It takes Starlette's TestClient "
            "arguments (base_url, raise_server_exceptions, root_path, backend, cookies, headers, follow_redirects, "
            f"client), threads= and timeout=, and the server options of app.run(): {', '.join(sorted(accepted))}")


def _header_items(headers: HeaderTypes) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), str(v)) for k, v in items]


def _merged(base: Iterable[tuple[str, str]], extra: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`base` with every name given in `extra` replaced by all its values there (httpx's Headers.update)."""
    extra = list(extra)
    replaced = {k.lower() for k, _ in extra}
    return [(k, v) for k, v in base if k.lower() not in replaced] + extra


def _has(headers: list[tuple[str, str]], name: str) -> bool:
    return any(k.lower() == name for k, _ in headers)


def _without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in names]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class TestClient:
    """A synchronous HTTP client for `app`, served for real on 127.0.0.1 and a free port, with the API and
    behaviour of Starlette's ``TestClient`` (see the module docstring).

    As in Starlette, an exception the app does not handle (one that would answer 500, or end a WebSocket
    endpoint) is raised again in the test by the request or WebSocket session that caused it;
    ``raise_server_exceptions=False`` returns the 500 response (or the 1011 close) instead. The app's own
    ``Exception``/500 handler still runs (and is what the server answers).

    `threads`, `timeout` (seconds, per socket operation) and the server options of ``app.run()``
    (``max_body_bytes=...``) are CovetPy's own; ``backend`` can only be ``"asyncio"``.
    """

    __test__ = False

    def __init__(
        self,
        app: CovetPy,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        backend: str = "asyncio",
        backend_options: Optional[Mapping[str, Any]] = None,
        cookies: CookieTypes = None,
        headers: HeaderTypes = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        *,
        threads: int = 0,
        timeout: float = 30.0,
        **server_options: Any,
    ) -> None:
        if backend != "asyncio" or backend_options:
            raise ValueError(f"TestClient(backend={backend!r}, backend_options=...): the test server runs on its own "
                             "asyncio event loop; drop these arguments")
        _check_server_options(server_options)
        self.app = app
        self.base_url = base_url
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self.follow_redirects = follow_redirects
        self.client_address = Address(client[0], int(client[1]))
        self.timeout = timeout
        self.threads = threads
        # Starlette's TestClient has no proxy in front: X-Forwarded-* headers a test sends stay plain headers
        # (the app sees the `client` address and base_url's scheme), though the test server's peer is 127.0.0.1.
        self.server_options = {"proxy_headers": False, **server_options}
        self.headers = MutableHeaders([("accept", "*/*"), ("accept-encoding", "gzip, deflate"),
                                       ("connection", "keep-alive"), ("user-agent", "testclient")])
        self.headers.update(_header_items(headers))
        self._cookies = Cookies(cookies)
        self._server: Optional[ThreadedWorker] = None
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        # Unhandled exceptions by the client port of the connection whose request raised them.
        self._server_errors: dict[Optional[int], BaseException] = {}
        # WebSocket endpoints' first decision (accepted or not) by client port.
        self._ws_decisions: dict[int, bool] = {}
        self._ws_denials: dict[int, tuple[int, str]] = {}  # refused before accept(): the close code and reason
        self._ws_decided = threading.Condition()

    @property
    def cookies(self) -> Cookies:
        """The client's cookie jar: sent with every request it applies to; responses' cookies are kept."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: CookieTypes) -> None:
        self._cookies = Cookies(cookies)

    # -- server lifetime -------------------------------------------------------------------------------
    def _ensure_server(self, lifespan: bool) -> ThreadedWorker:
        with self._lock:
            if self._server is None:
                with self._capturing_server_errors():
                    server = ThreadedWorker(self.app, "127.0.0.1", 0, self.threads, lifespan=lifespan,
                                            middleware=[self._as_test_client], **self.server_options).start()
                websockets = getattr(server.worker.dispatcher, "websockets", None)
                if websockets is not None:
                    websockets.client_address = self.client_address
                    websockets.on_decided = self._record_decision
                    websockets.on_denied = self._record_denial
                    if self.raise_server_exceptions:
                        websockets.on_error = self._record_websocket_error
                self._server = server
                _SERVING.add(self)
            return self._server

    async def _as_test_client(self, request: Request, call_next: Callable[[Request], Any]) -> Response:
        """The runtime's outermost middleware: the app sees the test client's address and root path."""
        _PEER_PORT.set(request.client.port)
        request._client = self.client_address
        if self.root_path:
            request._root_path = self.root_path
        response: Response = await call_next(request)
        return response

    def _record_decision(self, port: int, accepted: bool) -> None:
        with self._ws_decided:
            self._ws_decisions.setdefault(port, accepted)
            self._ws_decided.notify_all()

    def _record_denial(self, port: int, code: int, reason: str) -> None:
        with self._ws_decided:
            self._ws_denials[port] = (code, reason)

    def _take_denial(self, port: int) -> Optional[tuple[int, str]]:
        """The close code and reason of the endpoint that refused the connection from `port`, if it did."""
        with self._ws_decided:
            return self._ws_denials.pop(port, None)

    def _wait_decision(self, port: int) -> Optional[bool]:
        """Whether the endpoint of the WebSocket connection from `port` accepted it (None: no word in time)."""
        with self._ws_decided:
            self._ws_decided.wait_for(lambda: port in self._ws_decisions, self.timeout)
            return self._ws_decisions.pop(port, None)

    def _record_websocket_error(self, port: int, exc: BaseException) -> None:
        self._server_errors[port] = exc

    def _take_error(self, port: Optional[int]) -> Optional[BaseException]:
        return self._server_errors.pop(port, None) if self._server_errors else None

    @contextlib.contextmanager
    def _capturing_server_errors(self) -> Iterator[None]:
        """While the server starts (when it reads the app's exception handlers), puts a recording wrapper
        in the place of the app's 500 handler: under ``Exception``, or ``500`` when only that is set."""
        if not self.raise_server_exceptions:
            yield
            return
        handlers = self.app.exception_handlers
        key: Any = 500 if 500 in handlers and Exception not in handlers else Exception
        had = key in handlers
        original = handlers.get(key)
        wrapper = self._recording_handler(original)
        handlers[key] = wrapper
        try:
            yield
        finally:
            if handlers.get(key) is wrapper:  # unless the app registered a handler meanwhile (in its startup)
                if had:
                    handlers[key] = original  # type: ignore[assignment]
                else:
                    del handlers[key]

    def _recording_handler(self, original: Optional[Callable[..., Any]]) -> Callable[..., Any]:
        errors = self._server_errors

        async def record_server_error(request: Any, exc: Exception) -> Any:
            port = _PEER_PORT.get()
            errors[port] = exc
            if original is None:
                return 500, SERVER_ERROR_HEADERS, SERVER_ERROR_BODY
            result = original(request, exc)
            if inspect.isawaitable(result):
                result = await result
            return result

        return record_server_error

    @property
    def port(self) -> int:
        return self._ensure_server(lifespan=False).port

    def websocket_connect(self, url: str, subprotocols: Optional[Sequence[str]] = None,
                          headers: HeaderTypes = None, **kwargs: Any) -> WebSocketTestSession:
        """A WebSocket session to `url` (Starlette's test API: ``send_text/bytes/json``,
        ``receive_text/bytes/json``, ``close``; ``receive_*`` raise `WebSocketDisconnect` once the app closed).
        A refused upgrade raises `WebSocketDisconnect` naming the HTTP status. As in Starlette, entering the
        session (``with``) waits for the endpoint to accept the connection: one that closes it first (or
        raises `WebSocketException`) makes it raise `WebSocketDisconnect` with the close code. An exception
        the endpoint does not handle is raised when entering (before ``accept()``), by the ``receive_*`` call
        that would have seen the close, or when the session ends (``raise_server_exceptions=False``: the
        close with 1011 is seen instead)."""
        if kwargs:
            raise TypeError(f"websocket_connect() got an unexpected keyword argument {next(iter(kwargs))!r}; it "
                            "takes url, subprotocols and headers")
        target = urljoin("ws://testserver", url)
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        send = _merged(_without(list(self.headers.raw), "connection", "accept-encoding"), _header_items(headers))
        cookie = self._cookies.header_for(target.replace("ws", "http", 1), send)
        if cookie is not None and not _has(send, "cookie"):
            send.append(("cookie", cookie))
        return WebSocketTestSession(self.port, path, headers=send, subprotocols=list(subprotocols or []),
                                    timeout=self.timeout, host=parts.netloc or "testserver",
                                    take_error=self._take_error, wait_decision=self._wait_decision,
                                    take_denial=self._take_denial)

    def __enter__(self) -> TestClient:
        if self._server is not None:
            raise RuntimeError("the client is already serving; enter it before the first request")
        self._ensure_server(lifespan=True)
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def close(self) -> None:
        """Closes connections and shuts the server down (running the lifespan shutdown if it ran startup)."""
        with self._lock:
            connections, self._connections = self._connections, []
            server, self._server = self._server, None
        for connection in connections:
            connection.close()
        self._local = threading.local()
        with self._ws_decided:
            self._ws_decisions.clear()
            self._ws_denials.clear()
        if server is not None:
            server.stop()

    # -- requests ------------------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _merge_url(self, given: Any) -> str:
        """`given` made absolute as httpx does: a relative URL (``"items/"`` or ``"/items/"``) is appended to
        `base_url`'s path."""
        url = str(given)
        if urlsplit(url).scheme:
            return url
        base = urlsplit(self.base_url)
        path = base.path if base.path.endswith("/") else base.path + "/"
        return f"{base.scheme}://{base.netloc}{path}{url.lstrip('/')}"

    def request(
        self,
        method: str,
        url: Any,
        *,
        content: Union[str, bytes, Iterable[Union[bytes, str]], None] = None,
        data: Union[Mapping[str, Any], str, bytes, None] = None,
        files: Files = None,
        json: Any = None,
        params: Params = None,
        headers: HeaderTypes = None,
        cookies: CookieTypes = None,
        auth: Optional[tuple[str, str]] = None,
        follow_redirects: Optional[bool] = None,
        timeout: Optional[float] = None,
        extensions: Optional[Mapping[str, Any]] = None,
    ) -> TestResponse:
        """Sends one request (following redirects unless ``follow_redirects=False``). `json` is sent as JSON;
        `data` as a URL-encoded form (a mapping) or as is; `content` as is, and an iterable of bytes (a
        generator, a list of chunks, a binary file) with ``Transfer-Encoding: chunked``, one chunk per item,
        as httpx streams it; `files` (with form fields from `data`) as ``multipart/form-data``, like httpx::

            client.post("/upload", data={"note": "x"}, files={"file": ("a.txt", b"hello", "text/plain")})

        A file is given as bytes, str, a binary file object, or a tuple ``(filename, content[, content_type
        [, headers]])``; a list of ``(name, file)`` pairs sends several files under one name. `headers` is a
        mapping or a list of ``(name, value)`` pairs (a name may repeat); `cookies` are sent with this request
        only; `auth` is a ``(username, password)`` pair for HTTP Basic. `extensions` is accepted and ignored.
        """
        if auth is not None and not (isinstance(auth, tuple) and len(auth) == 2):
            raise TypeError("auth= takes a (username, password) tuple (HTTP Basic); send other schemes in headers=")
        target = self._merge_url(url)
        parts = urlsplit(target)
        query = parts.query
        extra = _encode_params(params)
        if extra:
            query = f"{query}&{extra}" if query else extra
        target = parts._replace(query=query, fragment="").geturl()
        send = _merged(list(self.headers.raw), _header_items(headers))
        body: Union[bytes, list[bytes], None] = None
        body_headers: list[tuple[str, str]] = []
        if json is not None:
            body = _json.dumps(json).encode()
            body_headers.append(("Content-Type", "application/json"))
        elif files is not None:
            if data is not None and not isinstance(data, Mapping):
                raise TypeError("with files=, data= must be a mapping of form fields")
            body, content_type = _encode_multipart(data or {}, files)
            body_headers.append(("Content-Type", content_type))
        elif data is not None:
            if isinstance(data, Mapping):
                body = _encode_params(data).encode()
                body_headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            else:
                body = data.encode() if isinstance(data, str) else data
        elif isinstance(content, (str, bytes, bytearray, memoryview)):
            body = content.encode() if isinstance(content, str) else bytes(content)
        elif content is not None:  # streamed: read up front, so that a retry on a new connection can resend it
            body = [c.encode() if isinstance(c, str) else bytes(c) for c in content]
        if isinstance(body, list):
            if not _has(send, "content-length"):
                body_headers.append(("Transfer-Encoding", "chunked"))  # http.client then frames the chunks
        elif body is not None or method.upper() in ("POST", "PUT", "PATCH"):
            body_headers.append(("Content-Length", str(len(body or b""))))
        send += [(k, v) for k, v in body_headers if not _has(send, k.lower())]
        if auth is not None and not _has(send, "authorization"):
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            send.append(("Authorization", f"Basic {token}"))
        jar = self._cookies
        if cookies is not None:
            jar = Cookies(self._cookies)
            jar.update(cookies)
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        method = method.upper()
        response = self._send(method, target, body, send, jar, timeout)
        history: list[TestResponse] = []
        while follow and response.is_redirect:
            if len(history) >= MAX_REDIRECTS:
                raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects, the last to "
                                       f"{response.headers['location']}")
            response.read()  # a streamed redirect: done with it
            history.append(response)
            next_url = urljoin(target, response.headers["location"])
            next_method = method
            if (response.status_code == 303 and method != "HEAD") or \
                    (response.status_code in (301, 302) and method == "POST"):
                next_method = "GET"
            if next_method != method:  # the body is not sent again
                body = None
                send = _without(send, "content-length", "transfer-encoding")
            if _origin(next_url) != _origin(target):
                send = _without(send, "authorization")
            method, target = next_method, next_url
            response = self._send(method, target, body, send, self._cookies, timeout)
        response.history = history
        if not getattr(self._local, "stream", False):
            # As Starlette's TestClient, whose call returns once the app's background tasks are done: their
            # effects are visible to the next line of the test. (A streamed response's run after its body.)
            background.wait_idle(BACKGROUND_TASKS_TIMEOUT)
        return response

    def _send(self, method: str, url: str, body: Union[bytes, list[bytes], None], headers: list[tuple[str, str]],
              jar: Cookies, timeout: Optional[float]) -> TestResponse:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        send = [("Host", parts.netloc or "testserver"), *_without(headers, "host", "cookie")]
        explicit_cookie = [(k, v) for k, v in headers if k.lower() == "cookie"]
        if explicit_cookie:
            send += explicit_cookie
        else:
            cookie = jar.header_for(url, send)
            if cookie is not None:
                send.append(("Cookie", cookie))
        if getattr(self._local, "stream", False):
            return self._send_streamed(method, url, body, send)
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.timeout = self.timeout if timeout is None else timeout
                if connection.sock is not None:
                    connection.sock.settimeout(connection.timeout)
                connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in send:
                    connection.putheader(name, value)
                chunked = isinstance(body, list) and _has(send, "transfer-encoding")
                connection.endheaders(body, encode_chunked=chunked)
                port = connection.sock.getsockname()[1] if connection.sock is not None else None
                response = connection.getresponse()
                content = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
                continue  # the server closed an idle keep-alive connection: retry once on a new one
            if response.will_close:
                connection.close()
                self._local.connection = None
            error = self._take_error(port)
            if error is not None:
                raise error
            version = "1.1" if response.version == 11 else "1.0"
            result = TestResponse(response.status, response.reason, response.getheaders(), content, version, url,
                                  method)
            self._cookies.extract(url, send, result.headers)
            return result
        raise AssertionError("unreachable")

    def _send_streamed(self, method: str, url: str, body: Union[bytes, list[bytes], None],
                       send: list[tuple[str, str]]) -> TestResponse:
        """`_send` for `stream()`: on a new connection, closed once the body is read or the stream ends."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        with self._lock:
            self._connections.append(connection)
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in send:
            connection.putheader(name, value)
        connection.endheaders(body, encode_chunked=isinstance(body, list) and _has(send, "transfer-encoding"))
        port = connection.sock.getsockname()[1] if connection.sock is not None else None
        response = connection.getresponse()
        early = self._take_error(port)  # the handler failed before its response started
        if early is not None:
            connection.close()
            raise early

        def finish() -> None:
            connection.close()
            with self._lock, contextlib.suppress(ValueError):
                self._connections.remove(connection)
            error = self._take_error(port)
            if error is not None:
                raise error

        version = "1.1" if response.version == 11 else "1.0"
        result = TestResponse(response.status, response.reason, response.getheaders(), None, version, url, method,
                              stream=response, finish=finish)
        self._cookies.extract(url, send, result.headers)
        return result

    @contextlib.contextmanager
    def stream(self, method: str, url: Any, **kwargs: Any) -> Iterator[TestResponse]:
        """httpx's ``client.stream(...)``: the response's body is read while the test iterates it
        (``iter_bytes()``, ``iter_text()``, ``iter_lines()``; ``read()`` for the rest), on a connection of its
        own, so an endless stream (Server-Sent Events) can be read a piece at a time::

            with client.stream("GET", "/events") as response:
                first = next(response.iter_lines())
        """
        self._local.stream = True
        try:
            response = self.request(method, url, **kwargs)
        finally:
            self._local.stream = False
        try:
            yield response
        finally:
            response.close()

    def get(self, url: Any, **kwargs: Any) -> TestResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: Any, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: Any, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> TestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> TestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", url, **kwargs)

    def __del__(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            with contextlib.suppress(Exception):
                self.close()


class AsyncTestClient:
    """`TestClient` for ``async`` tests: ``async with AsyncTestClient(app) as c: r = await c.get("/")``.

    The server runs on its own thread and loop; each request runs the blocking client in a thread, so
    many requests may be in flight at once (``await asyncio.gather(c.get(...), c.get(...))``).
    """

    __test__ = False

    def __init__(self, app: CovetPy, **kwargs: Any) -> None:
        self._client = TestClient(app, **kwargs)

    @property
    def app(self) -> CovetPy:
        return self._client.app

    @property
    def cookies(self) -> Cookies:
        return self._client.cookies

    @property
    def headers(self) -> MutableHeaders:
        return self._client.headers

    async def __aenter__(self) -> AsyncTestClient:
        await asyncio.to_thread(self._client.__enter__)
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await asyncio.to_thread(self._client.close)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def request(self, method: str, url: str, **kwargs: Any) -> TestResponse:
        return await asyncio.to_thread(self._client.request, method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> TestResponse:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> TestResponse:
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> TestResponse:
        return await self.request("OPTIONS", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> TestResponse:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> TestResponse:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> TestResponse:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> TestResponse:
        return await self.request("DELETE", url, **kwargs)
