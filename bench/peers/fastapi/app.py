"""FastAPI peer (uvicorn, uvloop + httptools, access log off)."""
import asyncio
from typing import Optional

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


@app.get("/plaintext")
async def plaintext():
    return PlainTextResponse("Hello, World!")


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
    return PlainTextResponse("Hello, World!")
