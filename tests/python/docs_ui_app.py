"""The sample app of test_docs_ui.py: FastAPI's OAuth2 password flow tutorial — ``POST /token`` takes an
`OAuth2PasswordRequestForm` and answers a bearer token; ``GET /users/me`` needs it through
``OAuth2PasswordBearer(tokenUrl="token")``. Its schema is the generated one (``/openapi.json``): the OAuth2
password scheme with ``tokenUrl: "token"`` is what Swagger UI's Authorize dialog reads.
Run: ``python -m covet run docs_ui_app:app``.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from pydantic import BaseModel

from covet import CovetPy, Depends, HTTPException
from covet.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm

USERS = {"alice": {"password": "wonderland", "full_name": "Alice Liddell", "email": "alice@example.com"}}
TOKENS: dict[str, str] = {}  # issued token -> username

app = CovetPy(title="Docs UI sample")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


class User(BaseModel):
    username: str
    full_name: str
    email: str


class Token(BaseModel):
    access_token: str
    token_type: str


@app.post("/token")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    user = USERS.get(form.username)
    if user is None or not secrets.compare_digest(user["password"], form.password):
        raise HTTPException(status_code=400, detail="Incorrect username or password")
    token = secrets.token_urlsafe(16)
    TOKENS[token] = form.username
    return Token(access_token=token, token_type="bearer")


async def current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    username = TOKENS.get(token)
    if username is None:
        raise HTTPException(status_code=401, detail="Invalid authentication credentials",
                            headers={"WWW-Authenticate": "Bearer"})
    user = USERS[username]
    return User(username=username, full_name=user["full_name"], email=user["email"])


@app.get("/users/me")
async def read_users_me(user: Annotated[User, Depends(current_user)]) -> User:
    return user


@app.get("/items/{item_id}", tags=["items"])
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}
