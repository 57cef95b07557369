"""The design doc's "Type Safety" example: typed query parameters and a `List[User]` result.

    python examples/python/type_safety.py [--host H] [--port N]
    covet run type_safety:app --app-dir examples/python

    curl 'localhost:8000/users?limit=2&offset=1&active=true'

Query parameters are converted and checked from the signature (``?limit=many`` is a 422); the return
annotation is the response model, so each user is sent with exactly `User`'s fields.
"""
from typing import List, Optional

from pydantic import BaseModel

from covet import CovetPy

from _example_db import db

app = CovetPy()


class User(BaseModel):
    id: int
    name: str
    email: str
    active: bool = True


@app.get("/users")
async def list_users(
    limit: int = 10,
    offset: int = 0,
    active: Optional[bool] = None
) -> List[User]:
    users = await db.list_users(limit, offset, active)
    return [User(**user) for user in users]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The design doc's Type Safety example")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port)
