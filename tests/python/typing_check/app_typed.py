"""A user's app under ``mypy --strict`` (scripts/lint-python.sh): the decorators' options are typed, so a
misspelt or mistyped option is a type error, and handlers keep their own types through the decorators.

Lines marked ``# type: ignore[...]`` must be errors: under --strict an ignore that is not needed is one too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from pydantic import BaseModel

from covet import (
    APIRouter,
    BackgroundTasks,
    CovetPy,
    Depends,
    Header,
    HTTPException,
    JSONResponse,
    Query,
    Request,
    Response,
    WebSocket,
    status,
)
from covet.testing import TestClient


class Item(BaseModel):
    name: str
    price: float


@asynccontextmanager
async def lifespan(app: CovetPy) -> AsyncIterator[dict[str, Any]]:
    yield {"started": True}


app = CovetPy(title="typed", lifespan=lifespan, sync_handlers="threadpool", eager_async="auto", docs_url=None,
              servers=[{"url": "https://example.com"}], openapi_tags=[{"name": "items"}], redirect_slashes=True)


async def token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "secret":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bad token")
    return x_token


@app.get("/items/{item_id}", response_model=Item, status_code=200, name="item", dependencies=[Depends(token)])
async def get_item(item_id: int, q: Annotated[str | None, Query(max_length=10)] = None) -> Item:
    return Item(name=f"{item_id}{q or ''}", price=1.0)


@app.get("/filtered", response_model=list[Item], response_model_include={"name"}, response_model_exclude=None,
         response_model_by_alias=False, response_model_exclude_unset=True, response_model_exclude_defaults=False,
         response_model_exclude_none=True, response_class=JSONResponse)
def filtered(response: Response, tasks: BackgroundTasks) -> list[Item]:
    response.headers["X-Filtered"] = "1"
    tasks.add_task(print, "done")
    return []


@app.post("/items", status_code=status.HTTP_201_CREATED, inline=False, eager=True)
async def create_item(item: Item) -> Item:
    return item


@app.get("/documented", tags=["items"], summary="s", description="d", responses={404: {"description": "nf"}},
         deprecated=True, openapi_extra={"x": 1}, operation_id="documented", include_in_schema=False,
         response_description="nothing")
async def documented() -> None: ...


@app.get("/health", constant=True)
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/ws", max_size=1 << 20, compression=False, subprotocols=["chat"])
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.url.path)


@app.middleware("http")
async def timing(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers["x-app"] = request.app.title
    return response


@app.exception_handler(ValueError)
async def value_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


# Wrong options are type errors:
@app.get("/wrong", status_code="200")  # type: ignore[arg-type]
async def wrong_status() -> None: ...


@app.get("/typo", respons_model=Item)  # type: ignore[call-arg]
async def misspelt_option() -> None: ...


@app.get("/not-a-class", response_class="text/html")  # type: ignore[arg-type]
def not_a_class() -> str:
    return ""


@app.get("/wrong-tags", tags="items", include_in_schema="no")  # type: ignore[arg-type]
async def wrong_tags() -> None: ...


@app.websocket("/wrong-ws", max_size="1M")  # type: ignore[arg-type]
async def wrong_ws(websocket: WebSocket) -> None: ...


# Routers take the same options, typed the same way.
router = APIRouter(prefix="/r", tags=["r"], dependencies=[Depends(token)])


@router.get("/ok", status_code=201, name="router_ok", response_model=None)
async def router_ok() -> None: ...


@router.post("/typo", respons_model=Item)  # type: ignore[call-arg]
async def router_typo() -> None: ...


@router.get("/constant", constant=True)  # type: ignore[call-arg]  # constant= is the app's only
async def router_constant() -> None: ...


app.include_router(router, prefix="/v1", tags=["v1"])
ok_path: str = app.url_path_for("router_ok")


# The decorators return the handler itself, with its type.
item_handler: Any = get_item
answer: int = get_item  # type: ignore[assignment]


def use_client() -> None:
    with TestClient(app) as client:
        response = client.get("/items/1", headers={"x-token": "secret"})
        assert response.status_code == 200
        name: str = response.json()["name"]
        assert name
