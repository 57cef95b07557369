"""Sample app: pydantic request bodies, nested models, Body() parameters, response status codes."""

from __future__ import annotations

from typing import Annotated

from _framework import Body, FastAPI, status
from pydantic import BaseModel, Field

app = FastAPI()


class Image(BaseModel):
    url: str
    name: str


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    price: float = Field(gt=0)
    tax: float | None = None
    tags: list[str] = []
    image: Image | None = None


class User(BaseModel):
    username: str
    full_name: str | None = None


@app.post("/items", status_code=status.HTTP_201_CREATED)
async def create_item(item: Item) -> dict:
    total = item.price + (item.tax or 0)
    return {"item": item.model_dump(), "total": total}


@app.put("/items/{item_id}")
async def update_item(item_id: int, item: Item, q: str | None = None) -> dict:
    return {"item_id": item_id, "name": item.name, "q": q}


@app.post("/echo-model")
def echo_model(user: User) -> User:
    return user


@app.post("/importance")
async def importance(importance: Annotated[int, Body()]) -> dict:
    return {"importance": importance}


@app.post("/accepted", status_code=202)
async def accepted(user: User) -> dict:
    return {"accepted": user.username}


@app.delete("/items/{item_id}", status_code=204)
async def delete_item(item_id: int) -> None:
    return None


@app.patch("/items/{item_id}")
async def patch_item(item_id: int, user: User) -> list:
    return [item_id, user.username]
