"""HTTPException, exception handlers, the 500 path, and ``@app.middleware("http")``."""

from __future__ import annotations

import asyncio
import logging

import pytest

from covet import CovetPy, HTTPException, JSONResponse, PlainTextResponse, Request, RequestValidationError, Response


class TeapotError(Exception):
    pass


class SpecificTeapotError(TeapotError):
    pass


def _app() -> CovetPy:
    app = CovetPy()

    @app.get("/http/{code}")
    async def http(code: int) -> None:
        if code == 401:
            raise HTTPException(401, "no entry", headers={"WWW-Authenticate": "Bearer"})
        if code == 204:
            raise HTTPException(204)
        raise HTTPException(code)

    @app.get("/detail")
    def detail() -> None:
        raise HTTPException(400, detail={"field": ["bad", 1]})

    @app.get("/teapot")
    async def teapot() -> None:
        raise SpecificTeapotError("short and stout")

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("kaboom")

    @app.get("/boom-later")
    async def boom_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    @app.get("/boom-sync")
    def boom_sync() -> None:
        raise RuntimeError("sync kaboom")

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    @app.exception_handler(TeapotError)
    async def teapot_handler(request: Request, exc: TeapotError) -> Response:
        return JSONResponse({"tea": str(exc), "path": request.url.path}, status_code=418)

    return app


@pytest.fixture
def client(make_client):  # type: ignore[no-untyped-def]
    return make_client(_app(), raise_server_exceptions=False)  # these tests look at the 500 responses


class TestHTTPException:
    def test_detail_status_and_headers(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/http/401")
        assert (r.status_code, r.json(), r.headers["www-authenticate"]) == (401, {"detail": "no entry"}, "Bearer")

    def test_default_detail_is_the_status_phrase(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/http/404")
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
        r = client.get("/http/204")
        assert (r.status_code, r.content) == (204, b"")

    def test_structured_detail_from_a_sync_handler(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/detail").json() == {"detail": {"field": ["bad", 1]}}


class TestHandlers:
    def test_registered_handler_matches_subclasses(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/teapot")
        assert (r.status_code, r.json()) == (418, {"tea": "short and stout", "path": "/teapot"})

    def test_overriding_the_builtin_handlers(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = _app()

        @app.exception_handler(RequestValidationError)
        def on_validation(request: Request, exc: RequestValidationError) -> Response:
            return PlainTextResponse(f"{len(exc.errors())} error(s) at {exc.errors()[0]['loc']}", status_code=400)

        @app.exception_handler(404)
        async def on_404(request: Request, exc: HTTPException) -> Response:
            return PlainTextResponse("custom not found", status_code=404)

        client = make_client(app)
        r = client.get("/http/notanumber")
        assert (r.status_code, r.text) == (400, "1 error(s) at ('path', 'code')")
        assert client.get("/http/404").text == "custom not found"
        assert client.get("/http/403").json() == {"detail": "Forbidden"}  # other codes: the default

    def test_custom_500_handler(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = _app()

        @app.exception_handler(Exception)
        async def on_error(request: Request, exc: Exception) -> Response:
            return JSONResponse({"oops": type(exc).__name__}, status_code=500)

        client = make_client(app, raise_server_exceptions=False)
        assert client.get("/boom").json() == {"oops": "ValueError"}


class TestUnhandled:
    @pytest.mark.parametrize(("path", "message"), [("/boom", "kaboom"), ("/boom-later", "later"),
                                                   ("/boom-sync", "sync kaboom")])
    def test_500_with_logged_traceback_and_the_server_keeps_serving(  # type: ignore[no-untyped-def]
        self, client, caplog, path: str, message: str
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="covet"):
            r = client.get(path)
        assert (r.status_code, r.headers["content-type"], r.text) == (500, "text/plain; charset=utf-8", "Internal Server Error")
        records = [rec for rec in caplog.records if rec.exc_info]
        assert records, "the traceback must be logged"
        assert message in str(records[-1].exc_info[1])
        assert path in records[-1].getMessage()
        assert client.get("/ok").json() == "ok"


class TestMiddleware:
    def test_last_registered_runs_first(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()
        trace: list[str] = []

        @app.get("/t")
        async def t() -> dict:
            trace.append("handler")
            return {"ok": True}

        @app.middleware("http")
        async def inner(request: Request, call_next):  # type: ignore[no-untyped-def]
            trace.append("inner before")
            response = await call_next(request)
            trace.append("inner after")
            response.headers["X-Inner"] = "1"
            return response

        @app.middleware("http")
        async def outer(request: Request, call_next):  # type: ignore[no-untyped-def]
            trace.append("outer before")
            await asyncio.sleep(0)  # a middleware may suspend
            response = await call_next(request)
            trace.append("outer after")
            response.headers["X-Outer"] = response.headers["X-Inner"] + "2"
            return response

        client = make_client(app)
        r = client.get("/t")
        assert r.json() == {"ok": True} and r.headers["x-outer"] == "12"
        assert trace == ["outer before", "inner before", "handler", "inner after", "outer after"]

    def test_short_circuit_and_request_state(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/secret")
        async def secret(request: Request) -> dict:
            return {"user": request.state.user}

        @app.middleware("http")
        async def auth(request: Request, call_next):  # type: ignore[no-untyped-def]
            if request.headers.get("authorization") != "Bearer good":
                return JSONResponse({"detail": "go away"}, status_code=401)
            request.state.user = "ann"
            return await call_next(request)

        client = make_client(app)
        assert client.get("/secret").status_code == 401
        assert client.get("/secret", headers={"Authorization": "Bearer good"}).json() == {"user": "ann"}

    def test_middleware_sees_error_responses_and_exceptions(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = _app()
        seen: list[object] = []

        @app.middleware("http")
        async def observe(request: Request, call_next):  # type: ignore[no-untyped-def]
            try:
                response = await call_next(request)
            except Exception as exc:  # unhandled exceptions propagate through middleware, as in Starlette
                seen.append(type(exc).__name__)
                raise
            seen.append(response.status_code)
            return response

        client = make_client(app, raise_server_exceptions=False)
        assert client.get("/http/404").status_code == 404
        assert client.get("/http/x").status_code == 422
        assert client.get("/teapot").status_code == 418
        assert client.get("/boom").status_code == 500
        assert client.get("/ok").status_code == 200
        assert seen == [404, 422, 418, "ValueError", 200]

    def test_middleware_wraps_streaming_responses(self, make_client) -> None:  # type: ignore[no-untyped-def]
        from covet import StreamingResponse

        app = CovetPy()

        @app.get("/s")
        async def s() -> StreamingResponse:
            return StreamingResponse(iter(["a", "b"]))

        @app.middleware("http")
        async def tag(request: Request, call_next):  # type: ignore[no-untyped-def]
            response = await call_next(request)
            response.headers["X-Tag"] = "t"
            return response

        r = make_client(app).get("/s")
        assert (r.text, r.headers["x-tag"]) == ("ab", "t")

    def test_only_async_http_middleware(self) -> None:
        app = CovetPy()
        with pytest.raises(ValueError):
            app.middleware("websocket")
        with pytest.raises(TypeError, match="async"):
            app.add_http_middleware(lambda request, call_next: None)  # type: ignore[arg-type,return-value]
