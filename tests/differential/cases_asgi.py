"""Differential cases of pure ASGI middleware and mounted ASGI apps (issue 14, seeding issue 15): app asgi_mw."""

from __future__ import annotations

from cases import case

CASES = [
    case("asgi_mw/item", "GET", "/items/3?q=x"),
    case("asgi_mw/item-invalid", "GET", "/items/abc"),
    case("asgi_mw/not-found", "GET", "/nowhere"),
    case("asgi_mw/method-not-allowed", "DELETE", "/items/3"),
    case("asgi_mw/rewrite", "GET", "/old/42"),
    case("asgi_mw/forbid", "GET", "/admin/panel"),
    case("asgi_mw/replace-body", "GET", "/replace"),
    case("asgi_mw/body-read-then-handler", "POST", "/echo", json_body={"name": "ann", "tags": ["a", "b"]}),
    case("asgi_mw/body-invalid", "POST", "/echo", body=b"{not json", content_type="application/json"),
    case("asgi_mw/stream", "GET", "/stream"),
    case("asgi_mw/explode", "GET", "/explode"),
    case("asgi_mw/handler-error", "GET", "/handler-error"),
    case("asgi_mw/mount-get", "GET", "/legacy/a/b?x=1"),
    case("asgi_mw/mount-post", "POST", "/legacy/upload", body=b"hello legacy", content_type="text/plain"),
    case("asgi_mw/mount-root", "GET", "/legacy/"),
    case("asgi_mw/mount-redirect", "GET", "/legacy"),
]
