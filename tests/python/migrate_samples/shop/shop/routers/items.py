from typing import Annotated, Optional

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, status

from ..dependencies import StoreDep, UserDep, require_admin
from ..models import Item, ItemIn, Page

router = APIRouter(prefix="/items", tags=["items"])


@router.get("/", response_model=Page)
async def list_items(
    store: StoreDep,
    tag: Optional[str] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
):
    found = store.find(tag)
    end = offset + limit
    return Page(items=found[offset:end], total=len(found), next_offset=end if end < len(found) else None)


@router.get("/{item_id}", response_model=Item)
async def get_item(item_id: Annotated[int, Path(ge=1)], store: StoreDep):
    return store.get(item_id)  # ItemNotFound -> the app's handler (404)


@router.post("/", response_model=Item, status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemIn, store: StoreDep, user: UserDep, background: BackgroundTasks):
    item = store.add(data, owner=user.name)
    background.add_task(store.audit.append, f"created {item.id} by {user.name}")
    return item


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_admin)])
def delete_item(item_id: int, store: StoreDep) -> None:  # a sync handler: runs in the thread pool
    store.delete(item_id)
