"""Hosting WSGI applications (PEP 3333: Flask, Django, any ``app(environ, start_response)``) on the engine.

``covet run module:app`` recognises a WSGI callable and serves it through `WsgiHost` (``--wsgi-threads N``: the
size of the thread pool the app runs in); ``WsgiHost(app, threads=N)`` is the same thing for code that builds
the server itself. See `covet.wsgi.host` for how requests reach the pool and responses the engine.
"""

from __future__ import annotations

from .host import WsgiApp, WsgiDispatcher, WsgiHost
from .streams import BodyInput, ClientDisconnected, FileWrapper, RequestBodyError

__all__ = ["BodyInput", "ClientDisconnected", "FileWrapper", "RequestBodyError", "WsgiApp", "WsgiDispatcher",
           "WsgiHost"]
