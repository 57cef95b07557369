"""Cases of openapi2_app (schemas of the features merged alongside the generator; its ``openapi2/openapi`` case,
the schema itself, is added by cases.py): the routes answer as under FastAPI too."""

from __future__ import annotations

from cases import case

_FORM = "application/x-www-form-urlencoded"

CASES = [
    case("openapi2/invoice", "POST", "/invoices/", json_body={"id": "i1", "total": 3.5}),
    case("openapi2/code", "GET", "/codes/ab?page=3&tags=x&tags=y"),
    case("openapi2/code-defaults", "GET", "/codes/abc"),
    case("openapi2/code-too-long", "GET", "/codes/abcdef"),
    case("openapi2/code-page-bad", "GET", "/codes/ab?page=51"),
    case("openapi2/secret-form", "POST", "/secret-form", body=b"user=u&pin=1234", content_type=_FORM),
    case("openapi2/moved", "GET", "/moved"),
    case("openapi2/found", "GET", "/found"),
    case("openapi2/my-items", "GET", "/my-items", headers={"Authorization": "Bearer tok"}),
    case("openapi2/my-items-401", "GET", "/my-items"),
    case("openapi2/token", "POST", "/token", body=b"username=u&password=p&scope=items+me", content_type=_FORM),
    case("openapi2/token-strict-422", "POST", "/token-strict", body=b"username=u&password=p", content_type=_FORM),
]
