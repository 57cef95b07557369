"""Cases of openapi_app and openapi_edge_app (apps whose schemas exercise the OpenAPI features; their
``<app>/openapi`` cases, the schemas themselves, are added by cases.py): the routes answer as under FastAPI too."""

from __future__ import annotations

from cases import _BOUNDARY, _multipart, case

_ITEM = {"name": "Hammer", "price": "9.99", "color": "green", "tags": ["tool"],
         "images": [{"url": "http://example.com/h.png", "name": "h"}]}

CASES = [
    case("openapi/items-query", "GET", "/items/?item-query=abc&ids=1&ids=2&limit=5&color=red"),
    case("openapi/items-alias-bad", "GET", "/items/?item-query=ab"),
    case("openapi/items-limit-bad", "GET", "/items/?limit=101"),
    case("openapi/item", "GET", "/items/7?size=2", headers={"User-Agent": "diff", "Cookie": "session=s1"}),
    case("openapi/item-bad-id", "GET", "/items/0"),
    case("openapi/item-bad-size", "GET", "/items/7?size=3"),
    case("openapi/create", "POST", "/items/", json_body=_ITEM),
    case("openapi/create-bad-price", "POST", "/items/", json_body={**_ITEM, "price": -1}),
    case("openapi/update-bodies", "PUT", "/items/3", headers={"X-Token": "tok"},
         json_body={"item": _ITEM, "user": {"username": "u"}, "importance": 5}),
    case("openapi/update-missing-body", "PUT", "/items/3", json_body={"item": _ITEM}),
    case("openapi/rename-embed", "PATCH", "/items/3/name", json_body={"name": "new"}),
    case("openapi/rename-embed-bad", "PATCH", "/items/3/name", json_body={"name": "far too long a name"}),
    case("openapi/create-user", "POST", "/users/", json_body={"username": "foo"}),
    case("openapi/login", "POST", "/login", body=b"username=u&password=secret&remember=true",
         content_type="application/x-www-form-urlencoded"),
    case("openapi/upload", "POST", "/files/",
         body=_multipart(("file", "a.txt", "text/plain", b"hello"), ("data", "d.bin", None, b"\x00\x01"),
                         ("note", None, None, b"n")),
         content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    case("openapi/delete", "DELETE", "/items/3"),
    case("openapi/hidden", "GET", "/hidden"),
    case("openapi/mode", "GET", "/mode?kind=b&ratio=0.25"),
    case("openapi/mode-bad", "GET", "/mode?kind=c&ratio=1"),
    case("openapi/plain", "GET", "/plain"),
    # openapi_edge_app: the less common schema shapes (its openapi_edge/openapi case is the point)
    case("openapi_edge/nodes", "GET", "/nodes"),
    case("openapi_edge/aliased", "POST", "/aliased",
         json_body={"payload": {"fullName": "Ann", "when": "2024-01-02T03:04:05Z"}}),
    case("openapi_edge/shared-dependency", "GET", "/by-name?common=3", headers={"X-Key": "k"}),
    case("openapi_edge/types", "GET", "/types/12345678-1234-5678-1234-567812345678?day=2024-02-29&tag=a&tag=b"),
    case("openapi_edge/login-model", "POST", "/login-model", body=b"username=u&password=abc",
         content_type="application/x-www-form-urlencoded"),
]
