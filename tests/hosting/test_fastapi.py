"""A FastAPI app through `covet run` (and uvicorn): pydantic validation in and out, dependencies, routers,
headers, errors, and its OpenAPI schema and Swagger UI page."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import ASGI_SERVERS, H2C_SERVERS, Server, serve


@pytest.fixture(scope="module", params=ASGI_SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, "fastapi_app:app") as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_crud_with_validation(client: httpx.Client) -> None:
    r = client.post("/items/", json={"name": "lamp", "price": 12.5, "tags": ["home"]})
    assert r.status_code == 201
    created = r.json()
    assert created["name"] == "lamp" and created["price"] == 12.5 and isinstance(created["id"], int)
    assert client.get(f"/items/{created['id']}").json() == created
    r = client.get("/items/9999")
    assert r.status_code == 404 and r.json() == {"detail": "item 9999 not found"}
    r = client.post("/items/", json={"name": "", "price": -1})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("body", "name"), ("body", "price")}
    r = client.get("/items/", params={"limit": 1})
    assert r.json()["page"] == {"limit": 1, "offset": 0} and len(r.json()["items"]) == 1
    assert client.get("/items/", params={"limit": 0}).status_code == 422
    assert client.get("/items/not-a-number").status_code == 422


def test_headers(client: httpx.Client) -> None:
    r = client.get("/whoami", headers={"user-agent": "hosting-test", "x-token": "t0k"})
    assert r.json() == {"user_agent": "hosting-test", "x_token": "t0k"}


def test_openapi_and_docs(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    schema = r.json()
    assert schema["info"] == {"title": "Hosting test shop", "version": "1.2.3"}
    assert {"/items/", "/items/{item_id}", "/whoami"} <= set(schema["paths"])
    assert "Item" in schema["components"]["schemas"]
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in r.text and "/openapi.json" in r.text
    assert client.get("/redoc").status_code == 200


@pytest.fixture(scope="module", params=H2C_SERVERS)
def h2c_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, "fastapi_app:app") as running:
        yield running


def test_http2_cleartext(h2c_server: Server) -> None:
    """The same app over HTTP/2 (h2c, prior knowledge), several requests multiplexed on one connection."""
    with httpx.Client(base_url=h2c_server.url, http1=False, http2=True, timeout=10) as client:
        r = client.post("/items/", json={"name": "kettle", "price": 30})
        assert r.http_version == "HTTP/2" and r.status_code == 201
        item_id = r.json()["id"]
        assert client.get(f"/items/{item_id}").json()["name"] == "kettle"
        r = client.get("/openapi.json")
        assert r.http_version == "HTTP/2" and r.json()["info"]["title"] == "Hosting test shop"
        assert client.get("/items/", params={"limit": 0}).status_code == 422
