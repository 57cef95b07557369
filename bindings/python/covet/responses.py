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
from collections.abc import AsyncIterable, Iterable, Mapping
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


class FileResponse(StreamingResponse):
    """The contents of the file at `path`, read in the thread pool in 64 KiB pieces.

    `media_type` is guessed from the file name when not given; `filename` adds a
    ``Content-Disposition: attachment`` header.
    """

    chunk_size = 64 * 1024

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        status: Optional[int] = None,
        headers: Optional[Mapping[str, str]] = None,
        media_type: Optional[str] = None,
        background: Optional[BackgroundTask] = None,
        filename: Optional[str] = None,
        *,
        status_code: Optional[int] = None,
    ) -> None:
        self.path = os.fspath(path)
        if media_type is None:
            import mimetypes

            media_type = mimetypes.guess_type(filename or self.path)[0] or "text/plain"
        super().__init__(self._chunks(), status=status, headers=headers, media_type=media_type, background=background,
                         status_code=status_code)
        if filename is not None:
            from urllib.parse import quote

            quoted = quote(filename)
            if quoted != filename:
                disposition = f"attachment; filename*=utf-8''{quoted}"
            else:
                disposition = f'attachment; filename="{filename}"'
            self.headers.setdefault("content-disposition", disposition)

    def _chunks(self) -> Iterable[bytes]:
        with open(self.path, "rb") as f:
            while chunk := f.read(self.chunk_size):
                yield chunk

    async def _send(self, responder: Any, executor: Any) -> None:
        loop = asyncio.get_running_loop()
        size = await loop.run_in_executor(executor, os.path.getsize, self.path)
        if size <= 4 * self.chunk_size:  # small: one read, one response with Content-Length
            body = await loop.run_in_executor(executor, _read_file, self.path)
            responder.send(self.status_code, self.headers._raw, body)
            return
        await super()._send(responder, executor)


def _read_file(path: Union[str, os.PathLike[str]]) -> bytes:
    with open(path, "rb") as f:
        return f.read()
