"""Sample app: APIRouter — nested routers with prefixes, tags and dependencies (one refusing a request without a
header), a path parameter in a prefix, duplicate routes (the first registered answers), url_for / url_path_for,
webhooks, and the app's middleware seeing 404, 405 and HEAD on a GET route."""

from __future__ import annotations

from typing import Any

from _framework import APIRouter, Depends, FastAPI, Header, HTTPException, NoMatchFound, Request


async def verify_token(x_token: str | None = Header(default=None)) -> None:
    if x_token is None:
        raise HTTPException(status_code=401, detail="X-Token header missing", headers={"WWW-Authenticate": "Bearer"})
    if x_token != "secret":
        raise HTTPException(status_code=403, detail="X-Token header invalid")


def record(step: str) -> Any:
    def dependency(request: Request) -> None:
        request.state.steps = [*getattr(request.state, "steps", []), step]

    return dependency


app = FastAPI(dependencies=[Depends(record("app"))])


@app.middleware("http")
async def seen(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Seen"] = f"{request.method} {response.status_code}"
    return response


items = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(verify_token), Depends(record("items"))],
                  responses={404: {"description": "Not found"}})


@items.get("/")
async def list_items(request: Request) -> dict:
    return {"items": ["a", "b"], "steps": request.state.steps}


@items.get("/{item_id}", dependencies=[Depends(record("route"))])
async def read_item(item_id: int, request: Request) -> dict:
    return {"item_id": item_id, "steps": request.state.steps}


@items.put("/{item_id}", tags=["custom"], responses={403: {"description": "Operation forbidden"}})
async def update_item(item_id: int) -> dict:
    return {"item_id": item_id, "updated": True}


users = APIRouter()


@users.get("")
async def list_users() -> list:
    return [{"name": "Rick"}, {"name": "Morty"}]


@users.get("/me", deprecated=True)
async def read_me() -> dict:
    return {"name": "me"}


@users.api_route("/{username}", methods=["GET", "POST"], name="user_detail")
async def read_user(username: str, request: Request) -> dict:
    return {"username": username, "method": request.method}


members = APIRouter(prefix="/orgs/{org_id}")


@members.get("/members/{member_id}")
async def read_member(org_id: int, member_id: int) -> dict:
    return {"org_id": org_id, "member_id": member_id}


api = APIRouter(prefix="/api", dependencies=[Depends(record("api"))])
api.include_router(items)
api.include_router(users, prefix="/users", tags=["users"])
api.include_router(members)
app.include_router(api, prefix="/v1")


@users.get("/late/added")
async def late_route() -> dict:  # declared after the include: included routers are live (FastAPI 0.165)
    return {"late": True}


# duplicates: the first route registered answers
@app.get("/dup")
async def dup_first() -> dict:
    return {"route": "first"}


@app.api_route("/dup", methods=["GET", "POST"])
async def dup_second() -> dict:
    return {"route": "second"}


@app.get("/shape/{a}")
async def shape_first(a: str) -> dict:
    return {"route": "first", "a": a}


@app.get("/shape/{b}")
async def shape_second(b: str) -> dict:
    return {"route": "second", "b": b}


@app.get("/links")
async def links(request: Request) -> dict:
    return {
        "item": str(request.url_for("read_item", item_id=5)),
        "user": str(request.url_for("user_detail", username="rick")),
        "member": app.url_path_for("read_member", org_id=1, member_id=2),
        "users": app.url_path_for("list_users"),
    }


@app.get("/links/missing")
async def missing_link(request: Request) -> dict:
    try:
        request.url_for("read_item", nope=1)
    except NoMatchFound as exc:
        return {"error": str(exc)}
    return {"error": None}


@app.get("/plain")
async def plain() -> dict:
    return {"plain": True}


@app.webhooks.post("new-subscription")
async def new_subscription(body: dict) -> None:
    """When a user subscribes."""
