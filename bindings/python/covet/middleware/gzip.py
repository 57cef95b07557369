"""`GZipMiddleware` (``fastapi.middleware.gzip``): Starlette's semantics, run natively with zlib; CovetPy can also
answer with Brotli (``brotli=True`` or a quality 1-11) and Zstandard (``zstd=True`` or a level 1-22), chosen by the
client's Accept-Encoding (q-values honoured; on a tie br, then zstd, then gzip). Streamed responses are
compressed chunk by chunk, each chunk flushed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from .native import NativeMiddleware

if TYPE_CHECKING:
    from covet.server.interface import Middleware

__all__ = ["DEFAULT_EXCLUDED_CONTENT_TYPES", "GZipMiddleware"]

DEFAULT_EXCLUDED_CONTENT_TYPES = (
    "application/grpc", "application/gzip", "application/x-gzip", "application/zip", "audio/*", "font/woff",
    "font/woff2", "image/avif", "image/gif", "image/jpeg", "image/png", "image/webp", "text/event-stream", "video/*",
)
_BROTLI_DEFAULT = 4  # a quality for responses made per request (11 is for precompressed files)
_ZSTD_DEFAULT = 3


def _level(name: str, value: Union[bool, int], default: int, high: int) -> int:
    if value is True:
        return default
    if value is False:
        return 0
    if not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"GZipMiddleware: {name} must be True, False or a level from 1 to {high}, not {value!r}")
    return value


class GZipMiddleware(NativeMiddleware):
    native_kind = "compression"

    def __init__(
        self,
        app: Any,
        minimum_size: int = 500,
        compresslevel: int = 9,
        thread_minimum_size: int = 128 * 1024,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
        brotli: Union[bool, int] = False,
        zstd: Union[bool, int] = False,
    ) -> None:
        """`thread_minimum_size` is accepted for Starlette's signature and unused: the engine compresses on its
        own threads, never on the event loop."""
        super().__init__(app)
        if not isinstance(compresslevel, int) or not 1 <= compresslevel <= 9:
            raise ValueError(f"GZipMiddleware: compresslevel must be from 1 to 9, not {compresslevel!r}")
        if not isinstance(minimum_size, int) or minimum_size < 0:
            raise ValueError(f"GZipMiddleware: minimum_size must be a size in bytes, not {minimum_size!r}")
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.thread_minimum_size = thread_minimum_size
        self.exclude_content_types = tuple(exclude_content_types)
        self.brotli_quality = _level("brotli", brotli, _BROTLI_DEFAULT, 11)
        self.zstd_level = _level("zstd", zstd, _ZSTD_DEFAULT, 22)

    @property
    def effective_minimum_size(self) -> int:
        """`minimum_size`, or at most 1 (every non-empty body) when a Python HTTP middleware is inside this one: its
        responses reach GZip streamed in FastAPI, and Starlette compresses a streamed body whatever its size."""
        return min(self.minimum_size, 1) if self.behind_http_middleware else self.minimum_size

    def native_options(self) -> dict[str, Any]:
        return {
            "minimum_size": self.effective_minimum_size,
            "gzip_level": self.compresslevel,
            "brotli_quality": self.brotli_quality,
            "zstd_level": self.zstd_level,
            "exclude_content_types": list(self.exclude_content_types),
        }

    def python_middleware(self) -> Middleware:
        from .python_gzip import PythonGZip  # deferred: only apps with it inside a Python middleware

        return PythonGZip(self)
