"""The WSGI environ of one engine request (PEP 3333), built in the pool thread that runs the app.

Per request: a copy of the server's constant keys, the request line, the client, the headers. Header names map
to environ keys through a small cache (``User-Agent`` -> ``HTTP_USER_AGENT``), so a request pays one dict lookup
per header. As gunicorn: a header whose name holds ``_`` is dropped (``X_Forwarded_For`` would otherwise
arrive as ``HTTP_X_FORWARDED_FOR``, indistinguishable from the real ``X-Forwarded-For``); repeated headers are
joined with ``", "`` (``Cookie`` with ``"; "``, as HTTP/2 splits it).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from typing import Any, Optional
from urllib.parse import unquote

from covet.server.engine import native_module

__all__ = ["EMPTY_INPUT", "EmptyInput", "EnvironBuilder", "header_key"]

# Keys cached for header names already seen; a client cannot grow it past this (it then maps without caching).
_CACHE_LIMIT = 1024
_KEYS: dict[str, Optional[str]] = {}
_HOSTS: dict[str, tuple[str, str]] = {}


def header_key(name: str) -> Optional[str]:
    """The environ key of header `name`, or None for a header that is dropped (its name holds ``_``)."""
    key = _KEYS.get(name)
    if key is not None or name in _KEYS:
        return key
    if "_" in name:
        key = None
    else:
        upper = name.upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
    if len(_KEYS) < _CACHE_LIMIT:
        _KEYS[name] = key
    return key


def _split_host(host: str) -> tuple[str, str]:
    """``example.com:8080`` -> (``example.com``, ``8080``); ``[::1]:80`` -> (``[::1]``, ``80``); no port: ``""``
    (the caller uses the scheme's default)."""
    cached = _HOSTS.get(host)
    if cached is not None:
        return cached
    name, sep, port = host.rpartition(":")
    # No port (an IPv6 literal's colons are inside its brackets).
    result = (host, "") if not sep or "]" in port or not port.isdigit() else (name, port)
    if len(_HOSTS) < _CACHE_LIMIT:
        _HOSTS[host] = result
    return result


class EmptyInput:
    """``wsgi.input`` of a request without a body."""

    __slots__ = ()

    def read(self, size: Optional[int] = -1) -> bytes:
        return b""

    def readline(self, size: Optional[int] = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


EMPTY_INPUT = EmptyInput()


class EnvironBuilder:
    """Builds environs for one server: its constant keys once, the request's per call."""

    def __init__(self, server_name: str, server_port: int, root_path: str, multithread: bool,
                 multiprocess: bool, file_wrapper: Any) -> None:
        self.root_path = root_path.rstrip("/")
        self.server_name = server_name
        self.server_port = str(server_port)
        self.base: dict[str, Any] = {
            "SCRIPT_NAME": self.root_path,
            "SERVER_NAME": server_name,
            "SERVER_PORT": self.server_port,
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": file_wrapper,
        }
        # The engine's environ builder (NativeRequest.wsgi_environ: everything but wsgi.input in one call), or
        # None for an engine without it (`build` then reads the request's attributes here).
        maker: Any = getattr(native_module(), "WsgiEnviron", None)
        self.native: Any = maker(self.base, self.root_path) if maker is not None else None

    def build(self, native: Any, streamed_input: Callable[[Any], Any]) -> dict[str, Any]:
        """The environ of `native` (a NativeRequest); `streamed_input(native)`: the wsgi.input of a body the
        engine streams (a body that came whole is a BytesIO of it)."""
        if self.native is not None:
            environ: dict[str, Any] = native.wsgi_environ(self.native)
            if ("CONTENT_LENGTH" in environ or "HTTP_TRANSFER_ENCODING" in environ
                    or environ["SERVER_PROTOCOL"] == "HTTP/2"):
                environ["wsgi.input"] = streamed_input(native) if native.streaming else io.BytesIO(native.body)
            else:  # HTTP/1 without Content-Length or Transfer-Encoding: no body (one shared empty stream)
                environ["wsgi.input"] = EMPTY_INPUT
            return environ
        environ = self.base.copy()
        environ["REQUEST_METHOD"] = native.method
        path = native.path
        raw = path
        root = self.root_path
        if root and (path == root or path.startswith(root + "/")):
            path = path[len(root):]
        # PEP 3333: PATH_INFO is the decoded path, its bytes as latin-1 (the engine gives the raw bytes so).
        environ["PATH_INFO"] = unquote(path, encoding="latin-1") if "%" in path else path
        query = native.query_string
        environ["QUERY_STRING"] = query
        environ["RAW_URI"] = environ["REQUEST_URI"] = raw + "?" + query if query else raw
        version = native.http_version
        environ["SERVER_PROTOCOL"] = "HTTP/" + version
        scheme = native.scheme
        environ["wsgi.url_scheme"] = scheme
        address, port = native.client
        environ["REMOTE_ADDR"] = address
        environ["REMOTE_PORT"] = str(port)
        keys = _KEYS
        for name, value in native.headers:
            key = keys.get(name)
            if key is None:
                key = header_key(name)
                if key is None:
                    continue
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                environ[key] = value
        host = environ.get("HTTP_HOST")
        if host is not None:
            name, port_text = _split_host(host)
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = port_text or ("443" if scheme == "https" else "80")
        if "CONTENT_LENGTH" in environ or "HTTP_TRANSFER_ENCODING" in environ or version == "2":
            environ["wsgi.input"] = streamed_input(native) if native.streaming else io.BytesIO(native.body)
        else:  # HTTP/1 without Content-Length or Transfer-Encoding: no body, one shared empty stream (no state)
            environ["wsgi.input"] = EMPTY_INPUT
        return environ
