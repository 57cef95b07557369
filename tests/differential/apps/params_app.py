"""Sample app: path, query, header and cookie parameters, with constraints, aliases, lists and defaults."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated

from _framework import Cookie, FastAPI, Header, Path, Query

app = FastAPI()


class Color(str, Enum):  # noqa: UP042 - FastAPI's documented form
    red = "red"
    green = "green"


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None, short: bool = False) -> dict:
    return {"item_id": item_id, "q": q, "short": short}


@app.get("/floats/{value}")
def read_float(value: float) -> dict:
    return {"value": value}


@app.get("/uuids/{ident}")
async def read_uuid(ident: uuid.UUID) -> dict:
    return {"ident": str(ident), "version": ident.version}


@app.get("/colors/{color}")
async def read_color(color: Color) -> dict:
    return {"color": color.value}


@app.get("/files/{file_path:path}")
async def read_file(file_path: str) -> dict:
    return {"file_path": file_path}


@app.get("/bounded/{n}")
async def bounded(n: Annotated[int, Path(ge=1, le=100)]) -> dict:
    return {"n": n}


@app.get("/search")
async def search(
    q: Annotated[str, Query(min_length=3, max_length=10, pattern="^[a-z]+$")],
    page: Annotated[int, Query(gt=0)] = 1,
    size: Annotated[float, Query(le=50.5)] = 10.0,
) -> dict:
    return {"q": q, "page": page, "size": size}


@app.get("/tags")
async def tags(tag: Annotated[list[str], Query()] = []) -> dict:  # noqa: B006 - FastAPI's documented form
    return {"tags": tag}


@app.get("/ints")
async def ints(n: Annotated[list[int], Query()]) -> dict:
    return {"n": n, "total": sum(n)}


@app.get("/alias")
async def alias(item_query: Annotated[str | None, Query(alias="item-query")] = None) -> dict:
    return {"item_query": item_query}


@app.get("/required")
async def required(needed: str, count: int) -> dict:
    return {"needed": needed, "count": count}


@app.get("/headers")
async def headers(
    user_agent: Annotated[str | None, Header()] = None,
    x_token: Annotated[str | None, Header()] = None,
    x_count: Annotated[int, Header()] = 0,
) -> dict:
    return {"user_agent": user_agent, "x_token": x_token, "x_count": x_count}


@app.get("/required-header")
async def required_header(x_key: Annotated[str, Header(min_length=4)]) -> dict:
    return {"x_key": x_key}


@app.get("/cookies")
async def cookies(session: Annotated[str | None, Cookie()] = None, visits: Annotated[int, Cookie()] = 0) -> dict:
    return {"session": session, "visits": visits}
