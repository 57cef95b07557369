"""Sample app: the small names FastAPI users import — the default exception handlers called from the app's own
(fastapi.exception_handlers), jsonable_encoder, status constants, HTTPException with headers and no body."""

from __future__ import annotations

import datetime
import decimal
import enum
from typing import Any, Optional

from _framework import (
    FastAPI,
    HTTPException,
    JSONResponse,
    Request,
    RequestValidationError,
    http_exception_handler,
    jsonable_encoder,
    request_validation_exception_handler,
    status,
)
from pydantic import BaseModel

app = FastAPI()


@app.exception_handler(HTTPException)
async def logged_http_exception(request: Request, exc: HTTPException) -> Any:
    response = await http_exception_handler(request, exc)
    response.headers["X-Handled-By"] = "app"
    return response


@app.exception_handler(RequestValidationError)
async def logged_validation(request: Request, exc: RequestValidationError) -> Any:
    response = await request_validation_exception_handler(request, exc)
    response.headers["X-Handled-By"] = "app"
    return response


class Color(enum.Enum):
    RED = "red"


class Item(BaseModel):
    name: str
    price: decimal.Decimal = decimal.Decimal("1.50")
    tag: Optional[str] = None
    when: datetime.datetime = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)


@app.get("/teapot")
async def teapot() -> None:
    raise HTTPException(status_code=status.HTTP_418_IM_A_TEAPOT, detail="short and stout",
                        headers={"X-Tea": "earl grey"})


@app.get("/no-content")
async def no_content() -> None:
    raise HTTPException(status_code=status.HTTP_304_NOT_MODIFIED)


@app.get("/typed/{number}")
async def typed(number: int) -> dict:
    return {"number": number}


@app.get("/encoded")
async def encoded() -> JSONResponse:
    data = {
        "item": Item(name="a"),
        "filtered": jsonable_encoder(Item(name="b"), exclude_none=True, include={"name", "tag"}),
        "decimals": [decimal.Decimal("2"), decimal.Decimal("2.5")],
        "color": Color.RED,
        "delta": datetime.timedelta(minutes=5),
        "when": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
        "tags": ("x", "y"),
    }
    return JSONResponse(content=jsonable_encoder(data), status_code=status.HTTP_202_ACCEPTED)
