"""Middleware order (issue 14): every middleware nests by the order added, the last added outermost, as in FastAPI.
CORS, GZip, TrustedHost and HTTPSRedirect added after every Python middleware run natively in the engine; one added
before a Python middleware sits inside it and runs there in Python, with Starlette's behaviour — through real
sockets (TestClient serves the app on 127.0.0.1). The inner (Python) cases run on both engines; the native path's
on the compiled one."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from test_middleware_classes import raw_get as raw

from covet import BackgroundTasks, CovetPy, PlainTextResponse, Request, Response, StreamingResponse
from covet.middleware.cors import CORSMiddleware
from covet.middleware.gzip import GZipMiddleware
from covet.middleware.httpsredirect import HTTPSRedirectMiddleware
from covet.middleware.python_cors import PythonCORS
from covet.middleware.python_gzip import PythonGZip
from covet.middleware.python_httpsredirect import PythonHTTPSRedirect
from covet.middleware.python_trustedhost import PythonTrustedHost, host_of
from covet.middleware.trustedhost import TrustedHostMiddleware

LARGE = "covet " * 400
_A = "https://a.example"


def _app() -> CovetPy:
    app = CovetPy()

    @app.get("/small")
    async def small() -> dict[str, bool]:
        return {"small": True}

    @app.get("/large")
    async def large() -> PlainTextResponse:
        return PlainTextResponse(LARGE, headers={"X-Total": "3"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(4):
                yield f"part {i};"
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/sync-stream")
    def sync_stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a" * 300, "b" * 300]), media_type="text/plain")

    @app.get("/empty-stream")
    async def empty_stream() -> StreamingResponse:
        return StreamingResponse(iter([]), media_type="text/plain")

    @app.get("/image")
    async def image() -> Response:
        return Response(b"\x89PNG" + b"\0" * 1000, media_type="image/png")

    @app.get("/encoded")
    async def encoded() -> Response:
        return Response(LARGE.encode(), media_type="text/plain", headers={"Content-Encoding": "identity"})

    return app


def _seen(app: CovetPy) -> list[tuple[str, str]]:
    """An outer Python middleware recording (path, what it saw of the response), stamping it on the response."""
    seen: list[tuple[str, str]] = []

    @app.middleware("http")
    async def observer(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        encoding = response.headers.get("content-encoding", "-")
        seen.append((request.url.path, f"{response.status_code} {encoding}"))
        response.headers["X-Seen-Encoding"] = encoding
        return response

    return seen


class TestStackSplit:
    def test_native_outside_every_python_middleware_stays_native(self) -> None:
        app = CovetPy()

        @app.middleware("http")
        async def mw(request: Request, call_next: Any) -> Response:
            return await call_next(request)

        app.add_middleware(GZipMiddleware)
        app.add_middleware(CORSMiddleware, allow_origins=["*"])
        assert [kind for kind, _ in app.native_middleware] == ["cors", "compression"]
        assert app.user_middleware == [mw]

    def test_native_inside_a_python_middleware_runs_in_python_at_its_position(self) -> None:
        async def one(request: Request, call_next: Any) -> Response:
            return await call_next(request)

        async def two(request: Request, call_next: Any) -> Response:
            return await call_next(request)

        app = CovetPy()
        app.add_middleware(CORSMiddleware, allow_origins=["*"])     # inside one
        app.add_http_middleware(one)
        app.add_middleware(GZipMiddleware)                           # inside two
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["x"])  # inside two, outside GZip
        app.add_http_middleware(two)
        app.add_middleware(HTTPSRedirectMiddleware)                  # outermost: native
        kinds = [type(m) for m in app.user_middleware]
        assert kinds[0] is PythonCORS and app.user_middleware[1] is one
        assert kinds[2:4] == [PythonGZip, PythonTrustedHost] and app.user_middleware[4] is two
        assert [kind for kind, _ in app.native_middleware] == ["https_redirect"]

    def test_native_inside_a_pure_asgi_middleware_runs_in_python_inside_it(self) -> None:
        class Deny:  # pure ASGI middleware answering 401 by itself
            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})

        app = CovetPy()
        app.add_middleware(CORSMiddleware, allow_origins=["*"])  # inside Deny: its 401 carries no CORS headers
        app.add_middleware(Deny)
        app.add_middleware(GZipMiddleware)                       # outside Deny: native
        assert [type(m) for m in app.user_middleware] == [PythonCORS]
        assert app._asgi_middleware[0][0] == 1  # Deny wraps the Python CORS layer
        assert [kind for kind, _ in app.native_middleware] == ["compression"]

    def test_constructor_list_is_innermost(self) -> None:
        from covet.middleware import Middleware

        app = CovetPy(middleware=[Middleware(GZipMiddleware)])

        @app.middleware("http")
        async def mw(request: Request, call_next: Any) -> Response:
            return await call_next(request)

        assert app.native_middleware == []
        assert isinstance(app.user_middleware[0], PythonGZip) and app.user_middleware[1] is mw


class TestCORSInside:
    def _app(self) -> CovetPy:
        app = _app()
        app.add_middleware(CORSMiddleware, allow_origins=[_A], allow_origin_regex=r"https://.*\.b\.example",
                           allow_methods=["GET", "POST"], allow_headers=["X-Token"], allow_credentials=True,
                           expose_headers=["X-Total"], max_age=300)

        @app.middleware("http")
        async def auth(request: Request, call_next: Any) -> Response:
            if request.method != "OPTIONS" and request.headers.get("authorization") != "Bearer ok":
                return PlainTextResponse("no", status_code=401)
            return await call_next(request)

        return app

    def test_early_401_has_no_cors_headers(self, make_client: Any) -> None:
        client = make_client(self._app())
        r = client.get("/small", headers={"Origin": _A})
        assert r.status_code == 401
        assert not [k for k in r.headers if k.lower().startswith("access-control-")] and "vary" not in r.headers

    def test_simple_request_decorated_in_python(self, make_client: Any) -> None:
        client = make_client(self._app())
        ok = {"Authorization": "Bearer ok"}
        r = client.get("/large", headers={**ok, "Origin": _A})
        assert r.headers["access-control-allow-origin"] == _A
        assert r.headers["access-control-allow-credentials"] == "true"
        assert r.headers["access-control-expose-headers"] == "X-Total"
        assert r.headers["vary"] == "Origin"
        r = client.get("/small", headers={**ok, "Origin": "https://x.b.example"})
        assert r.headers["access-control-allow-origin"] == "https://x.b.example"
        r = client.get("/small", headers={**ok, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        assert r.headers["access-control-allow-credentials"] == "true" and r.headers["vary"] == "Origin"
        r = client.get("/small", headers=ok)
        assert "access-control-allow-credentials" not in r.headers and r.headers["vary"] == "Origin"

    def test_preflight_answered_in_python(self, make_client: Any) -> None:
        client = make_client(self._app())
        r = client.options("/small", headers={"Origin": _A, "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "x-token, Content-Type"})
        assert (r.status_code, r.text) == (200, "OK")
        assert r.headers["access-control-allow-origin"] == _A
        assert r.headers["access-control-allow-methods"] == "GET, POST"
        assert r.headers["access-control-allow-headers"] == \
            "Accept, Accept-Language, Content-Language, Content-Type, X-Token"
        assert r.headers["access-control-max-age"] == "300"
        assert r.headers["access-control-allow-credentials"] == "true"
        assert r.headers["vary"].startswith("Origin, Access-Control-Request-Method")
        bad = client.options("/small", headers={"Origin": "https://evil", "Access-Control-Request-Method": "PUT",
                                                 "Access-Control-Request-Headers": "X-Secret",
                                                 "Access-Control-Request-Private-Network": "true"})
        assert (bad.status_code, bad.text) == (400, "Disallowed CORS origin, method, headers, private-network")
        assert "access-control-allow-origin" not in bad.headers

    def test_wildcards(self, make_client: Any) -> None:
        app = _app()
        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])

        @app.middleware("http")
        async def mw(request: Request, call_next: Any) -> Response:
            return await call_next(request)

        client = make_client(app)
        r = client.options("/small", headers={"Origin": _A, "Access-Control-Request-Method": "QUERY",
                                               "Access-Control-Request-Headers": "X-Anything"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        assert r.headers["access-control-allow-headers"] == "X-Anything"
        assert "QUERY" in r.headers["access-control-allow-methods"]
        r = client.get("/small", headers={"Origin": _A})
        assert r.headers["access-control-allow-origin"] == "*" and r.headers["vary"] == "Origin"


class TestGZipInside:
    def _client(self, make_client: Any) -> tuple[Any, list[tuple[str, str]]]:
        app = _app()
        app.add_middleware(GZipMiddleware, minimum_size=500, compresslevel=6)
        seen = _seen(app)
        return make_client(app), seen

    def test_outer_middleware_sees_compressed_body(self, make_client: Any) -> None:
        client, seen = self._client(make_client)
        status, headers, body = raw(client.port, "/large", {"Accept-Encoding": "gzip"})
        assert (status, headers["content-encoding"], headers["x-seen-encoding"]) == (200, "gzip", "gzip")
        assert headers["vary"] == "Accept-Encoding" and headers["x-total"] == "3"
        assert gzip.decompress(body).decode() == LARGE
        assert int(headers["content-length"]) == len(body)
        assert seen == [("/large", "200 gzip")]

    def test_small_excluded_encoded_and_not_accepted(self, make_client: Any) -> None:
        client, _ = self._client(make_client)
        _, headers, body = raw(client.port, "/small", {"Accept-Encoding": "gzip"})
        assert "content-encoding" not in headers and "vary" not in headers and body == b'{"small":true}'
        _, headers, _ = raw(client.port, "/image", {"Accept-Encoding": "gzip"})
        assert "content-encoding" not in headers and "vary" not in headers
        _, headers, body = raw(client.port, "/encoded", {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "identity" and body.decode() == LARGE
        _, headers, body = raw(client.port, "/large", {"Accept-Encoding": "br"})
        assert "content-encoding" not in headers and headers["vary"] == "Accept-Encoding"
        assert body.decode() == LARGE

    def test_streams_compressed_chunk_by_chunk(self, make_client: Any) -> None:
        client, seen = self._client(make_client)
        _, headers, body = raw(client.port, "/stream", {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
        assert gzip.decompress(body) == b"part 0;part 1;part 2;part 3;"  # small, yet streamed: compressed
        _, headers, body = raw(client.port, "/sync-stream", {"Accept-Encoding": "gzip"})
        assert gzip.decompress(body) == b"a" * 300 + b"b" * 300
        _, headers, body = raw(client.port, "/stream", {})
        assert "content-encoding" not in headers and headers["vary"] == "Accept-Encoding"
        assert body == b"part 0;part 1;part 2;part 3;"
        _, headers, body = raw(client.port, "/empty-stream", {"Accept-Encoding": "gzip"})
        assert "content-encoding" not in headers and "vary" not in headers and body == b""
        assert ("/stream", "200 gzip") in seen


def test_brotli_asked_of_a_python_gzip_warns() -> None:
    app = CovetPy()
    app.add_middleware(GZipMiddleware, brotli=True)
    with pytest.warns(RuntimeWarning, match="after every @app.middleware"):
        app.add_middleware(CORSMiddleware, allow_origins=["*"])  # native: no warning yet

        @app.middleware("http")
        async def mw(request: Request, call_next: Any) -> Response:
            return await call_next(request)


def test_python_gzip_keeps_status_headers_and_background_of_a_stream(make_client: Any) -> None:
    done: list[str] = []
    app = CovetPy()
    app.add_middleware(GZipMiddleware)
    _seen(app)

    @app.get("/file")
    def file(tasks: BackgroundTasks) -> StreamingResponse:
        tasks.add_task(done.append, "after")
        return StreamingResponse(iter(["x" * 700]), status_code=201, headers={"X-Kept": "1"},
                                 media_type="text/csv")

    client = make_client(app)
    r = client.get("/file", headers={"Accept-Encoding": "gzip"})
    assert (r.status_code, r.headers["content-encoding"], r.headers["x-kept"]) == (201, "gzip", "1")
    assert r.headers["content-type"].startswith("text/csv") and r.text == "x" * 700
    assert done == ["after"]


class TestGZipOutermostStaysNative:
    def test_python_middleware_sees_the_uncompressed_body(self, serve: Any) -> None:
        app = _app()
        seen = _seen(app)
        app.add_middleware(GZipMiddleware, minimum_size=500)
        assert [kind for kind, _ in app.native_middleware] == ["compression"]
        client = serve(app)
        _, headers, body = raw(client.port, "/large", {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip" and headers["x-seen-encoding"] == "-"
        assert gzip.decompress(body).decode() == LARGE
        assert seen == [("/large", "200 -")]


class TestGZipOutsideAnHTTPMiddleware:
    """In FastAPI a BaseHTTPMiddleware passes responses on as a stream, and GZip compresses a streamed body whatever
    its size: with an HTTP middleware inside GZip, minimum_size no longer holds back small bodies (empty ones stay)."""

    def test_native(self, serve: Any) -> None:
        app = _app()
        _seen(app)
        app.add_middleware(GZipMiddleware, minimum_size=500)
        assert dict(app.native_middleware)["compression"]["minimum_size"] == 1
        port = serve(app).port
        _, headers, body = raw(port, "/small", {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == b'{"small":true}'

    def test_python(self, make_client: Any) -> None:
        app = _app()
        _seen(app)                                     # inside GZip
        app.add_middleware(GZipMiddleware, minimum_size=500)
        seen = _seen(app)                              # outside GZip: GZip runs in Python
        assert app.native_middleware == [] and isinstance(app.user_middleware[1], PythonGZip)
        port = make_client(app).port
        _, headers, body = raw(port, "/small", {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == b'{"small":true}'
        assert seen == [("/small", "200 gzip")]


class TestTrustedHostInside:
    def _client(self, make_client: Any) -> tuple[Any, list[tuple[str, str]]]:
        app = _app()
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["testserver", "*.example.com", "www.other.org"])
        seen = _seen(app)
        return make_client(app), seen

    def test_outer_middleware_runs_for_refused_hosts(self, make_client: Any) -> None:
        client, seen = self._client(make_client)
        assert raw(client.port, "/small", {})[0] == 200
        assert raw(client.port, "/small", {"Host": "API.example.com:8080"})[0] == 200
        status, headers, body = raw(client.port, "/small", {"Host": "evil.com"})
        assert (status, body, headers["x-seen-encoding"]) == (400, b"Invalid host header", "-")
        status, headers, _ = raw(client.port, "/small?x=1", {"Host": "other.org"})
        assert (status, headers["location"]) == (307, "http://www.other.org/small?x=1")
        assert raw(client.port, "/small", {"Host": "bad host"})[0] == 400
        assert [what for _, what in seen] == ["200 -", "200 -", "400 -", "307 -", "400 -"]

    def test_host_parsing(self) -> None:
        assert host_of("Example.com:80") == "Example.com"
        assert host_of("[::1]:8000") == "[::1]"
        assert host_of("[::zz]") is None and host_of("a b") is None and host_of(None) is None


class TestHTTPSRedirectInside:
    def test_outer_middleware_sees_the_redirect(self, make_client: Any) -> None:
        app = _app()
        app.add_middleware(HTTPSRedirectMiddleware)
        seen = _seen(app)
        client = make_client(app)
        status, headers, _ = raw(client.port, "/small?q=2", {"Host": "example.com:80"}, method="POST")
        assert (status, headers["location"]) == (307, "https://example.com/small?q=2")
        status, headers, _ = raw(client.port, "/small", {"Host": "example.com:8443"})
        assert (status, headers["location"]) == (307, "https://example.com:8443/small")
        assert seen == [("/small", "307 -"), ("/small", "307 -")]

    def test_websocket_scheme(self) -> None:
        from covet.middleware.python_httpsredirect import secure_url

        assert secure_url("ws", "example.com:443", "/ws") == "wss://example.com/ws"
        assert isinstance(HTTPSRedirectMiddleware(None).python_middleware(), PythonHTTPSRedirect)
