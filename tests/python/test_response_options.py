"""Issue 14, "Responses": response_model_* filtering, response_class, the Response and BackgroundTasks
parameters, JSON Lines and Server-Sent Events from generator handlers — through real sockets."""

from __future__ import annotations

import asyncio
import http.client
import logging
import threading
from collections.abc import AsyncIterable, Iterator
from typing import Any, Optional

import pytest
from pydantic import BaseModel

from covet import BackgroundTasks, CovetPy, Depends, HTMLResponse, PlainTextResponse, Response, background
from covet.background import BackgroundTask
from covet.responses import ORJSONResponse, UJSONResponse


class Item(BaseModel):
    name: str
    price: float = 1.0
    tax: Optional[float] = None


class ItemInDB(Item):
    secret: str = "s"


def test_response_model_filtering(make_client: Any) -> None:
    app = CovetPy()

    @app.get("/unset", response_model=Item, response_model_exclude_unset=True)
    def unset() -> Any:
        return {"name": "a", "tax": None}

    @app.get("/defaults", response_model_exclude_defaults=True)
    def defaults() -> Item:
        return Item(name="a", price=1.0, tax=2.0)

    @app.get("/none", response_model_exclude_none=True)
    async def none() -> Item:
        return Item(name="a")

    @app.get("/include", response_model=list[Item], response_model_include={0: {"name"}})
    def include() -> Any:
        return [Item(name="a"), Item(name="b")]

    @app.get("/exclude", response_model_exclude={"secret", "tax"})
    def exclude() -> dict:  # a dict: pydantic filters its keys too, as in FastAPI
        return {"name": "a", "secret": "s", "tax": 1}

    @app.get("/subclass")
    def subclass() -> Item:
        return ItemInDB(name="a")

    @app.get("/bad", response_model=Item, response_model_exclude_unset=True)
    def bad() -> Any:
        return {"price": 3}

    client = make_client(app, raise_server_exceptions=False)
    assert client.get("/unset").content == b'{"name":"a","tax":null}'
    assert client.get("/defaults").json() == {"name": "a", "tax": 2.0}
    assert client.get("/none").json() == {"name": "a", "price": 1.0}
    assert client.get("/include").json() == [{"name": "a"}]  # pydantic's include: only the listed index
    assert client.get("/exclude").json() == {"name": "a"}
    assert client.get("/subclass").json() == {"name": "a", "price": 1.0, "tax": None}  # no `secret`
    r = client.get("/bad")
    assert (r.status_code, r.content) == (500, b"Internal Server Error")


@pytest.mark.filterwarnings("ignore:.*JSONResponse is deprecated:DeprecationWarning")
def test_response_class_and_default_response_class(make_client: Any) -> None:
    app = CovetPy(default_response_class=PlainTextResponse)

    @app.get("/text")
    def text() -> str:
        return "hello"

    @app.get("/html", response_class=HTMLResponse, status_code=201)
    def html() -> str:
        return "<b>hi</b>"

    @app.get("/orjson", response_class=ORJSONResponse)
    def orjson() -> dict:
        return {"a": [1, 2]}

    @app.get("/ujson")
    def ujson() -> Response:
        return UJSONResponse({"b": "é"})

    client = make_client(app)
    r = client.get("/text")
    assert (r.status_code, r.headers["content-type"], r.content) == (200, "text/plain; charset=utf-8", b"hello")
    r = client.get("/html")
    assert (r.status_code, r.headers["content-type"], r.content) == (201, "text/html; charset=utf-8", b"<b>hi</b>")
    with pytest.warns(DeprecationWarning):
        ORJSONResponse({})
    r = client.get("/orjson")
    assert (r.headers["content-type"], r.content) == ("application/json", b'{"a":[1,2]}')
    assert client.get("/ujson").json() == {"b": "é"}


def test_route_rejects_a_response_class_that_is_not_a_response() -> None:
    app = CovetPy()
    with pytest.raises(TypeError, match="response_class must be a Response class"):
        app.get("/x", response_class=dict)(lambda: None)  # type: ignore[arg-type]


def test_response_parameter_merges_headers_cookies_and_status(make_client: Any) -> None:
    app = CovetPy()

    def dependency(response: Response) -> int:
        response.headers["X-Dep"] = "dep"
        return 1

    @app.post("/r", status_code=201)
    def handler(response: Response, value: int = Depends(dependency), accepted: bool = False) -> dict:
        assert response.status_code is None  # FastAPI's: unset until the handler sets it
        response.set_cookie("k", "v")
        response.headers["X-Handler"] = "h"
        if accepted:
            response.status_code = 202
        return {"value": value}

    @app.get("/returned")
    async def returned(response: Response) -> Response:
        response.headers["X-Lost"] = "1"
        return PlainTextResponse("own")

    client = make_client(app)
    r = client.post("/r")
    assert (r.status_code, r.json()) == (201, {"value": 1})
    assert (r.headers["x-dep"], r.headers["x-handler"], r.headers["set-cookie"]) == (
        "dep", "h", "k=v; Path=/; SameSite=lax")
    assert client.post("/r?accepted=true").status_code == 202
    r = client.get("/returned")
    assert r.content == b"own" and "x-lost" not in r.headers


def test_background_tasks_run_after_the_response(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = CovetPy()
    log: list[str] = []
    release = threading.Event()

    def slow(name: str) -> None:  # sync: in the thread pool
        release.wait(5)
        log.append(name)

    async def fast(name: str) -> None:  # async: on the loop
        log.append(name)

    def failing() -> None:
        raise RuntimeError("task failed")

    def from_dependency(tasks: BackgroundTasks) -> None:
        tasks.add_task(log.append, "dependency")

    @app.post("/work", dependencies=[Depends(from_dependency)])
    async def work(tasks: BackgroundTasks) -> dict:
        tasks.add_task(slow, "slow")
        tasks.add_task(fast, name="fast")
        return {"queued": 3}

    @app.get("/own")
    def own() -> Response:
        return Response("x", background=BackgroundTask(log.append, "own"))

    @app.get("/fails")
    def fails(tasks: BackgroundTasks) -> dict:
        tasks.add_task(failing)
        tasks.add_task(log.append, "after-failure")
        return {}

    client = make_client(app)
    with client.stream("POST", "/work") as r:  # streamed: the client does not wait for the background tasks
        r.read()
        assert r.json() == {"queued": 3}
        assert "slow" not in log and background.pending() == 1  # answered before the slow task finished
    release.set()
    assert background.wait_idle(5)
    assert log == ["dependency", "slow", "fast"]
    client.get("/own")

    asyncio.run(asyncio.wait_for(background.wait_idle_async(), 5))
    assert log[-1] == "own"
    with caplog.at_level(logging.ERROR, logger="covet"):
        assert client.get("/fails").status_code == 200
        assert background.wait_idle(5)
    assert "after-failure" not in log
    assert any("background task" in rec.getMessage() for rec in caplog.records)


def test_json_lines_from_generators(make_client: Any) -> None:
    app = CovetPy()

    @app.get("/typed")
    async def typed() -> AsyncIterable[Item]:
        yield Item(name="a")
        yield {"name": "b", "price": 2}

    @app.get("/sync")
    def sync() -> Iterator[Item]:
        yield Item(name="s")

    @app.get("/untyped")
    async def untyped():  # type: ignore[no-untyped-def]
        yield {"a": 1}

    @app.get("/invalid")
    async def invalid() -> AsyncIterable[Item]:
        yield Item(name="ok")
        yield {"price": "not a number"}

    client = make_client(app)
    r = client.get("/typed")
    assert r.headers["content-type"] == "application/jsonl"
    assert r.content == b'{"name":"a","price":1.0,"tax":null}\n{"name":"b","price":2.0,"tax":null}\n'
    assert client.get("/sync").content == b'{"name":"s","price":1.0,"tax":null}\n'
    assert client.get("/untyped").content == b'{"a": 1}\n'  # json.dumps' separators, as FastAPI's
    with pytest.raises(http.client.IncompleteRead):  # cut short: the second item does not match Item
        client.get("/invalid")


def test_server_sent_events(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from covet import sse
    from covet.sse import EventSourceResponse, ServerSentEvent

    monkeypatch.setattr(sse, "_PING_INTERVAL", 0.05)
    app = CovetPy()

    def stream_header(response: Response) -> None:
        # Set before the stream starts: a generator's own body runs after the head is sent (as in FastAPI).
        response.headers["X-Stream"] = "1"

    @app.get("/events", response_class=EventSourceResponse, dependencies=[Depends(stream_header)])
    async def events() -> AsyncIterable[Item]:
        yield Item(name="a")
        await asyncio.sleep(0.2)  # idle: keep-alive comments meanwhile
        yield ServerSentEvent(data="hi", event="greet", id="7", retry=10)
        yield ServerSentEvent(raw_data="l1\nl2", comment="note")

    client = make_client(app)
    r = client.get("/events")
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert (r.headers["cache-control"], r.headers["x-accel-buffering"], r.headers["x-stream"]) == ("no-cache", "no",
                                                                                                     "1")
    body = r.content
    assert body.startswith(b'data: {"name":"a","price":1.0,"tax":null}\n\n: ping\n\n')
    assert body.endswith(b'event: greet\ndata: "hi"\nid: 7\nretry: 10\n\n: note\ndata: l1\ndata: l2\n\n')
    with pytest.raises(ValueError, match="single line"):
        ServerSentEvent(event="a\nb")


def test_yield_dependencies_stay_open_while_a_response_streams(make_client: Any) -> None:
    app = CovetPy()
    closed = threading.Event()

    async def resource() -> Any:
        state = {"open": True}
        yield state
        state["open"] = False
        closed.set()

    @app.get("/items")
    async def items(state: dict = Depends(resource)) -> AsyncIterable[dict]:
        for i in range(2):
            await asyncio.sleep(0)
            yield {"i": i, "open": state["open"]}

    client = make_client(app)
    assert client.get("/items").content == b'{"i":0,"open":true}\n{"i":1,"open":true}\n'
    assert closed.wait(5)  # and torn down once the stream was sent
