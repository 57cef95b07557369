"""Sample app: Starlette's SessionMiddleware (`starlette.middleware.sessions`) with every constructor argument, and
``request.session`` read, changed, popped and cleared by routes. The cookies differ by signature between the two
frameworks (itsdangerous' HMAC-SHA1 vs covet's HMAC-SHA256), so test_sessions.py compares what they do: the
session each request sees, and the cookie's attributes, not its value."""

from __future__ import annotations

from typing import Any

from _framework import FastAPI, Request, SessionMiddleware

SECRET_KEY = "differential-session-key-0123456789"

app = FastAPI()
app.add_middleware(SessionMiddleware, secret_key=SECRET_KEY, session_cookie="sid", max_age=3600, path="/",
                   same_site="strict", https_only=False, domain=None)


@app.get("/session")
async def read(request: Request) -> dict[str, Any]:
    return dict(request.session)


@app.get("/session/set")
async def set_value(request: Request, key: str, value: str) -> dict[str, Any]:
    request.session[key] = value
    return dict(request.session)


@app.get("/session/count")
async def count(request: Request) -> dict[str, Any]:
    request.session["n"] = request.session.get("n", 0) + 1
    return dict(request.session)


@app.get("/session/pop")
async def pop(request: Request, key: str) -> dict[str, Any]:
    return {"popped": request.session.pop(key, None), "session": dict(request.session)}


@app.get("/session/clear")
async def clear(request: Request) -> dict[str, Any]:
    request.session.clear()
    return dict(request.session)
