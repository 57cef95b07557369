"""FastAPI's default exception handlers, to call from your own (``fastapi.exception_handlers``)::

    from covet.exception_handlers import http_exception_handler

    @app.exception_handler(HTTPException)
    async def logged(request, exc):
        log.warning("%s: %s", request.url, exc.detail)
        return await http_exception_handler(request, exc)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .encoders import jsonable_encoder
from .exceptions import HTTPException, RequestValidationError, WebSocketRequestValidationError
from .responses import JSONResponse, Response
from .status import WS_1008_POLICY_VIOLATION

if TYPE_CHECKING:
    from .requests import Request
    from .websockets import WebSocket

__all__ = ["http_exception_handler", "request_validation_exception_handler",
           "websocket_request_validation_exception_handler", "is_body_allowed_for_status_code"]


def is_body_allowed_for_status_code(status_code: int | str | None) -> bool:
    """False for the statuses that never carry a body: 1xx, 204, 205 and 304."""
    if status_code is None or status_code in {"default", "1XX", "2XX", "3XX", "4XX", "5XX"}:
        return True
    code = int(status_code)
    return not (code < 200 or code in {204, 205, 304})


async def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    """``{"detail": exc.detail}`` with the exception's status and headers (no body for 204, 304, ...)."""
    if not is_body_allowed_for_status_code(exc.status_code):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def request_validation_exception_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with ``{"detail": exc.errors()}``."""
    return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def websocket_request_validation_exception_handler(websocket: WebSocket,
                                                         exc: WebSocketRequestValidationError) -> None:
    """Closes the connection with 1008 (policy violation), the errors as JSON in the close reason."""
    reason = json.dumps(jsonable_encoder(exc.errors()), separators=(",", ":"))
    await websocket.close(code=WS_1008_POLICY_VIOLATION, reason=reason[:120])  # a close reason: <= 123 bytes
