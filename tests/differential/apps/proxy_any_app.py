"""Sample app: proxy_app.py's routes; every peer and every X-Forwarded-For entry trusted ("*"): the client is the
left-most entry."""

from __future__ import annotations

from proxy_app import app

SERVER_OPTIONS = ["--forwarded-allow-ips", "*"]  # both servers' (conftest.py)

__all__ = ["app"]
