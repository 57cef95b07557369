"""Sample app: parameter features of issue 14 — pydantic models as query/header/cookie/form parameter groups
(with extra="forbid"), pydantic Annotated metadata (validators, Field, StringConstraints) on every kind of
parameter, Body(embed=True) and several body parameters, strict_content_type, type aliases."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WrapValidator,
)
from typing_extensions import TypeAliasType

from _framework import Body, Cookie, FastAPI, Form, Header, Path, Query

app = FastAPI()


class FilterParams(BaseModel):
    limit: int = Field(100, gt=0, le=100)
    offset: int = Field(0, ge=0)
    order_by: Literal["created_at", "updated_at"] = "created_at"
    tags: list[str] = []


class StrictFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = 10
    q: str | None = None


class CommonHeaders(BaseModel):
    save_data: bool = False
    if_modified_since: str | None = None
    x_tag: list[str] = []


class StrictHeaders(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str
    x_token: str | None = None


class RawHeaders(BaseModel):
    x_under_score: str | None = None
    user_agent: str | None = None


class Cookies(BaseModel):
    session_id: str
    tracker: str | None = None


class StrictCookies(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str


class Item(BaseModel):
    name: str
    price: float


class User(BaseModel):
    username: str


def check_id(value: str | None) -> str | None:
    if value is not None and not value.startswith(("isbn-", "imdb-")):
        raise ValueError('Invalid ID format, it must start with "isbn-" or "imdb-"')
    return value


def upper(value: str) -> str:
    return value.upper()


def strip_prefix(value: object) -> object:
    return value.removeprefix("n:") if isinstance(value, str) else value


def wrap_default(value: object, handler) -> object:  # noqa: ANN001
    try:
        return handler(value)
    except ValueError:
        return -1


def parse_pair(value: object) -> tuple[str, str]:
    if not isinstance(value, str) or "," not in value:
        raise ValueError("expected two values separated by a comma")
    a, b = value.split(",", 1)
    return a, b


ShortName = TypeAliasType("ShortName", Annotated[str, StringConstraints(min_length=2, max_length=5)])
LimitQuery = TypeAliasType("LimitQuery", Annotated[int, Query(ge=1, le=10)])


@app.get("/items")
async def list_items(filters: Annotated[FilterParams, Query()]) -> dict:
    return filters.model_dump()


@app.get("/strict-items")
async def strict_items(filters: Annotated[StrictFilter, Query()]) -> dict:
    return filters.model_dump()


@app.get("/headers")
async def read_headers(headers: Annotated[CommonHeaders, Header()]) -> dict:
    return headers.model_dump()


@app.get("/strict-headers")
async def read_strict_headers(headers: Annotated[StrictHeaders, Header()]) -> dict:
    return headers.model_dump()


@app.get("/raw-headers")
async def read_raw_headers(headers: Annotated[RawHeaders, Header(convert_underscores=False)]) -> dict:
    return headers.model_dump()


@app.get("/optional-filters")
async def optional_filters(filters: Annotated[StrictFilter | None, Query()] = None) -> dict:
    return {"filters": None if filters is None else filters.model_dump()}


@app.get("/cookies")
async def read_cookies(cookies: Annotated[Cookies, Cookie()]) -> dict:
    return cookies.model_dump()


@app.get("/strict-cookies")
async def read_strict_cookies(cookies: Annotated[StrictCookies, Cookie()]) -> dict:
    return cookies.model_dump()


@app.post("/login")
async def login(data: Annotated[Login, Form()]) -> dict:
    return data.model_dump()


@app.get("/after")
async def after(id: Annotated[str | None, AfterValidator(check_id)] = None) -> dict:  # noqa: A002
    return {"id": id}


@app.get("/after-query")
async def after_query(q: Annotated[str, Query(min_length=2), AfterValidator(upper)]) -> dict:
    return {"q": q}


@app.get("/before")
async def before(n: Annotated[int, BeforeValidator(strip_prefix)]) -> dict:
    return {"n": n}


@app.get("/wrap")
async def wrap(n: Annotated[int, WrapValidator(wrap_default)] = 0) -> dict:
    return {"n": n}


@app.get("/plain")
async def plain(pair: Annotated[tuple[str, str], PlainValidator(parse_pair), Query()]) -> dict:
    return {"pair": list(pair)}


@app.get("/field")
async def field(n: Annotated[int, Field(gt=5)], s: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")] = "x") -> dict:
    return {"n": n, "s": s}


@app.get("/alias")
async def alias(name: ShortName, limit: LimitQuery = 5) -> dict:
    return {"name": name, "limit": limit}


@app.get("/paths/{code}")
async def path_validated(code: Annotated[str, Path(), AfterValidator(check_id)]) -> dict:
    return {"code": code}


@app.get("/header-validated")
async def header_validated(x_code: Annotated[str, Header(), AfterValidator(check_id)]) -> dict:
    return {"x_code": x_code}


@app.get("/cookie-validated")
async def cookie_validated(code: Annotated[str, Cookie(), AfterValidator(check_id)]) -> dict:
    return {"code": code}


@app.post("/form-validated")
async def form_validated(code: Annotated[str, Form(), AfterValidator(check_id)]) -> dict:
    return {"code": code}


@app.post("/embed")
async def embed(item: Annotated[Item, Body(embed=True)]) -> dict:
    return {"item": item.model_dump()}


@app.post("/multi")
async def multi(item: Item, user: User, importance: Annotated[int, Body(gt=0)]) -> dict:
    return {"item": item.model_dump(), "user": user.model_dump(), "importance": importance}


@app.post("/body-validated")
async def body_validated(item: Annotated[Item, AfterValidator(lambda i: i.model_copy(update={"name": i.name.upper()}))]
                         ) -> dict:
    return item.model_dump()


@app.post("/model")
async def model(item: Item) -> dict:
    return item.model_dump()


@app.get("/keywords")
async def keywords(
    *,
    item_query: Annotated[str | None, Query(validation_alias="item-query")] = None,
    tags: Annotated[list[str], Query(default_factory=lambda: ["default"])],
    code: Annotated[str | None, Query(regex="^[a-z]+$")] = None,
    price: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    x_req: Annotated[str | None, Header(validation_alias="X-Request")] = None,
) -> dict:
    return {"item_query": item_query, "tags": tags, "code": code, "price": price, "x_req": x_req}
