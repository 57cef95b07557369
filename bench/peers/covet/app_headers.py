"""The routes `bench/request_cost.sh` measures under callgrind: request headers read through a `Header()` parameter
and through `request.headers`, a JSON body model, and plaintext (no header read)."""

from pydantic import BaseModel

from covet import CovetPy, Header, Request

app = CovetPy()


class Item(BaseModel):
    name: str
    price: float


@app.get("/param")
async def param(authorization: str = Header()) -> dict[str, str]:
    return {"scheme": authorization[:6]}


@app.get("/request")
async def with_request(request: Request) -> dict[str, str]:
    return {"scheme": request.headers.get("authorization", "")[:6]}


@app.post("/items")
async def items(item: Item) -> dict[str, str]:
    return {"name": item.name}


@app.get("/plaintext")
async def plaintext() -> str:
    return "Hello, World!"
