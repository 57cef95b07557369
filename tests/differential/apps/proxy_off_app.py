"""Sample app: proxy_app.py's routes; proxy headers off: the headers are ignored."""

from __future__ import annotations

from proxy_app import app

SERVER_OPTIONS = ["--no-proxy-headers"]  # both servers' (conftest.py)

__all__ = ["app"]
