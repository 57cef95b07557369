"""``route_class=``: FastAPI's "Custom Request and APIRoute class" examples, served through real sockets.

A subclass of `covet.routing.APIRoute` overriding ``get_route_handler()`` wraps the handler it inherits (covet's
whole per-route pipeline); routes keep their router's class when included; everything else keeps its fast path.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from pydantic import BaseModel

from covet import APIRouter, BackgroundTasks, Body, CovetPy, Depends, HTTPException, Request, Response
from covet.exceptions import RequestValidationError
from covet.routing import APIRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class Item(BaseModel):
    name: str
    price: float


class GzipRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            body = await super().body()
            if "gzip" in self.headers.getlist("Content-Encoding"):
                body = gzip.decompress(body)
            self._body = body
        return self._body


class GzipRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        original_route_handler = super().get_route_handler()

        async def custom_route_handler(request: Request) -> Response:
            request = GzipRequest(request.scope, request.receive)
            return await original_route_handler(request)

        return custom_route_handler


class ValidationErrorLoggingRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        original_route_handler = super().get_route_handler()

        async def custom_route_handler(request: Request) -> Response:
            try:
                return await original_route_handler(request)
            except RequestValidationError as exc:
                body = await request.body()
                detail = {"errors": exc.errors(), "body": body.decode()}
                raise HTTPException(status_code=422, detail=detail) from None

        return custom_route_handler


class TimedRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        original_route_handler = super().get_route_handler()

        async def custom_route_handler(request: Request) -> Response:
            before = time.time()
            response: Response = await original_route_handler(request)
            response.headers["X-Response-Time"] = str(time.time() - before)
            return response

        return custom_route_handler


def test_gzip_request_body(make_client: Any) -> None:
    app = CovetPy()
    app.router.route_class = GzipRoute

    @app.post("/sum")
    async def sum_numbers(numbers: list[int] = Body()) -> dict[str, int]:  # noqa: B008
        return {"sum": sum(numbers)}

    client = make_client(app)
    compressed = gzip.compress(b"[1, 2, 3]")
    response = client.post("/sum", content=compressed,
                           headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (200, {"sum": 6})
    assert client.post("/sum", json=[4, 5]).json() == {"sum": 9}  # not compressed: as it is
    bad = client.post("/sum", content=gzip.compress(b'[1, "x"]'),
                      headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", 1]


class BeaconRequest(Request):
    """navigator.sendBeacon posts JSON as text/plain: this request presents it as JSON."""

    @property
    def headers(self) -> Any:
        headers = super().headers.mutablecopy()
        headers["content-type"] = "application/json"
        return headers


class BeaconRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        original_route_handler = super().get_route_handler()

        async def custom_route_handler(request: Request) -> Response:
            return await original_route_handler(BeaconRequest(request.scope, request.receive))

        return custom_route_handler


def test_a_custom_request_s_headers_decide_how_the_body_is_parsed(make_client: Any) -> None:
    app = CovetPy()
    app.router.route_class = BeaconRoute

    @app.post("/beacon")
    async def beacon(item: Item) -> dict[str, Any]:
        return {"name": item.name, "price": item.price}

    client = make_client(app)
    response = client.post("/beacon", content=b'{"name": "a", "price": 1.5}', headers={"Content-Type": "text/plain"})
    assert (response.status_code, response.json()) == (200, {"name": "a", "price": 1.5})


def test_validation_error_body_in_the_route_handler(make_client: Any) -> None:
    app = CovetPy()
    app.router.route_class = ValidationErrorLoggingRoute

    @app.post("/")
    async def sum_numbers(numbers: list[int] = Body()) -> int:  # noqa: B008
        return sum(numbers)

    client = make_client(app)
    assert client.post("/", json=[1, 2]).json() == 3
    response = client.post("/", content=b'[1, "two"]', headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["body"] == '[1, "two"]'
    assert [e["loc"] for e in detail["errors"]] == [["body", 1]]


def test_timed_router_routes_only(make_client: Any) -> None:
    app = CovetPy()
    router = APIRouter(route_class=TimedRoute)

    @app.get("/")
    async def not_timed() -> dict[str, str]:
        return {"message": "Not timed"}

    @router.get("/timed")
    async def timed() -> dict[str, str]:
        return {"message": "It's the time of my life"}

    app.include_router(router)
    client = make_client(app)
    response = client.get("/timed")
    assert response.json() == {"message": "It's the time of my life"}
    assert float(response.headers["x-response-time"]) >= 0
    assert "x-response-time" not in client.get("/").headers
    kinds = {r.path: type(r) for r in app.routes}
    assert kinds["/timed"] is TimedRoute and kinds["/"] is not TimedRoute
    assert all(isinstance(r, APIRoute) for r in app.routes if r.path in ("/", "/timed"))
    assert not isinstance(next(r for r in app.routes if r.path == "/"), TimedRoute)


def test_route_class_kept_through_nested_includes(make_client: Any) -> None:
    inner = APIRouter(prefix="/inner", route_class=TimedRoute)
    outer = APIRouter(prefix="/outer")  # its own route_class (APIRoute) does not replace the inner's

    @inner.get("/a")
    def a() -> dict[str, str]:
        return {"a": "a"}

    @outer.get("/b")
    def b() -> dict[str, str]:
        return {"b": "b"}

    outer.include_router(inner)
    app = CovetPy()
    app.include_router(outer, prefix="/v1")
    client = make_client(app)
    assert "x-response-time" in client.get("/v1/outer/inner/a").headers
    assert "x-response-time" not in client.get("/v1/outer/b").headers


def test_route_class_override_and_the_full_pipeline(make_client: Any) -> None:
    """The wrapped handler runs covet's whole pipeline: dependencies with teardown after the response,
    response_model filtering, status_code, background tasks, the app's middleware and exception handlers."""
    events: list[str] = []
    app = CovetPy()

    async def session() -> AsyncIterator[str]:
        events.append("open")
        yield "db"
        events.append("close")

    def note(what: str) -> None:
        events.append(what)

    @app.middleware("http")
    async def outer(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["X-Seen-Timing"] = str("x-response-time" in response.headers)
        return response

    class Teapot(Exception):
        pass

    @app.exception_handler(Teapot)
    async def teapot(request: Request, exc: Teapot) -> Response:
        return Response("teapot", status_code=418)

    async def create(item: Item, tasks: BackgroundTasks, db: str = Depends(session)) -> dict[str, Any]:
        tasks.add_task(note, f"saved {item.name} in {db}")
        return {"name": item.name, "price": item.price, "secret": "s"}

    class GzipTimedRoute(GzipRoute):
        def get_route_handler(self) -> Handler:
            inner = super().get_route_handler()

            async def handler(request: Request) -> Response:
                if request.headers.get("x-teapot"):
                    raise Teapot()
                response = await inner(request)
                response.headers["X-Response-Time"] = "0"
                return response

            return handler

    app.router.add_api_route("/items", create, methods=["POST"], status_code=201, response_model=Item,
                             route_class_override=GzipTimedRoute)
    client = make_client(app)
    response = client.post("/items", content=gzip.compress(b'{"name": "tea", "price": 2}'),
                           headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 201
    assert response.json() == {"name": "tea", "price": 2.0}  # response_model filtered "secret"
    assert response.headers["x-response-time"] == "0"
    assert response.headers["x-seen-timing"] == "True"  # the app's middleware is outside the route handler
    deadline = time.monotonic() + 5
    while "close" not in events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == ["open", "saved tea in db", "close"]
    assert client.post("/items", json={}, headers={"X-Teapot": "1"}).status_code == 418
    assert client.post("/items", json={"name": "x"}).status_code == 422


def test_custom_request_shares_the_request(make_client: Any) -> None:
    seen: dict[str, Any] = {}

    class Shared(APIRoute):
        def get_route_handler(self) -> Handler:
            original = super().get_route_handler()

            async def handler(request: Request) -> Response:
                request.state.marker = "set before"
                derived = GzipRequest(request.scope, request.receive)
                seen["unread"] = not hasattr(derived, "_body")
                return await original(derived)

            return handler

    app = CovetPy()
    app.router.route_class = Shared

    @app.post("/echo/{item_id}")
    async def echo(item_id: int, request: Request, q: str = "") -> dict[str, Any]:
        return {"id": item_id, "q": q, "marker": request.state.marker, "type": type(request).__name__,
                "body": (await request.body()).decode(), "path": request.url.path}

    client = make_client(app)
    assert client.post("/echo/7?q=z", content=b"hi").json() == {
        "id": 7, "q": "z", "marker": "set before", "type": "GzipRequest", "body": "hi", "path": "/echo/7"}
    assert seen["unread"] is True


def test_plain_routes_have_no_route_handler() -> None:
    app = CovetPy()

    @app.get("/")
    def home() -> str:
        return "x"

    route = next(r for r in app.routes if r.path == "/")
    assert type(route) is APIRoute and route.route_handler is None  # the fast path, untouched
    assert APIRouter().route_class is APIRoute


def test_refused_route_classes_name_the_cause() -> None:
    with pytest.raises(TypeError, match=r"route_class must be covet\.routing\.APIRoute or a subclass"):
        APIRouter(route_class=dict)  # type: ignore[arg-type]

    class WithInit(APIRoute):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

    with pytest.raises(TypeError, match="overrides __init__"):
        APIRouter(route_class=WithInit)


def test_fastapi_only_attributes_say_why() -> None:
    router = APIRouter(route_class=TimedRoute)

    @router.get("/t")
    def t() -> None:
        return None

    route = router.routes[0]
    assert isinstance(route, TimedRoute)
    assert (route.path, route.name, route.methods, route.endpoint) == ("/t", "t", ("GET",), t)
    with pytest.raises(AttributeError, match="dependant is FastAPI's and not supported: covet plans"):
        route.dependant  # noqa: B018
    assert not hasattr(route, "body_field")


def test_the_handler_outside_a_served_request() -> None:
    router = APIRouter(route_class=TimedRoute)

    @router.get("/t")
    def t() -> None:
        return None

    handler = APIRoute.get_route_handler(router.routes[0])  # type: ignore[arg-type]

    class FakeNative:
        pass

    import asyncio

    with pytest.raises(RuntimeError, match="cannot be called outside one"):
        asyncio.run(handler(Request(FakeNative())))


def test_a_kept_custom_request_is_copied_out_of_the_engine(make_client: Any) -> None:
    """A background task keeping the GzipRequest reads it after the response (the engine's request is gone)."""
    seen: list[Any] = []
    app = CovetPy()
    app.router.route_class = GzipRoute

    async def later(request: Request) -> None:
        seen.append((request._native is None, type(request).__name__, request.headers.get("x-tag"),
                     await request.body()))

    @app.post("/keep")
    async def keep(request: Request, tasks: BackgroundTasks) -> str:
        tasks.add_task(later, request)
        return "ok"

    client = make_client(app)
    response = client.post("/keep", content=gzip.compress(b"payload"),
                           headers={"Content-Encoding": "gzip", "X-Tag": "t"})
    assert response.json() == "ok"
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [(True, "GzipRequest", "t", b"payload")]
