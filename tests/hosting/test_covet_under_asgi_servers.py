"""A CovetPy app is an ASGI app: run by uvicorn, Hypercorn and Granian (for a user who must keep one of them),
with validation, errors, its own 404 and its OpenAPI schema as under `covet run`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import Server, serve


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn", "granian", "covet"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, "covet_app:app") as running:
        yield running


def test_routes_validation_and_errors(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.get("/items/5", params={"q": "x"})
        assert (r.status_code, r.json()) == (200, {"item_id": 5, "q": "x"})
        r = client.get("/items/five")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "item_id"]
        assert client.get("/items/404").json() == {"detail": "no such item"}
        r = client.post("/items", json={"name": "lamp", "price": 12.5})
        assert (r.status_code, r.json()) == (201, {"name": "lamp", "price": 12.5})
        assert client.post("/items", json={"name": "lamp"}).status_code == 422
        r = client.get("/nowhere")
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
        schema = client.get("/openapi.json").json()
        assert schema["info"]["title"] == "CovetPy under other servers"
        assert {"/items/{item_id}", "/items"} <= set(schema["paths"])
