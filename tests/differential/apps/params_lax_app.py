"""Sample app: strict_content_type=False — a JSON body without a Content-Type is parsed as JSON."""

from __future__ import annotations

from pydantic import BaseModel

from _framework import FastAPI

app = FastAPI(strict_content_type=False)


class Item(BaseModel):
    name: str
    price: float


@app.post("/model")
async def model(item: Item) -> dict:
    return item.model_dump()
