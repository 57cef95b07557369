"""Parameters from the signature: conversion, sources, and FastAPI's 422 shapes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Optional

import pytest
from pydantic import BaseModel, Field

from covet import Body, Cookie, CovetPy, Form, Header, Query, Request
from covet.params import build_plan

INT_MSG = "Input should be a valid integer, unable to parse string as an integer"


class Item(BaseModel):
    name: str
    price: float = Field(gt=0)
    tags: list[str] = []


@pytest.fixture
def client(make_client):  # type: ignore[no-untyped-def]
    app = CovetPy()

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, limit: int = 10, verbose: Optional[bool] = None) -> dict:
        return {"user_id": user_id, "limit": limit, "verbose": verbose}

    @app.get("/types/{f}/{u}/{b}")
    async def types(f: float, u: uuid.UUID, b: bool) -> dict:
        return {"f": f, "u": str(u), "u_type": type(u).__name__, "b": b}

    @app.get("/search")
    async def search(q: str, tags: list[str] = [], ids: Optional[list[int]] = None) -> dict:
        return {"q": q, "tags": tags, "ids": ids}

    @app.get("/constrained")
    async def constrained(page: int = Query(1, ge=1), size: Annotated[int, Query(le=100)] = 20,
                          sort: str = Query("asc", alias="order", pattern="^(asc|desc)$")) -> dict:
        return {"page": page, "size": size, "sort": sort}

    @app.get("/headers")
    async def headers(user_agent: str = Header(), x_token: Optional[str] = Header(None),
                      x_ids: list[int] = Header([])) -> dict:
        return {"ua": user_agent, "token": x_token, "ids": x_ids}

    @app.get("/cookies")
    async def cookies(session: str = Cookie(), theme: str = Cookie("light")) -> dict:
        return {"session": session, "theme": theme}

    @app.post("/items")
    async def create_item(item: Item, dry_run: bool = False) -> dict:
        return {"item": item.model_dump(), "dry_run": dry_run, "type": type(item).__name__}

    @app.post("/embedded")
    async def embedded(item: Item = Body(embed=True)) -> dict:
        return {"name": item.name}

    @app.post("/two-bodies")
    async def two(item: Item, note: dict) -> dict:
        return {"name": item.name, "note": note}

    @app.post("/optional-body")
    async def optional_body(item: Optional[Item] = None) -> dict:
        return {"item": item.name if item else None}

    @app.get("/with-request/{x}")
    async def with_request(x: int, request: Request, q: str = "") -> dict:
        return {"x": x, "q": q, "path": request.url.path, "same": request.query_params.get("q") == q}

    return make_client(app)


class TestPathAndQuery:
    def test_conversion(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/users/5").json() == {"user_id": 5, "limit": 10, "verbose": None}
        assert client.get("/users/5?limit=3&verbose=true").json() == {"user_id": 5, "limit": 3, "verbose": True}

    @pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("yes", True), ("on", True), ("TRUE", True),
                                                ("false", False), ("0", False), ("no", False), ("off", False)])
    def test_bool_query_parsing(self, client, raw: str, value: bool) -> None:  # type: ignore[no-untyped-def]
        assert client.get(f"/users/1?verbose={raw}").json()["verbose"] is value

    def test_bad_bool(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/users/1?verbose=maybe")
        assert r.status_code == 422
        assert r.json() == {"detail": [{"type": "bool_parsing", "loc": ["query", "verbose"],
                                        "msg": "Input should be a valid boolean, unable to interpret input",
                                        "input": "maybe"}]}

    def test_path_types(self, client) -> None:  # type: ignore[no-untyped-def]
        u = "12345678-1234-5678-1234-567812345678"
        assert client.get(f"/types/2.5/{u}/yes").json() == {"f": 2.5, "u": u, "u_type": "UUID", "b": True}
        # an unhyphenated UUID is not the native uuid shape; FastAPI still accepts it (via the fallback)
        assert client.get("/types/1/12345678123456781234567812345678/0").json()["u"] == u

    def test_all_errors_are_reported_together(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/types/x/not-a-uuid/maybe")
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert [(e["type"], e["loc"], e["input"]) for e in detail] == [
            ("float_parsing", ["path", "f"], "x"),
            ("uuid_parsing", ["path", "u"], "not-a-uuid"),
            ("bool_parsing", ["path", "b"], "maybe"),
        ]

    def test_missing_required_query(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/search")
        assert r.status_code == 422
        assert r.json() == {"detail": [{"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": None}]}

    def test_bad_int_query(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/users/5?limit=ten")
        assert r.json() == {"detail": [{"type": "int_parsing", "loc": ["query", "limit"], "msg": INT_MSG, "input": "ten"}]}

    def test_repeated_keys_make_lists(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/search?q=a&tags=x&tags=y&ids=1&ids=2")
        assert r.json() == {"q": "a", "tags": ["x", "y"], "ids": [1, 2]}
        r = client.get("/search?q=a&ids=1&ids=two")
        assert r.status_code == 422
        assert r.json()["detail"] == [{"type": "int_parsing", "loc": ["query", "ids", 1], "msg": INT_MSG, "input": "two"}]

    def test_last_repeated_key_wins_for_scalars(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/users/1?limit=1&limit=2").json()["limit"] == 2

    def test_percent_encoded_query(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/search", params={"q": "a b&c=é"}).json()["q"] == "a b&c=é"
        assert client.get("/search?q=a+b").json()["q"] == "a b"

    def test_constraints_and_alias(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/constrained?page=2&size=5&order=desc").json() == {"page": 2, "size": 5, "sort": "desc"}
        r = client.get("/constrained?page=0&size=500&order=up")
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert [(e["type"], e["loc"], e.get("ctx")) for e in detail] == [
            ("greater_than_equal", ["query", "page"], {"ge": 1}),
            ("less_than_equal", ["query", "size"], {"le": 100}),
            ("string_pattern_mismatch", ["query", "order"], {"pattern": "^(asc|desc)$"}),
        ]
        assert detail[0]["msg"] == "Input should be greater than or equal to 1"

    def test_request_alongside_params(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/with-request/3?q=hi").json() == {"x": 3, "q": "hi", "path": "/with-request/3", "same": True}


class TestHeadersAndCookies:
    def test_headers(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/headers", headers={"User-Agent": "pytest", "X-Token": "t", "X-Ids": "7"})
        assert r.json() == {"ua": "pytest", "token": "t", "ids": [7]}

    def test_missing_header(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.request("GET", "/headers", headers={"User-Agent": ""})
        # an empty header value still counts as present
        assert r.status_code == 200 and r.json()["ua"] == ""

    def test_cookies(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.get("/cookies", cookies={"session": "abc", "theme": "dark"})
        assert r.json() == {"session": "abc", "theme": "dark"}
        r = client.get("/cookies")
        assert r.status_code == 422
        assert r.json()["detail"] == [{"type": "missing", "loc": ["cookie", "session"], "msg": "Field required", "input": None}]


class TestBody:
    def test_model_from_json_body(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/items?dry_run=1", json={"name": "pen", "price": 1.5})
        assert r.json() == {"item": {"name": "pen", "price": 1.5, "tags": []}, "dry_run": True, "type": "Item"}

    def test_model_validation_errors(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/items", json={"price": -1, "tags": "x"})
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert [(e["type"], e["loc"]) for e in detail] == [
            ("missing", ["body", "name"]),
            ("greater_than", ["body", "price"]),
            ("list_type", ["body", "tags"]),
        ]
        assert detail[1]["ctx"] == {"gt": 0.0} and detail[1]["input"] == -1

    def test_invalid_json(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/items", content=b'{"name": "pen",', headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        assert r.json() == {"detail": [{"type": "json_invalid", "loc": ["body", 15], "msg": "JSON decode error",
                                        "input": {}, "ctx": {"error": "Expecting property name enclosed in double quotes"}}]}

    def test_missing_body(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/items")
        assert r.status_code == 422
        assert r.json() == {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]}
        assert client.post("/optional-body").json() == {"item": None}

    def test_non_json_content_type_is_not_parsed(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/items", content=b'{"name": "pen", "price": 1}', headers={"Content-Type": "text/plain"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body"]

    def test_json_subtypes_are_json(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/items", content=b'{"name": "pen", "price": 1}',
                        headers={"Content-Type": "application/merge-patch+json; charset=utf-8"})
        assert r.status_code == 200

    def test_embedded_body(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/embedded", json={"item": {"name": "a", "price": 1}}).json() == {"name": "a"}
        r = client.post("/embedded", json={"name": "a", "price": 1})
        assert r.json()["detail"] == [{"type": "missing", "loc": ["body", "item"], "msg": "Field required", "input": None}]

    def test_several_body_params_are_embedded(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/two-bodies", json={"item": {"name": "a", "price": 1}, "note": {"k": 1}})
        assert r.json() == {"name": "a", "note": {"k": 1}}
        r = client.post("/two-bodies", json={"item": {"name": "a", "price": 0}})
        assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
            ("greater_than", ["body", "item", "price"]),
            ("missing", ["body", "note"]),
        ]


class TestPlan:
    """The signature is read once, at registration, into a plan."""

    def test_sources(self) -> None:
        async def h(a: int, request: Request, q: Optional[str] = None, item: Optional[Item] = None,
                    h: str = Header("x"), c: int = Cookie(0)) -> None: ...

        plan = build_plan(h, ["a"])
        assert [(s.name, s.location, s.key) for s in plan.specs] == [
            ("a", "path", "a"), ("q", "query", "q"), ("item", "body", "item"), ("h", "header", "h"), ("c", "cookie", "c"),
        ]
        assert plan.request_arg == "request" and plan.needs_request

    def test_path_and_query_only_plans_do_not_need_a_request_object(self) -> None:
        async def h(a: int, limit: int = 10) -> None: ...

        assert not build_plan(h, ["a"]).needs_request

    def test_a_json_body_is_read_from_the_engines_request_and_a_form_through_a_request(self) -> None:
        async def h(a: int, item: Item, limit: int = 10) -> None: ...

        plan = build_plan(h, ["a"])
        assert plan.json_in_tree and not plan.needs_request  # native.body and its Content-Type (params/plan.py)

        class Native:  # what collect reads of the engine's request for these parameters
            params = {"a": "7"}
            query_string = "limit=3"
            body = b'{"name": "x", "price": 2}'

            @staticmethod
            def header(name: str) -> Optional[str]:
                return "application/json" if name == "content-type" else None

        kwargs = plan.extract(Native(), None)
        assert (kwargs["a"], kwargs["limit"], kwargs["item"].name) == (7, 3, "x")

        async def f(name: str = Form()) -> None: ...

        assert build_plan(f, []).needs_request

    def test_unsupported_query_type_is_refused_at_registration(self) -> None:
        async def h(q: Any = Query()) -> None: ...  # Any is fine

        build_plan(h, [])

        async def bad(q: dict = Query()) -> None: ...

        with pytest.raises(TypeError, match="cannot come from the query"):
            build_plan(bad, [])

    def test_unknown_marker_option(self) -> None:
        with pytest.raises(TypeError, match="unknown"):
            Query(1, gte=3)
