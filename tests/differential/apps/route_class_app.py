"""Sample app: ``route_class=`` — FastAPI's "Custom Request and APIRoute class" examples. An APIRoute subclass
overriding ``get_route_handler()`` wraps the handler it inherits: a GzipRequest decompressing the body
(``GzipRequest(request.scope, request.receive)``), the body read in the handler on a RequestValidationError, a
timed route adding a header. Given as ``APIRouter(route_class=...)`` (kept when included) and as
``app.router.route_class = ...``."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable

from _framework import (
    APIRoute,
    APIRouter,
    Body,
    FastAPI,
    HTTPException,
    Request,
    RequestValidationError,
    Response,
)


class GzipRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            body = await super().body()
            if "gzip" in self.headers.getlist("Content-Encoding"):
                body = gzip.decompress(body)
            self._body = body
        return self._body


class GzipRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        original_route_handler = super().get_route_handler()

        async def custom_route_handler(request: Request) -> Response:
            request = GzipRequest(request.scope, request.receive)
            return await original_route_handler(request)

        return custom_route_handler


class ValidationErrorLoggingRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        original_route_handler = super().get_route_handler()

        async def custom_route_handler(request: Request) -> Response:
            try:
                return await original_route_handler(request)
            except RequestValidationError as exc:
                body = await request.body()
                detail = {"errors": exc.errors(), "body": body.decode()}
                raise HTTPException(status_code=422, detail=detail) from None

        return custom_route_handler


class TimedRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        original_route_handler = super().get_route_handler()

        async def custom_route_handler(request: Request) -> Response:
            before = time.time()
            response: Response = await original_route_handler(request)
            duration = time.time() - before
            # the differential compares x-* headers by value: the timing itself goes in Server-Timing (not
            # compared), X-Response-Timed says that it was measured
            response.headers["Server-Timing"] = f"route;dur={duration * 1000:.3f}"
            response.headers["X-Response-Timed"] = "true" if duration >= 0 else "false"
            return response

        return custom_route_handler


app = FastAPI()

gzip_router = APIRouter(prefix="/gzip", route_class=GzipRoute)


@gzip_router.post("/sum")
async def sum_numbers(numbers: list[int] = Body()):
    return {"sum": sum(numbers)}


app.include_router(gzip_router)

app.router.route_class = ValidationErrorLoggingRoute


@app.post("/validation")
async def sum_validated(numbers: list[int] = Body()):
    return sum(numbers)


app.router.route_class = APIRoute


@app.get("/")
async def not_timed():
    return {"message": "Not timed"}


timed_router = APIRouter(route_class=TimedRoute)


@timed_router.get("/timed")
async def timed():
    return {"message": "It's the time of my life"}


outer = APIRouter(prefix="/outer")  # the included router's routes keep their class
outer.include_router(timed_router, prefix="/inner")
app.include_router(timed_router)
app.include_router(outer)


@app.get("/route-classes")
async def route_classes():
    # the app's own routes (FastAPI 0.165 lists an included router as one entry of app.routes, covet its routes)
    return sorted(f"{route.path} {type(route).__name__}" for route in app.routes
                  if isinstance(route, APIRoute) and route.path in ("/", "/validation"))
