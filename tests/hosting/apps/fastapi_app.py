"""A FastAPI app: pydantic models in and out, path/query/header parameters, a dependency, an HTTPException,
an APIRouter with a prefix, and the generated OpenAPI schema with its Swagger UI page (/docs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, Field

app = FastAPI(title="Hosting test shop", version="1.2.3")


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class StoredItem(Item):
    id: int


ITEMS: dict[int, StoredItem] = {}


def pagination(limit: Annotated[int, Query(ge=1, le=100)] = 10, offset: int = 0) -> dict[str, int]:
    return {"limit": limit, "offset": offset}


router = APIRouter(prefix="/items", tags=["items"])


@router.post("/", response_model=StoredItem, status_code=201)
async def create_item(item: Item) -> StoredItem:
    stored = StoredItem(id=len(ITEMS) + 1, **item.model_dump())
    ITEMS[stored.id] = stored
    return stored


@router.get("/{item_id}", response_model=StoredItem)
async def read_item(item_id: int) -> StoredItem:
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found")
    return ITEMS[item_id]


@router.get("/")
def list_items(page: Annotated[dict[str, int], Depends(pagination)]) -> dict[str, object]:
    items = list(ITEMS.values())[page["offset"]:page["offset"] + page["limit"]]
    return {"page": page, "items": [i.model_dump() for i in items]}


app.include_router(router)


@app.get("/whoami")
async def whoami(user_agent: Annotated[str, Header()] = "",
                 x_token: Annotated[str | None, Header()] = None) -> dict[str, object]:
    return {"user_agent": user_agent, "x_token": x_token}
