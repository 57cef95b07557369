"""Test clients that exercise the full path: a real server on a free port, real HTTP/1.1.

::

    from covet.testing import TestClient

    with TestClient(app) as client:          # runs the lifespan (startup/shutdown)
        r = client.get("/users/1", params={"verbose": "true"})
        assert r.status_code == 200 and r.json() == {"id": 1}

Without ``with``, the server starts on the first request and the lifespan does not run (as in Starlette);
call ``close()`` when done. `AsyncTestClient` is the same for ``async`` tests::

    async with AsyncTestClient(app) as client:
        r = await client.post("/users", json={"name": "Ann"})
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import inspect
import json as _json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import urlencode, urlsplit

from ._ws_client import WebSocketTestSession
from .datastructures import Headers
from .server.dispatch import SERVER_ERROR_BODY, SERVER_ERROR_HEADERS
from .server.serve import ThreadedWorker

if TYPE_CHECKING:
    from .app import CovetPy

__all__ = ["TestClient", "AsyncTestClient", "TestResponse"]

Params = Union[Mapping[str, Any], Sequence[tuple[str, Any]], str, None]
Files = Union[Mapping[str, Any], Sequence[tuple[str, Any]], None]


class TestResponse:
    """A received response: ``status_code``, ``headers`` (case-insensitive), ``content``, ``text``, ``json()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, status_code: int, reason: str, headers: list[tuple[str, str]], content: bytes,
                 http_version: str, url: str) -> None:
        self.status_code = status_code
        self.reason_phrase = reason
        self.headers = Headers(headers)
        self.content = content
        self.http_version = http_version
        self.url = url

    @property
    def text(self) -> str:
        content_type = self.headers.get("content-type", "")
        charset = "utf-8"
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return _json.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def cookies(self) -> dict[str, str]:
        out = {}
        for line in self.headers.getlist("set-cookie"):
            name, _, rest = line.partition("=")
            out[name.strip()] = rest.split(";", 1)[0]
        return out

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise AssertionError(f"{self.status_code} {self.reason_phrase} for {self.url}: {self.text[:200]}")

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code}]>"


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


class TestClient:
    """A synchronous HTTP client for `app`, served for real on 127.0.0.1 and a free port.

    As in Starlette, an exception the app does not handle (one that would answer 500) is raised again in
    the test by the request that caused it; ``raise_server_exceptions=False`` returns the 500 response
    instead. The app's own ``Exception``/500 handler still runs (and is what the server answers).
    """

    __test__ = False

    def __init__(self, app: CovetPy, *, base_url: str = "http://testserver", raise_server_exceptions: bool = True,
                 threads: int = 0, timeout: float = 30.0, **server_options: Any) -> None:
        self.app = app
        self.base_url = base_url
        self.raise_server_exceptions = raise_server_exceptions
        self.timeout = timeout
        self.threads = threads
        self.server_options = server_options
        self.cookies: dict[str, str] = {}
        self._server: Optional[ThreadedWorker] = None
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        # Unhandled exceptions by the client port of the connection whose request raised them.
        self._server_errors: dict[Optional[int], BaseException] = {}

    # -- server lifetime -------------------------------------------------------------------------------
    def _ensure_server(self, lifespan: bool) -> ThreadedWorker:
        with self._lock:
            if self._server is None:
                with self._capturing_server_errors():
                    self._server = ThreadedWorker(self.app, "127.0.0.1", 0, self.threads, lifespan=lifespan,
                                                  **self.server_options).start()
            return self._server

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
            try:
                port: Optional[int] = request.client.port
            except Exception:  # pragma: no cover - the request always has its peer address
                port = None
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

    def websocket_connect(self, url: str, subprotocols: Optional[list[str]] = None,
                          headers: Optional[dict[str, str]] = None) -> Any:
        """A WebSocket session to `url` (Starlette's test API: ``send_text/bytes/json``,
        ``receive_text/bytes/json``, ``close``; ``receive_*`` raise `WebSocketDisconnect` once the app closed).
        A refused upgrade raises `WebSocketDisconnect` naming the HTTP status."""
        path = url.split("://", 1)[-1]
        path = path[path.index("/"):] if "/" in path and "://" in url else url
        return WebSocketTestSession(self.port, path, headers=headers, subprotocols=subprotocols, timeout=self.timeout)

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

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        headers: Optional[Mapping[str, str]] = None,
        cookies: Optional[Mapping[str, str]] = None,
        json: Any = None,
        data: Union[Mapping[str, Any], str, bytes, None] = None,
        files: Files = None,
        content: Union[str, bytes, Iterable[Union[bytes, str]], None] = None,
    ) -> TestResponse:
        """Sends one request. `json` is sent as JSON; `data` as a URL-encoded form (a mapping) or as is;
        `content` as is, and an iterable of bytes (a generator, a list of chunks, a binary file) with
        ``Transfer-Encoding: chunked``, one chunk per item, as httpx streams it; `files` (with form fields
        from `data`) as ``multipart/form-data``, like httpx::

            client.post("/upload", data={"note": "x"}, files={"file": ("a.txt", b"hello", "text/plain")})

        A file is given as bytes, str, a binary file object, or a tuple ``(filename, content[, content_type
        [, headers]])``; a list of ``(name, file)`` pairs sends several files under one name.
        """
        parts = urlsplit(url)
        target = parts.path or "/"
        query = parts.query
        extra = _encode_params(params)
        if extra:
            query = f"{query}&{extra}" if query else extra
        if query:
            target = f"{target}?{query}"
        send_headers: dict[str, str] = {"Host": urlsplit(self.base_url).netloc or "testserver"}
        body: Union[bytes, list[bytes], None] = None
        if json is not None:
            body = _json.dumps(json).encode()
            send_headers["Content-Type"] = "application/json"
        elif files is not None:
            if data is not None and not isinstance(data, Mapping):
                raise TypeError("with files=, data= must be a mapping of form fields")
            body, send_headers["Content-Type"] = _encode_multipart(data or {}, files)
        elif data is not None:
            if isinstance(data, Mapping):
                body = _encode_params(data).encode()
                send_headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                body = data.encode() if isinstance(data, str) else data
        elif isinstance(content, (str, bytes, bytearray, memoryview)):
            body = content.encode() if isinstance(content, str) else bytes(content)
        elif content is not None:  # streamed: read up front, so that a retry on a new connection can resend it
            body = [c.encode() if isinstance(c, str) else bytes(c) for c in content]
        all_cookies = {**self.cookies, **(cookies or {})}
        if all_cookies:
            send_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in all_cookies.items())
        if headers:
            lowered = {k.lower(): k for k in send_headers}
            for name, value in headers.items():
                existing = lowered.get(name.lower())
                if existing is not None:
                    del send_headers[existing]
                send_headers[name] = value
        if isinstance(body, list):
            if not any(k.lower() == "content-length" for k in send_headers):
                send_headers.setdefault("Transfer-Encoding", "chunked")  # http.client then frames the chunks
        elif body is not None or method.upper() in ("POST", "PUT", "PATCH"):
            send_headers.setdefault("Content-Length", str(len(body or b"")))
        return self._send(method.upper(), target, body, send_headers)

    def _send(self, method: str, target: str, body: Union[bytes, list[bytes], None],
              headers: dict[str, str]) -> TestResponse:
        for attempt in range(2):
            connection = self._connection()
            try:
                chunked = isinstance(body, list) and any(k.lower() == "transfer-encoding" for k in headers)
                connection.request(method, target, body=body, headers=headers, encode_chunked=chunked)
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
            if self._server_errors:
                error = self._server_errors.pop(port, None)
                if error is not None:
                    raise error
            version = "1.1" if response.version == 11 else "1.0"
            return TestResponse(response.status, response.reason, response.getheaders(), content, version,
                                f"{self.base_url}{target}")
        raise AssertionError("unreachable")

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
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
