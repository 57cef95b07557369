"""Response classes.

`Response(content, status=200, headers=None, media_type=None)` is the general one: bytes and str content
is sent as is (with `media_type`), anything else (dict, list, pydantic model, dataclass ...) is serialised
as JSON, as in the design doc. The subclasses fix the media type; `StreamingResponse` and `FileResponse`
send their body in chunks.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from . import _events, encoders
from .datastructures import MutableHeaders

if TYPE_CHECKING:
    from datetime import datetime

    from .background import BackgroundTask

# email.utils, http.cookies, datetime, mimetypes and urllib.parse are imported by the methods that need
# them (cookies, redirects, files): together they are ~3 MB of memory and ~10 ms of start-up that an app
# without those features does not pay.

logger = logging.getLogger("covet")

__all__ = [
    "Response",
    "JSONResponse",
    "PlainTextResponse",
    "HTMLResponse",
    "RedirectResponse",
    "StreamingResponse",
    "EventSourceResponse",
    "FileResponse",
    "ORJSONResponse",
    "UJSONResponse",
]


_CONTENT_TYPES: dict[tuple[str, str], str] = {}


def _status_arg(status: Optional[int], status_code: Optional[int], default: int) -> int:
    if status is not None and status_code is not None and status != status_code:
        raise TypeError(f"status={status} and status_code={status_code} disagree; pass one of them")
    if status is not None:
        return int(status)
    if status_code is not None:
        return int(status_code)
    return default


class Response:
    """An HTTP response.

    ``status`` and ``status_code`` are the same thing (``status_code`` for Starlette habits). The engine adds
    ``Server``, ``Date`` and ``Content-Length`` itself.
    """

    media_type: Optional[str] = None
    charset: str = "utf-8"
    default_status: int = 200
    _streams = False  # the body is produced while sending (StreamingResponse)
    background: Optional[BackgroundTask] = None  # run after the response is sent (covet.background)
    # The request answered (the engine's: ``.method``, ``.headers``), given by the dispatcher to a streamed
    # response before it is sent: FileResponse reads HEAD, Range and If-Range from it, as Starlette's from the scope.
    _request_head: Any = None

    def __init__(
        self,
        content: Any = None,
        status: Optional[int] = None,
        headers: Optional[Mapping[str, str]] = None,
        media_type: Optional[str] = None,
        background: Optional[BackgroundTask] = None,
        *,
        status_code: Optional[int] = None,
    ) -> None:
        if background is not None:
            self.background = background
        if status is None and status_code is None:
            self.status_code: int = self.default_status
        else:
            self.status_code = _status_arg(status, status_code, self.default_status)
        if media_type is not None:
            self.media_type = media_type
        self.body: bytes = self.render(content)
        if headers is None:  # the common case, without building a header index
            self.headers = MutableHeaders([("content-type", self._content_type())] if self.media_type else None)
        else:
            self.headers = MutableHeaders(headers)
            if self.media_type is not None and "content-type" not in self.headers:
                self.headers.append("content-type", self._content_type())

    @property
    def status(self) -> int:
        return self.status_code

    @status.setter
    def status(self, value: int) -> None:
        self.status_code = value

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        if isinstance(content, (bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        # The design doc's Response(data): structured data is JSON.
        if self.media_type is None:
            self.media_type = "application/json"
        return encoders.dumps(content)

    def _content_type(self) -> str:
        key = (self.media_type or "", self.charset)
        content_type = _CONTENT_TYPES.get(key)
        if content_type is None:
            media_type, charset = key
            if media_type.startswith("text/") and "charset=" not in media_type.lower():
                content_type = f"{media_type}; charset={charset}"
            else:
                content_type = media_type
            if len(_CONTENT_TYPES) < 256:
                _CONTENT_TYPES[key] = content_type
        return content_type

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: Optional[int] = None,
        expires: Union[datetime, str, int, None] = None,
        path: Optional[str] = "/",
        domain: Optional[str] = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Optional[Literal["lax", "strict", "none"]] = "lax",
    ) -> None:
        from http.cookies import SimpleCookie

        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        if expires is not None:
            from datetime import UTC, datetime  # deferred: start-up cost (most apps set no expiring cookie)

            if isinstance(expires, datetime):
                from email.utils import format_datetime

                morsel["expires"] = format_datetime(expires.astimezone(UTC), usegmt=True)
            else:
                morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            morsel["samesite"] = samesite
        self.headers.append("set-cookie", morsel.OutputString())

    def delete_cookie(self, key: str, path: str = "/", domain: Optional[str] = None) -> None:
        self.set_cookie(key, max_age=0, expires=0, path=path, domain=domain)

    # The dispatcher calls this to hand the response to the engine.
    async def _send(self, responder: Any, executor: Any) -> None:
        responder.send(self.status_code, self.headers._raw, self.body)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code}>"


class JSONResponse(Response):
    """``content`` serialised as JSON (``application/json``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encoders.dumps(content)


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


_DEPRECATED_JSON_CLASS = (
    "{name} is deprecated (as in FastAPI): a declared return type or response_model= is serialised to JSON bytes "
    "by pydantic-core already, faster and without a custom response class; CovetPy's own JSONResponse is native"
)


class ORJSONResponse(JSONResponse):
    """FastAPI's (deprecated) orjson response: ``orjson.dumps`` (with non-str keys) when orjson is installed.

    Without orjson, FastAPI fails when rendering (an AssertionError, a 500); CovetPy renders with its own native
    JSON encoder instead, which gives the same compact JSON for the values orjson supports."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import warnings

        warnings.warn(_DEPRECATED_JSON_CLASS.format(name="ORJSONResponse"), DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)

    def render(self, content: Any) -> bytes:
        try:
            import orjson  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return encoders.dumps(content)
        return bytes(orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))


class UJSONResponse(JSONResponse):
    """FastAPI's (deprecated) ujson response: ``ujson.dumps(ensure_ascii=False)`` when ujson is installed, else
    CovetPy's native JSON encoder (where FastAPI fails with an AssertionError, a 500)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import warnings

        warnings.warn(_DEPRECATED_JSON_CLASS.format(name="UJSONResponse"), DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)

    def render(self, content: Any) -> bytes:
        try:
            import ujson  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            return encoders.dumps(content)
        return str(ujson.dumps(content, ensure_ascii=False)).encode("utf-8")


class RedirectResponse(Response):
    """A redirect to `url` (307 Temporary Redirect by default, which keeps the method and body)."""

    default_status = 307

    def __init__(
        self,
        url: Any,
        status: Optional[int] = None,
        headers: Optional[Mapping[str, str]] = None,
        background: Optional[BackgroundTask] = None,
        *,
        status_code: Optional[int] = None,
    ) -> None:
        from urllib.parse import quote

        super().__init__(None, status=status, headers=headers, background=background, status_code=status_code)
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;")


ContentStream = Union[AsyncIterable[Union[str, bytes]], Iterable[Union[str, bytes]]]


class StreamingResponse(Response):
    """A body produced piece by piece (chunked transfer encoding).

    `content` is an async iterable (iterated on the event loop) or a plain iterable (iterated in the thread
    pool, so a blocking generator does not stall other requests). Pieces may be bytes or str.
    """

    _streams = True

    def __init__(
        self,
        content: ContentStream,
        status: Optional[int] = None,
        headers: Optional[Mapping[str, str]] = None,
        media_type: Optional[str] = None,
        background: Optional[BackgroundTask] = None,
        *,
        status_code: Optional[int] = None,
    ) -> None:
        super().__init__(None, status=status, headers=headers, media_type=media_type, background=background,
                         status_code=status_code)
        self.body_iterator = content

    def _encode(self, chunk: Union[str, bytes]) -> bytes:
        return chunk.encode(self.charset) if isinstance(chunk, str) else bytes(chunk)

    async def _send(self, responder: Any, executor: Any) -> None:
        responder.start_stream(self.status_code, self.headers._raw)
        content = self.body_iterator
        iterator: Any = None
        try:
            if isinstance(content, AsyncIterable):
                iterator = content.__aiter__()
                async for chunk in iterator:
                    if chunk and not await _write(responder, self._encode(chunk)):
                        break  # the client went away
            else:
                loop = asyncio.get_running_loop()
                iterator = iter(content)
                done = object()
                while True:
                    chunk = await loop.run_in_executor(executor, next, iterator, done)
                    if chunk is done:
                        break
                    if chunk and not await _write(responder, self._encode(chunk)):
                        break
        except Exception:
            # The status line is gone already: all that is left is to cut the response short, so that the
            # client sees an incomplete body rather than a complete-looking one.
            logger.exception("the body of a streaming response failed midway; cutting the response short")
            await _close_iterator(iterator, executor)
            abort = getattr(responder, "abort", None)
            if abort is not None:
                abort()
            else:
                responder.end()
            return
        except BaseException:  # cancelled (shutdown): the producer's `finally:` still runs
            await _close_iterator(iterator, executor)
            raise
        if _client_gone(responder):
            # Stopped early: close the producer now, so that a generator's `finally:` runs (GeneratorExit).
            await _close_iterator(iterator, executor)
            abort = getattr(responder, "abort", None)
            if abort is not None:
                abort()
                return
        responder.end()


# ---- back-pressure (the engine's StreamFlow, see NativeResponder.flow_state) ---------------------------
_FLOW_GO, _FLOW_WAIT, _FLOW_CLOSED = 0, 1, 2


async def _write(responder: Any, data: bytes) -> bool:
    """Writes one chunk of a streamed body, then waits while more than the engine's send limit
    (``stream_send_buffer``) is unsent: a producer goes no faster than the client reads. False once the
    exchange is over (the client went away, the HTTP/2 stream was reset): stop producing."""
    if responder.write(data) is False:
        return False
    flow_state = getattr(responder, "flow_state", None)
    if flow_state is None:  # a responder without flow control (a test double)
        return True
    while True:
        state = flow_state()
        if state == _FLOW_GO:
            return True
        if state == _FLOW_CLOSED:
            return False
        # Over the limit: the engine reports (take_body(), with the flow's id) when the unsent bytes fell to
        # half the limit or the exchange closed.
        await _events.wait(responder.flow_id)


def _client_gone(responder: Any) -> bool:
    flow_state = getattr(responder, "flow_state", None)
    return flow_state is not None and flow_state() == _FLOW_CLOSED


async def _close_iterator(iterator: Any, executor: Any) -> None:
    """Closes a producer stopped early (async generators: aclose; generators: close, in `executor` as it
    was advanced), so its ``finally:`` blocks run now rather than when it is garbage-collected."""
    if iterator is None:
        return
    try:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
            return
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.get_running_loop().run_in_executor(executor, close)
    except Exception:
        logger.exception("closing the producer of a streaming response failed")


class EventSourceResponse(StreamingResponse):
    """Server-Sent Events (``text/event-stream``), FastAPI 0.135's: as ``response_class=EventSourceResponse`` on
    a generator handler, each yielded item becomes an event (see `covet.sse`); returned with an iterable of
    ready-made event bytes, it streams them as they are."""

    media_type = "text/event-stream"


# (st_mtime, st_size) -> (Content-Length, Last-Modified, ETag): the validators of the files served lately.
_FILE_VALIDATORS: dict[tuple[float, int], tuple[str, str, str]] = {}


def _set_missing(headers: MutableHeaders, fields: Iterable[tuple[str, str]]) -> None:
    """Appends each (name, value) whose (lower-case) name `headers` does not have yet (``setdefault``'s meaning)."""
    present = {name.lower() for name, _ in headers._raw}
    for name, value in fields:
        if name not in present:
            headers.append(name, value)


class _MalformedRange(Exception):
    def __init__(self, content: str = "Malformed range header.") -> None:
        super().__init__(content)
        self.content = content


class _RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class FileResponse(StreamingResponse):
    """The file at `path`, as Starlette's FileResponse sends it.

    ``Content-Length``, ``Last-Modified`` and ``ETag`` (Starlette's: the MD5 of ``"{st_mtime}-{st_size}"``) from
    `stat_result` or, when not given, from ``os.stat`` at send time; ``Accept-Ranges: bytes``; `filename` adds
    ``Content-Disposition: {content_disposition_type}; filename="..."`` (``filename*=utf-8''...`` when it needs
    quoting). The media type is guessed from `filename` or `path` (``application/octet-stream`` when unknown).

    At send time the request decides what is sent: HEAD gets the headers only (``method="HEAD"``: no body
    whatever the method); a ``Range`` on a 200 GET/HEAD (honoured by ``If-Range`` when it equals the ETag or
    Last-Modified) gets 206 with ``Content-Range`` (several ranges: ``multipart/byteranges``), 416 with
    ``Content-Range: bytes */size`` when no range starts inside the file, 400 when malformed. A missing path (or
    one that is not a regular file) raises RuntimeError then, as Starlette does (the client gets a 500). The
    status and headers of the response object become the ones sent.
    """

    chunk_size = 64 * 1024
    max_ranges = 100
    # A body up to this size is read whole and sent with Content-Length; a larger one is streamed (chunked)
    # unless the engine sends the file region itself (`_file_region`).
    whole_read_limit = 1024 * 1024

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        status: Optional[int] = None,
        headers: Optional[Mapping[str, str]] = None,
        media_type: Optional[str] = None,
        background: Optional[BackgroundTask] = None,
        filename: Optional[str] = None,
        stat_result: Optional[os.stat_result] = None,
        content_disposition_type: str = "attachment",
        *,
        method: Optional[str] = None,
        status_code: Optional[int] = None,
    ) -> None:
        self.path = os.fspath(path)
        self.filename = filename
        if media_type is None:
            import mimetypes

            media_type = mimetypes.guess_type(filename or self.path)[0] or "application/octet-stream"
        super().__init__(self._chunks(), status=status, headers=headers, media_type=media_type, background=background,
                         status_code=status_code)
        self.send_header_only = method is not None and method.upper() == "HEAD"
        _set_missing(self.headers, (("accept-ranges", "bytes"),))
        if filename is not None:
            from urllib.parse import quote

            quoted = quote(filename)
            if quoted != filename:
                disposition = f"{content_disposition_type}; filename*=utf-8''{quoted}"
            else:
                disposition = f'{content_disposition_type}; filename="{filename}"'
            self.headers.setdefault("content-disposition", disposition)
        self.stat_result = stat_result
        if stat_result is not None:
            self.set_stat_headers(stat_result)
        # What the headers were when made: those added later (by a middleware) go on a 400/416 sent instead.
        self._made_headers = list(self.headers._raw)
        self._prepared = False
        self._head = False
        self._no_body = False
        self._size = 0
        self._ranges: list[tuple[int, int]] = []  # empty: the whole file
        self._boundary = ""
        self._part_type = ""
        self._replacement: Optional[Response] = None  # 400 / 416 instead of the file

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        """Content-Length, Last-Modified and ETag from `stat_result` (kept where already set)."""
        key = (stat_result.st_mtime, stat_result.st_size)
        validators = _FILE_VALIDATORS.get(key)
        if validators is None:
            import hashlib
            from email.utils import formatdate

            etag = hashlib.md5(f"{key[0]}-{key[1]}".encode(), usedforsecurity=False).hexdigest()
            validators = (str(key[1]), formatdate(key[0], usegmt=True), f'"{etag}"')
            if len(_FILE_VALIDATORS) >= 1024:
                _FILE_VALIDATORS.clear()
            _FILE_VALIDATORS[key] = validators
        _set_missing(self.headers, zip(("content-length", "last-modified", "etag"), validators, strict=True))

    def _chunks(self) -> Iterable[bytes]:
        """The whole file (what a middleware iterating ``body_iterator`` reads)."""
        with open(self.path, "rb") as f:
            while chunk := f.read(self.chunk_size):
                yield chunk

    # -- at send time -------------------------------------------------------------------------------
    def _request_info(self) -> tuple[str, Optional[str], Optional[str]]:
        """(method, Range, If-Range) of the request being answered (GET without ranges when none is known)."""
        request = self._request_head
        if request is None:
            return "GET", None, None
        method = str(request.method).upper()
        headers = request.headers
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        http_range: Optional[str] = None
        if_range: Optional[str] = None
        for name, value in pairs:
            lower = name.lower()
            if lower == "range" and http_range is None:
                http_range = value
            elif lower == "if-range" and if_range is None:
                if_range = value
        return method, http_range, if_range

    def _prepare(self, info: Optional[tuple[str, Optional[str], Optional[str]]] = None) -> None:
        """Decides what is sent (stat, Range, If-Range), once; sets the status and headers accordingly. `info`:
        the request's `_request_info`, when read already (on the loop thread, before this runs in the pool)."""
        if self._prepared:
            return
        method, http_range, if_range = info if info is not None else self._request_info()
        before = list(self.headers._raw)  # with what a middleware added since `_made_headers`
        self._request_head = None  # the engine's request is not ours to keep past the answer
        self._head = method == "HEAD"
        self._no_body = self.send_header_only and not self._head  # method="HEAD" answering another method
        if self.stat_result is None:
            import stat

            try:
                stat_result = os.stat(self.path)
            except FileNotFoundError:
                raise RuntimeError(f"File at path {self.path} does not exist.") from None
            self.set_stat_headers(stat_result)
            if not stat.S_ISREG(stat_result.st_mode):
                raise RuntimeError(f"File at path {self.path} is not a file.")
        else:
            stat_result = self.stat_result
        self._size = size = stat_result.st_size
        self._prepared = True
        if (self.status_code != 200 or http_range is None or method not in ("GET", "HEAD")
                or (if_range is not None and not self._should_use_range(if_range))):
            return
        try:
            ranges = self._parse_range_header(http_range, size)
        except _MalformedRange as exc:
            self._replacement = self._instead(PlainTextResponse(exc.content, status_code=400), before)
            return
        except _RangeNotSatisfiable as exc:
            self._replacement = self._instead(
                PlainTextResponse(status_code=416, headers={"Content-Range": f"bytes */{exc.size}"}), before)
            return
        if not ranges:
            return
        self._ranges = ranges
        self.status_code = 206
        if len(ranges) == 1:
            start, end = ranges[0]
            self.headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
            self.headers["content-length"] = str(end - start)
            return
        import secrets

        self._boundary = secrets.token_hex(13)  # 104 bits, as browsers' boundaries and Starlette's
        part_type = self.headers["content-type"]
        self.headers["content-type"] = f"multipart/byteranges; boundary={self._boundary}"
        self._part_type = part_type
        self.headers["content-length"] = str(self._multipart_length())

    def _instead(self, response: Response, before: list[tuple[str, str]]) -> Response:
        """`response` (a 400/416 sent instead of the file) with the headers a middleware `added` to the file's:
        Starlette's middleware sees, and marks, the answer actually sent."""
        added = list(before)
        for header in self._made_headers:
            if header in added:
                added.remove(header)
        for name, value in added:
            if name.lower() == "set-cookie":
                response.headers.append(name, value)
            else:
                response.headers[name] = value
        return response

    def _file_region(self) -> Optional[tuple[str, int, int]]:
        """(absolute path, offset, byte count) when the body is one contiguous region of the file and the status
        and headers (Content-Length included) are final — the engine may then send the region itself (for HEAD:
        no body, that Content-Length); None when Python must produce the body (several ranges, a 400/416).
        Prepares the response first (stat, Range) if `_send` has not: the request must be set by then."""
        self._prepare()
        if self._replacement is not None or len(self._ranges) > 1 or self._no_body:
            return None
        start, end = self._ranges[0] if self._ranges else (0, self._size)
        return os.path.abspath(self.path), start, end - start

    def _should_use_range(self, http_if_range: str) -> bool:
        if http_if_range.startswith("W/"):
            return False
        return http_if_range in (self.headers.get("last-modified"), self.headers.get("etag"))

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        """[(start, end exclusive)] of ``Range: bytes=...``, overlapping ones merged (several: sorted); [] for
        the whole file (more than `max_ranges` ranges). Starlette's rules and messages."""
        units, sep, spec = http_range.partition("=")
        if not sep:
            raise _MalformedRange()
        if units.strip().lower() != "bytes":
            raise _MalformedRange("Only support bytes range")
        if spec.count(",") + 1 > cls.max_ranges:
            return []
        ranges: list[tuple[int, int]] = []
        for part in spec.split(","):
            part = part.strip()
            if not part or part == "-" or "-" not in part:
                continue
            first, _, last = part.partition("-")
            first, last = first.strip(), last.strip()
            try:
                start = int(first) if first else max(file_size - int(last), 0)
                end = int(last) + 1 if first and last and int(last) < file_size else file_size
            except ValueError:
                continue
            ranges.append((start, end))
        if not ranges:
            raise _MalformedRange("Range header: range must be requested")
        if any(not 0 <= start < file_size for start, _ in ranges):
            raise _RangeNotSatisfiable(file_size)
        if any(start >= end for start, end in ranges):
            raise _MalformedRange("Range header: start must be less than end")
        if len(ranges) == 1:
            return ranges
        ranges.sort()
        merged = [ranges[0]]
        for start, end in ranges[1:]:
            last_start, last_end = merged[-1]
            if start <= last_end:
                merged[-1] = (last_start, max(last_end, end))
            else:
                merged.append((start, end))
        return merged

    def _part_head(self, start: int, end: int) -> bytes:
        return (f"--{self._boundary}\r\nContent-Type: {self._part_type}\r\n"
                f"Content-Range: bytes {start}-{end - 1}/{self._size}\r\n\r\n").encode("latin-1")

    def _multipart_length(self) -> int:
        total = sum(len(self._part_head(start, end)) + (end - start) + 2 for start, end in self._ranges)
        return total + len(self._boundary) + 4  # --boundary--

    def _region_chunks(self, offset: int, count: int) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            f.seek(offset)
            while count > 0:
                chunk = f.read(min(self.chunk_size, count))
                if not chunk:
                    raise RuntimeError(f"File at path {self.path} is shorter than expected.")
                count -= len(chunk)
                yield chunk

    def _multipart_chunks(self) -> Iterator[bytes]:
        for start, end in self._ranges:
            yield self._part_head(start, end)
            yield from self._region_chunks(start, end - start)
            yield b"\r\n"
        yield f"--{self._boundary}--".encode("latin-1")

    def _body_length(self) -> int:
        region = self._file_region()
        return region[2] if region is not None else self._multipart_length()

    def _read_body(self) -> bytes:
        region = self._file_region()
        if region is None:
            return b"".join(self._multipart_chunks())
        _, offset, count = region
        with open(self.path, "rb") as f:
            if offset:
                f.seek(offset)
            data = f.read(count)
        if len(data) != count:
            raise RuntimeError(f"File at path {self.path} is shorter than expected.")
        return data

    def _load(self, info: tuple[str, Optional[str], Optional[str]]) -> Optional[bytes]:
        """`_prepare`, then the body when it is small enough to be read whole (else None): one trip to the pool."""
        self._prepare(info)
        if self._replacement is not None or self._no_body or self._body_length() > self.whole_read_limit:
            return None
        return self._read_body()

    async def _send(self, responder: Any, executor: Any) -> None:
        loop = asyncio.get_running_loop()
        body: Optional[bytes] = None
        if not self._prepared:  # the request read here (the engine's), the file's stat (and body) in the pool
            body = await loop.run_in_executor(executor, self._load, self._request_info())
        replacement = self._replacement
        if replacement is not None:
            responder.send(replacement.status_code, replacement.headers._raw, replacement.body)
            return
        if self._no_body:  # FileResponse(method="HEAD") for a GET: no body (so, to the engine, no length)
            responder.send(self.status_code, self.headers._raw, b"")
            return
        if body is not None or self._body_length() <= self.whole_read_limit:
            # One response with Content-Length (for HEAD the engine sends the headers only).
            if body is None:
                body = await loop.run_in_executor(executor, self._read_body)
            responder.send(self.status_code, self.headers._raw, body)
            return
        if self._head:  # too large to read for its length: the headers alone (no Content-Length until then)
            responder.start_stream(self.status_code, self.headers._raw)
            responder.end()
            return
        region = self._file_region()
        self.body_iterator = (self._multipart_chunks() if region is None
                              else self._region_chunks(region[1], region[2]))
        await super()._send(responder, executor)
