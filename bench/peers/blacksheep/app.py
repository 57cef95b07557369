"""BlackSheep peer (on uvicorn, uvloop + httptools, access log off); the body is bound to a pydantic model."""
import asyncio
from typing import Optional

from blacksheep import Application, FromJSON, get, json, post, text
from pydantic import BaseModel

app = Application()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


@get("/plaintext")
async def plaintext():
    return text("Hello, World!")


@get("/json")
async def json_():
    return json({"message": "Hello, World!"})


@get("/users/{user_id}")
async def user(user_id: int, q: Optional[str] = None):
    return json({"id": user_id, "q": q})


@post("/items")
async def items(item: FromJSON[Item]):
    it = item.value
    return json({"name": it.name, "tag_count": len(it.tags)})


@get("/sleep")
async def sleep():
    await asyncio.sleep(0.001)
    return text("Hello, World!")
