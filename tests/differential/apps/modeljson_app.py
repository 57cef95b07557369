"""Sample app: response_model bodies that covet writes natively (covet/_model_json.py): nested and recursive
models, aliases, filters on nested models and lists, exclude_unset/defaults/none, floats across magnitudes,
unicode and control characters, sets, tuples and dicts; and types pydantic keeps writing (datetimes, big ints)."""

from __future__ import annotations

from datetime import datetime, timezone

from _framework import FastAPI
from pydantic import BaseModel, Field

app = FastAPI()


class Leaf(BaseModel):
    x: int = 0
    label: str | None = Field(default=None, alias="Label")
    score: float = 1.0


class Node(BaseModel):
    name: str
    children: list[Node] = []
    leaf: Leaf | None = None
    weights: dict[str, float] = {}


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str] = []
    description: str | None = None
    internal: str = "x"


class ItemInDB(Item):
    secret: str


class Numbers(BaseModel):
    floats: list[float]
    ints: list[int]
    texts: list[str]
    codes: set[int] = set()
    pair: tuple[int, ...] = ()
    at: datetime | None = None


TREE = Node(name="root", leaf=Leaf(Label="top", x=2),
            children=[Node(name="a", leaf=Leaf(x=1)), Node(name="b", weights={"w": 0.5, "é": 1e-7},
                                                            children=[Node(name="c")])])
ITEMS = [ItemInDB(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"], internal="hidden", secret="s")
         for i in range(5)]
NUMBERS = Numbers(floats=[0.0, -0.0, 0.1, 1 / 3, 3.0, 1e15, 1e16, 1.5e300, 1e-5, 1e-6, 1e-7, 123456789.125, 5e-324],
                  ints=[0, -1, 2**63 - 1, -(2**63)], texts=["é 漢字 🎉", 'q"b\\', "\x00\x01\n\t\x1f\x7f", "\u2028"],
                  codes={3, 1, 2}, pair=(1, 2))


@app.get("/tree", response_model=Node)
def tree() -> Node:
    return TREE


@app.get("/tree-filtered", response_model=Node, response_model_by_alias=False,
         response_model_exclude={"children": {"__all__": {"leaf": True, "children": {"__all__": {"name"}}}}})
def tree_filtered() -> Node:
    return TREE


@app.get("/tree-unset", response_model=Node, response_model_exclude_unset=True)
def tree_unset() -> Node:
    return TREE


@app.get("/tree-defaults", response_model=Node, response_model_exclude_defaults=True,
         response_model_exclude_none=True)
def tree_defaults() -> Node:
    return TREE


@app.get("/items", response_model=list[Item], response_model_exclude_unset=True,
         response_model_exclude={"__all__": {"internal"}})
def items() -> list[ItemInDB]:
    return ITEMS


@app.get("/items-include", response_model=list[Item], response_model_include={"__all__": {"id", "tags"}})
def items_include() -> list[ItemInDB]:
    return ITEMS


@app.get("/items-dicts", response_model=list[Item])
def items_dicts() -> list[dict[str, object]]:
    return [{"id": 1, "name": "n", "price": 2, "secret": "s"}, {"id": "2", "name": "m", "price": "2.5"}]


@app.get("/items-invalid", response_model=list[Item])
def items_invalid() -> list[dict[str, object]]:
    return [{"id": 1, "name": "n"}]


@app.get("/numbers", response_model=Numbers)
def numbers() -> Numbers:
    return NUMBERS


@app.get("/numbers-fallback", response_model=Numbers)
def numbers_fallback() -> Numbers:
    return Numbers(floats=[1.0], ints=[2**70], texts=[], at=datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc))
