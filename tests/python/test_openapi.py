"""The OpenAPI schema: `covet.openapi.get_openapi`, ``app.openapi()`` (cached in ``app.openapi_schema``,
replaceable as in FastAPI's "Extending OpenAPI") and ``openapi_url`` served over a real socket.

That the schema is FastAPI's, byte for byte, is shown by tests/differential (every sample app's ``/openapi.json``
under FastAPI 0.165 and under CovetPy); these tests check the structure and the app-level behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Optional

import pytest
from pydantic import BaseModel, StringConstraints
from typing_extensions import TypeAliasType

from covet import (APIRouter, Body, CovetPy, Depends, Form, Header, HTTPException, Path, Query, RedirectResponse, Security,
                   UploadFile)
from covet.openapi import get_openapi
from covet.security import HTTPBasic, OAuth2PasswordBearer, OAuth2PasswordRequestForm, SecurityBase
from covet.sse import EventSourceResponse


class Item(BaseModel):
    name: str
    price: float


class User(BaseModel):
    username: str


async def common(limit: Annotated[int, Query(le=50)] = 10) -> int:
    return limit


def _app() -> CovetPy:
    app = CovetPy(title="Shop", version="2.0", openapi_tags=[{"name": "items", "description": "Items"}])

    @app.get("/items/{item_id}", tags=["items"])
    async def read_item(item_id: Annotated[int, Path(ge=1)], page: Annotated[int, Depends(common)],
                        q: Annotated[Optional[str], Query(alias="item-query", deprecated=True)] = None,
                        x_token: Annotated[Optional[str], Header()] = None,
                        hidden: Annotated[str, Query(include_in_schema=False)] = "") -> Item:
        """Read one item.

        More text.
        \f
        Not in the schema."""
        return Item(name="x", price=1)

    @app.put("/items/{item_id}", operation_id="replace")
    async def update(item_id: int, item: Item, user: User, note: Annotated[str, Body()] = "") -> dict:
        return {}

    @app.post("/login")
    async def login(username: Annotated[str, Form()], file: UploadFile) -> dict:
        return {}

    @app.get("/health", include_in_schema=False)
    async def health() -> dict:
        return {}

    @app.get("/plain")
    async def plain() -> dict:
        return {}

    return app


def test_paths_operations_and_parameters() -> None:
    schema = _app().openapi()
    assert schema["openapi"] == "3.1.0"
    assert schema["info"] == {"title": "Shop", "version": "2.0"}
    assert schema["tags"] == [{"name": "items", "description": "Items"}]
    assert set(schema["paths"]) == {"/items/{item_id}", "/login", "/plain"}  # no /health, no /openapi.json
    get = schema["paths"]["/items/{item_id}"]["get"]
    assert (get["summary"], get["operationId"], get["tags"]) == ("Read Item", "read_item_items__item_id__get",
                                                                 ["items"])
    assert get["description"] == "Read one item.\n\nMore text."
    params = {(p["in"], p["name"]): p for p in get["parameters"]}
    assert list(params) == [("path", "item_id"), ("query", "item-query"), ("query", "limit"), ("header", "x-token")]
    assert params["path", "item_id"] == {"name": "item_id", "in": "path", "required": True,
                                         "schema": {"type": "integer", "minimum": 1, "title": "Item Id"}}
    assert params["query", "item-query"]["deprecated"] is True
    assert params["query", "limit"]["schema"] == {"type": "integer", "maximum": 50, "default": 10, "title": "Limit"}
    assert params["header", "x-token"]["schema"]["title"] == "X-Token"
    ok = get["responses"]["200"]
    assert ok == {"description": "Successful Response",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}
    assert get["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"}
    assert {"Item", "User", "HTTPValidationError", "ValidationError"} <= set(schema["components"]["schemas"])


def test_request_bodies() -> None:
    paths = _app().openapi()["paths"]
    put = paths["/items/{item_id}"]["put"]
    assert put["operationId"] == "replace"
    assert put["requestBody"] == {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Body_replace"}}}}
    post = paths["/login"]["post"]
    assert post["requestBody"]["content"] == {"multipart/form-data": {
        "schema": {"$ref": "#/components/schemas/Body_login_login_post"}}}
    plain = paths["/plain"]["get"]
    assert "422" not in plain["responses"] and "parameters" not in plain  # no parameters: no validation error


def test_generated_once_and_again_after_new_routes() -> None:
    app = _app()
    first = app.openapi()
    assert app.openapi() is first and app.openapi_schema is first

    @app.get("/later")
    async def later() -> dict:
        return {}

    assert "/later" in app.openapi()["paths"]


def test_get_openapi_directly() -> None:
    app = _app()
    schema = get_openapi(title="Other", version="9", routes=app.routes, summary="s", servers=[{"url": "/api"}])
    assert schema["info"] == {"title": "Other", "version": "9", "summary": "s"}
    assert schema["servers"] == [{"url": "/api"}]
    assert schema["paths"] == app.openapi()["paths"]


def test_served_over_a_socket(make_client: Any) -> None:
    app = _app()
    client = make_client(app)
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == app.openapi()
    assert app.openapi_schema is not None  # generated at the first request


def test_app_dependencies_do_not_guard_the_schema(make_client: Any) -> None:
    async def deny() -> None:
        raise HTTPException(403)

    app = CovetPy(dependencies=[Depends(deny)])

    @app.get("/x")
    async def x() -> dict:
        return {}

    client = make_client(app)
    assert client.get("/x").status_code == 403
    assert client.get("/openapi.json").status_code == 200  # as in FastAPI: a plain route, no app dependencies


def test_openapi_url_moved_or_disabled(make_client: Any) -> None:
    moved = CovetPy(openapi_url="/api/schema.json")
    client = make_client(moved)
    assert client.get("/api/schema.json").json()["info"]["title"] == "CovetPy"  # covet's default title
    assert client.get("/openapi.json").status_code == 404
    # listed in app.routes as in FastAPI, out of the schema
    assert [r.path for r in moved.routes][:4] == ["/api/schema.json", "/docs", "/docs/oauth2-redirect", "/redoc"]
    assert not any(r.include_in_schema for r in moved.routes)
    off = CovetPy(openapi_url=None)
    assert off.routes == []
    assert make_client(off).get("/openapi.json").status_code == 404


def test_overriding_app_openapi(make_client: Any) -> None:
    """FastAPI's "Extending OpenAPI": replace ``app.openapi`` with a function that adjusts the generated schema."""
    app = _app()

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title="Custom title", version="2.5.0", routes=app.routes)
        schema["info"]["x-logo"] = {"url": "https://example.com/logo.png"}
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    body = make_client(app).get("/openapi.json").json()
    assert body["info"] == {"title": "Custom title", "version": "2.5.0",
                            "x-logo": {"url": "https://example.com/logo.png"}}


class KeyHeader(SecurityBase):
    """A user-defined security scheme: a SecurityBase subclass with its own model."""

    def __init__(self) -> None:
        self.model = {"type": "apiKey", "in": "header", "name": "X-Key"}
        self.scheme_name = "KeyHeader"

    async def __call__(self, x_key: Annotated[str, Header()] = "") -> str:
        return x_key


key_header = KeyHeader()
oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"items": "Read items.", "me": "Read yourself."})


async def current_user(token: Annotated[str, Security(oauth2, scopes=["me"])]) -> str:
    return token


def test_security_schemes_from_dependencies() -> None:
    app = CovetPy()

    @app.get("/secret")
    async def secret(key: Annotated[str, Depends(key_header)]) -> dict:
        return {}

    schema = app.openapi()
    assert schema["components"]["securitySchemes"] == {"KeyHeader": {"type": "apiKey", "in": "header",
                                                                     "name": "X-Key"}}
    assert schema["paths"]["/secret"]["get"]["security"] == [{"KeyHeader": []}]


def test_security_classes_scopes_and_password_form() -> None:
    """covet.security's classes: their schemes, the scopes gathered along the dependency tree (FastAPI's order),
    one requirement per scheme, and OAuth2PasswordRequestForm's password as ``format: password``."""
    app = CovetPy()

    @app.get("/items")
    async def items(user: Annotated[str, Security(current_user, scopes=["items"])],
                    again: Annotated[str, Depends(current_user)]) -> dict:
        return {}

    @app.get("/basic")
    async def basic(credentials: Annotated[Any, Depends(HTTPBasic(description="Basic auth"))]) -> dict:
        return {}

    @app.post("/token")
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict:
        return {}

    schema = app.openapi()
    assert schema["components"]["securitySchemes"] == {
        "OAuth2PasswordBearer": {"type": "oauth2", "flows": {"password": {
            "scopes": {"items": "Read items.", "me": "Read yourself."}, "tokenUrl": "token"}}},
        "HTTPBasic": {"type": "http", "description": "Basic auth", "scheme": "basic"},
    }
    assert schema["paths"]["/items"]["get"]["security"] == [{"OAuth2PasswordBearer": ["items", "me"]}]
    assert schema["paths"]["/basic"]["get"]["security"] == [{"HTTPBasic": []}]
    form = schema["components"]["schemas"]["Body_token_token_post"]
    assert form["properties"]["password"] == {"type": "string", "format": "password", "title": "Password"}
    assert form["properties"]["client_secret"]["format"] == "password"
    assert form["required"] == ["username", "password"]


ShortName = TypeAliasType("ShortName", Annotated[str, StringConstraints(min_length=2, max_length=5)])
Limit = TypeAliasType("Limit", Annotated[int, Query(ge=1, le=10)])


def test_type_alias_and_default_factory_parameters() -> None:
    """A type alias parameter is its value (FastAPI unwraps it): constraints inline, no component; a
    ``default_factory`` makes the parameter optional, without a default in the schema."""
    app = CovetPy()

    @app.get("/alias")
    async def alias(name: ShortName, tags: Annotated[list[str], Query(default_factory=lambda: ["a"])],
                    limit: Limit = 5) -> dict:
        return {}

    schema = app.openapi()
    parameters = {p["name"]: p for p in schema["paths"]["/alias"]["get"]["parameters"]}
    assert parameters["name"] == {"name": "name", "in": "query", "required": True, "schema": {
        "type": "string", "minLength": 2, "maxLength": 5, "title": "Name"}}
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10, "default": 5,
                                             "title": "Limit"}
    assert parameters["tags"]["required"] is False
    assert "default" not in parameters["tags"]["schema"]
    assert "ShortName" not in schema["components"]["schemas"]


def test_stream_items_and_response_class_status() -> None:
    """SSE items as JSON in ``data`` (``contentSchema``), and a response class's own default status (a redirect's
    307) unless ``status_code=`` says otherwise."""
    app = CovetPy()

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[Item]:
        yield Item(name="a", price=1)

    @app.get("/go", response_class=RedirectResponse)
    async def go() -> str:
        return "/elsewhere"

    @app.get("/go-302", response_class=RedirectResponse, status_code=302)
    async def go_302() -> str:
        return "/elsewhere"

    paths = app.openapi()["paths"]
    event = paths["/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert event["required"] == ["data"]
    assert event["properties"]["data"] == {"type": "string", "contentMediaType": "application/json",
                                           "contentSchema": {"$ref": "#/components/schemas/Item"}}
    assert list(paths["/go"]["get"]["responses"]) == ["307"]
    assert list(paths["/go-302"]["get"]["responses"]) == ["302"]


def test_yield_handlers_are_json_lines() -> None:
    """A ``yield`` handler streams JSON Lines in FastAPI 0.134+: its schema is ``application/jsonl`` items."""
    app = CovetPy()

    @app.get("/stream")
    async def stream() -> AsyncIterator[Item]:
        yield Item(name="a", price=1)

    ok = app.openapi()["paths"]["/stream"]["get"]["responses"]["200"]
    assert ok["content"] == {"application/jsonl": {"itemSchema": {"$ref": "#/components/schemas/Item"}}}


def test_callback_paths_are_openapi_expressions() -> None:
    """A callback route's path is an OpenAPI runtime expression (FastAPI's docs example): accepted on a router
    that is only read for the schema, and shown as written."""
    callbacks = APIRouter()

    @callbacks.post("{$callback_url}/invoices/{$request.body.id}")
    def invoice_notification(body: Item) -> User:
        return User(username="x")

    app = CovetPy()

    @app.post("/invoices/", callbacks=callbacks.routes)
    def create_invoice(invoice: Item) -> dict:
        return {}

    operation = app.openapi()["paths"]["/invoices/"]["post"]
    callback = operation["callbacks"]["invoice_notification"]
    assert list(callback) == ["{$callback_url}/invoices/{$request.body.id}"]
    posted = callback["{$callback_url}/invoices/{$request.body.id}"]["post"]
    assert posted["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    assert "parameters" not in posted
