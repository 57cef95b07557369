"""A Starlette app as its users write one: routing with path converters, a lifespan that fills the app state,
middleware (GZip, a BaseHTTPMiddleware), forms, streaming, background tasks and a WebSocketEndpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.endpoints import HTTPEndpoint, WebSocketEndpoint
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

DONE: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
    yield {"greeting": "hello from lifespan"}


async def homepage(request: Request) -> Response:
    return JSONResponse({"greeting": request.state.greeting, "path": request.url.path})


async def user(request: Request) -> Response:
    user_id: int = request.path_params["user_id"]
    return JSONResponse({"user_id": user_id, "type": type(user_id).__name__, "q": request.query_params.get("q")})


async def submit(request: Request) -> Response:
    async with request.form() as form:
        return JSONResponse({"name": form["name"], "tags": form.getlist("tag")})


async def stream(request: Request) -> Response:
    async def numbers() -> AsyncIterator[str]:
        for i in range(5):
            yield f"line {i}\n"

    return StreamingResponse(numbers(), media_type="text/plain")


async def slow_stream(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        yield b"first\n"
        await asyncio.sleep(1.5)  # the first part must be on the wire by now
        yield b"second\n"

    return StreamingResponse(parts(), media_type="text/plain")


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * 20000)  # over GZipMiddleware's minimum size


async def later(request: Request) -> Response:
    return PlainTextResponse("accepted", status_code=202, background=BackgroundTask(DONE.append, "task"))


async def done(request: Request) -> Response:
    return JSONResponse(DONE)


class Echo(HTTPEndpoint):
    async def post(self, request: Request) -> Response:
        body = await request.body()
        return Response(body[::-1], media_type="application/octet-stream",
                        headers={"x-length": str(len(body))})


class Chat(WebSocketEndpoint):
    encoding = "text"

    async def on_connect(self, websocket: WebSocket) -> None:
        if websocket.query_params.get("token") == "bad":
            await websocket.close(code=1008)  # before accept: the handshake is denied with 403
            return
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol="chat.v1" if "chat.v1" in offered else None)
        await websocket.send_text(f"welcome {websocket.query_params.get('name', 'anonymous')}")

    async def on_receive(self, websocket: WebSocket, data: str) -> None:
        if data == "bye":
            await websocket.close(code=4001)
        else:
            await websocket.send_text(f"echo: {data}")


class ServerHeader(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-app"] = "starlette"
        return response


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/users/{user_id:int}", user),
        Route("/submit", submit, methods=["POST"]),
        Route("/stream", stream),
        Route("/slow-stream", slow_stream),
        Route("/big", big),
        Route("/later", later),
        Route("/done", done),
        Route("/old", lambda request: RedirectResponse("/")),
        Mount("/api", routes=[Route("/echo", Echo)]),
        WebSocketRoute("/ws", Chat),
    ],
    middleware=[Middleware(ServerHeader), Middleware(GZipMiddleware, minimum_size=1000)],
    lifespan=lifespan,
)
