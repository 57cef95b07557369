"""`StaticFiles`: a directory served by the engine under a mount path (``app.mount("/static", StaticFiles(...))``).

Starlette's names and behaviour (what FastAPI serves), with no Python on the request path: the engine opens,
checks and sends the file (``include/covet/app/static_files.hpp``). ETag and Last-Modified as Starlette writes
them, ``If-None-Match``/``If-Modified-Since`` → 304, ``Range`` → 206 (several ranges: multipart/byteranges),
416, HEAD, the media type from Python's `mimetypes` (so ``mimetypes.add_type`` counts), ``html=True``
(index.html for directories, 404.html), and traversal safety: ``..`` and ``%2e%2e`` above the root, NUL bytes
and symbolic links leading out of the root (unless ``follow_symlink=True``) answer 404.

With Python HTTP middleware in the app (``@app.middleware("http")``, a BaseHTTPMiddleware), mounted StaticFiles
are served in Python instead (`StaticFiles.get_response`, the same rules, a `FileResponse`), so that the
middleware sees and may change those responses as in FastAPI; without, the engine serves them.

Beyond Starlette: ``precompressed=True`` serves ``file.br`` / ``file.gz`` next to ``file`` when the client's
Accept-Encoding takes it (with ``Content-Encoding`` and ``Vary: Accept-Encoding``), and ``fallback="index.html"``
answers every miss with that file (200): a single-page application's client-side routes.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import mimetypes
import os
import stat
from dataclasses import dataclass
from typing import Any, Optional, Union

from .datastructures import Headers
from .exceptions import HTTPException
from .responses import FileResponse, RedirectResponse, Response

__all__ = ["StaticFiles", "StaticMount", "NotModifiedResponse"]

PathLike = Union[str, "os.PathLike[str]"]


class StaticFiles:
    """Files from `directory` (and/or the ``statics`` folder of each of `packages`), mounted with ``app.mount``.

    `packages` items are a package name (its ``statics`` folder) or ``(package, folder)``. `check_dir`: a missing
    `directory` raises RuntimeError now rather than at start-up. `html`: serve ``index.html`` for a directory
    (redirecting ``/dir`` to ``/dir/``) and ``404.html`` for a miss. `follow_symlink`: follow symbolic links
    even when they lead out of the directory (off: such links answer 404).
    """

    def __init__(
        self,
        *,
        directory: Optional[PathLike] = None,
        packages: Optional[list[Union[str, tuple[str, str]]]] = None,
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
        precompressed: bool = False,
        fallback: Optional[str] = None,
    ) -> None:
        self.directory = directory
        self.packages = packages
        self.html = html
        self.follow_symlink = follow_symlink
        self.precompressed = precompressed
        self.fallback = fallback
        self.all_directories = self.get_directories(directory, packages)
        if check_dir and directory is not None and not os.path.isdir(directory):
            raise RuntimeError(f"Directory '{directory}' does not exist")
        if fallback is not None and (fallback.startswith("/") or ".." in fallback.split("/")):
            raise ValueError(f"fallback must be a file name relative to the directory, not {fallback!r}")

    @staticmethod
    def get_directories(directory: Optional[PathLike] = None,
                        packages: Optional[list[Union[str, tuple[str, str]]]] = None) -> list[str]:
        """The directories searched, in order: `directory`, then each package's statics folder."""
        directories: list[str] = []
        if directory is not None:
            directories.append(os.fspath(directory))
        for package in packages or []:
            name, statics = package if isinstance(package, tuple) else (package, "statics")
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                raise RuntimeError(f"StaticFiles: package {name!r} could not be found")
            folder = os.path.normpath(os.path.join(spec.origin, "..", statics))
            if not os.path.isdir(folder):
                raise RuntimeError(f"StaticFiles: directory {statics!r} in package {name!r} could not be found")
            directories.append(folder)
        return directories

    def check_config(self) -> None:
        """Raises RuntimeError naming a directory that does not exist or is not a directory (at start-up)."""
        if not self.all_directories:
            raise RuntimeError("StaticFiles needs a directory= or packages=")
        for folder in self.all_directories:
            if not os.path.exists(folder):
                raise RuntimeError(f"StaticFiles directory '{folder}' does not exist.")
            if not os.path.isdir(folder):
                raise RuntimeError(f"StaticFiles path '{folder}' is not a directory.")

    def __repr__(self) -> str:
        return f"StaticFiles(directories={self.all_directories!r}, html={self.html})"

    # -- served in Python (an app with Python HTTP middleware): Starlette's StaticFiles.get_response ---------
    @staticmethod
    def get_path(route_path: str) -> str:
        """The file path for `route_path` (the decoded URL path below the mount), with ``.`` and ``..`` resolved
        lexically: ``..`` above the root stays in the result, and `lookup_path` refuses it."""
        return os.path.normpath(os.path.join(*route_path.split("/")))

    async def get_response(self, path: str, request: Any) -> Response:
        """The answer for file `path` (from `get_path`) to `request` (its ``method``, ``headers``, ``url``):
        a FileResponse, a 304, a redirect to the directory URL with its slash (html=True), 404.html; else
        HTTPException 404 (405 for methods other than GET and HEAD, 401 when the file may not be read)."""
        if request.method not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        loop = asyncio.get_running_loop()
        try:
            full_path, stat_result = await loop.run_in_executor(None, self.lookup_path, path)
        except PermissionError:
            raise HTTPException(status_code=401) from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # cannot be a file here
                raise HTTPException(status_code=404) from None
            raise
        except ValueError:  # NUL bytes and other characters no file name has
            raise HTTPException(status_code=404) from None
        if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
            return await self._file_answer(path, full_path, stat_result, request)
        if stat_result is not None and stat.S_ISDIR(stat_result.st_mode) and self.html:
            index_path = os.path.join(path, "index.html")
            full_path, stat_result = await loop.run_in_executor(None, self.lookup_path, index_path)
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                url_path: str = request.url.path
                if not url_path.endswith("/"):  # directory URLs end in "/"
                    url = request.url
                    location = f"{url.scheme}://{url.netloc}{url_path}/" + (f"?{url.query}" if url.query else "")
                    return RedirectResponse(url=location)
                return await self._file_answer(index_path, full_path, stat_result, request)
        if self.fallback is not None:  # CovetPy's SPA fallback: every miss gets this file, 200
            full_path, stat_result = await loop.run_in_executor(None, self.lookup_path, self.fallback)
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                return await self._file_answer(self.fallback, full_path, stat_result, request)
        if self.html:
            full_path, stat_result = await loop.run_in_executor(None, self.lookup_path, "404.html")
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                return FileResponse(full_path, stat_result=stat_result, status_code=404, **self._vary())
        raise HTTPException(status_code=404)

    def lookup_path(self, path: str) -> tuple[str, Optional[os.stat_result]]:
        """(full path, its stat) of `path` in the first directory holding it; ("", None) when none does, or when
        it leads out of the directory (``..``, a symbolic link out of it unless `follow_symlink`)."""
        if path.startswith(("/", "\\")):
            return "", None
        for directory in self.all_directories:
            joined = os.path.join(directory, path)
            if self.follow_symlink:
                full_path, root = os.path.abspath(joined), os.path.abspath(directory)
            else:
                full_path, root = os.path.realpath(joined), os.path.realpath(directory)
            if os.path.commonpath([full_path, root]) != root:
                continue
            try:
                return full_path, os.stat(full_path)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return "", None

    def file_response(self, full_path: PathLike, stat_result: os.stat_result, request: Any,
                      status_code: int = 200, *, media_type: Optional[str] = None,
                      content_encoding: Optional[str] = None) -> Response:
        """A FileResponse for the file, or 304 when the request's If-None-Match / If-Modified-Since says the
        client has it. Its Range is decided now (no I/O: the stat is known), so that the app's middleware sees
        the 206 or the 416/400 sent instead, as Starlette's does. `media_type` and `content_encoding`: for a
        precompressed sibling, the type of the file it stands for and its coding."""
        headers = {"vary": "Accept-Encoding"} if self.precompressed else None
        if headers is not None and content_encoding is not None:
            headers["content-encoding"] = content_encoding
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result, headers=headers,
                                media_type=media_type)
        if self.is_not_modified(response.headers, request.headers):
            return NotModifiedResponse(response.headers)
        response._request_head = request
        response._prepare()
        return response._replacement or response

    def is_not_modified(self, response_headers: Headers, request_headers: Headers) -> bool:
        """Starlette's: If-None-Match alone when present (``*``, or one of its tags, weak or not, equals the
        ETag); else If-Modified-Since at or after Last-Modified."""
        if_none_match = request_headers.get("if-none-match")
        if if_none_match:
            if if_none_match.strip() == "*":
                return True
            etag = response_headers["etag"]
            return etag in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        if_modified_since = request_headers.get("if-modified-since")
        last_modified = response_headers.get("last-modified")
        if if_modified_since is None or last_modified is None:
            return False
        from email.utils import parsedate

        since, modified = parsedate(if_modified_since), parsedate(last_modified)
        return since is not None and modified is not None and since >= modified

    def _vary(self) -> dict[str, Any]:
        return {"headers": {"vary": "Accept-Encoding"}} if self.precompressed else {}

    async def _file_answer(self, path: str, full_path: str, stat_result: os.stat_result, request: Any) -> Response:
        """`file_response`, or with `precompressed` the ``.br``/``.gz`` sibling the client accepts (its own
        validators, the media type of `path`, ``Content-Encoding``)."""
        if self.precompressed:
            accept = request.headers.get("accept-encoding", "")
            loop = asyncio.get_running_loop()
            for coding, suffix in (("br", ".br"), ("gzip", ".gz")):
                if not _accepts_coding(accept, coding):
                    continue
                sibling, sibling_stat = await loop.run_in_executor(None, self.lookup_path, path + suffix)
                if sibling_stat is not None and stat.S_ISREG(sibling_stat.st_mode):
                    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
                    return self.file_response(sibling, sibling_stat, request, media_type=media_type,
                                              content_encoding=coding)
        return self.file_response(full_path, stat_result, request)


def _accepts_coding(accept_encoding: str, coding: str) -> bool:
    """Does `accept_encoding` list `coding` with a non-zero q? (the engine's rule)"""
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() != coding:
            continue
        params = params.strip()
        if params[:2].lower() == "q=":
            return params[2:].strip() not in ("0", "0.", "0.0", "0.00", "0.000")
        return True
    return False


class NotModifiedResponse(Response):
    """Starlette's 304 for a static file: the FileResponse's Cache-Control, Content-Location, Date, ETag,
    Expires and Vary only."""

    NOT_MODIFIED_HEADERS = ("cache-control", "content-location", "date", "etag", "expires", "vary")

    def __init__(self, headers: Headers) -> None:
        super().__init__(status_code=304, headers={name: value for name, value in headers.items()
                                                   if name.lower() in self.NOT_MODIFIED_HEADERS})


@dataclass(frozen=True)
class StaticMount:
    """``app.mount(path, StaticFiles(...), name=...)``: kept in ``app.routes`` (``url_path_for(name, path=...)``)."""

    path: str
    app: StaticFiles
    name: Optional[str] = None

    @property
    def methods(self) -> set[str]:
        return {"GET", "HEAD"}

    def url_path(self, path: str = "") -> str:
        """The URL path of a file below the mount (``/static`` + ``/`` + `path`)."""
        return self.path.rstrip("/") + "/" + path.lstrip("/")


def media_type_tables() -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """Python's mimetypes tables for the engine: (suffix → type, suffix → suffix, encoding suffixes)."""
    if not mimetypes.inited:
        mimetypes.init()
    types = dict(mimetypes.types_map)
    return sorted(types.items()), sorted(mimetypes.suffix_map.items()), sorted(mimetypes.encodings_map)
