"""Sample app: HTTPException (with headers), custom exception handlers, an overridden validation handler,
and an unhandled exception (500)."""

from __future__ import annotations

from _framework import FastAPI, HTTPException, JSONResponse, PlainTextResponse, Request

app = FastAPI()


class UnicornError(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


@app.exception_handler(UnicornError)
async def unicorn_handler(request: Request, exc: UnicornError) -> JSONResponse:
    return JSONResponse(status_code=418, content={"message": f"Oops! {exc.name} did something."})


@app.exception_handler(ValueError)
async def value_error_handler(request: Request, exc: ValueError) -> PlainTextResponse:
    return PlainTextResponse(f"bad value: {exc}", status_code=400)


@app.get("/missing/{name}")
async def missing(name: str) -> dict:
    if name != "found":
        raise HTTPException(status_code=404, detail="Item not found", headers={"X-Error": "There goes my error"})
    return {"name": name}


@app.get("/forbidden")
async def forbidden() -> dict:
    raise HTTPException(status_code=403)


@app.get("/detail-dict")
async def detail_dict() -> dict:
    raise HTTPException(status_code=409, detail={"code": "conflict", "ids": [1, 2]})


@app.get("/unauthorized")
async def unauthorized() -> dict:
    raise HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})


@app.get("/unicorns/{name}")
async def unicorn(name: str) -> dict:
    if name == "yolo":
        raise UnicornError(name)
    return {"unicorn_name": name}


@app.get("/value-error")
def value_error() -> dict:
    raise ValueError("negative")


@app.get("/crash")
async def crash() -> dict:
    raise RuntimeError("boom")


@app.get("/validated/{n}")
async def validated(n: int) -> dict:
    return {"n": n}
