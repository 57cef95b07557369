"""The small names FastAPI users import, with FastAPI's behaviour: exception_handlers, concurrency helpers,
jsonable_encoder, the exception classes, status codes, Default."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import enum
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from covet import CovetPy, FastAPIError, HTTPException, Request, Response, status
from covet.concurrency import contextmanager_in_threadpool, iterate_in_threadpool, run_in_threadpool
from covet.datastructures import Default, DefaultPlaceholder
from covet.encoders import jsonable_encoder
from covet.exception_handlers import (
    http_exception_handler,
    is_body_allowed_for_status_code,
    request_validation_exception_handler,
)
from covet.exceptions import (
    CovetError,
    RequestValidationError,
    ResponseValidationError,
    ValidationException,
    WebSocketException,
    WebSocketRequestValidationError,
)


class TestExceptionHandlers:
    def test_the_defaults_called_from_the_app_s_own_handlers(self, make_client: Any) -> None:
        app = CovetPy()
        seen: list[str] = []

        @app.exception_handler(HTTPException)
        async def logged_http(request: Request, exc: HTTPException) -> Response:
            seen.append(f"http {exc.status_code}")
            return await http_exception_handler(request, exc)

        @app.exception_handler(RequestValidationError)
        async def logged_validation(request: Request, exc: RequestValidationError) -> Response:
            seen.append("validation")
            return await request_validation_exception_handler(request, exc)

        @app.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, int]:
            if item_id == 3:
                raise HTTPException(418, "teapot", headers={"X-Why": "tea"})
            if item_id == 4:
                raise HTTPException(204)
            return {"id": item_id}

        client = make_client(app)
        r = client.get("/items/3")
        assert (r.status_code, r.json(), r.headers["x-why"]) == (418, {"detail": "teapot"}, "tea")
        r = client.get("/items/4")
        assert (r.status_code, r.content) == (204, b"")
        r = client.get("/items/x")
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["path", "item_id"]
        assert seen == ["http 418", "http 204", "validation"]

    def test_body_allowed(self) -> None:
        assert [is_body_allowed_for_status_code(c) for c in (None, "default", 100, 200, 204, 205, 304, 404)] == \
            [True, True, False, True, False, False, False, True]


class TestConcurrency:
    def test_helpers(self) -> None:
        main = threading.get_ident()
        events: list[str] = []

        @contextlib.contextmanager
        def cm() -> Iterator[int]:
            events.append(f"enter in a thread: {threading.get_ident() != main}")
            try:
                yield 7
            except KeyError:
                events.append("suppressed")
            events.append("exit")

        async def go() -> Any:
            async with contextmanager_in_threadpool(cm()) as value:
                assert value == 7
            async with contextmanager_in_threadpool(cm()):
                raise KeyError("x")
            items = [item async for item in iterate_in_threadpool(iter([1, 2]))]
            return items, await run_in_threadpool(lambda a, b: a + b, 1, b=2)

        assert asyncio.run(go()) == ([1, 2], 3)
        assert events == ["enter in a thread: True", "exit", "enter in a thread: True", "suppressed", "exit"]


class Color(enum.Enum):
    RED = "red"


class Item(BaseModel):
    name: str
    price: decimal.Decimal = decimal.Decimal("1.50")
    tag: str | None = None
    when: datetime.datetime = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


class TestJsonableEncoder:
    def test_as_fastapi(self) -> None:
        # Expected values are FastAPI 0.165's jsonable_encoder outputs for the same inputs.
        assert jsonable_encoder(Item(name="a")) == {"name": "a", "price": "1.50", "tag": None,
                                                     "when": "2020-01-01T00:00:00Z"}
        assert jsonable_encoder(Item(name="a"), exclude_none=True, include={"name", "tag"}) == {"name": "a"}
        assert jsonable_encoder({"d": decimal.Decimal("2"), "f": decimal.Decimal("2.5"), "c": Color.RED,
                                 "t": datetime.timedelta(minutes=5), "s": {1}, "_sa_state": 1,
                                 "dt": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)}) == \
            {"d": 2, "f": 2.5, "c": "red", "t": 300.0, "s": [1], "dt": "2020-01-01T00:00:00+00:00"}
        assert jsonable_encoder({"a": None, "b": 1}, exclude_none=True) == {"b": 1}
        assert jsonable_encoder(datetime.date(2020, 1, 2), custom_encoder={datetime.date: lambda d: d.year}) == 2020


class TestExceptionsAndNames:
    def test_classes(self) -> None:
        assert FastAPIError is CovetError and issubclass(CovetError, RuntimeError)
        for cls in (RequestValidationError, ResponseValidationError, WebSocketRequestValidationError):
            assert issubclass(cls, ValidationException)
        exc = WebSocketException(1008)
        assert (exc.code, exc.reason, str(exc)) == (1008, "", "1008: ")
        assert repr(exc) == "WebSocketException(code=1008, reason='')"
        assert ResponseValidationError([{"loc": ("x",), "msg": "m"}], body={"x": 1}).body == {"x": 1}
        assert HTTPException(404, headers={"a": "b"}).headers == {"a": "b"}

    def test_status_has_starlette_s_names(self) -> None:
        assert (status.HTTP_306_RESERVED, status.WS_1008_POLICY_VIOLATION, status.WS_1015_TLS_HANDSHAKE) == \
            (306, 1008, 1015)
        assert status.HTTP_422_UNPROCESSABLE_CONTENT == status.HTTP_422_UNPROCESSABLE_ENTITY == 422

    def test_default(self) -> None:
        d = Default(3)
        assert isinstance(d, DefaultPlaceholder) and d.value == 3 and d == Default(3) and d != Default(4)
        assert not Default(None)


@pytest.mark.parametrize("module", ["covet.requests", "covet.responses", "covet.websockets", "covet.params",
                                    "covet.datastructures", "covet.dependencies", "covet.status"])
def test_fastapi_module_paths_exist(module: str) -> None:
    __import__(module)
