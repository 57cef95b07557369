"""The requests the differential test sends to each sample app, under FastAPI and under CovetPy.

A case is one request: an id (``app/what``, the pytest id and the key of known_differences.py), the app
module under apps/, and the raw request (method, target as sent on the wire, headers, body).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @property
    def app(self) -> str:
        return self.id.split("/", 1)[0] + "_app"


def case(ident: str, method: str, target: str, *, headers: dict[str, str] | None = None,
         json_body: Any = None, body: bytes | None = None, content_type: str | None = None) -> Case:
    hdrs = dict(headers or {})
    data = b""
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif body is not None:
        data = body
        if content_type:
            hdrs["Content-Type"] = content_type
    return Case(ident, method, target, tuple(hdrs.items()), data)


_BOUNDARY = "diffboundary7MA4YWxk"


def _multipart(*parts: tuple[str, str | None, str | None, bytes]) -> bytes:
    """A multipart/form-data body: (field name, filename or None, content type or None, content) per part."""
    out = b""
    for name, filename, content_type, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{_BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{_BOUNDARY}--\r\n".encode()


_ITEM = {"name": "Foo", "price": 10.5, "tax": 1.5, "tags": ["a", "b"], "image": {"url": "http://x/y.png", "name": "y"}}

CASES: list[Case] = [
    # --- params: path, query, header, cookie parameters
    case("params/path-int", "GET", "/items/42"),
    case("params/path-int-query", "GET", "/items/42?q=hello&short=true"),
    case("params/path-int-bad", "GET", "/items/abc"),
    case("params/bool-variants", "GET", "/items/1?short=yes"),
    case("params/bool-bad", "GET", "/items/1?short=maybe"),
    case("params/float", "GET", "/floats/3.5"),
    case("params/float-bad", "GET", "/floats/x1"),
    case("params/uuid", "GET", "/uuids/12345678-1234-5678-1234-567812345678"),
    case("params/uuid-bad", "GET", "/uuids/not-a-uuid"),
    case("params/enum", "GET", "/colors/red"),
    case("params/enum-bad", "GET", "/colors/blue"),
    case("params/path-converter", "GET", "/files/a/b/c.txt"),
    case("params/path-ge-le", "GET", "/bounded/50"),
    case("params/path-ge-bad", "GET", "/bounded/0"),
    case("params/path-le-bad", "GET", "/bounded/101"),
    case("params/query-constraints", "GET", "/search?q=abcd&page=2&size=50.5"),
    case("params/query-missing", "GET", "/search"),
    case("params/query-too-short", "GET", "/search?q=ab"),
    case("params/query-too-long", "GET", "/search?q=abcdefghijkl"),
    case("params/query-pattern", "GET", "/search?q=ABCD"),
    case("params/query-gt", "GET", "/search?q=abcd&page=0"),
    case("params/query-le-float", "GET", "/search?q=abcd&size=51"),
    case("params/query-list", "GET", "/tags?tag=a&tag=b&tag=c"),
    case("params/query-list-empty", "GET", "/tags"),
    case("params/query-int-list", "GET", "/ints?n=1&n=2&n=3"),
    case("params/query-int-list-bad", "GET", "/ints?n=1&n=x"),
    case("params/query-int-list-missing", "GET", "/ints"),
    case("params/query-alias", "GET", "/alias?item-query=zz"),
    case("params/query-alias-name-ignored", "GET", "/alias?item_query=zz"),
    case("params/query-required-both-missing", "GET", "/required"),
    case("params/query-required-bad-int", "GET", "/required?needed=x&count=1.5"),
    case("params/query-percent-encoded", "GET", "/required?needed=a%20b%26c&count=3"),
    case("params/headers", "GET", "/headers", headers={"User-Agent": "diff/1", "X-Token": "t", "X-Count": "3"}),
    case("params/headers-absent", "GET", "/headers"),
    case("params/header-int-bad", "GET", "/headers", headers={"X-Count": "many"}),
    case("params/header-required-missing", "GET", "/required-header"),
    case("params/header-required-short", "GET", "/required-header", headers={"X-Key": "abc"}),
    case("params/header-required-ok", "GET", "/required-header", headers={"X-Key": "abcd"}),
    case("params/cookies", "GET", "/cookies", headers={"Cookie": "session=s1; visits=4"}),
    case("params/cookies-absent", "GET", "/cookies"),
    case("params/cookie-int-bad", "GET", "/cookies", headers={"Cookie": "visits=lots"}),
    # Integers longer than int()'s 4,300-digit limit: pydantic's int_parsing_size (422), never a ValueError (500);
    # 19 and 4,300 digits are still ints (beyond 64 bits)
    case("params/path-int-too-many-digits", "GET", "/items/" + "9" * 5000),
    case("params/path-int-4300-digits", "GET", "/items/" + "9" * 4300),
    case("params/path-int-19-digits", "GET", "/items/" + "9" * 19),
    case("params/query-int-too-many-digits", "GET", "/required?needed=x&count=" + "9" * 5000),
    case("params/header-int-too-many-digits", "GET", "/headers", headers={"X-Count": "9" * 5000}),
    case("params/cookie-int-too-many-digits", "GET", "/cookies", headers={"Cookie": "visits=" + "9" * 5000}),
    case("params/not-found", "GET", "/nowhere"),
    case("params/method-not-allowed", "POST", "/items/1"),
    case("params/trailing-slash", "GET", "/search/?q=abcd"),
    # --- bodies: pydantic models, Body(), status codes
    case("bodies/create", "POST", "/items", json_body=_ITEM),
    case("bodies/create-minimal", "POST", "/items", json_body={"name": "A", "price": 1}),
    case("bodies/create-missing-fields", "POST", "/items", json_body={}),
    case("bodies/create-bad-types", "POST", "/items",
         json_body={"name": "", "price": -1, "tags": "x", "image": {"url": 1}}),
    case("bodies/create-not-object", "POST", "/items", json_body=[1, 2]),
    case("bodies/create-no-body", "POST", "/items"),
    case("bodies/create-malformed-json", "POST", "/items", body=b'{"name": "A",', content_type="application/json"),
    case("bodies/update", "PUT", "/items/5?q=z", json_body={"name": "B", "price": 2}),
    case("bodies/update-bad-path-and-body", "PUT", "/items/x", json_body={"price": "free"}),
    case("bodies/echo-model", "POST", "/echo-model", json_body={"username": "bob", "extra": 1}),
    case("bodies/body-scalar", "POST", "/importance", json_body=5),
    case("bodies/body-scalar-bad", "POST", "/importance", json_body="high"),
    case("bodies/accepted", "POST", "/accepted", json_body={"username": "u"}),
    case("bodies/delete-204", "DELETE", "/items/3"),
    case("bodies/patch", "PATCH", "/items/3", json_body={"username": "u", "full_name": "U U"}),
    # --- errors: HTTPException, handlers, 500
    case("errors/http-exception-headers", "GET", "/missing/x"),
    case("errors/found", "GET", "/missing/found"),
    case("errors/default-detail", "GET", "/forbidden"),
    case("errors/detail-dict", "GET", "/detail-dict"),
    case("errors/www-authenticate", "GET", "/unauthorized"),
    case("errors/custom-handler", "GET", "/unicorns/yolo"),
    case("errors/custom-handler-not-raised", "GET", "/unicorns/ok"),
    case("errors/builtin-exception-handler", "GET", "/value-error"),
    case("errors/unhandled-500", "GET", "/crash"),
    case("errors/validation-422", "GET", "/validated/x"),
    case("validation_handler/override-422", "GET", "/numbers/x?limit=y"),
    case("validation_handler/ok", "GET", "/numbers/1?limit=2"),
    # --- responses: classes, cookies, redirects
    case("responses/dict", "GET", "/dict"),
    case("responses/list", "GET", "/list"),
    case("responses/string", "GET", "/string"),
    case("responses/none", "GET", "/none"),
    case("responses/model", "GET", "/model"),
    case("responses/models", "GET", "/models"),
    case("responses/json-response", "GET", "/json"),
    case("responses/plain-text", "GET", "/text"),
    case("responses/html", "GET", "/html"),
    case("responses/raw-media-type", "GET", "/raw"),
    case("responses/redirect-307", "GET", "/redirect"),
    case("responses/redirect-302", "GET", "/redirect-302"),
    case("responses/set-cookie", "GET", "/set-cookie"),
    case("responses/delete-cookie", "GET", "/delete-cookie"),
    case("responses/created", "POST", "/created"),
    case("responses/unicode", "GET", "/unicode"),
    case("responses/head-on-get", "HEAD", "/dict"),
    case("responses/timedelta", "GET", "/timedelta"),
    case("responses/datetime-utc", "GET", "/datetime-utc"),
    case("responses/timedelta-unannotated", "GET", "/timedelta-unannotated"),
    case("responses/datetime-utc-unannotated", "GET", "/datetime-utc-unannotated"),
    case("responses/datetime-naive", "GET", "/datetime-naive"),
    case("responses/uuid", "GET", "/uuid-value"),
    case("responses/decimal", "GET", "/decimal"),
    case("responses/decimal-unannotated", "GET", "/decimal-unannotated"),
    # --- openapi_keywords: OpenAPI-only route keywords
    case("openapi_keywords/tagged", "GET", "/tagged"),
    case("openapi_keywords/deprecated-responses", "GET", "/old"),
    # --- forms: urlencoded and multipart bodies, lifespan state
    case("forms/login", "POST", "/login", body=b"username=ann&password=secret",
         content_type="application/x-www-form-urlencoded"),
    case("forms/login-missing", "POST", "/login", body=b"username=ann",
         content_type="application/x-www-form-urlencoded"),
    case("forms/login-short", "POST", "/login", body=b"username=ann&password=ab",
         content_type="application/x-www-form-urlencoded"),
    case("forms/login-empty-value", "POST", "/login", body=b"username=&password=secret",
         content_type="application/x-www-form-urlencoded"),
    case("forms/login-no-body", "POST", "/login"),
    case("forms/repeated", "POST", "/tags", body=b"tag=a&tag=b", content_type="application/x-www-form-urlencoded"),
    case("forms/upload", "POST", "/upload", body=_multipart(
        ("file", "a.txt", "text/plain", b"hello world"), ("note", None, None, b"n1")),
        content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    case("forms/upload-missing-file", "POST", "/upload", body=_multipart(("note", None, None, b"n1")),
         content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    case("forms/raw-file", "POST", "/raw-file", body=_multipart(("data", "b.bin", "application/octet-stream",
                                                                 bytes(range(256)))),
         content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    # a part's header lines: 8 pass, a ninth (or one over 4,224 bytes) is python-multipart's 400 under FastAPI
    case("forms/upload-eight-part-headers", "POST", "/upload", body=_multipart(
        ("file", "a.txt", "text/plain; x-1=a\r\nX-2: b\r\nX-3: c\r\nX-4: d\r\nX-5: e\r\nX-6: f\r\nX-7: g",
         b"hello")), content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    case("forms/upload-nine-part-headers", "POST", "/upload", body=_multipart(
        ("file", "a.txt", "text/plain\r\nX-2: b\r\nX-3: c\r\nX-4: d\r\nX-5: e\r\nX-6: f\r\nX-7: g\r\nX-8: h",
         b"hello")), content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    case("forms/upload-long-part-header", "POST", "/upload", body=_multipart(
        ("file", "a.txt", "text/plain\r\nX-Long: " + "v" * 4217, b"hello")),
        content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    # a form that cannot be parsed: 400 with the parser's (Starlette's) reason, on a Form() route as from request.form()
    case("forms/login-garbage", "POST", "/login", body=b"garbage",
         content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    case("forms/login-no-boundary", "POST", "/login", body=b"x", content_type="multipart/form-data"),
    case("forms/login-1001-fields", "POST", "/login", body=b"&".join(b"f%d=x" % i for i in range(1001)),
         content_type="application/x-www-form-urlencoded"),
    case("forms/login-empty-pairs", "POST", "/login", body=b"&" * 5000 + b"username=ann&&password=secret&",
         content_type="application/x-www-form-urlencoded"),
    case("forms/login-1000-fields-trailing-amp", "POST", "/login",
         body=b"username=ann&password=secret&" + b"".join(b"f%d=x&" % i for i in range(998)),
         content_type="application/x-www-form-urlencoded"),
    case("forms/login-part-without-name", "POST", "/login",
         body=f"--{_BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{_BOUNDARY}--\r\n".encode(),
         content_type=f"multipart/form-data; boundary={_BOUNDARY}"),
    case("forms/lifespan-state", "GET", "/state"),
    # --- deps: dependencies
    case("deps/function", "GET", "/items?q=x&skip=1"),
    case("deps/function-bad", "GET", "/items?skip=x&limit=y"),
    case("deps/class", "GET", "/pages?page=3"),
    case("deps/class-bad", "GET", "/pages?per_page=many"),
    case("deps/sub-and-yield", "GET", "/me", headers={"X-Token": "secret"}),
    case("deps/sub-raises", "GET", "/me", headers={"X-Token": "wrong"}),
    case("deps/sub-missing-header", "GET", "/me"),
    case("deps/sync-generator", "GET", "/session"),
    case("deps/route-dependency-ok", "GET", "/guarded/5", headers={"X-Token": "secret"}),
    case("deps/route-dependency-raises", "GET", "/guarded/5", headers={"X-Token": "no"}),
    case("deps/dependency-404", "GET", "/guarded/500", headers={"X-Token": "secret"}),
    case("deps/all-errors-together", "GET", "/guarded/x"),
    case("deps/app-dependency-ran", "GET", "/events"),
    # --- middleware
    case("middleware/hello", "GET", "/hello"),
    case("middleware/short-circuit", "GET", "/hello", headers={"X-Block": "1"}),
    case("middleware/http-exception", "GET", "/fail"),
    case("middleware/422", "GET", "/typed/x"),
    case("middleware/404", "GET", "/nowhere"),
    case("middleware/405", "DELETE", "/hello"),
]

# Each feature area may keep its cases in its own module, cases_<area>.py, defining CASES (and optionally
# REASON_CASES): they are collected here, so areas added in parallel never edit the same list.
for _module_path in sorted(Path(__file__).resolve().parent.glob("cases_*.py")):
    _module = importlib.import_module(_module_path.stem)
    CASES += _module.CASES

# Every app's schema: the same /openapi.json (compared parsed, keys sorted).
CASES += [case(f"{app}/openapi", "GET", "/openapi.json") for app in sorted({c.id.split("/")[0] for c in CASES})]

# The reason phrase of each status code the apps answer with, compared once per status (test_reason_phrase) rather
# than in every case, so that one differing phrase does not hide the other differences of every case with it:
# status -> the case that answers with it.
REASON_CASES: dict[int, str] = {
    200: "params/path-int",
    201: "bodies/create",
    202: "bodies/accepted",
    203: "responses/raw-media-type",
    204: "bodies/delete-204",
    302: "responses/redirect-302",
    307: "responses/redirect-307",
    400: "errors/builtin-exception-handler",
    401: "errors/www-authenticate",
    403: "errors/default-detail",
    404: "params/not-found",
    405: "params/method-not-allowed",
    409: "errors/detail-dict",
    418: "errors/custom-handler",
    422: "params/path-int-bad",
    500: "errors/unhandled-500",
}

for _module_path in sorted(Path(__file__).resolve().parent.glob("cases_*.py")):
    REASON_CASES.update(getattr(importlib.import_module(_module_path.stem), "REASON_CASES", {}))

APPS: list[str] = sorted({c.app for c in CASES})

assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"
__all__ = ["APPS", "CASES", "REASON_CASES", "Case"]
