"""Granian ASGI peer: a bare ASGI app (no framework) for HTTP, pydantic for the body; WebSocket routes through
Starlette's ``WebSocket`` (the API the other peers' WebSocket handlers use), on Granian's own WebSocket server."""
import asyncio
from urllib.parse import parse_qs

import orjson
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


HELLO = b"Hello, World!"


async def _send(send, status, ctype, body):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _body(receive):
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/plaintext":
        await _send(send, 200, b"text/plain", HELLO)
    elif path == "/json":
        await _send(send, 200, b"application/json", orjson.dumps({"message": "Hello, World!"}))
    elif path.startswith("/users/"):
        try:
            uid = int(path[7:])
        except ValueError:
            await _send(send, 404, b"text/plain", b"Not Found")
            return
        q = parse_qs(scope["query_string"].decode()).get("q", [None])[0]
        await _send(send, 200, b"application/json", orjson.dumps({"id": uid, "q": q}))
    elif path == "/items" and scope["method"] == "POST":
        try:
            item = Item.model_validate_json(await _body(receive))
        except ValidationError as exc:
            await _send(send, 422, b"application/json", orjson.dumps({"detail": exc.errors(include_url=False)}))
            return
        await _send(send, 200, b"application/json", orjson.dumps({"name": item.name, "tag_count": len(item.tags)}))
    elif path == "/sleep":
        await asyncio.sleep(0.001)
        await _send(send, 200, b"text/plain", HELLO)
    else:
        await _send(send, 404, b"text/plain", b"Not Found")


# ---- WebSocket: echo, and a room broadcast the documented way (a set of connections, a Python loop) ----
rooms: dict[str, set[WebSocket]] = {}


async def _websocket(scope, receive, send):
    ws = WebSocket(scope, receive, send)
    path = scope["path"]
    if path == "/ws/echo":
        await ws.accept()
        async for m in ws.iter_text():
            await ws.send_text(m)
    elif path.startswith("/ws/room/") and len(path) > 9:
        await ws.accept()
        room = rooms.setdefault(path[9:], set())
        room.add(ws)
        try:
            async for m in ws.iter_text():
                for peer in list(room):
                    try:
                        await peer.send_text(m)
                    except Exception:  # that peer has gone
                        room.discard(peer)
        finally:
            room.discard(ws)
    else:
        await ws.close(code=1008)
