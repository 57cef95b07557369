"""Sample app: the app replaces the 422 handler (RequestValidationError) with its own plain-text one."""

from __future__ import annotations

from _framework import FastAPI, PlainTextResponse, Request, RequestValidationError

app = FastAPI()


@app.exception_handler(RequestValidationError)
async def validation_handler(request: Request, exc: RequestValidationError) -> PlainTextResponse:
    locs = ",".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
    return PlainTextResponse(f"invalid: {locs}", status_code=400)


@app.get("/numbers/{n}")
async def numbers(n: int, limit: int = 10) -> dict:
    return {"n": n, "limit": limit}
