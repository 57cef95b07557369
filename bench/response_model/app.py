"""The response_model benchmark's app, one source for both frameworks (BENCH_FRAMEWORK=fastapi | covet).

`GET /items`: 20 objects of a subclass with a secret field, returned through ``response_model=list[Item]`` with
``response_model_exclude_unset=True`` and ``response_model_exclude={"__all__": {"internal"}}``: validation (from
attributes), the subclass's extra field dropped, unset fields and an excluded field filtered — FastAPI's
response-model path in full. `GET /item`: the same for one object. `GET /dict`: the same JSON built as dicts and returned undeclared (the baseline
"returning a dict" a response model must not be slower than)."""

from __future__ import annotations

import os
from typing import Optional

from pydantic import BaseModel

if os.environ.get("BENCH_FRAMEWORK") == "fastapi":
    from fastapi import FastAPI
else:
    from covet import CovetPy as FastAPI

app = FastAPI()


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str] = []
    description: Optional[str] = None
    internal: str = "x"


class ItemInDB(Item):
    secret: str


ITEMS = [ItemInDB(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"], internal="hidden", secret="s")
         for i in range(20)]
DICTS = [{"id": i, "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"]} for i in range(20)]


@app.get("/items", response_model=list[Item], response_model_exclude_unset=True,
         response_model_exclude={"__all__": {"internal"}})
async def items():  # type: ignore[no-untyped-def]
    return ITEMS


@app.get("/item", response_model=Item, response_model_exclude_unset=True, response_model_exclude={"internal"})
async def item():  # type: ignore[no-untyped-def]
    return ITEMS[1]


@app.get("/dict")
async def as_dicts():  # type: ignore[no-untyped-def]
    return DICTS
