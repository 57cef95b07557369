"""Middleware classes (issue 14): ``app.add_middleware`` / ``CovetPy(middleware=[Middleware(...)])`` with the
native CORS, GZip (and Brotli/zstd), TrustedHost and HTTPSRedirect middleware, and BaseHTTPMiddleware — through
real sockets (TestClient serves the app on 127.0.0.1). The native ones need the compiled engine."""

from __future__ import annotations

import gzip
import http.client
from typing import Any

import pytest

from covet import CovetPy, PlainTextResponse, Request, Response, StreamingResponse
from covet.middleware import Middleware
from covet.middleware.base import BaseHTTPMiddleware
from covet.middleware.cors import CORSMiddleware
from covet.middleware.gzip import GZipMiddleware
from covet.middleware.httpsredirect import HTTPSRedirectMiddleware
from covet.middleware.trustedhost import TrustedHostMiddleware

LARGE = "covet " * 400


def raw_get(port: int, target: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": "testserver", **headers}.items():
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _app() -> CovetPy:
    app = CovetPy()

    @app.get("/large")
    async def large() -> PlainTextResponse:
        return PlainTextResponse(LARGE)

    @app.get("/small")
    async def small() -> dict[str, bool]:
        return {"small": True}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(4):
                yield f"part {i};"
        return StreamingResponse(chunks(), media_type="text/plain")

    app.add_constant_route("/constant", {"constant": "x" * 800})
    return app


class TestCORS:
    def test_preflight_answered_natively_and_simple_headers(self, serve: Any) -> None:
        app = _app()
        app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"], allow_methods=["*"],
                           allow_credentials=True, expose_headers=["X-Total"])
        client = serve(app)
        r = client.options("/large", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"})
        assert (r.status_code, r.text) == (200, "OK")
        assert r.headers["access-control-allow-origin"] == "https://a.example"
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "PUT" in r.headers["access-control-allow-methods"]
        bad = client.options("/large", headers={"Origin": "https://evil", "Access-Control-Request-Method": "GET"})
        assert (bad.status_code, bad.text) == (400, "Disallowed CORS origin")
        simple = client.get("/small", headers={"Origin": "https://a.example"})
        assert simple.headers["access-control-allow-origin"] == "https://a.example"
        assert simple.headers["access-control-expose-headers"] == "X-Total"
        assert simple.headers["vary"] == "Origin"
        # Native 404s and constant routes get them too.
        missing = client.get("/nowhere", headers={"Origin": "https://a.example"})
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == "https://a.example"
        constant = client.get("/constant", headers={"Origin": "https://a.example"})
        assert constant.headers["access-control-allow-origin"] == "https://a.example"

    def test_bad_regex_is_refused_when_added(self) -> None:
        with pytest.raises(ValueError, match="allow_origin_regex"):
            CovetPy().add_middleware(CORSMiddleware, allow_origin_regex="(")


class TestCompression:
    def test_gzip_whole_streamed_and_constant_responses(self, serve: Any) -> None:
        app = _app()
        app.add_middleware(GZipMiddleware, minimum_size=500)
        client = serve(app)
        port = client.port
        status, headers, body = raw_get(port, "/large", {"Accept-Encoding": "gzip"})
        assert (status, headers["content-encoding"], headers["vary"]) == (200, "gzip", "Accept-Encoding")
        assert gzip.decompress(body).decode() == LARGE
        assert int(headers["content-length"]) == len(body) < len(LARGE)
        _, headers, body = raw_get(port, "/small", {"Accept-Encoding": "gzip"})
        assert "content-encoding" not in headers and body == b'{"small":true}'
        _, headers, body = raw_get(port, "/stream", {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip" and headers["transfer-encoding"] == "chunked"
        assert gzip.decompress(body) == b"part 0;part 1;part 2;part 3;"
        _, headers, body = raw_get(port, "/constant", {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip"
        assert gzip.decompress(body) == b'{"constant":"' + b"x" * 800 + b'"}'
        _, headers, body = raw_get(port, "/large", {})
        assert "content-encoding" not in headers and body.decode() == LARGE

    def test_brotli_and_zstd_negotiated(self, serve: Any) -> None:
        app = _app()
        app.add_middleware(GZipMiddleware, brotli=True, zstd=True)
        port = serve(app).port
        for accept, expected in (("gzip, br", "br"), ("zstd, gzip", "zstd"), ("br;q=0.5, gzip", "gzip"),
                                 ("identity", None)):
            _, headers, body = raw_get(port, "/large", {"Accept-Encoding": accept})
            assert headers.get("content-encoding") == expected, accept
            assert (len(body) < len(LARGE)) == (expected is not None)
        _, headers, body = raw_get(port, "/large", {"Accept-Encoding": "br;q=0.5, gzip"})
        assert gzip.decompress(body).decode() == LARGE

    def test_options_are_checked(self) -> None:
        with pytest.raises(ValueError, match="compresslevel"):
            CovetPy().add_middleware(GZipMiddleware, compresslevel=12)
        with pytest.raises(ValueError, match="brotli"):
            CovetPy().add_middleware(GZipMiddleware, brotli=20)


class TestHosts:
    def test_trusted_host(self, serve: Any) -> None:
        app = _app()
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["testserver", "*.example.com", "www.other.org"])
        port = serve(app).port
        assert raw_get(port, "/small", {})[0] == 200
        assert raw_get(port, "/small", {"Host": "api.example.com"})[0] == 200
        status, _, body = raw_get(port, "/small", {"Host": "evil.com"})
        assert (status, body) == (400, b"Invalid host header")
        status, headers, _ = raw_get(port, "/small?x=1", {"Host": "other.org"})
        assert (status, headers["location"]) == (307, "http://www.other.org/small?x=1")

    def test_wildcard_rule(self) -> None:
        with pytest.raises(ValueError, match=r"\*\.example\.com"):
            CovetPy().add_middleware(TrustedHostMiddleware, allowed_hosts=["api.*.com"])

    def test_https_redirect(self, serve: Any) -> None:
        app = _app()
        app.add_middleware(HTTPSRedirectMiddleware)
        port = serve(app).port
        status, headers, _ = raw_get(port, "/small?q=2", {"Host": "example.com:80"}, method="POST")
        assert (status, headers["location"]) == (307, "https://example.com/small?q=2")


class Stamp(BaseHTTPMiddleware):
    def __init__(self, app: Any, value: str) -> None:
        super().__init__(app)
        self.value = value

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["X-Stamp"] = self.value
        return response


class TestPythonMiddleware:
    def test_base_http_middleware_and_order(self, make_client: Any) -> None:
        order: list[str] = []

        async def first(request: Request, call_next: Any) -> Response:
            order.append("first")
            return await call_next(request)

        app = CovetPy(middleware=[Middleware(Stamp, value="outer"), Middleware(Stamp, value="inner")])
        app.add_middleware(BaseHTTPMiddleware, dispatch=first)

        @app.get("/x")
        async def x() -> dict[str, int]:
            return {"x": 1}

        r = make_client(app).get("/x")
        assert r.json() == {"x": 1}
        assert r.headers["x-stamp"] == "outer"  # the outer one set it last
        assert order == ["first"]

    def test_what_is_not_a_middleware_class_is_refused(self) -> None:
        # Pure ASGI middleware classes are accepted (tests/python/test_asgi.py); a non-callable is refused.
        with pytest.raises(TypeError, match="pure ASGI middleware"):
            CovetPy().add_middleware(42)


def test_native_order_last_added_outermost() -> None:
    app = CovetPy(middleware=[Middleware(CORSMiddleware, allow_origins=["*"]), Middleware(GZipMiddleware)])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com"])
    app.add_middleware(HTTPSRedirectMiddleware)
    assert [kind for kind, _ in app.native_middleware] == ["https_redirect", "trusted_host", "cors", "compression"]


def test_middleware_repr_and_iteration() -> None:
    m = Middleware(GZipMiddleware, minimum_size=10)
    assert repr(m) == "Middleware(GZipMiddleware, minimum_size=10)"
    cls, args, kwargs = m
    assert (cls, args, kwargs) == (GZipMiddleware, (), {"minimum_size": 10})
