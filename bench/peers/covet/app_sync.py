"""CovetPy peer for the benchmark (python -m bench): plain `def` handlers (run in covet's thread pool, the default)."""
import time
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
def plaintext():
    return Response("Hello, World!", media_type="text/plain")


@app.get("/json")
def json_():
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
def user(user_id: int, q: Optional[str] = None):
    return {"id": user_id, "q": q}


@app.post("/items")
def items(item: Item):
    return {"name": item.name, "tag_count": len(item.tags)}


@app.get("/sleep")
def sleep():
    time.sleep(0.001)  # the sync twin of `await asyncio.sleep(0.001)`
    return Response("Hello, World!", media_type="text/plain")
