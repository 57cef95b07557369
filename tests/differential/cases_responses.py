"""Differential cases for issue 14's "Responses" area: apps/response_models_app.py."""

from __future__ import annotations

from cases import Case, case

_A = "response_models"

CASES: list[Case] = [
    case(f"{_A}/exclude-unset", "GET", "/items/foo"),
    case(f"{_A}/exclude-unset-all-set", "GET", "/items/baz"),
    case(f"{_A}/exclude-defaults", "GET", "/items/baz/defaults"),
    case(f"{_A}/exclude-none", "GET", "/items/baz/none"),
    case(f"{_A}/include", "GET", "/items/bar/name"),
    case(f"{_A}/exclude", "GET", "/items/bar/public"),
    case(f"{_A}/include-list", "GET", "/items/bar/list-include"),
    case(f"{_A}/nested-exclude", "GET", "/nested-exclude"),
    case(f"{_A}/subclass-filtered", "GET", "/subclass"),
    case(f"{_A}/subclass-list-filtered", "GET", "/subclass-list"),
    case(f"{_A}/by-alias", "GET", "/alias"),
    case(f"{_A}/by-alias-off", "GET", "/alias-off"),
    case(f"{_A}/dict-exclude", "GET", "/dict-exclude"),
    case(f"{_A}/invalid-result-500", "GET", "/bad-model"),
    case(f"{_A}/response-class-html", "GET", "/html"),
    case(f"{_A}/response-class-plain", "GET", "/plain"),
    case(f"{_A}/response-class-plain-status", "GET", "/plain-status"),
    case(f"{_A}/response-class-redirect", "GET", "/redirect-class"),
    case(f"{_A}/response-class-redirect-302", "GET", "/redirect-class-302"),
    case(f"{_A}/response-class-json", "GET", "/json-class"),
    case(f"{_A}/response-class-orjson", "GET", "/orjson"),
    case(f"{_A}/orjson-returned", "GET", "/orjson-direct"),
    case(f"{_A}/response-param-headers-cookie", "GET", "/response-param"),
    case(f"{_A}/response-param-status-default", "POST", "/response-param-status"),
    case(f"{_A}/response-param-status-set", "POST", "/response-param-status?fail=true"),
    case(f"{_A}/response-param-dependency", "GET", "/response-dependency"),
    case(f"{_A}/response-param-returned-wins", "GET", "/response-returned"),
    case(f"{_A}/response-param-204", "DELETE", "/response-no-content"),
    case(f"{_A}/background-send", "POST", "/send-notification/a@b.c?q=hi"),
    case(f"{_A}/background-ran", "GET", "/log"),
    case(f"{_A}/jsonl", "GET", "/jsonl"),
    case(f"{_A}/jsonl-sync", "GET", "/jsonl-sync"),
    case(f"{_A}/jsonl-untyped", "GET", "/jsonl-untyped"),
    case(f"{_A}/jsonl-exclude-none", "GET", "/jsonl-exclude"),
    case(f"{_A}/sse", "GET", "/sse"),
    case(f"{_A}/sse-events", "GET", "/sse-events"),
    case(f"{_A}/sse-post", "POST", "/sse-post"),
    case(f"{_A}/raw-stream", "GET", "/raw-stream"),
]

_D = "response_defaults"
CASES += [
    case(f"{_D}/default-class", "GET", "/page"),
    case(f"{_D}/default-class-status", "GET", "/page-status"),
    case(f"{_D}/override-json", "GET", "/json"),
    case(f"{_D}/override-text", "GET", "/text"),
    case(f"{_D}/returned-response", "GET", "/returned"),
]
CASES += [
    case(f"{_A}/jsonl-yield-dependency-open", "GET", "/jsonl-session"),
    case(f"{_A}/stream-yield-dependency-open", "GET", "/stream-session"),
]
