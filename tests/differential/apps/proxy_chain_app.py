"""Sample app: proxy_app.py's routes behind a chain of trusted proxies (127.0.0.1, 10.0.0.0/8, ::1): the client is
the right-most X-Forwarded-For entry that is not one of them."""

from __future__ import annotations

from proxy_app import app

SERVER_OPTIONS = ["--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8, ::1"]  # both servers' (conftest.py)

__all__ = ["app"]
