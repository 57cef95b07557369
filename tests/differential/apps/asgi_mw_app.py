"""Sample app: pure ASGI middleware (issue 14/15) written against the ASGI specification only — classes taking
``app`` and defining ``async __call__(scope, receive, send)``, no Starlette import — added with add_middleware
among an @app.middleware("http") function, and a hand-written ASGI app mounted with app.mount."""

from __future__ import annotations

import json
from typing import Any

from _framework import FastAPI, Request, StreamingResponse

Scope = dict[str, Any]


class AddHeader:
    """Wraps send: a header on every response."""

    def __init__(self, app: Any, name: str, value: str) -> None:
        self.app, self.name, self.value = app, name.encode(), value.encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (self.name, self.value)]}
            await send(message)

        await self.app(scope, receive, send_with_header)


class Forbid:
    """Answers 403 itself for a path prefix, without calling the app."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"x-forbidden", b"1")]})
            await send({"type": "http.response.body", "body": b"forbidden by middleware"})
            return
        await self.app(scope, receive, send)


class ReplaceBody:
    """Replaces the body of /replace responses (and their Content-Length)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/replace":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}

        async def replace(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                body = json.dumps({"replaced": True}).encode()
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, replace)


class Rewrite:
    """Rewrites /old/... to /items/... in the scope before routing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/old/"):
            path = "/items/" + scope["path"][len("/old/"):]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


class ReadBody:
    """Reads the whole request body through receive, reports its size, and replays it to the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_size(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-body-size", str(len(body)).encode())]}
            await send(message)

        await self.app(scope, replay, send_size)


class Explode:
    """Raises for /explode: the server's 500."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/explode":
            raise RuntimeError("middleware failure")
        await self.app(scope, receive, send)


async def legacy(scope: Scope, receive: Any, send: Any) -> None:
    """A hand-written ASGI app, mounted under /legacy."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    answer = json.dumps({"path": scope["path"], "root_path": scope["root_path"], "method": scope["method"],
                         "query": scope["query_string"].decode(), "body": body.decode()}).encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"x-legacy", b"1")]})
    await send({"type": "http.response.body", "body": answer[:7], "more_body": True})
    await send({"type": "http.response.body", "body": answer[7:]})


app = FastAPI()
app.add_middleware(ReadBody)


@app.middleware("http")
async def function_middleware(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Function"] = request.url.path
    return response


app.add_middleware(Rewrite)
app.add_middleware(Explode)
app.add_middleware(ReplaceBody)
app.add_middleware(Forbid, prefix="/admin")
app.add_middleware(AddHeader, name="x-outer", value="asgi")
app.mount("/legacy", legacy)


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str = "none") -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.get("/replace")
async def replace() -> dict[str, str]:
    return {"original": "body"}


@app.post("/echo")
async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return {"received": payload}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def parts() -> Any:
        for i in range(4):
            yield f"part {i}\n"

    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/explode")
async def explode() -> dict[str, str]:
    return {"never": "sent"}


@app.get("/handler-error")
async def handler_error() -> dict[str, str]:
    raise LookupError("handler failure")
