"""`GZipMiddleware` run in Python, for the position it was added at when a Python middleware is added after it
(so outside it, seeing the compressed body, as in FastAPI): Starlette's semantics exactly — gzip when the request's
Accept-Encoding contains ``gzip``; bodies under `minimum_size` (a response given whole) untouched; responses
already encoded, partial (206) or of an excluded content type untouched; ``Vary: Accept-Encoding`` added to every
other response (compressed or not); a streamed body compressed chunk by chunk, each chunk flushed. Only gzip: the
engine's Brotli and Zstandard need the native path (GZip outside every Python middleware, see docs/python.md)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from covet.datastructures import MutableHeaders
from covet.requests import Request
from covet.responses import Response, StreamingResponse

if TYPE_CHECKING:
    from covet.server.interface import CallNext

    from .gzip import GZipMiddleware

__all__ = ["PythonGZip"]

_DONE = object()


class PythonGZip:
    """``async (request, call_next) -> Response`` with a `GZipMiddleware`'s options."""

    passes_response_whole = True  # not a BaseHTTPMiddleware: what it passes on is not turned into a stream

    def __init__(self, options: GZipMiddleware) -> None:
        if options.brotli_quality or options.zstd_level:
            import warnings

            warnings.warn("GZipMiddleware(brotli=/zstd=): a Python middleware was added after GZipMiddleware, so GZip "
                          "runs inside it, in Python, where it answers gzip only. Add GZipMiddleware after every "
                          "@app.middleware('http') / BaseHTTPMiddleware to run it natively with Brotli and zstd",
                          RuntimeWarning, stacklevel=2)
        self.minimum_size = options.effective_minimum_size
        self.compresslevel = options.compresslevel
        self.thread_minimum_size = options.thread_minimum_size
        self.excluded = frozenset(t.partition(";")[0].strip().lower() for t in options.exclude_content_types)

    def _skip(self, response: Response) -> bool:
        headers = response.headers
        if "content-encoding" in headers or response.status_code == 206:
            return True
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        media_types = {media_type, media_type.partition("/")[0] + "/*"}
        if media_type.startswith("application/grpc+"):
            media_types.add("application/grpc")
        return not media_types.isdisjoint(self.excluded)

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        gzip = "gzip" in request.headers.get("accept-encoding", "")
        response = await call_next(request)
        if self._skip(response):
            return response
        if not isinstance(response, StreamingResponse):
            return await self._whole(response, response.body, gzip)
        # Starlette decides on the first body message: no chunk at all is an empty body given whole.
        chunks = _chunks(response)
        first = await chunks.__anext__()
        if first is _DONE:
            return await self._whole(response, b"", gzip)
        assert isinstance(first, bytes)
        _add_vary(response.headers, "Accept-Encoding")
        if not gzip:
            return _restream(response, _prepend(first, chunks))
        compressor = zlib.compressobj(self.compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        first_out = await self._compress(compressor, first, final=False)
        # compress + sync flush never gives back the input: Starlette sets Content-Encoding here every time
        response.headers["Content-Encoding"] = "gzip"
        if "content-length" in response.headers:
            del response.headers["content-length"]
        return _restream(response, self._compressed(compressor, first_out, chunks))

    async def _whole(self, response: Response, body: bytes, gzip: bool) -> Response:
        if len(body) < self.minimum_size:
            return response
        _add_vary(response.headers, "Accept-Encoding")
        if not gzip:
            return response
        compressor = zlib.compressobj(self.compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        compressed = await self._compress(compressor, body, final=True)
        response.headers["Content-Encoding"] = "gzip"
        if "content-length" in response.headers:
            response.headers["Content-Length"] = str(len(compressed))
        if isinstance(response, StreamingResponse):
            return _restream(response, _single(compressed))
        response.body = compressed
        return response

    async def _compress(self, compressor: Any, data: bytes, final: bool) -> bytes:
        if len(data) >= self.thread_minimum_size:  # large pieces off the event loop, as Starlette does
            return await asyncio.get_running_loop().run_in_executor(None, _compress, compressor, data, final)
        return _compress(compressor, data, final)

    async def _compressed(self, compressor: Any, first: bytes,
                          chunks: AsyncGenerator[object, None]) -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in chunks:
                if chunk is _DONE:
                    break
                assert isinstance(chunk, bytes)
                yield await self._compress(compressor, chunk, final=False)
            yield await self._compress(compressor, b"", final=True)
        finally:
            await chunks.aclose()


def _compress(compressor: Any, data: bytes, final: bool) -> bytes:
    if final:
        return bytes(compressor.compress(data) + compressor.flush())
    return bytes(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))


def _add_vary(headers: MutableHeaders, value: str) -> None:
    headers["Vary"] = ", ".join([*headers.getlist("Vary"), value])


async def _chunks(response: StreamingResponse) -> AsyncGenerator[object, None]:
    """The response's body as bytes pieces (str encoded in its charset), then `_DONE`; a plain iterator is
    advanced in the loop's default executor (it may block, as the runtime assumes for sync bodies)."""
    content = response.body_iterator
    charset = response.charset
    iterator: Any = None
    try:
        if isinstance(content, AsyncIterable):
            iterator = content.__aiter__()
            async for chunk in iterator:
                yield chunk.encode(charset) if isinstance(chunk, str) else bytes(chunk)
        else:
            loop = asyncio.get_running_loop()
            iterator = iter(content)
            while (chunk := await loop.run_in_executor(None, next, iterator, _DONE)) is not _DONE:
                yield chunk.encode(charset) if isinstance(chunk, str) else bytes(chunk)
        yield _DONE
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
        else:
            sync_close = getattr(iterator, "close", None)
            if sync_close is not None:
                sync_close()


async def _prepend(first: bytes, chunks: AsyncGenerator[object, None]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in chunks:
            if chunk is _DONE:
                break
            assert isinstance(chunk, bytes)
            yield chunk
    finally:
        await chunks.aclose()


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _restream(response: Response, body: AsyncIterator[bytes]) -> StreamingResponse:
    """A StreamingResponse with `response`'s status, headers and background task and this body (a new object:
    a FileResponse sends its file itself)."""
    out = StreamingResponse(body, status_code=response.status_code)
    out.headers = response.headers
    out.background = response.background
    out.media_type = response.media_type
    out.charset = response.charset
    return out
