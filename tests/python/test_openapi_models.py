"""FastAPI's OpenAPI models (`covet.openapi.models`) and constants, and its route class names in `covet.routing`
(``isinstance(route, APIRoute)`` over ``app.routes``).

That the schemas match FastAPI's is shown by tests/differential (apps/oamodels_app.py); these tests check the models'
shapes and that the documented patterns work on a served app."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import pytest
from pydantic import BaseModel, ValidationError

from covet import CovetPy, Depends
from covet.openapi import constants, models
from covet.openapi.models import OAuthFlows as OAuthFlowsModel
from covet.routing import APIRoute, APIWebSocketRoute, Mount, Route, WebSocketRoute
from covet.security import OAuth2
from covet.staticfiles import StaticFiles
from covet.websockets import WebSocket


class Item(BaseModel):
    name: str


oauth2 = OAuth2(flows=OAuthFlowsModel(password={"tokenUrl": "token", "scopes": {}}))  # FastAPI's documented pattern
plain = OAuth2(flows={"implicit": {"authorizationUrl": "https://a/x", "refreshUrl": None}}, scheme_name="Plain")


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def test_aliases_extras_and_defaults() -> None:
    assert _dump(models.Parameter.model_validate({"name": "q", "in": "query", "schema": {"type": "string"}})) == \
        {"name": "q", "in": "query", "schema": {"type": "string"}}
    assert _dump(models.Reference.model_validate({"$ref": "#/components/schemas/Item"})) == \
        {"$ref": "#/components/schemas/Item"}
    schema = models.Schema.model_validate({"$ref": "#/x", "not": {"type": "null"}, "if": True, "x-extra": 1})
    assert schema.ref == "#/x" and schema.if_ is True and isinstance(schema.not_, models.Schema)
    assert _dump(schema) == {"$ref": "#/x", "not": {"type": "null"}, "if": True, "x-extra": 1}
    info = models.Info(title="T", version="1", contact=models.Contact(name="me", url="https://example.com"))
    assert _dump(info) == {"title": "T", "version": "1", "contact": {"name": "me", "url": "https://example.com/"}}
    assert models.OAuthFlowPassword(tokenUrl="token").scopes == {}
    key = models.APIKey.model_validate({"in": "header", "name": "X-Key"})
    assert key.type_ is models.SecuritySchemeType.apiKey and key.in_ is models.APIKeyIn.header
    assert _dump(models.HTTPBearer()) == {"type": "http", "scheme": "bearer"}
    assert models.ParameterInType("cookie") is models.ParameterInType.cookie


def test_validation_errors() -> None:
    with pytest.raises(ValidationError):
        models.OAuthFlows(password={"scopes": {}})  # tokenUrl is required
    with pytest.raises(ValidationError):
        models.Schema(minLength=-1)
    with pytest.raises(ValidationError):
        models.Schema.model_validate({"type": "text"})  # not a JSON Schema type


def test_constants() -> None:
    assert constants.REF_PREFIX == "#/components/schemas/"
    assert constants.REF_TEMPLATE.format(model="Item") == "#/components/schemas/Item"
    assert "POST" in constants.METHODS_WITH_BODY and "GET" in constants.METHODS_WITH_BODY


def test_oauth2_flows_model_and_generated_schema_validates(make_client: Any) -> None:
    app = CovetPy()

    @app.get("/me")
    async def me(authorization: Annotated[str, Depends(oauth2)],
                 other: Annotated[Optional[str], Depends(plain)]) -> dict[str, str]:
        return {"authorization": authorization}

    schemes = app.openapi()["components"]["securitySchemes"]
    assert schemes == {
        "OAuth2": {"type": "oauth2", "flows": {"password": {"scopes": {}, "tokenUrl": "token"}}},
        "Plain": {"type": "oauth2", "flows": {"implicit": {"scopes": {}, "authorizationUrl": "https://a/x"}}},
    }
    document = models.OpenAPI.model_validate(app.openapi())  # the generated schema is a valid OpenAPI object
    assert document.components is not None and document.components.securitySchemes is not None
    client = make_client(app)
    assert client.get("/me").status_code == 401
    assert client.get("/me", headers={"Authorization": "Bearer t"}).json() == {"authorization": "Bearer t"}


def test_api_route_loop_sets_operation_ids(make_client: Any, native: Any, tmp_path: Any) -> None:
    if getattr(native, "__name__", "") == "fake_native":
        pytest.skip("the fake engine serves no StaticFiles mounts")
    app = CovetPy()

    @app.post("/items/{item_id}")
    async def save_item(item_id: int, item: Item) -> Item:
        return item

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.close()

    app.mount("/static", StaticFiles(directory=tmp_path), name="static")
    for route in app.routes:
        if isinstance(route, APIRoute):
            route.operation_id = route.name

    api = [r for r in app.routes if isinstance(r, APIRoute)]
    assert [r.path for r in api] == ["/items/{item_id}"]  # not the openapi_url / docs pages (Starlette routes)
    assert all(isinstance(r, Route) for r in app.routes if r.path in ("/openapi.json", "/docs"))
    assert [r.path for r in app.routes if isinstance(r, APIWebSocketRoute)] == ["/ws"]
    assert APIWebSocketRoute is WebSocketRoute
    assert [r.path for r in app.routes if isinstance(r, Mount)] == ["/static"]
    operation = app.openapi()["paths"]["/items/{item_id}"]["post"]
    assert operation["operationId"] == "save_item"
    # the Body_/Response_ schema names keep the id the route was made with, as FastAPI's
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    client = make_client(app)
    assert client.get("/openapi.json").json()["paths"]["/items/{item_id}"]["post"]["operationId"] == "save_item"
