from fastapi import status

from .conftest import ALICE, BOB


def test_create_then_get(client, app):
    r = client.post("/items/", json={"name": "pen", "price": 1.5, "tags": ["office"]}, headers=BOB)
    assert r.status_code == status.HTTP_201_CREATED
    assert r.json() == {"name": "pen", "price": 1.5, "tags": ["office"], "id": 1, "owner": "bob"}
    assert client.get("/items/1").json()["name"] == "pen"
    assert app.state.db.audit == ["created 1 by bob"]  # the background task ran


def test_list_filters_and_pages(client):
    for name, tag in [("a", "x"), ("b", "y"), ("c", "x")]:
        client.post("/items/", json={"name": name, "price": 2, "tags": [tag]}, headers=ALICE)
    page = client.get("/items/", params={"tag": "x", "limit": 1}).json()
    assert [i["name"] for i in page["items"]] == ["a"]
    assert (page["total"], page["next_offset"]) == (2, 1)
    assert client.get("/items/", params={"limit": 51}).status_code == 422


def test_missing_item_uses_the_apps_handler(client):
    r = client.get("/items/42")
    assert r.status_code == 404
    assert r.json() == {"error": "item_not_found", "item_id": 42}


def test_validation_errors_use_the_apps_handler(client):
    r = client.post("/items/", json={"name": "", "price": -1}, headers=ALICE)
    assert r.status_code == 422
    assert r.json() == {"error": "invalid", "fields": ["body.name", "body.price"]}


def test_auth_and_admin_delete(client):
    assert client.post("/items/", json={"name": "x", "price": 1}).status_code == 401
    client.post("/items/", json={"name": "x", "price": 1}, headers=ALICE)
    assert client.delete("/items/1", headers=BOB).status_code == 403
    assert client.delete("/items/1", headers=ALICE).status_code == 204
    assert client.get("/items/1").status_code == 404
