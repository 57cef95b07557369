"""CovetPy: FastAPI-style handlers on a C++20 io_uring/epoll HTTP engine.

::

    from covet import CovetPy, Request, Response

    app = CovetPy()

    @app.get("/users/{user_id}")
    async def get_user(user_id: int) -> Response:
        return Response({"id": user_id})

    if __name__ == "__main__":
        app.run(host="0.0.0.0", port=8000)
"""

from __future__ import annotations

from . import status
from .app import CovetPy
from .background import BackgroundTasks
from .concurrency import run_in_threadpool
from .datastructures import URL, FormData, Headers, QueryParams, State, UploadFile
from .dependencies import Depends
from .exceptions import (
    CovetError,
    FastAPIError,
    HTTPException,
    RequestValidationError,
    ResponseValidationError,
    WebSocketException,
)
from .params import Body, Cookie, File, Form, Header, Path, Query, Security
from .requests import Request
from .responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from .routing import APIRouter
from .websockets import WebSocket, WebSocketDisconnect, WebSocketState

__version__ = "0.1.0"

__all__ = [
    "CovetPy",
    "BackgroundTasks",
    "Request",
    "Response",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "JSONResponse",
    "PlainTextResponse",
    "HTMLResponse",
    "RedirectResponse",
    "StreamingResponse",
    "FileResponse",
    "HTTPException",
    "RequestValidationError",
    "ResponseValidationError",
    "Query",
    "Path",
    "Header",
    "Cookie",
    "Body",
    "Form",
    "File",
    "Depends",
    "Security",
    "UploadFile",
    "Headers",
    "QueryParams",
    "FormData",
    "URL",
    "State",
    "status",
    "run_in_threadpool",
    "__version__",
]

# --- routing
__all__ += ["APIRouter"]
# --- testclient & names (issue 14)
__all__ += ["WebSocketException", "CovetError", "FastAPIError"]
