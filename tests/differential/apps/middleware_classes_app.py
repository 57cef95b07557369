"""Sample app: middleware classes — CORS and GZip (native in CovetPy) outside a BaseHTTPMiddleware subclass and an
@app.middleware("http") function, added with add_middleware and FastAPI(middleware=[Middleware(...)])."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from _framework import (
    BaseHTTPMiddleware,
    CORSMiddleware,
    FastAPI,
    GZipMiddleware,
    JSONResponse,
    Middleware,
    PlainTextResponse,
    Request,
    Response,
    StreamingResponse,
)


class StampMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, stamp: str) -> None:
        super().__init__(app)
        self.stamp = stamp

    async def dispatch(self, request: Request, call_next: Any) -> Any:
        if request.headers.get("x-refuse") == "1":
            return PlainTextResponse("refused by StampMiddleware", status_code=403)
        response = await call_next(request)
        response.headers["X-Stamp"] = self.stamp
        return response


app = FastAPI(middleware=[Middleware(GZipMiddleware, minimum_size=500)])


@app.middleware("http")
async def timing(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Inner"] = "function"
    return response


app.add_middleware(StampMiddleware, stamp="base")
app.add_middleware(
    CORSMiddleware,
    allow_origins=["https://a.example"],
    allow_origin_regex=r"https://.*\.b\.example",
    allow_methods=["GET", "POST"],
    allow_headers=["X-Token"],
    allow_credentials=True,
    expose_headers=["X-Total"],
    max_age=300,
)

LARGE = "covet " * 400  # 2400 bytes: above minimum_size
ROWS = [{"id": i, "name": f"row {i}", "tags": ["a", "b", "c"]} for i in range(60)]


@app.get("/small")
async def small() -> dict:
    return {"small": True}


@app.get("/large")
async def large() -> PlainTextResponse:
    return PlainTextResponse(LARGE)


@app.get("/rows")
async def rows() -> list:
    return ROWS


@app.post("/echo")
async def echo(request: Request) -> Any:
    return JSONResponse({"got": (await request.body()).decode()}, headers={"X-Total": "1"})


@app.get("/encoded")
async def encoded() -> Response:
    return Response(LARGE.encode(), media_type="text/plain", headers={"Content-Encoding": "identity"})


@app.get("/image")
async def image() -> Response:
    return Response(b"\x89PNG" + b"\0" * 1000, media_type="image/png")


def _chunks() -> Iterator[str]:
    for i in range(5):
        yield f"chunk {i} " * 30


@app.get("/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(_chunks(), media_type="text/plain")
