"""What handlers return and what goes on the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import http.client
import logging
import uuid
from typing import List, Optional

import pytest
from pydantic import BaseModel, Field

from covet import (
    Body,
    CovetPy,
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
    status,
)


class User(BaseModel):
    id: int
    name: str


class UserInDB(User):
    password: str


class Aliased(BaseModel):
    user_name: str = Field(alias="userName")


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = "red"


def _app() -> CovetPy:
    app = CovetPy()

    @app.get("/dict")
    async def d() -> dict:
        return {"a": 1, "ü": "é"}

    @app.get("/list")
    async def lst():  # type: ignore[no-untyped-def]
        return [1, "two", None, True]

    @app.get("/str")
    async def s():  # type: ignore[no-untyped-def]
        return "hello"

    @app.get("/none")
    async def n() -> None:
        return None

    @app.get("/model")
    async def model():  # type: ignore[no-untyped-def]
        return User(id=1, name="ann")

    @app.get("/alias")
    async def alias():  # type: ignore[no-untyped-def]
        return Aliased(userName="x")

    @app.get("/dataclass")
    async def dc():  # type: ignore[no-untyped-def]
        return Point(1, 2)

    @app.get("/mixed")
    async def mixed():  # type: ignore[no-untyped-def]
        return {
            "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
            "day": datetime.date(2024, 5, 6),
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "color": Color.RED,
            "price": decimal.Decimal("1.50"),
            "users": [User(id=2, name="bo")],
            "point": Point(3, 4),
            "set": {1},
            "big": 2**70,
            "nan": float("nan"),
            1: "int key",
        }

    @app.get("/typed-list")
    async def typed() -> List[User]:
        return [UserInDB(id=1, name="a", password="secret"), {"id": "2", "name": "b"}]  # type: ignore[list-item]

    @app.get("/response-model", response_model=User)
    async def response_model():  # type: ignore[no-untyped-def]
        return {"id": 3, "name": "c", "password": "hidden"}

    @app.get("/bad-result")
    async def bad_result() -> User:
        return {"id": "not a number"}  # type: ignore[return-value]

    @app.get("/unchecked", response_model=None)
    async def unchecked() -> User:
        return {"anything": True}  # type: ignore[return-value]

    @app.post("/created", status_code=status.HTTP_201_CREATED)
    async def created() -> dict:
        return {"ok": True}

    @app.get("/design-doc")
    async def design_doc() -> Response:
        return Response({"id": 1}, status=201)

    @app.get("/response-variants/{kind}")
    async def variants(kind: str) -> Response:
        if kind == "bytes":
            return Response(b"\x00\x01", media_type="application/octet-stream")
        if kind == "text":
            return PlainTextResponse("plain", headers={"X-Extra": "1"})
        if kind == "html":
            return HTMLResponse("<h1>hi</h1>", status_code=202)
        if kind == "json":
            return JSONResponse({"k": [1, 2]}, status_code=418)
        if kind == "redirect":
            return RedirectResponse("/dict?x=a b")
        if kind == "redirect301":
            return RedirectResponse("/dict", status_code=301)
        if kind == "empty":
            return Response(status_code=204)
        if kind == "model":
            return Response(User(id=9, name="z"))
        raise AssertionError(kind)

    @app.get("/cookie")
    async def cookie() -> Response:
        r = PlainTextResponse("c")
        r.set_cookie("session", "abc", max_age=60, httponly=True)
        r.delete_cookie("old")
        return r

    return app


@pytest.fixture
def client(make_client):  # type: ignore[no-untyped-def]
    return make_client(_app(), raise_server_exceptions=False)  # a test looks at a 500 response


class TestReturnValues:
    def test_dict_is_compact_utf8_json(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/dict")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.content == '{"a":1,"ü":"é"}'.encode()

    @pytest.mark.parametrize(("path", "body"), [("/list", b'[1,"two",null,true]'), ("/str", b'"hello"'),
                                                ("/none", b"null"), ("/model", b'{"id":1,"name":"ann"}'),
                                                ("/alias", b'{"userName":"x"}'), ("/dataclass", b'{"x":1,"y":2}')])
    def test_simple_values(self, client, path: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
        r = client.get(path)
        assert (r.status_code, r.content) == (200, body)

    def test_common_types_inside_containers(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/mixed").json() == {
            "when": "2024-05-06T07:08:09",
            "day": "2024-05-06",
            "id": "12345678-1234-5678-1234-567812345678",
            "color": "red",
            "price": 1.5,  # undeclared: FastAPI's jsonable_encoder (a float; an int without fractional digits)
            "users": [{"id": 2, "name": "bo"}],
            "point": {"x": 3, "y": 4},
            "set": [1],
            "big": 2**70,
            "nan": None,
            "1": "int key",
        }

    def test_return_annotation_validates_and_filters(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/typed-list").json() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        assert client.get("/response-model").json() == {"id": 3, "name": "c"}
        assert client.get("/unchecked").json() == {"anything": True}

    def test_result_not_matching_return_type_is_500_and_logged(self, client, caplog) -> None:  # type: ignore[no-untyped-def]
        with caplog.at_level(logging.ERROR, logger="covet"):
            r = client.get("/bad-result")
        assert (r.status_code, r.headers["content-type"], r.text) == (500, "text/plain; charset=utf-8", "Internal Server Error")
        assert any("bad_result" in rec.getMessage() for rec in caplog.records)

    def test_decorator_status_code(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/created")
        assert (r.status_code, r.json()) == (201, {"ok": True})


class TestResponseClasses:
    def test_design_doc_response_with_data(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/design-doc")
        assert (r.status_code, r.headers["content-type"], r.json()) == (201, "application/json", {"id": 1})

    def test_variants(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/response-variants/bytes")
        assert (r.content, r.headers["content-type"]) == (b"\x00\x01", "application/octet-stream")
        r = client.get("/response-variants/text")
        assert (r.text, r.headers["content-type"], r.headers["x-extra"]) == ("plain", "text/plain; charset=utf-8", "1")
        r = client.get("/response-variants/html")
        assert (r.status_code, r.text, r.headers["content-type"]) == (202, "<h1>hi</h1>", "text/html; charset=utf-8")
        r = client.get("/response-variants/json")
        assert (r.status_code, r.json()) == (418, {"k": [1, 2]})
        r = client.get("/response-variants/model")
        assert r.json() == {"id": 9, "name": "z"}

    def test_redirects(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/response-variants/redirect", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (307, "/dict?x=a%20b")
        assert client.get("/response-variants/redirect301", follow_redirects=False).status_code == 301

    def test_no_content(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/response-variants/empty")
        assert (r.status_code, r.content) == (204, b"")

    def test_cookies(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/cookie")
        lines = r.headers.getlist("set-cookie")
        assert any(line.startswith("session=abc") and "Max-Age=60" in line and "HttpOnly" in line for line in lines)
        assert any(line.startswith("old=") and "Max-Age=0" in line for line in lines)


class TestResponseObject:
    def test_status_alias(self) -> None:
        assert Response(b"", status=201).status_code == 201
        assert Response(b"", status_code=202).status == 202
        with pytest.raises(TypeError, match="disagree"):
            Response(b"", status=201, status_code=202)

    def test_str_and_bytes_stay_raw(self) -> None:
        r = Response("raw text", media_type="text/csv")
        assert r.body == b"raw text" and r.headers["content-type"] == "text/csv; charset=utf-8"
        assert "content-type" not in Response(b"x").headers

    def test_structured_content_is_json(self) -> None:
        r = Response([1, {"a": None}])
        assert r.body == b'[1,{"a":null}]' and r.headers["content-type"] == "application/json"

    def test_explicit_content_type_header_wins(self) -> None:
        r = PlainTextResponse("x", headers={"Content-Type": "text/x-custom"})
        assert r.headers.getlist("content-type") == ["text/x-custom"]


class TestStreaming:
    def test_async_and_sync_iterators(self, make_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/async")
        async def agen() -> StreamingResponse:
            async def parts():  # type: ignore[no-untyped-def]
                for i in range(3):
                    await asyncio.sleep(0)
                    yield f"part{i};"

            return StreamingResponse(parts(), media_type="text/plain")

        @app.get("/sync")
        def sgen() -> StreamingResponse:
            return StreamingResponse(iter([b"a", b"", b"bc"]), headers={"X-S": "1"})

        big = tmp_path / "big.bin"
        big.write_bytes(bytes(range(256)) * 2000)  # 512000 bytes: streamed in pieces
        small = tmp_path / "small.txt"
        small.write_text("small file")

        @app.get("/file/{name}")
        async def file(name: str) -> FileResponse:
            if name == "small":
                return FileResponse(small, filename="notes.txt")
            return FileResponse(big)

        client = make_client(app)
        r = client.get("/async")
        assert (r.text, r.headers["transfer-encoding"], r.headers["content-type"]) == (
            "part0;part1;part2;", "chunked", "text/plain; charset=utf-8")
        r = client.get("/sync")
        assert (r.content, r.headers["x-s"]) == (b"abc", "1")
        r = client.get("/file/small")
        assert r.text == "small file" and r.headers["content-type"].startswith("text/plain")
        assert r.headers["content-disposition"] == 'attachment; filename="notes.txt"'
        r = client.get("/file/big")
        assert r.content == big.read_bytes()

    def test_stream_that_fails_midway_is_cut_short(self, make_client, native, caplog) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/broken")
        async def broken() -> StreamingResponse:
            async def parts():  # type: ignore[no-untyped-def]
                yield b"first"
                raise RuntimeError("generator broke")

            return StreamingResponse(parts())

        @app.get("/ok")
        async def ok() -> str:
            return "still serving"

        client = make_client(app)
        with caplog.at_level(logging.ERROR, logger="covet"):
            with pytest.raises(http.client.IncompleteRead):  # the client can tell the body is incomplete
                client.get("/broken")
        assert any("generator broke" in str(rec.exc_info[1]) for rec in caplog.records if rec.exc_info)
        assert client.get("/ok").json() == "still serving"


class TestConstantRoutes:
    def test_constant_routes_never_enter_python(self, make_client, native) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()
        entered: list[str] = []
        calls: list[int] = []

        @app.middleware("http")
        async def spy(request, call_next):  # type: ignore[no-untyped-def]
            entered.append(request.url.path)
            return await call_next(request)

        app.add_constant_route("/health", {"ok": True})
        app.add_constant_route("/robots.txt", "User-agent: *\n", media_type="text/plain", headers={"X-C": "1"})
        app.add_constant_route("/teapot", JSONResponse({"tea": True}, status_code=418))

        @app.get("/version", constant=True)
        def version() -> dict:
            calls.append(1)
            return {"version": "0.1.0"}

        @app.get("/dynamic")
        async def dynamic() -> str:
            return "dyn"

        assert calls == [1]  # evaluated once, at registration
        client = make_client(app)
        r = client.get("/health")
        assert (r.status_code, r.headers["content-type"], r.content) == (200, "application/json", b'{"ok":true}')
        r = client.get("/robots.txt")
        assert (r.text, r.headers["content-type"], r.headers["x-c"]) == ("User-agent: *\n", "text/plain; charset=utf-8", "1")
        r = client.get("/teapot")
        assert (r.status_code, r.json()) == (418, {"tea": True})
        assert client.get("/version").json() == {"version": "0.1.0"}
        assert client.head("/health").status_code == 200
        assert client.get("/dynamic").json() == "dyn"
        assert entered == ["/dynamic"] and calls == [1]

    def test_constant_handler_must_be_constant(self) -> None:
        app = CovetPy()
        with pytest.raises(TypeError, match="no arguments"):

            @app.get("/x", constant=True)
            def x(a: int) -> int:
                return a

        with pytest.raises(TypeError, match="must not await"):

            @app.get("/y", constant=True)
            async def y() -> int:
                await asyncio.sleep(0)
                return 1

        with pytest.raises(TypeError, match="streaming"):
            app.add_constant_route("/z", StreamingResponse(iter([b"x"])))


def test_status_module() -> None:
    assert status.HTTP_404_NOT_FOUND == 404
    assert status.HTTP_422_UNPROCESSABLE_ENTITY == status.HTTP_422_UNPROCESSABLE_CONTENT == 422
    assert status.HTTP_307_TEMPORARY_REDIRECT == 307


def test_optional_response_type_is_allowed() -> None:
    app = CovetPy(openapi_url=None)  # no docs pages in app.routes (nor at /docs)

    @app.get("/maybe")
    async def maybe() -> Optional[User]:
        return None

    (route,) = app.routes
    assert route.response_adapter is not None


def test_no_content_status_on_the_decorator_sends_no_body(make_client) -> None:  # type: ignore[no-untyped-def]
    app = CovetPy()

    @app.delete("/items/{item_id}", status_code=204)
    async def delete_item(item_id: int) -> None:
        return None

    r = make_client(app).delete("/items/3")
    # FastAPI's: the JSONResponse's content type stays on the empty 204 (no Content-Length)
    assert (r.status_code, r.content, r.headers.get("content-type")) == (204, b"", "application/json")
    assert "content-length" not in r.headers


class Span(BaseModel):
    d: datetime.timedelta
    t: datetime.datetime


def test_timedelta_and_datetime_as_fastapi(make_client) -> None:  # type: ignore[no-untyped-def]
    """The bytes FastAPI 0.165.0 sends for the same handlers: for an undeclared result its jsonable_encoder (seconds
    as a float, ``isoformat()``); inside models and for a declared result type, even ``-> dict``, pydantic's
    serialisation (ISO 8601 durations, ``Z``)."""
    utc = datetime.timezone.utc
    app = CovetPy()

    @app.get("/dict")
    async def plain():  # type: ignore[no-untyped-def]
        return {"d": datetime.timedelta(minutes=5), "neg": datetime.timedelta(days=-1, seconds=3),
                "us": datetime.timedelta(seconds=300, microseconds=500), "zero": datetime.timedelta(0),
                "t": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc),
                "plus2": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
                "naive": datetime.datetime(2024, 1, 2, 3, 4, 5), "ttz": datetime.time(3, 4, 5, tzinfo=utc),
                "list": [datetime.timedelta(seconds=1)]}

    @app.get("/big")  # an int over 64 bits takes the other serializer: same output
    async def big():  # type: ignore[no-untyped-def]
        return {"d": datetime.timedelta(seconds=2), "n": 2**70, "t": datetime.datetime(2024, 1, 2, tzinfo=utc)}

    @app.get("/model")
    async def model():  # type: ignore[no-untyped-def]
        return Span(d=datetime.timedelta(minutes=5, microseconds=500), t=datetime.datetime(2024, 1, 2, 3, 4, 5,
                                                                                          tzinfo=utc))

    @app.get("/declared", response_model=Span)
    async def declared():  # type: ignore[no-untyped-def]
        return {"d": datetime.timedelta(minutes=5), "t": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc)}

    @app.get("/dict-declared")
    async def dict_declared() -> dict:
        return {"d": datetime.timedelta(minutes=5), "us": datetime.timedelta(seconds=300, microseconds=500),
                "t": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc), "list": [datetime.timedelta(seconds=1)]}

    client = make_client(app)
    assert client.get("/dict-declared").content == (
        b'{"d":"PT5M","us":"PT5M0.0005S","t":"2024-01-02T03:04:05Z","list":["PT1S"]}')
    assert client.get("/dict").content == (
        b'{"d":300.0,"neg":-86397.0,"us":300.0005,"zero":0.0,"t":"2024-01-02T03:04:05+00:00",'
        b'"plus2":"2024-01-02T03:04:05+02:00","naive":"2024-01-02T03:04:05","ttz":"03:04:05+00:00","list":[1.0]}')
    assert client.get("/big").content == b'{"d":2.0,"n":1180591620717411303424,"t":"2024-01-02T00:00:00+00:00"}'
    assert client.get("/model").content == b'{"d":"PT5M0.0005S","t":"2024-01-02T03:04:05Z"}'
    assert client.get("/declared").content == b'{"d":"PT5M","t":"2024-01-02T03:04:05Z"}'


def test_jsonable_timedelta_is_seconds() -> None:
    from covet.encoders import jsonable

    assert jsonable({"d": datetime.timedelta(minutes=5), "t": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)}) == {
        "d": 300.0, "t": "2024-01-02T00:00:00+00:00"}


def test_a_client_decimal_with_a_huge_exponent_is_echoed_at_once(make_client) -> None:  # type: ignore[no-untyped-def]
    """``?d=1e999999999`` into a Decimal parameter, returned as it is: FastAPI's decimal_encoder calls ``int()`` on
    it (a billion-digit integer: the worker spins for minutes and SIGTERM cannot stop it). An integral Decimal
    over Python's printable int digits comes out as pydantic's string; up to them, an int as FastAPI's."""
    app = CovetPy()

    @app.get("/echo")
    async def echo(d: decimal.Decimal):  # type: ignore[no-untyped-def]
        return {"d": d}

    @app.post("/echo")
    async def echo_body(d: decimal.Decimal = Body(embed=True)):  # type: ignore[no-untyped-def]
        return {"d": d}

    client = make_client(app)
    assert client.get("/echo", params={"d": "1e999999999"}).content == b'{"d":"1E+999999999"}'
    assert client.post("/echo", json={"d": "-1e999999999"}).content == b'{"d":"-1E+999999999"}'
    assert client.get("/echo", params={"d": "9" * 5000}).json() == {"d": "9" * 5000}
    assert client.get("/echo", params={"d": "1e4299"}).content == b'{"d":1' + b"0" * 4299 + b"}"
    assert client.get("/echo", params={"d": "12.50"}).content == b'{"d":12.5}'
    assert client.get("/echo", params={"d": "1e-999999999"}).content == b'{"d":0.0}'


def test_jsonable_decimal_bounds() -> None:
    from covet.encoders import jsonable

    assert jsonable([decimal.Decimal("1e999999999"), decimal.Decimal("7"), decimal.Decimal("0.5"),
                     decimal.Decimal("1e4300"), decimal.Decimal("1e4299")]) == [
        "1E+999999999", 7, 0.5, "1E+4300", 10**4299]


def test_headers_get_as_a_mapping() -> None:
    from covet.datastructures import Headers, MutableHeaders

    headers = Headers([("Content-Type", "text/plain"), ("X-A", "1"), ("x-a", "2")])
    assert (headers.get("content-type"), headers.get("X-A"), headers.get(key="x-a")) == ("text/plain", "1", "1")
    assert (headers.get("missing"), headers.get("missing", "d"), headers.get("missing", default=0)) == (None, "d", 0)
    mutable = MutableHeaders([("X-A", "1")])
    mutable["x-a"] = "3"  # get sees what was set since (the index is rebuilt)
    assert mutable.get("X-A") == "3"
