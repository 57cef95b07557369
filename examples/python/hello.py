"""The Python hello app: `python examples/python/hello.py` or `covet run hello:app --app-dir examples/python`."""
from typing import Optional

from covet import CovetPy, Request, Response

app = CovetPy()


@app.get("/plaintext")
async def plaintext():
    return Response("Hello, World!", media_type="text/plain")


@app.get("/json")
async def json_hello():
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
async def get_user(user_id: int, fields: Optional[str] = None):
    return {"id": user_id, "fields": fields}


@app.get("/sync/users/{user_id}")
def get_user_sync(user_id: int, fields: Optional[str] = None):
    return {"id": user_id, "fields": fields}


@app.post("/echo")
async def echo(request: Request):
    return Response(await request.body(), media_type=request.headers.get("content-type", "application/octet-stream"))


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
