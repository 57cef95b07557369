"""Cases for apps/scalars_app.py: pydantic types such as HttpUrl are query parameters (FastAPI's rule)."""

from __future__ import annotations

from cases import case

CASES = [
    case("scalars/url", "GET", "/url?callback_url=https://example.org/hook&mirror=ftp://m.example&limit=2.25"),
    case("scalars/url-missing", "GET", "/url"),
    case("scalars/url-bad", "GET", "/url?callback_url=not-a-url"),
    case("scalars/dataclass-body", "POST", "/point", json_body={"x": 1, "y": 2}),
    case("scalars/dataclass-bad", "POST", "/point", json_body={"x": "a"}),
]
