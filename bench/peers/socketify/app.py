"""socketify.py peer (CPython, one process, uWebSockets core via CFFI); body validated with pydantic by hand.

After an `await` the handlers answer with `cork_send`, as socketify's async examples do: uWS wants writes from
outside its own callbacks corked, and `cork` skips a response the client has already dropped, where a plain `send`
on it dereferences the freed uWS response and kills the process (the end of every wrk run drops connections with
requests in flight)."""
import asyncio
import os

import orjson
from pydantic import BaseModel, ValidationError
from socketify import App


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


HELLO = b"Hello, World!"
app = App()


def plaintext(res, req):
    res.send(HELLO, content_type=b"text/plain")


def json_(res, req):
    res.send(orjson.dumps({"message": "Hello, World!"}), content_type=b"application/json")


def user(res, req):
    try:
        uid = int(req.get_parameter(0))
    except (TypeError, ValueError):
        res.send(b"Not Found", content_type=b"text/plain", status=404)
        return
    res.send(orjson.dumps({"id": uid, "q": req.get_query("q")}), content_type=b"application/json")


# Responses whose body is being read. While `await res.get_data()` waits, the response, its future and the task form
# a cycle that nothing else holds (uWS keeps only a raw cffi handle), so the garbage collector may free it and the
# next body chunk then kills the process ("ffi.from_handle() ... points to garbage"). asyncio's advice for tasks
# applies: keep a reference until it is done.
_reading: set = set()


async def items(res, req):
    _reading.add(res)
    try:
        data = await res.get_data()
    finally:
        _reading.discard(res)
    try:
        item = Item.model_validate_json(data.getvalue())
    except ValidationError as exc:
        res.cork_send(orjson.dumps({"detail": exc.errors(include_url=False)}), content_type=b"application/json",
                      status=422)
        return
    res.cork_send(orjson.dumps({"name": item.name, "tag_count": len(item.tags)}), content_type=b"application/json")


async def sleep(res, req):
    await asyncio.sleep(0.001)
    res.cork_send(HELLO, content_type=b"text/plain")


app.get("/plaintext", plaintext)
app.get("/json", json_)
app.get("/users/:user_id", user)
app.post("/items", items)
app.get("/sleep", sleep)
app.listen(int(os.environ["BENCH_PORT"]))
app.run()
