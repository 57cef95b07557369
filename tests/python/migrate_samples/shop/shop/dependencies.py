from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .db import Store
from .models import User

TOKENS = {"alice-token": User(name="alice", admin=True), "bob-token": User(name="bob")}

bearer = HTTPBearer(auto_error=False)


def get_store(request: Request) -> Store:
    return request.app.state.db


def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    if credentials is None or credentials.credentials not in TOKENS:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return TOKENS[credentials.credentials]


def require_admin(user: Annotated[User, Depends(get_current_user)]) -> User:
    if not user.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admins only")
    return user


async def client_version(x_client_version: Annotated[str, Header()] = "1") -> str:
    return x_client_version


StoreDep = Annotated[Store, Depends(get_store)]
UserDep = Annotated[User, Depends(get_current_user)]
