"""Sample app: proxy_app.py's routes; only 10.0.0.0/8 is trusted, not the test's 127.0.0.1: the headers are ignored."""

from __future__ import annotations

from proxy_app import app

SERVER_OPTIONS = ["--forwarded-allow-ips", "10.0.0.0/8"]  # both servers' (conftest.py)

__all__ = ["app"]
