"""The design doc's "Python-First API" example: read and create users.

    python examples/python/python_first.py [--host H] [--port N]
    covet run python_first:app --app-dir examples/python

    curl localhost:8000/users/1
    curl -X POST localhost:8000/users -H 'content-type: application/json' \\
         -d '{"name": "Dee", "email": "dee@example.com"}'
"""
from covet import CovetPy, HTTPException, Request, Response

from _example_db import db

app = CovetPy()


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> Response:
    user = await db.get_user(user_id)
    if user is None:  # not in the doc, whose `db` always finds the user
        raise HTTPException(status_code=404, detail="User not found")
    return Response(user)


@app.post("/users")
async def create_user(request: Request) -> Response:
    data = await request.json()
    user = await db.create_user(data)
    return Response(user, status=201)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The design doc's Python-first API example")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port)
