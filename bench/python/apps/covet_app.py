"""CovetPy app for bench/python/run.py (async routes, thread-pool sync twins, inline sync twins)."""
from typing import Optional

from covet import CovetPy, Response

app = CovetPy()


@app.get("/plaintext")
async def plaintext():
    return Response("Hello, World!", media_type="text/plain")


@app.get("/json")
async def json_():
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
async def user(user_id: int, q: Optional[str] = None):
    return {"id": user_id, "q": q}


# plain `def` handlers, run in the thread pool (the default)
@app.get("/sync/plaintext")
def sync_plaintext():
    return Response("Hello, World!", media_type="text/plain")


@app.get("/sync/json")
def sync_json():
    return {"message": "Hello, World!"}


@app.get("/sync/users/{user_id}")
def sync_user(user_id: int, q: Optional[str] = None):
    return {"id": user_id, "q": q}


# plain `def` handlers run directly on the event-loop thread
@app.get("/inline/plaintext", inline=True)
def inline_plaintext():
    return Response("Hello, World!", media_type="text/plain")


@app.get("/inline/json", inline=True)
def inline_json():
    return {"message": "Hello, World!"}


@app.get("/inline/users/{user_id}", inline=True)
def inline_user(user_id: int, q: Optional[str] = None):
    return {"id": user_id, "q": q}
