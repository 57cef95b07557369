"""Differential cases of FastAPI's OpenAPI models and route class names (apps/oamodels_app.py): OAuth2 flows given
as models or dicts (securitySchemes in the ``oamodels/openapi`` case every app gets), get_openapi with model
arguments, and the APIRoute loop that sets operation ids."""

from __future__ import annotations

from cases import case

CASES = [
    case("oamodels/me-no-auth", "GET", "/me"),
    case("oamodels/me", "GET", "/me", headers={"Authorization": "Bearer abc"}),
    case("oamodels/maybe", "GET", "/maybe", headers={"Authorization": "Bearer abc"}),
    case("oamodels/kinds", "GET", "/kinds"),
    case("oamodels/item", "GET", "/items/3"),
]
