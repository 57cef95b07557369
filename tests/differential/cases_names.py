"""Differential cases of the small FastAPI names (apps/names_app.py): default exception handlers called from the
app's own, jsonable_encoder, status constants."""

from __future__ import annotations

from cases import case

CASES = [
    case("names/http-exception-handler", "GET", "/teapot"),
    case("names/http-exception-handler-no-body", "GET", "/no-content"),
    case("names/validation-handler", "GET", "/typed/x"),
    case("names/valid", "GET", "/typed/3"),
    case("names/jsonable-encoder", "GET", "/encoded"),
]
