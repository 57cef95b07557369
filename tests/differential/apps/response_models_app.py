"""Sample app: response_model filtering options, response_class, the Response and BackgroundTasks parameters,
JSON Lines and Server-Sent Events from generator handlers (issue 14, "Responses")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator
from typing import Annotated

from _framework import (
    BackgroundTasks,
    Depends,
    EventSourceResponse,
    FastAPI,
    HTMLResponse,
    JSONResponse,
    ORJSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    ServerSentEvent,
    StreamingResponse,
)
from pydantic import BaseModel, Field

app = FastAPI()


class Item(BaseModel):
    name: str
    description: str | None = None
    price: float = 10.5
    tax: float | None = None
    tags: list[str] = []


class ItemInDB(Item):
    secret: str = "hunter2"


class Aliased(BaseModel):
    item_id: int = Field(alias="itemId")
    full_name: str = Field(serialization_alias="fullName")


ITEMS = {
    "foo": {"name": "Foo", "price": 50.2},
    "bar": {"name": "Bar", "description": "The bartenders", "price": 62, "tax": 20.2},
    "baz": {"name": "Baz", "description": None, "price": 50.2, "tax": 10.5, "tags": []},
}


@app.get("/items/{item_id}", response_model=Item, response_model_exclude_unset=True)
async def read_item(item_id: str):
    return ITEMS[item_id]


@app.get("/items/{item_id}/defaults", response_model=Item, response_model_exclude_defaults=True)
async def read_item_defaults(item_id: str):
    return ITEMS[item_id]


@app.get("/items/{item_id}/none", response_model=Item, response_model_exclude_none=True)
async def read_item_none(item_id: str):
    return ITEMS[item_id]


@app.get("/items/{item_id}/name", response_model=Item, response_model_include={"name", "description"})
async def read_item_name(item_id: str):
    return ITEMS[item_id]


@app.get("/items/{item_id}/public", response_model=Item, response_model_exclude={"tax"})
def read_item_public(item_id: str):
    return ITEMS[item_id]


@app.get("/items/{item_id}/list-include", response_model=Item, response_model_include=["name", "price"])
def read_item_list_include(item_id: str):
    return ITEMS[item_id]


@app.get("/nested-exclude", response_model=list[Item], response_model_exclude={0: {"tags"}, 1: {"price"}})
def nested_exclude():
    return [ITEMS["foo"], ITEMS["bar"]]


@app.get("/subclass")
def subclass() -> Item:
    return ItemInDB(name="Sub", tags=["x"])  # the response model drops `secret`


@app.get("/subclass-list", response_model=list[Item])
def subclass_list():
    return [ItemInDB(name="A"), ItemInDB(name="B", secret="s")]


@app.get("/alias")
def alias() -> Aliased:
    return Aliased(itemId=3, full_name="A B")


@app.get("/alias-off", response_model=Aliased, response_model_by_alias=False)
def alias_off():
    return {"itemId": 3, "full_name": "A B"}


@app.get("/dict-exclude", response_model=dict, response_model_exclude={"b"})
def dict_exclude():
    return {"a": 1, "b": 2}


@app.get("/bad-model", response_model=Item, response_model_exclude_unset=True)
def bad_model():
    return {"description": "no name"}


# --- response_class
@app.get("/html", response_class=HTMLResponse)
def html():
    return "<h1>Hello</h1>"


@app.get("/plain", response_class=PlainTextResponse)
async def plain() -> str:
    return "just text"


@app.get("/plain-status", response_class=PlainTextResponse, status_code=201)
async def plain_status():
    return "created"


@app.get("/redirect-class", response_class=RedirectResponse)
async def redirect_class():
    return "/html"


@app.get("/redirect-class-302", response_class=RedirectResponse, status_code=302)
async def redirect_class_302():
    return "https://example.com/"


@app.get("/json-class", response_class=JSONResponse)
def json_class():
    return {"b": [1, 2], "a": None}


@app.get("/orjson", response_class=ORJSONResponse)
def orjson_class():
    return {"x": [1, 2.5, "s"], "y": {"z": True}}


@app.get("/orjson-direct")
def orjson_direct():
    return ORJSONResponse({"direct": 1}, status_code=202)


# --- the Response parameter
@app.get("/response-param")
def response_param(response: Response) -> dict:
    response.headers["X-Extra"] = "added"
    response.set_cookie("session", "abc", httponly=True)
    return {"ok": True}


@app.post("/response-param-status", status_code=201)
async def response_param_status(response: Response, fail: bool = False) -> Item:
    if fail:
        response.status_code = 202
    response.headers["X-Status-Set"] = str(fail).lower()
    return Item(name="made")


def add_header(response: Response) -> None:
    response.headers["X-From-Dependency"] = "yes"


@app.get("/response-dependency", dependencies=[Depends(add_header)])
async def response_dependency(response: Response) -> dict:
    response.headers["X-From-Handler"] = "yes"
    return {"deps": 1}


@app.get("/response-returned")
def response_returned(response: Response):
    response.headers["X-Ignored"] = "the returned response wins"
    return PlainTextResponse("returned", headers={"X-Returned": "1"})


@app.delete("/response-no-content", status_code=204)
def response_no_content(response: Response) -> None:
    response.headers["X-Deleted"] = "1"


# --- BackgroundTasks
LOG: list[str] = []


def write_log(message: str) -> None:
    LOG.append(message)


async def write_log_async(message: str) -> None:
    await asyncio.sleep(0)
    LOG.append(message)


def log_dependency(background_tasks: BackgroundTasks, q: str | None = None) -> str | None:
    if q:
        background_tasks.add_task(write_log, f"found query: {q}")
    return q


@app.post("/send-notification/{email}", status_code=202)
async def send_notification(email: str, background_tasks: BackgroundTasks,
                            q: Annotated[str | None, Depends(log_dependency)]) -> dict:
    background_tasks.add_task(write_log, f"message to {email}")
    background_tasks.add_task(write_log_async, message=f"async for {email}")
    return {"message": "Notification sent in the background"}


@app.get("/log")
async def read_log() -> list[str]:
    for _ in range(100):  # the tasks of the previous request may still be running (on either server)
        if len(LOG) >= 3:
            break
        await asyncio.sleep(0.01)
    return LOG


# --- JSON Lines and Server-Sent Events from generators
@app.get("/jsonl")
async def jsonl() -> AsyncIterable[Item]:
    yield Item(name="one")
    yield {"name": "two", "price": 2, "tags": ["t"]}


@app.get("/jsonl-sync")
def jsonl_sync() -> Iterator[Item]:
    yield Item(name="sync")


@app.get("/jsonl-untyped")
async def jsonl_untyped():
    yield {"a": 1, "b": [1, 2]}
    yield "text"
    yield 3.5


@app.get("/jsonl-exclude", response_model_exclude_none=True)
async def jsonl_exclude() -> AsyncIterable[Item]:
    yield Item(name="x")


@app.get("/sse", response_class=EventSourceResponse)
async def sse() -> AsyncIterable[Item]:
    yield Item(name="first")
    yield Item(name="second", tax=1.0)


@app.get("/sse-events", response_class=EventSourceResponse)
async def sse_events():
    yield ServerSentEvent(data={"k": "v"}, event="update", id="1")
    yield ServerSentEvent(data="hello", retry=3000)
    yield ServerSentEvent(raw_data="line one\nline two")
    yield ServerSentEvent(comment="just a comment")
    yield {"plain": "dict"}


@app.post("/sse-post", response_class=EventSourceResponse)
def sse_post(response: Response) -> Iterator[str]:
    response.headers["X-Stream"] = "sse"
    yield "a"
    yield "b"


@app.get("/raw-stream", response_class=StreamingResponse)
async def raw_stream():
    yield b"raw "
    yield b"bytes"


# --- yield dependencies stay open while a streamed response is produced (FastAPI 0.165: torn down after it)
class Session:
    def __init__(self) -> None:
        self.open = True


async def session():
    s = Session()
    yield s
    s.open = False


@app.get("/jsonl-session")
async def jsonl_session(s: Annotated[Session, Depends(session)]):
    for i in range(2):
        await asyncio.sleep(0)
        yield {"i": i, "open": s.open}


@app.get("/stream-session")
def stream_session(s: Annotated[Session, Depends(session)]):
    async def body():
        await asyncio.sleep(0)
        yield f"open={s.open}".encode()

    return StreamingResponse(body(), media_type="text/plain")
