"""A body validated by a C++ model (covet::json_body on the example's POST /items): 200 with the handler's
struct written as JSON, or 422 with FastAPI's detail body; a refused body leaves the connection usable (the
refusal is an answer, not a protocol error), and malformed or hostile JSON never takes the server down."""
import json

import pytest

from covet_wire import RawConn, assert_standard_headers

JSON = [("Content-Type", "application/json")]
ITEM = {"name": "widget", "price": 9.99, "tags": ["red", "green", "blue"], "description": "x" * 900}


def post(conn, body, headers=JSON):
    return conn.request("POST", "/items", headers, body)


def test_a_valid_body_reaches_the_handler(server):
    with RawConn(server.port) as c:
        r = post(c, json.dumps(ITEM).encode())
        assert r.status == 200, r
        assert r.media_type == "application/json", r
        assert json.loads(r.body) == {"name": "widget", "tag_count": 3}, r
        assert_standard_headers(r)


@pytest.mark.parametrize("body, errors", [
    ({"name": "widget", "price": "cheap", "description": "x"},
     [("float_type", ["body", "price"], "cheap"), ("missing", ["body", "tags"], None)]),
    ({"name": 5, "price": 1, "tags": ["a", None], "description": ""},
     [("string_type", ["body", "name"], 5), ("string_type", ["body", "tags", 1], None)]),
    ([1, 2], [("model_attributes_type", ["body"], [1, 2])]),
])
def test_an_invalid_body_is_422_with_every_error_and_the_connection_stays(server, body, errors):
    with RawConn(server.port) as c:
        r = post(c, json.dumps(body).encode())
        assert r.status == 422, r
        detail = json.loads(r.body)["detail"]
        assert [(e["type"], e["loc"]) for e in detail] == [(t, loc) for t, loc, _ in errors], detail
        for e, (_, _, value) in zip(detail, errors):
            if value is not None:
                assert e["input"] == value, e
        assert all(e["msg"] for e in detail)
        # The same connection serves the next request.
        r = post(c, json.dumps(ITEM).encode())
        assert r.status == 200, r


def test_an_empty_body_is_missing(server):
    with RawConn(server.port) as c:
        r = post(c, b"")
        assert r.status == 422, r
        assert json.loads(r.body) == {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required",
                                                  "input": None}]}


@pytest.mark.parametrize("raw", [
    b"{", b'{"name":"a",}', b'{"name":"\xff","price":1,"tags":[]}', b"[" * 5000 + b"]" * 5000,
    b'{"name":"a","price":1,"tags":[]} trailing', b"nul", b'{"price":1e999999}',
])
def test_malformed_json_is_json_invalid(server, raw):
    with RawConn(server.port) as c:
        r = post(c, raw)
        assert r.status == 422, r
        [error] = json.loads(r.body)["detail"]
        assert error["type"] == "json_invalid" and error["loc"] == ["body"] and error["ctx"]["error"], error
        assert post(c, json.dumps(ITEM).encode()).status == 200


def test_a_form_body_is_not_json(server):
    with RawConn(server.port) as c:
        r = post(c, b"name=widget", [("Content-Type", "application/x-www-form-urlencoded")])
        assert r.status == 422, r
        assert json.loads(r.body)["detail"][0]["type"] == "model_attributes_type"
        r = post(c, json.dumps(ITEM).encode(), [("Content-Type", "application/vnd.api+json; charset=utf-8")])
        assert r.status == 200, r


def test_many_members_and_a_large_body(server):
    many = json.dumps({**ITEM, **{f"extra{i}": i for i in range(20000)}}).encode()
    large = json.dumps({**ITEM, "description": "d" * 400_000}).encode()
    with RawConn(server.port) as c:
        for body in (many, large, json.dumps(ITEM).encode()):
            r = post(c, body)
            assert r.status == 200 and json.loads(r.body)["tag_count"] == 3, r
