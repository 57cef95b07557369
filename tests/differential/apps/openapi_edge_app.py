"""Sample app (schema only): the less common shapes — list/dict response models, optional and aliased bodies,
recursive and aliased models, form models, several files, shared dependencies, route dependencies."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal, Optional

from _framework import Body, Depends, FastAPI, File, Form, Header, Query, UploadFile
from pydantic import BaseModel, Field

app = FastAPI()


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Aliased(BaseModel):
    full_name: str = Field(alias="fullName")
    when: datetime.datetime | None = None


class LoginForm(BaseModel):
    username: str
    password: str = Field(min_length=3)


async def verify(x_key: Annotated[str, Header()]) -> None:
    return None


async def shared(common: Annotated[int, Query()] = 1) -> int:
    return common


async def first(v: Annotated[int, Depends(shared)]) -> int:
    return v


@app.get("/nodes", response_model=list[Node])
async def nodes() -> list[dict]:
    return []


@app.get("/by-name", dependencies=[Depends(verify)])
async def by_name(a: Annotated[int, Depends(first)], b: Annotated[int, Depends(shared)]) -> dict[str, Node]:
    return {}


@app.post("/maybe")
async def maybe(node: Node | None = None) -> Aliased | None:
    return None


@app.post("/aliased")
async def aliased(data: Annotated[Aliased, Body(embed=True, alias="payload")]) -> Aliased:
    return data


@app.get("/types/{key}")
async def types(key: uuid.UUID, day: datetime.date, mode: Literal["x", "y"] = "x",
                tags: Annotated[list[str] | None, Query(alias="tag")] = None,
                raw: Annotated[str | None, Header(convert_underscores=False)] = None) -> dict:
    return {}


@app.post("/login-model")
async def login_model(form: Annotated[LoginForm, Form()]) -> dict:
    return {}


@app.post("/many-files")
async def many_files(files: list[UploadFile], maybe: UploadFile | None = None,
                     blobs: Annotated[list[bytes], File()] = []) -> dict:  # noqa: B006
    return {}


@app.put("/anything", status_code=202, response_description="Accepted for later", deprecated=True)
async def anything(payload: Annotated[dict, Body()], flag: Annotated[bool, Body()] = False) -> None:
    return None


@app.get("/optional-query")
async def optional_query(n: Optional[int] = None, f: float = 1.5, u: Annotated[str, Query(deprecated=True)] = "x"):
    return {}
