from typing import Optional

from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    price: float = Field(gt=0)
    tags: list[str] = []


class Item(ItemIn):
    id: int
    owner: str


class User(BaseModel):
    name: str
    admin: bool = False


class Page(BaseModel):
    items: list[Item]
    total: int
    next_offset: Optional[int] = None
