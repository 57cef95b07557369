from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from ..dependencies import UserDep, client_version
from ..models import User

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(client_version)])


@router.get("/me", response_model=User)
def me(user: UserDep):
    return user


@router.get("/me/greeting", response_class=PlainTextResponse)
async def greeting(user: UserDep, version: str = Depends(client_version)):
    return f"hello {user.name} (client v{version})"
