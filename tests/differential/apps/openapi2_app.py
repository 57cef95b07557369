"""Sample app: schemas of features merged alongside the OpenAPI generator — a callback path with OpenAPI runtime
expressions, type-alias parameters, ``Query(default_factory=)``, a ``Form(json_schema_extra=)``, SSE items that are
models and strings, JSON Lines items, a redirect response class without and with ``status_code=``, OAuth2 with
scopes through ``Security`` and both password request forms."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator
from typing import Annotated

from pydantic import BaseModel, StringConstraints
from typing_extensions import TypeAliasType

from _framework import (
    APIRouter,
    Depends,
    EventSourceResponse,
    FastAPI,
    Form,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    Query,
    RedirectResponse,
    Security,
)

app = FastAPI()
oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"items": "Read items.", "me": "Read yourself."})


class Item(BaseModel):
    name: str
    price: float = 0.0


class Invoice(BaseModel):
    id: str
    total: float


class InvoiceEvent(BaseModel):
    description: str
    paid: bool


class Received(BaseModel):
    ok: bool


callbacks = APIRouter()


@callbacks.post("{$callback_url}/invoices/{$request.body.id}", response_model=Received)
def invoice_notification(body: InvoiceEvent):
    pass


@app.post("/invoices/", callbacks=callbacks.routes)
def create_invoice(invoice: Invoice) -> dict:
    return {"msg": "Invoice received", "id": invoice.id}


Code = TypeAliasType("Code", Annotated[str, StringConstraints(min_length=2, max_length=4, pattern="^[a-z]+$")])
Page = TypeAliasType("Page", Annotated[int, Query(ge=1, le=50)])


@app.get("/codes/{code}")
async def read_code(code: Code, tags: Annotated[list[str], Query(default_factory=lambda: ["all"])],
                    page: Page = 1) -> dict:
    return {"code": code, "page": page, "tags": tags}


@app.post("/secret-form")
async def secret_form(user: Annotated[str, Form()],
                      pin: Annotated[str, Form(json_schema_extra={"format": "password"})]) -> dict:
    return {"user": user, "pin_length": len(pin)}


@app.get("/events", response_class=EventSourceResponse)
async def events() -> AsyncIterable[Item]:
    yield Item(name="a", price=1)


@app.get("/words", response_class=EventSourceResponse)
def words() -> Iterator[str]:
    yield "hello"


@app.get("/lines")
async def lines() -> AsyncIterable[Item]:
    yield Item(name="b")


@app.get("/moved", response_class=RedirectResponse)
async def moved():
    return "/codes/ab"


@app.get("/found", response_class=RedirectResponse, status_code=302)
async def found():
    return "/codes/ab"


async def current_user(token: Annotated[str, Security(oauth2, scopes=["me"])]) -> str:
    return token


@app.get("/my-items")
async def my_items(user: Annotated[str, Security(current_user, scopes=["items"])]) -> dict:
    return {"token": user}


@app.post("/token")
async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict:
    return {"access_token": form.username, "token_type": "bearer", "scopes": form.scopes}


@app.post("/token-strict")
async def token_strict(form: Annotated[OAuth2PasswordRequestFormStrict, Depends()]) -> dict:
    return {"access_token": form.username, "token_type": "bearer"}
