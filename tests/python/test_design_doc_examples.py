"""The design doc's three Python examples (examples/python/*.py), served by `TestClient` on each engine.

`test_examples_processes.py` runs the same files as real processes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
sys.path.insert(0, str(EXAMPLES))

import fastapi_migration  # noqa: E402
import python_first  # noqa: E402
import type_safety  # noqa: E402
from _example_db import SAMPLE_USERS, UserDB  # noqa: E402

from covet.testing import TestClient  # noqa: E402

MakeClient = Callable[..., TestClient]

ADA = {"id": 1, "name": "Ada", "email": "ada@example.com", "active": True}
BOB = {"id": 2, "name": "Bob", "email": "bob@example.com", "active": False}
CY = {"id": 3, "name": "Cy", "email": "cy@example.com", "active": True}


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Iterator[UserDB]:
    """A fresh user table for both examples that use one, so that no test sees another's writes."""
    fresh = UserDB()
    monkeypatch.setattr(python_first, "db", fresh)
    monkeypatch.setattr(type_safety, "db", fresh)
    yield fresh


# -- Python-first API ------------------------------------------------------------------------------------


def test_python_first_gets_a_user_as_json(make_client: MakeClient, db: UserDB) -> None:
    client = make_client(python_first.app)
    r = client.get("/users/1")
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    assert r.json() == {**ADA, "role": "admin"}  # Response(user) sends the row as it is
    assert client.get("/users/3").json()["name"] == "Cy"


def test_python_first_answers_404_for_a_missing_user(make_client: MakeClient, db: UserDB) -> None:
    r = make_client(python_first.app).get("/users/99")
    assert (r.status_code, r.json()) == (404, {"detail": "User not found"})


def test_python_first_rejects_a_path_parameter_that_is_not_an_int(make_client: MakeClient, db: UserDB) -> None:
    r = make_client(python_first.app).get("/users/ada")
    assert r.status_code == 422
    assert r.json() == {"detail": [{
        "type": "int_parsing",
        "loc": ["path", "user_id"],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": "ada",
    }]}


def test_python_first_creates_a_user(make_client: MakeClient, db: UserDB) -> None:
    client = make_client(python_first.app)
    r = client.post("/users", json={"name": "Dee", "email": "dee@example.com"})
    created = {"id": 4, "name": "Dee", "email": "dee@example.com", "active": True, "role": "member"}
    assert (r.status_code, r.headers["content-type"], r.json()) == (201, "application/json", created)
    assert client.get("/users/4").json() == created
    assert db.users[4] == created
    r = client.post("/users", json={"name": "Eve", "email": "eve@example.com", "active": False})
    assert (r.status_code, r.json()["id"], r.json()["active"]) == (201, 5, False)


def test_python_first_rejects_an_invalid_user_with_fastapi_shaped_errors(make_client: MakeClient,
                                                                         db: UserDB) -> None:
    client = make_client(python_first.app)
    r = client.post("/users", json={"name": 5})
    assert r.status_code == 422
    assert r.json() == {"detail": [
        {"type": "string_type", "loc": ["body", "name"], "msg": "Input should be a valid string", "input": 5},
        {"type": "missing", "loc": ["body", "email"], "msg": "Field required", "input": {"name": 5}},
    ]}
    r = client.post("/users", json=["Dee", "dee@example.com"])
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "model_type"
    assert sorted(db.users) == [1, 2, 3]
    assert client.get("/users/4").status_code == 404


def test_python_first_body_that_is_not_json_is_a_server_error(make_client: MakeClient, db: UserDB) -> None:
    """The doc's handler parses the body itself: as in FastAPI, `request.json()` raising is a 500."""
    client = make_client(python_first.app, raise_server_exceptions=False)
    r = client.post("/users", content=b"name=Dee", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.headers["content-type"], r.text) == (500, "text/plain; charset=utf-8", "Internal Server Error")
    assert client.get("/users/1").status_code == 200  # and the server goes on serving
    assert sorted(db.users) == [1, 2, 3]


# -- Type Safety -------------------------------------------------------------------------------------------


def test_type_safety_lists_users_with_only_the_models_fields(make_client: MakeClient, db: UserDB) -> None:
    assert all("role" in row for row in SAMPLE_USERS)  # the rows have a field that `User` does not declare
    r = make_client(type_safety.app).get("/users")
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    assert r.json() == [ADA, BOB, CY]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"limit": 1}, [ADA]),
        ({"limit": 1, "offset": 1}, [BOB]),
        ({"offset": 2}, [CY]),
        ({"offset": 3}, []),
        ({"limit": 0}, []),
        ({"active": "true"}, [ADA, CY]),
        ({"active": "false"}, [BOB]),
        ({"active": "1", "limit": 1, "offset": 1}, [CY]),
    ],
)
def test_type_safety_query_parameters(make_client: MakeClient, db: UserDB, query: dict[str, Any],
                                      expected: list[dict[str, Any]]) -> None:
    r = make_client(type_safety.app).get("/users", params=query)
    assert (r.status_code, r.json()) == (200, expected)


def test_type_safety_sees_new_users(make_client: MakeClient, db: UserDB) -> None:
    db.users[4] = {"id": 4, "name": "Dee", "email": "dee@example.com", "active": False, "role": "member"}
    r = make_client(type_safety.app).get("/users?active=false")
    assert r.json() == [BOB, {"id": 4, "name": "Dee", "email": "dee@example.com", "active": False}]


def test_type_safety_rejects_bad_query_parameters(make_client: MakeClient, db: UserDB) -> None:
    r = make_client(type_safety.app).get("/users?limit=many&offset=2&active=maybe")
    assert r.status_code == 422
    assert r.json() == {"detail": [
        {"type": "int_parsing", "loc": ["query", "limit"],
         "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "many"},
        {"type": "bool_parsing", "loc": ["query", "active"],
         "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"},
    ]}


# -- From FastAPI ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/items/5", {"item_id": 5, "q": None}),
        ("/items/5?q=search", {"item_id": 5, "q": "search"}),
        ("/items/-7?q=a%20b", {"item_id": -7, "q": "a b"}),
    ],
)
def test_fastapi_migration_reads_items(make_client: MakeClient, url: str, expected: dict[str, Any]) -> None:
    r = make_client(fastapi_migration.app).get(url)
    assert (r.status_code, r.headers["content-type"], r.json()) == (200, "application/json", expected)


def test_fastapi_migration_rejects_bad_requests(make_client: MakeClient) -> None:
    client = make_client(fastapi_migration.app)
    r = client.get("/items/five")
    assert r.status_code == 422
    assert r.json() == {"detail": [{
        "type": "int_parsing",
        "loc": ["path", "item_id"],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": "five",
    }]}
    assert client.get("/items").status_code == 404
    r = client.post("/items/5")
    assert r.status_code == 405 and "GET" in r.headers["allow"]
