"""Sample app: the interactive docs pages — FastAPI's docs_url / redoc_url / swagger_ui_oauth2_redirect_url /
swagger_ui_parameters / swagger_ui_init_oauth keywords, and the self-hosting recipe (docs pages of one's own made
with fastapi.openapi.docs' functions and asset URLs of one's own)."""

from __future__ import annotations

from _framework import (
    FastAPI,
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)

app = FastAPI(
    title="Docs sample",
    docs_url="/api/docs",
    redoc_url=None,
    swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
    swagger_ui_parameters={"deepLinking": False},
    swagger_ui_init_oauth={"clientId": "docs-client"},
)


@app.get("/self-hosted/docs", include_in_schema=False)
async def self_hosted_docs():
    return get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=app.title + " - Swagger UI",
        oauth2_redirect_url="/self-hosted/oauth2-redirect",
        swagger_js_url="/static/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui.css",
    )


@app.get("/self-hosted/oauth2-redirect", include_in_schema=False)
async def self_hosted_redirect():
    return get_swagger_ui_oauth2_redirect_html()


@app.get("/self-hosted/redoc", include_in_schema=False)
async def self_hosted_redoc():
    return get_redoc_html(openapi_url=app.openapi_url, title=app.title + " - ReDoc",
                          redoc_js_url="/static/redoc.standalone.js")


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict:
    return {"item_id": item_id}
