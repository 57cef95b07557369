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


# The request body echoed back, with its content type (h3-download: 1 MiB each way; as examples/native/hello's /echo)
from fastapi import Request, Response  # noqa: E402


@app.post("/echo")
async def echo(request: Request):
    return Response(await request.body(), media_type=request.headers.get("content-type", "application/octet-stream"))


# ---- WebSocket (uvicorn `--ws websockets`): echo, and a room broadcast the documented way (a set of
# connections, a Python loop sending to each; this process only, like covet's native publish) ----
from fastapi import WebSocket, WebSocketDisconnect  # noqa: E402

rooms: dict[str, set[WebSocket]] = {}


@app.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket):
    await websocket.accept()
    try:
        async for m in websocket.iter_text():
            await websocket.send_text(m)
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/room/{name}")
async def ws_room(websocket: WebSocket, name: str):
    await websocket.accept()
    room = rooms.setdefault(name, set())
    room.add(websocket)
    try:
        async for m in websocket.iter_text():
            for ws in list(room):
                try:
                    await ws.send_text(m)
                except Exception:  # that peer has gone (uvicorn: ClientDisconnected; starlette: RuntimeError)
                    room.discard(ws)
    except WebSocketDisconnect:
        pass
    finally:
        room.discard(websocket)
