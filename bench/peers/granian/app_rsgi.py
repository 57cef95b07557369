"""Granian RSGI peer: a bare RSGI app (Granian's documented fastest interface), pydantic for the body; WebSocket
through RSGI's own protocol (``proto.accept()`` -> transport ``receive``/``send_str``)."""
import asyncio
from urllib.parse import parse_qs

import orjson
from granian.rsgi import WebsocketMessageType
from pydantic import BaseModel, ValidationError


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


TEXT = [("content-type", "text/plain")]
JSON = [("content-type", "application/json")]
HELLO = "Hello, World!"


async def app(scope, proto):
    if scope.proto == "ws":
        await _websocket(scope, proto)
        return
    path = scope.path
    if path == "/plaintext":
        proto.response_str(200, TEXT, HELLO)
    elif path == "/json":
        proto.response_bytes(200, JSON, orjson.dumps({"message": HELLO}))
    elif path.startswith("/users/"):
        try:
            uid = int(path[7:])
        except ValueError:
            proto.response_str(404, TEXT, "Not Found")
            return
        q = parse_qs(scope.query_string).get("q", [None])[0]
        proto.response_bytes(200, JSON, orjson.dumps({"id": uid, "q": q}))
    elif path == "/items" and scope.method == "POST":
        try:
            item = Item.model_validate_json(await proto())
        except ValidationError as exc:
            proto.response_bytes(422, JSON, orjson.dumps({"detail": exc.errors(include_url=False)}))
            return
        proto.response_bytes(200, JSON, orjson.dumps({"name": item.name, "tag_count": len(item.tags)}))
    elif path == "/sleep":
        await asyncio.sleep(0.001)
        proto.response_str(200, TEXT, HELLO)
    else:
        proto.response_str(404, TEXT, "Not Found")


# ---- WebSocket: echo, and a room broadcast as a Python loop over the room's transports ----
rooms: dict[str, set] = {}


async def _websocket(scope, proto):
    path = scope.path
    if path != "/ws/echo" and not (path.startswith("/ws/room/") and len(path) > 9):
        proto.close(1008)
        return
    transport = await proto.accept()
    room = None
    if path != "/ws/echo":
        room = rooms.setdefault(path[9:], set())
        room.add(transport)
    try:
        while True:
            msg = await transport.receive()
            if msg.kind == WebsocketMessageType.close:
                break
            if room is None:
                if msg.kind == WebsocketMessageType.string:
                    await transport.send_str(msg.data)
                else:
                    await transport.send_bytes(msg.data)
                continue
            for peer in list(room):
                try:
                    await peer.send_str(msg.data) if msg.kind == WebsocketMessageType.string else \
                        await peer.send_bytes(msg.data)
                except Exception:  # that peer has gone
                    room.discard(peer)
    except Exception:  # the client went away without a close frame
        pass
    finally:
        if room is not None:
            room.discard(transport)
        proto.close(1000)
