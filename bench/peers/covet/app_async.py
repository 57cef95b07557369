"""CovetPy peer for the matrix suite (bench/suite): async handlers. Same routes/payloads as every peer."""
import asyncio
from typing import Optional

from pydantic import BaseModel

from covet import CovetPy, Response

app = CovetPy()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


@app.get("/plaintext")
async def plaintext():
    return Response("Hello, World!", media_type="text/plain")


@app.get("/json")
async def json_():
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
async def user(user_id: int, q: Optional[str] = None):
    return {"id": user_id, "q": q}


@app.post("/items")
async def items(item: Item):
    return {"name": item.name, "tag_count": len(item.tags)}


@app.get("/sleep")
async def sleep():
    await asyncio.sleep(0.001)
    return Response("Hello, World!", media_type="text/plain")
