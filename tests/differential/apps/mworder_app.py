"""Sample app: middleware order (issue 14) — CORSMiddleware added FIRST, then an auth @app.middleware("http") that
answers 401 early: the auth middleware is outside CORS, so its 401 carries no CORS headers (CovetPy runs CORS in
Python at that position instead of natively)."""

from __future__ import annotations

from typing import Any

from _framework import CORSMiddleware, FastAPI, PlainTextResponse, Request

app = FastAPI()
app.add_middleware(
    CORSMiddleware,
    allow_origins=["https://a.example"],
    allow_origin_regex=r"https://.*\.b\.example",
    allow_methods=["GET", "POST"],
    allow_headers=["X-Token"],
    allow_credentials=True,
    expose_headers=["X-Total"],
    max_age=120,
)


@app.middleware("http")
async def auth(request: Request, call_next: Any) -> Any:
    if not request.url.path.startswith("/public") and request.headers.get("authorization") != "Bearer ok":
        return PlainTextResponse("Not authenticated", status_code=401, headers={"X-Auth": "refused"})
    response = await call_next(request)
    response.headers["X-Auth"] = "passed"
    return response


@app.get("/public/items")
async def public_items() -> dict:
    return {"items": [1, 2]}


@app.post("/public/items")
async def public_post() -> dict:
    return {"posted": True}


@app.get("/private")
async def private() -> Any:
    return PlainTextResponse("secret", headers={"X-Total": "1", "Vary": "Accept"})
