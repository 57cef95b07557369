"""Sample app: FastAPI's OpenAPI models in use — OAuth2 flows given as `OAuthFlows` models (FastAPI's documented
pattern), servers/tags/contact/license as models in a custom `get_openapi`, and the `isinstance(route, APIRoute)`
loop over app.routes that sets each operation id to the route's name."""

from __future__ import annotations

from typing import Annotated, Any

from _framework import (
    REF_TEMPLATE,
    APIRoute,
    APIWebSocketRoute,
    Depends,
    FastAPI,
    OAuth2,
    WebSocket,
    get_openapi,
    openapi_models,
)

app = FastAPI()

flows = openapi_models.OAuthFlows(
    password={"tokenUrl": "token", "scopes": {"read": "Read things."}},
    authorizationCode=openapi_models.OAuthFlowAuthorizationCode(authorizationUrl="https://auth.example.com/authorize",
                                                               tokenUrl="https://auth.example.com/token"),
)
password_only = OAuth2(flows=openapi_models.OAuthFlows(password={"tokenUrl": "token", "scopes": {}}),
                       scheme_name="PasswordOnly", auto_error=False)
plain_flows = OAuth2(flows={"clientCredentials": {"tokenUrl": "token"}}, scheme_name="ClientCredentials",
                     description="Machine to machine.")
oauth2 = OAuth2(flows=flows)


@app.get("/me")
async def read_me(authorization: Annotated[str, Depends(oauth2)]) -> dict[str, str]:
    return {"authorization": authorization}


@app.get("/maybe")
async def read_maybe(authorization: Annotated[Any, Depends(password_only)],
                     other: Annotated[Any, Depends(plain_flows)]) -> dict[str, Any]:
    return {"authorization": authorization, "other": other}


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


@app.get("/kinds")
async def kinds() -> dict[str, Any]:
    return {
        "api": sorted(r.path for r in app.routes if isinstance(r, APIRoute)),
        "websocket": sorted(r.path for r in app.routes if isinstance(r, APIWebSocketRoute)),
        "ref": REF_TEMPLATE.format(model="Item"),
        "parameter": openapi_models.Parameter(name="q", **{"in": "query"}).model_dump(by_alias=True,
                                                                                       exclude_none=True,
                                                                                       mode="json"),
    }


for route in app.routes:
    if isinstance(route, APIRoute):
        route.operation_id = route.name


def custom_openapi() -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    app.openapi_schema = get_openapi(
        title="Models", version="1.0.0", routes=app.routes,
        servers=[openapi_models.Server(url="https://api.example.com", description="Production")],
        tags=[openapi_models.Tag(name="things", description="Things.")],
        contact=openapi_models.Contact(name="Team", url="https://example.com/team"),
        license_info=openapi_models.License(name="MIT", identifier="MIT"),
    )
    return app.openapi_schema


app.openapi = custom_openapi  # type: ignore[method-assign]
