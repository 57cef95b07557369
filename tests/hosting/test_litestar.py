"""A Litestar app through `covet run` (and uvicorn): a controller, DI, dataclass bodies, errors, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import ASGI_SERVERS, Server, serve


@pytest.fixture(scope="module", params=ASGI_SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, "litestar_app:app") as running:
        yield running


def test_controller_di_and_errors(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/books/0").json() == {"title": "Dune", "pages": 412}
        r = client.post("/books/", json={"title": "Emma", "pages": 320})
        assert r.status_code == 201 and r.json() == {"title": "Emma", "pages": 320}
        assert client.get("/books/", params={"min_pages": 400}).json() == [{"title": "Dune", "pages": 412}]
        r = client.get("/books/99")
        assert r.status_code == 404 and r.json()["detail"] == "no book 99"
        assert client.post("/books/", json={"title": "no pages"}).status_code == 400
        assert client.get("/books/x").status_code == 404


def test_openapi_schema(server: Server) -> None:
    r = httpx.get(server.url + "/schema/openapi.json", timeout=10)
    assert r.status_code == 200
    assert {"/books", "/books/{index}", "/health"} <= set(r.json()["paths"])
