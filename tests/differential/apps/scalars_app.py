"""Which parameters are simple values (query) and which the body, as FastAPI decides it: anything that is not a
model, mapping, sequence, dataclass or UploadFile is a scalar — pydantic's own types (HttpUrl ...) included."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Optional

from _framework import FastAPI
from pydantic import AnyUrl, HttpUrl

app = FastAPI()


@dataclasses.dataclass
class Point:
    x: int
    y: int


@app.get("/url")
def url(callback_url: Optional[HttpUrl] = None, mirror: Optional[AnyUrl] = None,
        limit: Decimal = Decimal("1.5")) -> dict:
    return {"callback_url": str(callback_url) if callback_url else None, "mirror": str(mirror) if mirror else None,
            "limit": str(limit)}


@app.post("/point")
def point(p: Point) -> dict:  # a dataclass: the body
    return {"sum": p.x + p.y}
