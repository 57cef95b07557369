"""Sample app: @app.middleware("http") adding headers, short-circuiting, and seeing the handler's status."""

from __future__ import annotations

from typing import Any

from _framework import FastAPI, HTTPException, JSONResponse, Request

app = FastAPI()


@app.middleware("http")
async def add_process_header(request: Request, call_next: Any) -> Any:
    if request.headers.get("x-block") == "1":
        return JSONResponse({"blocked": True}, status_code=403)
    response = await call_next(request)
    response.headers["X-Process"] = "done"
    response.headers["X-Seen-Status"] = str(response.status_code)
    return response


@app.middleware("http")
async def outer(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Outer"] = request.method
    return response


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "world"}


@app.get("/fail")
async def fail() -> dict:
    raise HTTPException(status_code=409, detail="conflict")


@app.get("/typed/{n}")
async def typed(n: int) -> dict:
    return {"n": n}
