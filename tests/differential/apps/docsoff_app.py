"""Sample app: openapi_url=None turns off the schema and both docs pages (FastAPI's "conditional OpenAPI")."""

from __future__ import annotations

from _framework import FastAPI

app = FastAPI(openapi_url=None)


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict:
    return {"item_id": item_id}
