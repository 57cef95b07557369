from fastapi.testclient import TestClient

from shop.dependencies import client_version
from shop.main import app

from .conftest import ALICE


def test_health_and_middleware(client):
    r = client.get("/health")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert r.headers["x-powered-by"] == "shop"
    assert float(r.headers["x-process-time"]) >= 0


def test_cors_preflight(client):
    r = client.options("/items/", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://shop.example"


def test_users_router_dependencies(client):
    assert client.get("/users/me", headers=ALICE).json() == {"name": "alice", "admin": True}
    r = client.get("/users/me/greeting", headers={**ALICE, "X-Client-Version": "7"})
    assert (r.text, r.headers["content-type"].split(";")[0]) == ("hello alice (client v7)", "text/plain")


def test_dependency_override():
    app.dependency_overrides[client_version] = lambda: "override"
    try:
        with TestClient(app) as client:
            assert client.get("/users/me/greeting", headers=ALICE).text == "hello alice (client voverride)"
    finally:
        app.dependency_overrides.clear()


def test_openapi_lists_the_routes(client):
    schema = client.get("/openapi.json").json()
    assert schema["info"] == {"title": "Shop", "version": "1.2.0"}
    assert {"/items/", "/items/{item_id}", "/users/me", "/users/me/greeting", "/health"} <= set(schema["paths"])
