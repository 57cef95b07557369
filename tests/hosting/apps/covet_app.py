"""A CovetPy app as an ASGI app (`app(scope, receive, send)`), served by other ASGI servers: uvicorn, Hypercorn,
Granian (test_covet_under_asgi_servers.py)."""

from __future__ import annotations

from pydantic import BaseModel

from covet import CovetPy, HTTPException

app = CovetPy(title="CovetPy under other servers", version="0.1.0")


class Item(BaseModel):
    name: str
    price: float


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    if item_id == 404:
        raise HTTPException(status_code=404, detail="no such item")
    return {"item_id": item_id, "q": q}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item
