"""Granian RSGI peer: a bare RSGI app (Granian's documented fastest interface), pydantic for the body."""
import asyncio
from urllib.parse import parse_qs

import orjson
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
