"""CovetPy peer for the benchmark (python -m bench): async handlers. Same routes/payloads as every peer."""
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


# The request body echoed back, with its content type (h3-download: 1 MiB each way; as examples/native/hello's /echo)
from covet import Request  # noqa: E402


@app.post("/echo")
async def echo(request: Request):
    return Response(await request.body(), media_type=request.headers.get("content-type", "application/octet-stream"))


# ---- WebSocket: echo, and a room whose messages are published natively to every subscriber of this process ----
from covet import WebSocket  # noqa: E402


@app.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket):
    await websocket.accept()
    async for m in websocket.iter_text():
        await websocket.send_text(m)


@app.websocket("/ws/room/{name}")
async def ws_room(websocket: WebSocket, name: str):
    await websocket.accept()
    await websocket.subscribe(name)
    async for m in websocket.iter_text():
        await websocket.publish(name, m)
