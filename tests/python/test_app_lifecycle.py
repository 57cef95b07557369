"""Lifespan, startup/shutdown handlers, app.state, the Request object, and the test clients."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from typing import Any, AsyncIterator

import pytest

from covet import CovetPy, Request
from covet.testing import AsyncTestClient, TestClient


class TestLifespan:
    def test_startup_and_shutdown_order(self, native) -> None:  # type: ignore[no-untyped-def]
        events: list[str] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: CovetPy) -> AsyncIterator[dict[str, Any]]:
            events.append("lifespan enter")
            app.state.db = "connected"
            yield {"greeting": "hello"}
            events.append("lifespan exit")

        async def first() -> None:
            events.append("startup 1")

        app = CovetPy(lifespan=lifespan, on_startup=[first], on_shutdown=[lambda: events.append("shutdown 1")])

        with pytest.warns(DeprecationWarning, match="on_event is deprecated, use lifespan"):  # as FastAPI

            @app.on_event("startup")
            def second() -> None:
                events.append("startup 2")

        with pytest.warns(DeprecationWarning, match="on_event is deprecated"):

            @app.on_event("shutdown")
            async def last() -> None:
                events.append("shutdown 2")

        @app.get("/state")
        async def state(request: Request) -> dict:
            return {"db": request.app.state.db, "greeting": request.state.greeting}

        with TestClient(app) as client:
            assert events == ["startup 1", "startup 2", "lifespan enter"]
            assert client.get("/state").json() == {"db": "connected", "greeting": "hello"}
        assert events == ["startup 1", "startup 2", "lifespan enter", "lifespan exit", "shutdown 1", "shutdown 2"]

    def test_request_state_is_per_request(self, make_client) -> None:  # type: ignore[no-untyped-def]
        @contextlib.asynccontextmanager
        async def lifespan(app: CovetPy) -> AsyncIterator[dict[str, Any]]:
            yield {"counter": 0}

        app = CovetPy(lifespan=lifespan)

        @app.get("/bump")
        async def bump(request: Request) -> int:
            request.state.counter += 1
            return request.state.counter

        client = make_client(app)
        assert [client.get("/bump").json() for _ in range(2)] == [1, 1]

    def test_without_with_no_lifespan_runs(self, native) -> None:  # type: ignore[no-untyped-def]
        events: list[str] = []
        app = CovetPy(on_startup=[lambda: events.append("startup")])

        @app.get("/")
        async def root() -> str:
            return "root"

        client = TestClient(app)
        try:
            assert client.get("/").json() == "root"
        finally:
            client.close()
        assert events == []

    def test_startup_failure_is_raised_by_the_client(self, native) -> None:  # type: ignore[no-untyped-def]
        def broken() -> None:
            raise RuntimeError("no database")

        app = CovetPy(on_startup=[broken])
        with pytest.raises(RuntimeError, match="no database"):
            with TestClient(app):
                pass


class TestRequestObject:
    def test_attributes(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.post("/inspect/{name}")
        async def inspect_(name: str, request: Request) -> dict:
            return {
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.raw_path,
                "query": request.url.query,
                "url": str(request.url),
                "host": request.url.hostname,
                "header": request.headers["x-custom"],
                "header_ci": request.headers.get("X-CUSTOM"),
                "multi": request.query_params.getlist("m"),
                "last": request.query_params["m"],
                "cookies": request.cookies,
                "path_params": request.path_params,
                "client_host": request.client.host,
                "client_port_is_int": isinstance(request.client.port, int),
                "json": await request.json(),
                "body_len": len(await request.body()),
                "version": request.http_version,
            }

        client = make_client(app)
        r = client.post("/inspect/a%20b?m=1&m=2", json={"k": "v"}, headers={"X-Custom": "yes"},
                        cookies={"sid": "s1", "pref": "dark"})
        assert r.json() == {
            "method": "POST",
            "path": "/inspect/a b",
            "raw_path": "/inspect/a%20b",
            "query": "m=1&m=2",
            "url": "http://testserver/inspect/a%20b?m=1&m=2",
            "host": "testserver",
            "header": "yes",
            "header_ci": "yes",
            "multi": ["1", "2"],
            "last": "2",
            "cookies": {"sid": "s1", "pref": "dark"},
            "path_params": {"name": "a b"},
            "client_host": "testclient",  # as Starlette's TestClient
            "client_port_is_int": True,
            "json": {"k": "v"},
            "body_len": 10,
            "version": "1.1",
        }

    def test_form(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.post("/form")
        async def form(request: Request) -> dict:
            data = await request.form()
            return {"name": data["name"], "tags": data.getlist("tag")}

        client = make_client(app)
        r = client.post("/form", data={"name": "Zoë", "tag": ["a", "b"]})
        assert r.json() == {"name": "Zoë", "tags": ["a", "b"]}

    def test_bad_json_raises_in_the_handler(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.post("/j")
        async def j(request: Request) -> str:
            try:
                await request.json()
            except ValueError as exc:
                return type(exc).__name__
            return "parsed"

        assert make_client(app).post("/j", content=b"{nope").json() == "JSONDecodeError"


class TestClients:
    def test_sync_client_options(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        async def echo(request: Request) -> dict:
            return {"method": request.method, "query": request.url.query,
                    "body": (await request.body()).decode(), "ct": request.headers.get("content-type")}

        client = make_client(app)
        assert client.get("/echo", params={"a": 1, "b": [True, "x"]}).json()["query"] == "a=1&b=true&b=x"
        assert client.get("/echo?z=1", params={"a": "2"}).json()["query"] == "z=1&a=2"
        r = client.post("/echo", json={"a": 1})
        assert r.json()["body"] == '{"a": 1}' and r.json()["ct"] == "application/json"
        assert client.put("/echo", content="raw").json()["body"] == "raw"
        assert client.patch("/echo", data="x=1").json()["body"] == "x=1"
        assert client.delete("/echo").json()["method"] == "DELETE"
        assert client.options("/echo").json()["method"] == "OPTIONS"
        r = client.get("/echo")
        assert (r.status_code, r.is_success, r.http_version) == (200, True, "1.1")
        assert "application/json" in r.headers["content-type"] and r.headers["content-length"] == str(len(r.content))

    @pytest.mark.filterwarnings("ignore:on_event is deprecated:DeprecationWarning")
    def test_async_client(self, native) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()
        events: list[str] = []

        @app.on_event("shutdown")  # deprecated (a DeprecationWarning, ignored above) but working
        def down() -> None:
            events.append("shutdown")

        @app.get("/sleep/{ms}")
        async def sleep(ms: int) -> int:
            await asyncio.sleep(ms / 1000)
            return ms

        async def main() -> None:
            async with AsyncTestClient(app) as client:
                results = await asyncio.gather(*(client.get(f"/sleep/{ms}") for ms in (30, 10, 20)))
                assert [r.json() for r in results] == [30, 10, 20]
                r = await client.post("/sleep/1")
                assert r.status_code == 405
            assert events == ["shutdown"]

        asyncio.run(main())


if importlib.util.find_spec("pytest_asyncio") is not None:  # the optional plugin, when installed

    class TestWithPytestAsyncio:
        @pytest.mark.asyncio
        async def test_async_client_under_pytest_asyncio(self, native) -> None:  # type: ignore[no-untyped-def]
            app = CovetPy()

            @app.get("/")
            async def root() -> str:
                return "hi"

            async with AsyncTestClient(app) as client:
                assert (await client.get("/")).json() == "hi"
