"""Sample app: what shapes the OpenAPI schema — docstrings, examples, deprecated and aliased parameters, enums,
nested models, separate input/output schemas (Decimal), responses=, openapi_extra, tags metadata, a form, a file
upload, several body parameters, Body(embed=True), hidden routes and parameters, dependencies' parameters."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated, Literal

from _framework import Body, Cookie, Depends, FastAPI, File, Form, Header, Path, Query, UploadFile
from pydantic import BaseModel, Field

tags_metadata = [
    {"name": "items", "description": "Operations with items. The **login** logic is also here."},
    {"name": "users", "description": "Manage users.",
     "externalDocs": {"description": "Items external docs", "url": "https://example.com"}},
]

app = FastAPI(
    title="Schema Shop",
    version="3.1.4",
    summary="A shop to exercise the schema",
    description="The shop's API. It has **items** and users.",
    terms_of_service="http://example.com/terms/",
    contact={"name": "Deadpoolio", "url": "http://x-force.example.com", "email": "dp@x-force.example.com"},
    license_info={"name": "Apache 2.0", "identifier": "Apache-2.0"},
    openapi_tags=tags_metadata,
    servers=[{"url": "https://stag.example.com", "description": "Staging"}],
)


class Color(str, Enum):
    red = "red"
    green = "green"


class Size(int, Enum):
    small = 1
    large = 2


class Image(BaseModel):
    url: str = Field(examples=["http://example.com/a.png"])
    name: str


class Item(BaseModel):
    """An item of the shop.

    \f
    Internal notes, cut from the schema."""

    name: str = Field(min_length=1, max_length=30, description="The item's name")
    price: Decimal = Field(gt=0)  # validation accepts numbers and strings, serialization writes a string
    color: Color = Color.red
    tags: list[str] = []
    images: list[Image] | None = None


class ItemOut(BaseModel):
    id: int
    item: Item
    size: Size | None = None


class Message(BaseModel):
    message: str


class User(BaseModel):
    username: str
    full_name: str | None = None


async def pagination(skip: int = 0, limit: Annotated[int, Query(le=100, description="Page size")] = 10) -> dict:
    return {"skip": skip, "limit": limit}


async def token_header(x_token: Annotated[str, Header(description="The token")] = "t") -> str:
    return x_token


@app.get("/items/", tags=["items"])
async def read_items(
    page: Annotated[dict, Depends(pagination)],
    q: Annotated[str | None, Query(alias="item-query", min_length=3, max_length=50, pattern="^[a-z]+$",
                                   title="Query string", description="Search the items",
                                   examples=["abc"], deprecated=True)] = None,
    color: Color | None = None,
    ids: Annotated[list[int], Query()] = [],  # noqa: B006 - FastAPI's way of a list query parameter
    secret: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> dict:
    """Read the items.

    With **Markdown** in the description.
    \f
    Not in the schema."""
    return {"page": page, "q": q, "color": color, "ids": ids, "secret": secret}


@app.get("/items/{item_id}", tags=["items"], response_model=ItemOut,
         responses={404: {"model": Message, "description": "The item was not found"},
                    "4XX": {"description": "Some client error"}})
async def read_item(
    item_id: Annotated[int, Path(title="The ID of the item", ge=1, le=1000)],
    size: Annotated[Size, Query(openapi_examples={"small": {"summary": "Small", "value": 1},
                                                  "large": {"summary": "Large", "value": 2}})] = Size.small,
    user_agent: Annotated[str | None, Header()] = None,
    session: Annotated[str | None, Cookie()] = None,
) -> dict:
    return {"id": item_id, "item": {"name": "x", "price": "1.5"}, "size": size}


@app.post("/items/", tags=["items"], status_code=201, response_description="The created item",
          summary="Create an item")
async def create_item(item: Item) -> Item:
    return item


@app.put("/items/{item_id}", tags=["items"], operation_id="replace_the_item")
async def update_item(item_id: int, item: Item, user: User,
                      importance: Annotated[int, Body(gt=0, examples=[5])],
                      token: Annotated[str, Depends(token_header)]) -> dict:
    return {"item_id": item_id, "item": item, "user": user, "importance": importance, "token": token}


@app.patch("/items/{item_id}/name", tags=["items"])
async def rename(item_id: int, name: Annotated[str, Body(embed=True, max_length=10)]) -> dict:
    return {"item_id": item_id, "name": name}


@app.post("/users/", tags=["users"], deprecated=True,
          openapi_extra={"x-aperture-labs-portal": "blue", "requestBody": {"description": "A user"}})
async def create_user(user: Annotated[User, Body(openapi_examples={
        "normal": {"summary": "A normal user", "value": {"username": "foo", "full_name": "Foo"}}})]) -> User:
    return user


@app.post("/login", tags=["users"])
async def login(username: Annotated[str, Form()], password: Annotated[str, Form(min_length=3)],
                remember: Annotated[bool, Form()] = False) -> dict:
    return {"username": username, "remember": remember}


@app.post("/files/", tags=["files"])
async def upload(file: UploadFile, data: Annotated[bytes, File(description="Raw bytes")],
                 note: Annotated[str, Form()] = "") -> dict:
    return {"filename": file.filename, "size": len(data), "note": note}


@app.delete("/items/{item_id}", tags=["items"], status_code=204, responses={"default": {"description": "Oops"}})
async def delete_item(item_id: int) -> None:
    return None


@app.get("/hidden", include_in_schema=False)
async def hidden() -> dict:
    return {"hidden": True}


@app.get("/mode")
async def mode(kind: Literal["a", "b"] = "a", ratio: Annotated[float, Query(gt=0, lt=1)] = 0.5) -> Message:
    return Message(message=f"{kind} {ratio}")


@app.get("/plain")
def plain():  # type: ignore[no-untyped-def]  # no annotation: an empty response schema
    return {"plain": True}
