"""Test code written once against FastAPI's TestClient, run under each framework (DIFF_FRAMEWORK=fastapi|covet).

FastAPI's documented testing examples (tutorial "Testing", "Testing Dependencies with Overrides", "Testing
Events: lifespan", "Testing WebSockets", "Using the Request Directly") and Starlette TestClient behaviours
(relative URLs, redirects, cookies, headers, app exceptions). ``python testclient_examples.py`` runs every
``example_*`` function and writes one JSON object (to the file named by its argument, else stdout): name → ``{"ok": bool, "error": str, "seen": ...}`` where
`seen` is what the example observed (compared between the frameworks by test_testclient_examples.py).
The only framework-specific line is the TestClient import (FastAPI's needs httpx).
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))

from _framework import (  # noqa: E402
    FRAMEWORK,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    RedirectResponse,
    Request,
    Response,
    StreamingResponse,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from pydantic import BaseModel  # noqa: E402

if FRAMEWORK == "fastapi":
    from fastapi.testclient import TestClient
else:
    from covet.testing import TestClient

EXAMPLES: dict[str, Callable[[], Any]] = {}


def example(func: Callable[[], Any]) -> Callable[[], Any]:
    EXAMPLES[func.__name__] = func
    return func


# -- tutorial "Testing" (app_b: an app with a header token) ----------------------------------------------------
fake_secret_token = "coneofsilence"
fake_db: dict[str, Any] = {
    "foo": {"id": "foo", "title": "Foo", "description": "There goes my hero"},
    "bar": {"id": "bar", "title": "Bar", "description": "The bartenders"},
}


class Item(BaseModel):
    id: str
    title: str
    description: Optional[str] = None


testing_app = FastAPI()


@testing_app.get("/items/{item_id}")
async def read_main(item_id: str, x_token: Annotated[str, Header()]) -> Item:
    if x_token != fake_secret_token:
        raise HTTPException(status_code=400, detail="Invalid X-Token header")
    if item_id not in fake_db:
        raise HTTPException(status_code=404, detail="Item not found")
    return Item(**fake_db[item_id])


@testing_app.post("/items/")
async def create_item(item: Item, x_token: Annotated[str, Header()]) -> Item:
    if x_token != fake_secret_token:
        raise HTTPException(status_code=400, detail="Invalid X-Token header")
    if item.id in fake_db:
        raise HTTPException(status_code=409, detail="Item already exists")
    fake_db[item.id] = item.model_dump()
    return item


testing_client = TestClient(testing_app)


@example
def example_testing_read_item() -> Any:
    response = testing_client.get("/items/foo", headers={"X-Token": "coneofsilence"})
    assert response.status_code == 200
    assert response.json() == {"id": "foo", "title": "Foo", "description": "There goes my hero"}
    return response.json()


@example
def example_testing_bad_token() -> Any:
    response = testing_client.get("/items/foo", headers={"X-Token": "hailhydra"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid X-Token header"}
    return response.json()


@example
def example_testing_nonexistent_item() -> Any:
    response = testing_client.get("/items/baz", headers={"X-Token": "coneofsilence"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}
    return response.json()


@example
def example_testing_create_item() -> Any:
    response = testing_client.post(
        "/items/",
        headers={"X-Token": "coneofsilence"},
        json={"id": "foobar", "title": "Foo Bar", "description": "The Foo Barters"},
    )
    assert response.status_code == 200
    assert response.json() == {"id": "foobar", "title": "Foo Bar", "description": "The Foo Barters"}
    existing = testing_client.post("/items/", headers={"X-Token": "coneofsilence"},
                                   json={"id": "foo", "title": "The Foo ID Stealers"})
    assert existing.status_code == 409
    assert existing.json() == {"detail": "Item already exists"}
    missing = testing_client.post("/items/", json={"id": "x", "title": "X"})
    assert missing.status_code == 422
    return [response.json(), existing.json(), missing.json()["detail"][0]["loc"]]


# -- "Testing Dependencies with Overrides" ---------------------------------------------------------------------
async def common_parameters(q: Optional[str] = None, skip: int = 0, limit: int = 100) -> dict[str, Any]:
    return {"q": q, "skip": skip, "limit": limit}


overrides_app = FastAPI()


@overrides_app.get("/items/")
async def read_items(commons: Annotated[dict[str, Any], Depends(common_parameters)]) -> dict[str, Any]:
    return {"message": "Hello Items!", "params": commons}


@overrides_app.get("/users/")
async def read_users(commons: Annotated[dict[str, Any], Depends(common_parameters)]) -> dict[str, Any]:
    return {"message": "Hello Users!", "params": commons}


overrides_client = TestClient(overrides_app)


async def override_dependency(q: Optional[str] = None) -> dict[str, Any]:
    return {"q": q, "skip": 5, "limit": 10}


@example
def example_overrides() -> Any:
    overrides_app.dependency_overrides[common_parameters] = override_dependency
    try:
        seen = []
        for url in ("/items/", "/items/?q=foo", "/items/?q=foo&skip=100&limit=200", "/users/"):
            response = overrides_client.get(url)
            assert response.status_code == 200
            seen.append(response.json())
        assert seen[2] == {"message": "Hello Items!", "params": {"q": "foo", "skip": 5, "limit": 10}}
    finally:
        overrides_app.dependency_overrides = {}
    response = overrides_client.get("/items/?skip=3")
    assert response.json()["params"] == {"q": None, "skip": 3, "limit": 100}
    return seen


# -- "Testing Events: lifespan" --------------------------------------------------------------------------------
items: dict[str, Any] = {}


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    items["foo"] = {"name": "Fighters"}
    items["bar"] = {"name": "Tenders"}
    yield
    items.clear()


lifespan_app = FastAPI(lifespan=lifespan)


@lifespan_app.get("/items/{item_id}")
async def read_lifespan_items(item_id: str) -> Any:
    return items[item_id]


@example
def example_lifespan() -> Any:
    assert items == {}
    with TestClient(lifespan_app) as client:
        assert items == {"foo": {"name": "Fighters"}, "bar": {"name": "Tenders"}}
        response = client.get("/items/foo")
        assert response.status_code == 200
        assert response.json() == {"name": "Fighters"}
    assert items == {}
    return response.json()


# -- "Testing WebSockets", "Using the Request Directly" ----------------------------------------------------------
class Broken(Exception):
    pass


misc_app = FastAPI()


@misc_app.get("/request/{item_id}")
def read_root(item_id: str, request: Request) -> dict[str, Any]:
    client_host = request.client.host if request.client else None
    return {"client_host": client_host, "item_id": item_id, "user_agent": request.headers.get("user-agent"),
            "root_path": request.scope.get("root_path")}


@misc_app.websocket("/ws")
async def websocket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"msg": "Hello WebSocket"})
    await websocket.close()


@misc_app.websocket("/ws-broken")
async def websocket_broken(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise Broken("the endpoint failed")


@misc_app.websocket("/ws-guarded")
async def websocket_guarded(websocket: WebSocket, token: Optional[str] = None) -> None:
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="no token")
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()


@misc_app.websocket("/ws-closed-first")
async def websocket_closed_first(websocket: WebSocket) -> None:
    await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER)


@misc_app.get("/heroes/")
def heroes() -> list[str]:
    return ["Deadpond"]


@misc_app.get("/old")
def old() -> Response:
    return RedirectResponse("/heroes/")


@misc_app.post("/form-done")
def form_done() -> Response:
    return RedirectResponse("/echo", status_code=303)


@misc_app.get("/login")
def login() -> Response:
    response = RedirectResponse("/echo")
    response.set_cookie("session", "s1")
    return response


@misc_app.get("/echo")
def echo(request: Request) -> dict[str, Any]:
    return {"method": request.method, "cookies": dict(request.cookies),
            "x_multi": request.headers.getlist("x-multi"), "x_client": request.headers.get("x-client")}


@misc_app.get("/lines")
async def stream_lines() -> Response:
    async def chunks() -> AsyncIterator[str]:
        for piece in ("one\ntw", "o\r\nthree\n", "fo", "ur"):
            yield piece

    return StreamingResponse(chunks(), media_type="text/plain")


@misc_app.get("/boom")
def boom() -> None:
    raise Broken("the handler failed")


@example
def example_request_directly() -> Any:
    client = TestClient(misc_app)
    response = client.get("/request/foo")
    assert response.json()["client_host"] == "testclient"
    assert response.json()["user_agent"] == "testclient"
    rooted = TestClient(misc_app, root_path="/api").get("/request/foo").json()["root_path"]
    return [response.json(), rooted]


@example
def example_websocket() -> Any:
    client = TestClient(misc_app)
    with client.websocket_connect("/ws") as websocket:
        data = websocket.receive_json()
        assert data == {"msg": "Hello WebSocket"}
    return data


@example
def example_websocket_app_exception_is_raised() -> Any:
    client = TestClient(misc_app)
    try:
        with client.websocket_connect("/ws-broken") as websocket:
            websocket.send_text("go")
            websocket.receive_text()
    except Broken as exc:
        return f"raised {exc}"
    raise AssertionError("the endpoint's exception was not raised in the test")


@example
def example_websocket_denied_before_accept() -> Any:
    client = TestClient(misc_app)
    seen = []
    for url in ("/ws-guarded", "/ws-closed-first"):
        try:
            with client.websocket_connect(url):
                raise AssertionError("entered a session the endpoint refused")
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
    with client.websocket_connect("/ws-guarded?token=secret") as websocket:
        seen.append(websocket.receive_text())
    return seen


@example
def example_relative_urls_and_redirects() -> Any:
    client = TestClient(misc_app)
    seen = [client.get("heroes/").json(), client.get("/heroes/").json()]
    response = client.get("/old")
    seen += [response.status_code, str(response.url), [r.status_code for r in response.history]]
    response = client.post("/form-done")
    seen += [response.status_code, response.json()["method"]]
    response = client.get("/old", follow_redirects=False)
    seen += [response.status_code, response.headers["location"]]
    response = TestClient(misc_app, follow_redirects=False).get("/old")
    seen.append(response.status_code)
    return seen


@example
def example_cookies_and_headers() -> Any:
    client = TestClient(misc_app, cookies={"a": "1"}, headers={"X-Client": "c"})
    client.cookies.set("b", "2")
    seen = [client.get("/echo").json()]
    seen.append(client.get("/login").json())  # the cookie set by the redirect is sent to its target
    seen.append(client.cookies.get("session"))
    seen.append(client.get("/echo", headers=[("X-Multi", "1"), ("X-Multi", "2")]).json())
    client.headers["X-Client"] = "changed"
    seen.append(client.get("/echo").json()["x_client"])
    return seen


@example
def example_stream() -> Any:
    client = TestClient(misc_app)
    with client.stream("GET", "/lines") as response:
        lines = list(response.iter_lines())
    with client.stream("GET", "/lines") as response:
        text = "".join(response.iter_text())
    return [response.status_code, lines, text]


@example
def example_server_exceptions() -> Any:
    try:
        TestClient(misc_app).get("/boom")
    except Broken as exc:
        raised = str(exc)
    else:
        raise AssertionError("the handler's exception was not raised in the test")
    response = TestClient(misc_app, raise_server_exceptions=False).get("/boom")
    return [raised, response.status_code, response.text]


@example
def example_unknown_keyword() -> Any:
    try:
        TestClient(misc_app, bogus=1)  # type: ignore[call-arg]
    except TypeError:
        return "TypeError"
    raise AssertionError("no TypeError")


def main() -> None:
    results: dict[str, Any] = {}
    for name, func in EXAMPLES.items():
        try:
            results[name] = {"ok": True, "error": "", "seen": func()}
        except BaseException as exc:  # noqa: BLE001 - reported, compared by the test
            results[name] = {"ok": False, "error": "".join(traceback.format_exception_only(exc)).strip(),
                             "trace": traceback.format_exc(), "seen": None}
    text = json.dumps(results, default=str)
    if len(sys.argv) > 1:  # the servers may write to stdout (the engine's log): the result goes to a file
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
