"""FastAPI app for bench/python/run.py (same routes as covet_app.py; no inline variant exists)."""
from typing import Optional

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/plaintext")
async def plaintext():
    return PlainTextResponse("Hello, World!")


@app.get("/json")
async def json_():
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
async def user(user_id: int, q: Optional[str] = None):
    return {"id": user_id, "q": q}


@app.get("/sync/plaintext")
def sync_plaintext():
    return PlainTextResponse("Hello, World!")


@app.get("/sync/json")
def sync_json():
    return {"message": "Hello, World!"}


@app.get("/sync/users/{user_id}")
def sync_user(user_id: int, q: Optional[str] = None):
    return {"id": user_id, "q": q}
