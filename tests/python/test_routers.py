"""APIRouter: prefixes, tags, dependencies, nested includes, per-router middleware and exception handlers,
url_path_for / url_for, unique ids, webhooks; 404/405 through the app's middleware and handlers. Served through
real sockets (both engines)."""

from __future__ import annotations

from typing import Any

import pytest

from covet import APIRouter, CovetPy, Depends, Header, HTTPException, JSONResponse, Request, WebSocket
from covet.routing import NoMatchFound, Route
from covet.utils import generate_unique_id


def _token(x_token: str | None = Header(default=None)) -> None:
    if x_token != "secret":
        raise HTTPException(401, "X-Token header missing", headers={"WWW-Authenticate": "Bearer"})


def _step(name: str) -> Any:
    def dependency(request: Request) -> None:
        request.state.steps = [*getattr(request.state, "steps", []), name]

    return dependency


def _nested_app() -> CovetPy:
    app = CovetPy(openapi_url=None, dependencies=[Depends(_step("app"))])
    items = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(_token), Depends(_step("items"))],
                      responses={404: {"description": "Not found"}})

    @items.get("/{item_id}", tags=["one"], dependencies=[Depends(_step("route"))],
               responses={403: {"description": "Forbidden"}})
    async def read_item(item_id: int, request: Request) -> dict:
        return {"item_id": item_id, "steps": request.state.steps}

    api = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(_step("api"))], deprecated=True)
    api.include_router(items, tags=["included"], dependencies=[Depends(_step("include"))])
    app.include_router(api, prefix="/v1", include_in_schema=False)
    return app


class TestNestedRouters:
    def test_route_metadata_is_combined_as_fastapi(self) -> None:
        (route,) = _nested_app().routes
        assert isinstance(route, Route)
        assert route.path == "/v1/api/items/{item_id}"
        assert route.native_pattern == "/v1/api/items/{item_id:int}"
        assert route.tags == ["api", "included", "items", "one"]  # outer first
        assert route.responses == {404: {"description": "Not found"}, 403: {"description": "Forbidden"}}
        assert route.deprecated is True and route.include_in_schema is False
        assert route.unique_id == "read_item_v1_api_items__item_id__get"

    def test_dependencies_run_outer_first_and_guard_the_router(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(_nested_app())
        r = client.get("/v1/api/items/3", headers={"x-token": "secret"})
        assert r.json() == {"item_id": 3, "steps": ["app", "api", "include", "items", "route"]}
        r = client.get("/v1/api/items/3")
        assert (r.status_code, r.json(), r.headers["www-authenticate"]) == (
            401, {"detail": "X-Token header missing"}, "Bearer")

    def test_a_router_included_twice_gives_two_routes(self, make_client) -> None:  # type: ignore[no-untyped-def]
        router = APIRouter()

        @router.get("/ping")
        async def ping(request: Request) -> dict:
            return {"path": request.url.path}

        app = CovetPy(openapi_url=None)
        app.include_router(router, prefix="/v1")
        app.include_router(router, prefix="/v2")
        assert [r.path for r in app.routes] == ["/v1/ping", "/v2/ping"]
        assert [r.path for r in router.routes] == ["/ping"]  # the router itself is untouched
        client = make_client(app)
        assert client.get("/v2/ping").json() == {"path": "/v2/ping"}

    def test_routes_added_after_the_include_are_served(self, make_client) -> None:  # type: ignore[no-untyped-def]
        router = APIRouter(prefix="/r")
        app = CovetPy(openapi_url=None)
        app.include_router(router)  # a reference, as FastAPI 0.165's include

        @router.get("/late")
        async def late() -> dict:
            return {"late": True}

        assert [r.path for r in app.routes] == ["/r/late"]
        assert app.routes[0] is app.routes[0]  # built once
        assert make_client(app).get("/r/late").json() == {"late": True}

    def test_a_router_cannot_include_itself(self) -> None:
        a, b = APIRouter(), APIRouter()
        a.include_router(b)
        with pytest.raises(ValueError, match="cannot include itself"):
            b.include_router(a)

    def test_empty_path_under_a_prefix_and_app_router(self, make_client) -> None:  # type: ignore[no-untyped-def]
        router = APIRouter()

        @router.get("")
        async def listing() -> list:
            return [1]

        app = CovetPy(openapi_url=None)
        app.router.include_router(router, prefix="/things")  # app.router behaves like FastAPI's
        assert [r.path for r in app.router.routes] == ["/things"]
        assert make_client(app).get("/things").json() == [1]
        bare = CovetPy(openapi_url=None)
        bare.include_router(router)
        with pytest.raises(ValueError, match="cannot both be empty"):
            bare.routes  # noqa: B018 (included routes are built when the app lists them)

    def test_bad_prefixes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="must not end with '/'"):
            APIRouter(prefix="/items/")
        with pytest.raises(ValueError, match="must start with '/'"):
            CovetPy(openapi_url=None).include_router(APIRouter(), prefix="items")

    def test_startup_handlers_of_routers_run(self, make_client) -> None:  # type: ignore[no-untyped-def]
        started: list[str] = []
        router = APIRouter(on_startup=[lambda: started.append("router")])
        app = CovetPy(openapi_url=None)
        app.include_router(router)
        make_client(app)
        assert started == ["router"]


class TestPerRouterMiddlewareAndHandlers:
    def _app(self, order: list[str]) -> CovetPy:
        app = CovetPy(openapi_url=None)
        inner = APIRouter(prefix="/inner")
        outer = APIRouter(prefix="/outer")

        class Teapot(Exception):
            pass

        @inner.middleware("http")
        async def inner_mw(request: Request, call_next: Any) -> Any:
            order.append("inner")
            response = await call_next(request)
            response.headers["x-inner"] = str(response.status_code)
            return response

        @inner.exception_handler(Teapot)
        async def teapot(request: Request, exc: Teapot) -> JSONResponse:
            return JSONResponse({"teapot": True}, status_code=418)

        @inner.exception_handler(404)
        async def inner_404(request: Request, exc: HTTPException) -> JSONResponse:
            return JSONResponse({"inner": exc.detail}, status_code=404)

        @inner.get("/tea")
        async def tea() -> dict:
            raise Teapot()

        @inner.get("/missing")
        async def missing() -> dict:
            raise HTTPException(404, "no such thing")

        @inner.get("/ok")
        async def ok() -> dict:
            return {"ok": True}

        @outer.middleware("http")
        async def outer_mw(request: Request, call_next: Any) -> Any:
            order.append("outer")
            return await call_next(request)

        @outer.get("/plain")
        async def plain() -> dict:
            raise HTTPException(404, "plain")

        outer.include_router(inner)
        app.include_router(outer)

        @app.middleware("http")
        async def app_mw(request: Request, call_next: Any) -> Any:
            order.append("app")
            return await call_next(request)

        @app.get("/top")
        async def top() -> dict:
            raise HTTPException(404, "top")

        return app

    def test_only_the_routers_routes_and_app_middleware_outermost(self, make_client) -> None:  # type: ignore[no-untyped-def]
        order: list[str] = []
        client = make_client(self._app(order))
        r = client.get("/outer/inner/ok")
        assert (r.json(), r.headers["x-inner"]) == ({"ok": True}, "200")
        assert order == ["app", "outer", "inner"]
        order.clear()
        assert client.get("/top").json() == {"detail": "top"}
        assert order == ["app"]
        order.clear()
        r = client.get("/outer/plain")
        assert "x-inner" not in r.headers and order == ["app", "outer"]

    def test_router_handlers_first_and_seen_by_router_middleware(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(self._app([]))
        r = client.get("/outer/inner/tea")
        assert (r.status_code, r.json(), r.headers["x-inner"]) == (418, {"teapot": True}, "418")
        assert client.get("/outer/inner/missing").json() == {"inner": "no such thing"}
        assert client.get("/outer/plain").json() == {"detail": "plain"}  # not the inner router's handler
        assert client.get("/top").json() == {"detail": "top"}

    def test_added_after_include_is_refused(self) -> None:
        router = APIRouter()
        CovetPy(openapi_url=None).include_router(router)

        async def mw(request: Request, call_next: Any) -> Any:
            return await call_next(request)

        with pytest.raises(RuntimeError, match="before include_router"):
            router.middleware("http")(mw)
        with pytest.raises(RuntimeError, match="before include_router"):
            router.exception_handler(ValueError)(lambda request, exc: None)


class TestUrlFor:
    def _app(self) -> CovetPy:
        app = CovetPy(openapi_url=None)
        router = APIRouter(prefix="/users/{user_id}")

        @router.get("/files/{name:path}", name="user_file")
        async def user_file(user_id: int, name: str) -> dict:
            return {}

        app.include_router(router)

        @app.get("/links")
        async def links(request: Request) -> dict:
            return {"url": str(request.url_for("user_file", user_id=7, name="a/b.txt")),
                    "path": app.url_path_for("links")}

        return app

    def test_paths_and_urls(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = self._app()
        assert app.url_path_for("user_file", user_id=3, name="x") == "/users/3/files/x"
        client = make_client(app)
        assert client.get("/links").json() == {"url": "http://testserver/users/7/files/a/b.txt", "path": "/links"}

    def test_no_match(self) -> None:
        app = self._app()
        with pytest.raises(NoMatchFound, match='No route exists for name "user_file" and params "user_id".'):
            app.url_path_for("user_file", user_id=3)
        with pytest.raises(NoMatchFound):
            app.url_path_for("nope")
        with pytest.raises(ValueError, match="may not be empty or contain '/'"):
            app.url_path_for("user_file", user_id="a/b", name="x")


class TestUniqueIds:
    def test_default_and_custom_functions(self) -> None:
        app = CovetPy(openapi_url=None, generate_unique_id_function=lambda route: f"app-{route.name}")
        router = APIRouter(generate_unique_id_function=lambda route: f"router-{route.name}")

        @router.get("/a")
        async def a() -> None: ...

        @router.get("/b", generate_unique_id_function=lambda route: f"route-{route.name}")
        async def b() -> None: ...

        @router.get("/c", operation_id="explicit")
        async def c() -> None: ...

        app.include_router(router)

        @app.post("/d/{x}")
        async def d(x: int) -> None: ...

        assert [r.unique_id for r in app.routes] == ["router-a", "route-b", "explicit", "app-d"]
        assert generate_unique_id(app.routes[3]) == "d_d__x__post"

    def test_webhooks_router(self) -> None:
        app = CovetPy(openapi_url=None)

        @app.webhooks.post("new-subscription")
        async def new_subscription(body: dict) -> None: ...

        assert isinstance(app.webhooks, APIRouter)
        (hook,) = app.webhooks.routes
        assert (hook.path, hook.methods, hook.name) == ("new-subscription", ("POST",), "new_subscription")
        assert app.routes == []  # never served


class TestUnmatchedRequests:
    def test_404_handler_without_middleware_reaches_python(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy(openapi_url=None)

        @app.exception_handler(404)
        async def not_found(request: Request, exc: HTTPException) -> JSONResponse:
            return JSONResponse({"missing": request.url.path}, status_code=404)

        @app.exception_handler(405)
        async def not_allowed(request: Request, exc: HTTPException) -> JSONResponse:
            return JSONResponse({"allow": (exc.headers or {}).get("Allow")}, status_code=405)

        @app.get("/here")
        async def here() -> dict:
            return {}

        client = make_client(app)
        assert client.get("/nowhere/at/all").json() == {"missing": "/nowhere/at/all"}
        assert client.get("/").json() == {"missing": "/"}
        assert client.post("/here").json() == {"allow": "GET"}
        assert client.head("/here").status_code == 405

    def test_405_lists_the_first_matching_route_as_fastapi(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy(openapi_url=None)

        @app.get("/x/{name}")
        async def by_name(name: str) -> dict:
            return {}

        @app.put("/x/special")
        async def special() -> dict:
            return {}

        client = make_client(app)
        r = client.delete("/x/special")
        assert (r.status_code, r.headers["allow"]) == (405, "GET")  # Starlette: the first partial match
        assert client.put("/x/special").status_code == 200

    def test_duplicate_routes_option_is_checked(self) -> None:
        with pytest.raises(ValueError, match="duplicate_routes must be 'first'"):
            CovetPy(duplicate_routes="last")  # type: ignore[arg-type]


def test_websocket_route_on_a_router_with_app_middleware(native: Any) -> None:
    """A router's WebSocket route under its prefix, with the router's dependencies; the app's HTTP middleware (and
    the catch-all it brings) does not take the upgrade."""
    import asyncio

    import fake_native

    websockets = pytest.importorskip("websockets")
    if native is fake_native:
        pytest.skip("WebSockets need the compiled engine")
    from covet.serve import ThreadedWorker

    seen: list[str] = []

    def prefix_tag() -> str:
        return "dep"

    router = APIRouter(prefix="/ws", dependencies=[Depends(prefix_tag)])

    @router.websocket("/echo/{room}")
    async def echo(websocket: WebSocket, room: str, tag: str = Depends(prefix_tag)) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{room}:{tag}:{text}")

    app = CovetPy(openapi_url=None)
    app.include_router(router)

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        seen.append(request.url.path)
        return await call_next(request)

    assert [r.path for r in app.websocket_routes] == ["/ws/echo/{room}"]
    worker = ThreadedWorker(app, threads=0).start()
    try:
        async def go() -> str:
            async with websockets.connect(f"ws://127.0.0.1:{worker.port}/ws/echo/lobby") as ws:
                await ws.send("hi")
                return str(await ws.recv())

        assert asyncio.run(asyncio.wait_for(go(), 20)) == "lobby:dep:hi"
        assert seen == []
    finally:
        worker.stop()
