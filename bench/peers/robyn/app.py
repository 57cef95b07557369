"""Robyn peer: one process, one worker (--processes 1 --workers 1), log level WARN; body as a pydantic model."""
import asyncio
import os

from pydantic import BaseModel
from robyn import Response, Robyn

app = Robyn(__file__)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


TEXT = {"Content-Type": "text/plain"}


@app.get("/plaintext")
async def plaintext(request):
    return Response(200, TEXT, "Hello, World!")


@app.get("/json")
async def json_(request):
    return {"message": "Hello, World!"}


@app.get("/users/:user_id")
async def user(request):
    return {"id": int(request.path_params["user_id"]), "q": request.query_params.get("q", None)}


@app.post("/items")
async def items(request, item: Item):
    return {"name": item.name, "tag_count": len(item.tags)}


@app.get("/sleep")
async def sleep(request):
    await asyncio.sleep(0.001)
    return Response(200, TEXT, "Hello, World!")


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=int(os.environ["BENCH_PORT"]))
