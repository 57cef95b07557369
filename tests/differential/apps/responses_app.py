"""Sample app: response classes, status codes, headers, cookies and return values of several types."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from _framework import FastAPI, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel

app = FastAPI()


class Point(BaseModel):
    x: int
    y: int
    label: str | None = None


@app.get("/dict")
async def a_dict() -> dict:
    return {"b": 1, "a": [1, 2.5, None, True, "x"], "nested": {"k": "v"}}


@app.get("/list")
async def a_list() -> list:
    return [3, 2, 1]


@app.get("/string")
async def a_string() -> str:
    return "hello"


@app.get("/none")
async def a_none() -> None:
    return None


@app.get("/model")
async def a_model() -> Point:
    return Point(x=1, y=2)


@app.get("/models")
def models() -> list[Point]:
    return [Point(x=1, y=2, label="a"), Point(x=3, y=4)]


@app.get("/json")
async def json_response() -> JSONResponse:
    return JSONResponse({"created": True}, status_code=201, headers={"X-Custom": "yes"})


@app.get("/text")
async def text() -> PlainTextResponse:
    return PlainTextResponse("plain text", headers={"X-Text": "1"})


@app.get("/html")
async def html() -> HTMLResponse:
    return HTMLResponse("<h1>Hi</h1>")


@app.get("/raw")
async def raw() -> Response:
    return Response(content=b"<data/>", media_type="application/xml", status_code=203)


@app.get("/redirect")
async def redirect() -> RedirectResponse:
    return RedirectResponse("/dict")


@app.get("/redirect-302")
async def redirect_302() -> RedirectResponse:
    return RedirectResponse(url="https://example.com/x?y=1", status_code=302)


@app.get("/set-cookie")
async def set_cookie() -> JSONResponse:
    response = JSONResponse({"ok": True})
    response.set_cookie(key="session", value="abc123")
    response.set_cookie(key="pref", value="dark", max_age=3600, httponly=True, samesite="strict", path="/app")
    return response


@app.get("/delete-cookie")
async def delete_cookie() -> JSONResponse:
    response = JSONResponse({"deleted": True})
    response.delete_cookie("session")
    return response


@app.post("/created", status_code=201)
async def created() -> dict:
    return {"status": "created"}


@app.get("/unicode")
async def unicode() -> dict:
    return {"text": "héllo wörld ☃", "emoji": "🐍"}


@app.get("/timedelta")
async def a_timedelta() -> dict:
    return {"duration": timedelta(minutes=5)}


@app.get("/datetime-utc")
async def a_datetime_utc() -> dict:
    return {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)}


@app.get("/datetime-naive")
async def a_datetime_naive() -> dict:
    return {"at": datetime(2024, 1, 2, 3, 4, 5, 123456), "day": date(2024, 1, 2)}


@app.get("/uuid-value")
async def a_uuid() -> dict:
    return {"id": UUID("12345678-1234-5678-1234-567812345678")}


@app.get("/decimal")
async def a_decimal() -> dict:
    return {"amount": Decimal("1.10")}


@app.get("/decimal-unannotated")
async def a_decimal_unannotated():  # no return annotation: FastAPI's jsonable_encoder gives int or float
    return {"amount": Decimal("1.10"), "whole": Decimal("3"), "list": [Decimal("0.5"), Decimal("-2")]}


@app.get("/timedelta-unannotated")
async def a_timedelta_unannotated():  # no return annotation: FastAPI uses jsonable_encoder
    return {"duration": timedelta(minutes=5)}


@app.get("/datetime-utc-unannotated")
async def a_datetime_utc_unannotated():
    return {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)}
