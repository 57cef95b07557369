"""The design doc's three Python examples, with an in-memory stand-in for their database."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from pydantic import BaseModel

from covet import CovetPy, Request, Response


class FakeDB:
    def __init__(self) -> None:
        self.users: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "Ada", "email": "ada@example.com", "active": True},
            2: {"id": 2, "name": "Bob", "email": "bob@example.com", "active": False},
            3: {"id": 3, "name": "Cy", "email": "cy@example.com", "active": True},
        }

    async def get_user(self, user_id: int) -> Optional[dict[str, Any]]:
        await asyncio.sleep(0)  # a real driver would suspend here
        return self.users.get(user_id)

    async def create_user(self, data: dict[str, Any]) -> dict[str, Any]:
        user = {"id": max(self.users) + 1, **data}
        self.users[user["id"]] = user
        return user

    async def list_users(self, limit: int, offset: int, active: Optional[bool]) -> list[dict[str, Any]]:
        users = [u for u in self.users.values() if active is None or u["active"] is active]
        return users[offset : offset + limit]


def python_first_app(db: FakeDB) -> CovetPy:
    app = CovetPy()

    @app.get("/users/{user_id}")
    async def get_user(user_id: int) -> Response:
        user = await db.get_user(user_id)
        return Response(user)

    @app.post("/users")
    async def create_user(request: Request) -> Response:
        data = await request.json()
        user = await db.create_user(data)
        return Response(user, status=201)

    return app


class User(BaseModel):
    id: int
    name: str
    email: str
    active: bool = True


def type_safety_app(db: FakeDB) -> CovetPy:
    app = CovetPy()

    @app.get("/users")
    async def list_users(limit: int = 10, offset: int = 0, active: Optional[bool] = None) -> List[User]:
        users = await db.list_users(limit, offset, active)
        return [User(**user) for user in users]

    return app


def migration_app() -> CovetPy:
    app = CovetPy()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str = None):  # type: ignore[assignment,no-untyped-def]  # as in the doc
        return {"item_id": item_id, "q": q}

    return app


def test_python_first_api(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(python_first_app(FakeDB()))
    r = client.get("/users/1")
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    assert r.json() == {"id": 1, "name": "Ada", "email": "ada@example.com", "active": True}
    r = client.post("/users", json={"name": "Dee", "email": "dee@example.com", "active": True})
    assert (r.status_code, r.json()["id"], r.json()["name"]) == (201, 4, "Dee")
    assert client.get("/users/4").json()["email"] == "dee@example.com"
    assert client.get("/users/x").status_code == 422


def test_type_safety(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(type_safety_app(FakeDB()))
    assert [u["id"] for u in client.get("/users").json()] == [1, 2, 3]
    assert client.get("/users?limit=1&offset=1").json() == [
        {"id": 2, "name": "Bob", "email": "bob@example.com", "active": False}
    ]
    assert [u["name"] for u in client.get("/users?active=true").json()] == ["Ada", "Cy"]
    r = client.get("/users?limit=many")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]


def test_fastapi_migration(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(migration_app())
    assert client.get("/items/5").json() == {"item_id": 5, "q": None}
    assert client.get("/items/5?q=search").json() == {"item_id": 5, "q": "search"}
    r = client.get("/items/five")
    assert r.status_code == 422
    assert r.json()["detail"][0] == {
        "type": "int_parsing",
        "loc": ["path", "item_id"],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": "five",
    }
