"""`TestClient(raise_server_exceptions=...)`: unhandled server exceptions re-raised in the test, as in Starlette."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from covet import CovetPy, HTTPException, JSONResponse, Request, Response, ResponseValidationError
from covet.testing import AsyncTestClient, TestClient


class Boom(Exception):
    pass


class Handled(Exception):
    pass


def _app() -> CovetPy:
    app = CovetPy()

    @app.get("/boom")
    async def boom() -> None:
        raise Boom("async")

    @app.get("/boom-later")
    async def boom_later() -> None:
        await asyncio.sleep(0.001)
        raise Boom("after a suspension")

    @app.get("/boom-sync")
    def boom_sync() -> None:
        raise Boom("in the thread pool")

    @app.get("/http")
    async def http() -> None:
        raise HTTPException(500, "deliberate")

    @app.get("/handled")
    async def handled() -> None:
        raise Handled()

    @app.exception_handler(Handled)
    async def on_handled(request: Request, exc: Handled) -> Response:
        return JSONResponse({"handled": True}, status_code=409)

    @app.get("/bad-result")
    async def bad_result() -> list[int]:
        return ["not a number"]  # type: ignore[list-item]

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    return app


class TestRaise:
    @pytest.mark.parametrize(("path", "message"), [("/boom", "async"), ("/boom-later", "after a suspension"),
                                                   ("/boom-sync", "in the thread pool")])
    def test_unhandled_exceptions_are_raised_in_the_test(self, make_client, path: str, message: str) -> None:  # type: ignore[no-untyped-def]
        client = make_client(_app())
        with pytest.raises(Boom, match=message):
            client.get(path)
        assert client.get("/ok").json() == "ok"  # the connection and the server go on

    def test_handled_exceptions_are_responses(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(_app())
        assert client.get("/http").json() == {"detail": "deliberate"}
        assert (client.get("/handled").status_code, client.get("/handled").json()) == (409, {"handled": True})

    def test_a_result_not_matching_its_type_is_raised(self, make_client) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(ResponseValidationError):
            make_client(_app()).get("/bad-result")

    def test_exceptions_through_middleware(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = _app()

        @app.middleware("http")
        async def passthrough(request: Request, call_next):  # type: ignore[no-untyped-def]
            return await call_next(request)

        @app.middleware("http")
        async def broken(request: Request, call_next):  # type: ignore[no-untyped-def]
            if request.url.path == "/ok":
                raise Boom("in middleware")
            return await call_next(request)

        client = make_client(app)
        with pytest.raises(Boom, match="in middleware"):
            client.get("/ok")
        with pytest.raises(Boom, match="async"):
            client.get("/boom")

    def test_off_gives_the_500_response(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(_app(), raise_server_exceptions=False)
        for path in ("/boom", "/boom-sync", "/bad-result"):
            r = client.get(path)
            assert (r.status_code, r.headers["content-type"], r.text) == (500, "text/plain; charset=utf-8", "Internal Server Error")

    @pytest.mark.parametrize("key", [Exception, 500])
    def test_the_app_s_500_handler_still_answers(self, make_client, key: Any) -> None:  # type: ignore[no-untyped-def]
        app = _app()
        seen: list[str] = []

        @app.exception_handler(key)
        def on_error(request: Request, exc: Exception) -> Response:
            seen.append(type(exc).__name__)
            return JSONResponse({"custom": str(exc)}, status_code=503)

        with pytest.raises(Boom):
            make_client(app).get("/boom")
        assert seen == ["Boom"]
        r = make_client(app, raise_server_exceptions=False).get("/boom")
        assert (r.status_code, r.json()) == (503, {"custom": "async"})
        # HTTPException(500) is still answered by the default HTTP handler, not by the 500 handler.
        assert make_client(app).get("/http").json() == {"detail": "deliberate"}
        assert app.exception_handlers == {Handled: app.exception_handlers[Handled], key: on_error}

    def test_the_app_s_handlers_are_left_as_they_were(self, native: Any) -> None:
        app = _app()
        before = dict(app.exception_handlers)
        with TestClient(app) as client:
            assert app.exception_handlers == before
            with pytest.raises(Boom):
                client.get("/boom")

    def test_concurrent_requests_each_get_their_own_outcome(self, native: Any) -> None:
        async def main() -> None:
            async with AsyncTestClient(_app()) as client:
                results = await asyncio.gather(client.get("/boom-later"), client.get("/ok"), client.get("/boom"),
                                               return_exceptions=True)
                assert isinstance(results[0], Boom) and str(results[0]) == "after a suspension"
                assert results[1].json() == "ok"  # type: ignore[union-attr]
                assert isinstance(results[2], Boom) and str(results[2]) == "async"

        asyncio.run(main())
