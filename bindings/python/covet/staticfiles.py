"""`StaticFiles`: a directory served by the engine under a mount path (``app.mount("/static", StaticFiles(...))``).

Starlette's names and behaviour (what FastAPI serves), with no Python on the request path: the engine opens,
checks and sends the file (``include/covet/app/static_files.hpp``). ETag and Last-Modified as Starlette writes
them, ``If-None-Match``/``If-Modified-Since`` → 304, ``Range`` → 206 (several ranges: multipart/byteranges),
416, HEAD, the media type from Python's `mimetypes` (so ``mimetypes.add_type`` counts), ``html=True``
(index.html for directories, 404.html), and traversal safety: ``..`` and ``%2e%2e`` above the root, NUL bytes
and symbolic links leading out of the root (unless ``follow_symlink=True``) answer 404.

Beyond Starlette: ``precompressed=True`` serves ``file.br`` / ``file.gz`` next to ``file`` when the client's
Accept-Encoding takes it (with ``Content-Encoding`` and ``Vary: Accept-Encoding``), and ``fallback="index.html"``
answers every miss with that file (200): a single-page application's client-side routes.
"""

from __future__ import annotations

import importlib.util
import mimetypes
import os
from dataclasses import dataclass
from typing import Optional, Union

__all__ = ["StaticFiles", "StaticMount"]

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
