from fastapi import Request
from fastapi.responses import JSONResponse

from .db import ItemNotFound


async def item_not_found_handler(request: Request, exc: ItemNotFound) -> JSONResponse:
    return JSONResponse(
        status_code=404,
        content={"error": "item_not_found", "item_id": exc.item_id},  # the app's own error shape
    )
