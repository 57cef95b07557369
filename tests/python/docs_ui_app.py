"""The sample app of test_docs_ui.py: FastAPI's OAuth2 password flow tutorial shape — ``POST /token`` takes the form
fields ``username``/``password`` and answers a bearer token; ``GET /users/me`` needs ``Authorization: Bearer``.

Its schema is a fixed one (``app.openapi`` overridden, as FastAPI allows) declaring the OAuth2 password scheme with
``tokenUrl: "token"``, which is what Swagger UI's Authorize dialog reads. Run: ``python -m covet run docs_ui_app:app``.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Optional

from covet import CovetPy, Form, Header, HTTPException

USERS = {"alice": {"password": "wonderland", "full_name": "Alice Liddell", "email": "alice@example.com"}}
TOKENS: dict[str, str] = {}  # issued token -> username

_USER_SCHEMA = {
    "type": "object", "title": "User", "required": ["username", "full_name", "email"],
    "properties": {"username": {"type": "string", "title": "Username"},
                   "full_name": {"type": "string", "title": "Full Name"},
                   "email": {"type": "string", "title": "Email"}},
}
SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Docs UI sample", "version": "0.1.0"},
    "paths": {
        "/token": {"post": {
            "summary": "Login", "operationId": "login_token_post",
            "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
            }}}},
            "responses": {"200": {"description": "Successful Response",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }},
        "/users/me": {"get": {
            "summary": "Read Users Me", "operationId": "read_users_me_users_me_get",
            "responses": {"200": {"description": "Successful Response",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}},
            "security": [{"OAuth2PasswordBearer": []}],
        }},
        "/items/{item_id}": {"get": {
            "summary": "Read Item", "operationId": "read_item_items__item_id__get", "tags": ["items"],
            "parameters": [{"name": "item_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "title": "Item Id"}}],
            "responses": {"200": {"description": "Successful Response",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }},
    },
    "components": {
        "schemas": {"User": _USER_SCHEMA},
        "securitySchemes": {"OAuth2PasswordBearer": {
            "type": "oauth2", "flows": {"password": {"scopes": {}, "tokenUrl": "token"}}}},
    },
}

app = CovetPy(title="Docs UI sample")
app.openapi = lambda: SCHEMA  # type: ignore[attr-defined]  # FastAPI's documented override

if not any(getattr(route, "path", None) == app.openapi_url for route in app.routes):
    # Until covet serves openapi_url itself (the OpenAPI generator), this app does.
    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return SCHEMA


@app.post("/token")
async def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> dict[str, str]:
    user = USERS.get(username)
    if user is None or not secrets.compare_digest(user["password"], password):
        raise HTTPException(status_code=400, detail="Incorrect username or password")
    token = secrets.token_urlsafe(16)
    TOKENS[token] = username
    return {"access_token": token, "token_type": "bearer"}


@app.get("/users/me")
async def read_users_me(authorization: Annotated[Optional[str], Header()] = None) -> dict[str, str]:
    scheme, _, token = (authorization or "").partition(" ")
    username = TOKENS.get(token) if scheme.lower() == "bearer" else None
    if username is None:
        raise HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    user = USERS[username]
    return {"username": username, "full_name": user["full_name"], "email": user["email"]}


@app.get("/items/{item_id}", tags=["items"])
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}
