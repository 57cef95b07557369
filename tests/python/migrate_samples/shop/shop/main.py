"""The shop app: `uvicorn shop.main:app` before the migration, `covet run shop.main:app` after."""

from contextlib import asynccontextmanager

import fastapi
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from .db import ItemNotFound, Store
from .errors import item_not_found_handler
from .middleware import ProcessTimeMiddleware
from .routers import items, users


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.db = Store()  # one store per app, made at startup
    yield
    app.state.db.items.clear()


def create_app() -> FastAPI:
    app = FastAPI(title="Shop", version="1.2.0", lifespan=lifespan)
    app.add_middleware(ProcessTimeMiddleware)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["https://shop.example"],
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization"],
    )

    @app.middleware("http")
    async def powered_by(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Powered-By"] = "shop"
        return response

    app.add_exception_handler(ItemNotFound, item_not_found_handler)

    @app.exception_handler(RequestValidationError)
    async def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in error["loc"]) for error in exc.errors()]
        return JSONResponse(status_code=422, content={"error": "invalid", "fields": fields})

    app.include_router(items.router)
    app.include_router(users.router)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
assert isinstance(app, fastapi.FastAPI)
