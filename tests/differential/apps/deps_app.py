"""Sample app: dependencies (functions, classes, yield, sub-dependencies, route and app dependencies), and
dependencies that raise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from _framework import Depends, FastAPI, Header, HTTPException, Request

EVENTS: list[str] = []


async def audit(request: Request) -> None:
    EVENTS.append(f"audit {request.url.path}")


app = FastAPI(dependencies=[Depends(audit)])


async def common_parameters(q: str | None = None, skip: int = 0, limit: int = 100) -> dict:
    return {"q": q, "skip": skip, "limit": limit}


CommonsDep = Annotated[dict, Depends(common_parameters)]


class Pagination:
    def __init__(self, page: int = 1, per_page: int = 10) -> None:
        self.page = page
        self.per_page = per_page


async def get_db() -> AsyncIterator[dict]:
    db = {"open": True}
    EVENTS.append("db open")
    try:
        yield db
    finally:
        EVENTS.append("db close")


def get_session() -> Iterator[str]:
    EVENTS.append("session open")
    yield "session-1"
    EVENTS.append("session close")


def verify_token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "secret":
        raise HTTPException(status_code=400, detail="X-Token header invalid")
    return x_token


def current_user(token: Annotated[str, Depends(verify_token)], db: Annotated[dict, Depends(get_db)]) -> dict:
    return {"user": "alice", "token": token, "db_open": db["open"]}


async def not_found_guard(item_id: int) -> int:
    if item_id > 100:
        raise HTTPException(status_code=404, detail="Item not found")
    return item_id


@app.get("/items")
async def read_items(commons: CommonsDep) -> dict:
    return commons


@app.get("/pages")
async def pages(pagination: Annotated[Pagination, Depends()]) -> dict:
    return {"page": pagination.page, "per_page": pagination.per_page}


@app.get("/me")
async def me(user: Annotated[dict, Depends(current_user)]) -> dict:
    return user


@app.get("/session")
def session(s: Annotated[str, Depends(get_session)]) -> dict:
    return {"session": s}


@app.get("/guarded/{item_id}", dependencies=[Depends(verify_token)])
async def guarded(item_id: Annotated[int, Depends(not_found_guard)]) -> dict:
    return {"item_id": item_id}


@app.get("/events")
async def events() -> dict:
    return {"count": len(EVENTS) > 0}
