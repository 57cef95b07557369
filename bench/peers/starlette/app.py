"""Starlette peer (uvicorn, uvloop + httptools, access log off). Starlette has no models: pydantic by hand."""
import asyncio

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


async def plaintext(request):
    return PlainTextResponse("Hello, World!")


async def json_(request):
    return JSONResponse({"message": "Hello, World!"})


async def user(request):
    return JSONResponse({"id": request.path_params["user_id"], "q": request.query_params.get("q")})


async def items(request):
    try:
        item = Item.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"detail": exc.errors(include_url=False)}, status_code=422)
    return JSONResponse({"name": item.name, "tag_count": len(item.tags)})


async def sleep(request):
    await asyncio.sleep(0.001)
    return PlainTextResponse("Hello, World!")


app = Starlette(routes=[
    Route("/plaintext", plaintext),
    Route("/json", json_),
    Route("/users/{user_id:int}", user),
    Route("/items", items, methods=["POST"]),
    Route("/sleep", sleep),
])
