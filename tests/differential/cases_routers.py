"""Differential cases of the routing area (issue 14): routers_app.py."""

from __future__ import annotations

from cases import Case, case

_TOKEN = {"X-Token": "secret"}

CASES: list[Case] = [
    case("routers/router-dependency-401", "GET", "/v1/api/items/1"),
    case("routers/router-dependency-403", "GET", "/v1/api/items/1", headers={"X-Token": "nope"}),
    case("routers/nested-dependency-order", "GET", "/v1/api/items/7", headers=_TOKEN),
    case("routers/prefix-root-with-slash", "GET", "/v1/api/items/", headers=_TOKEN),
    case("routers/prefix-root-redirect", "GET", "/v1/api/items", headers=_TOKEN),
    case("routers/route-422", "GET", "/v1/api/items/x", headers=_TOKEN),
    case("routers/put", "PUT", "/v1/api/items/3", headers=_TOKEN),
    case("routers/empty-path-under-prefix", "GET", "/v1/api/users"),
    case("routers/deprecated-still-served", "GET", "/v1/api/users/me"),
    case("routers/api-route-get", "GET", "/v1/api/users/rick"),
    case("routers/api-route-post", "POST", "/v1/api/users/rick"),
    case("routers/prefix-with-parameter", "GET", "/v1/api/orgs/4/members/9"),
    case("routers/prefix-with-parameter-422", "GET", "/v1/api/orgs/x/members/9"),
    case("routers/duplicate-first-wins", "GET", "/dup"),
    case("routers/duplicate-other-method", "POST", "/dup"),
    case("routers/duplicate-shape-first-wins", "GET", "/shape/z"),
    case("routers/url-for", "GET", "/links"),
    case("routers/url-for-no-match", "GET", "/links/missing"),
    case("routers/404-through-middleware", "GET", "/nowhere"),
    case("routers/404-under-prefix", "GET", "/v1/api/nothing/here"),
    case("routers/405-through-middleware", "DELETE", "/plain"),
    case("routers/405-router-route", "DELETE", "/v1/api/items/3", headers=_TOKEN),
    case("routers/head-on-get-405", "HEAD", "/plain"),
    case("routers/head-on-router-get-405", "HEAD", "/v1/api/users/me"),
    case("routers/route-declared-after-include", "GET", "/v1/api/users/late/added"),
    case("routers/webhook-not-served", "POST", "/new-subscription", json_body={}),
]
