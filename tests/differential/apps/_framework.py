"""The one place where the sample apps' imports differ between the two frameworks.

Each sample app is written once, against FastAPI's API, and imports what it uses from here:

    from _framework import FastAPI, Query, HTTPException

With ``DIFF_FRAMEWORK=fastapi`` these are FastAPI's own names (``from fastapi import ...``); with
``DIFF_FRAMEWORK=covet`` they are CovetPy's (``from covet import ...``), which is the change of imports the README
promises is all a FastAPI app needs. Nothing else is adapted: a name covet lacks is an ImportError here, not a
stand-in.
"""

from __future__ import annotations

import os

FRAMEWORK = os.environ.get("DIFF_FRAMEWORK", "")

if FRAMEWORK == "fastapi":
    from fastapi import (
        APIRouter,
        BackgroundTasks,
        Body,
        Cookie,
        Depends,
        FastAPI,
        File,
        Form,
        Header,
        HTTPException,
        Path,
        Query,
        Request,
        Response,
        Security,
        UploadFile,
        WebSocket,
        WebSocketDisconnect,
        WebSocketException,
        status,
    )
    from fastapi.encoders import jsonable_encoder
    from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
    from fastapi.exceptions import FastAPIError, RequestValidationError
    from fastapi.middleware import Middleware
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.middleware.gzip import GZipMiddleware
    from fastapi.middleware.httpsredirect import HTTPSRedirectMiddleware
    from fastapi.middleware.trustedhost import TrustedHostMiddleware
    from fastapi.openapi import models as openapi_models
    from fastapi.openapi.constants import REF_TEMPLATE
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import (
        HTMLResponse,
        JSONResponse,
        ORJSONResponse,
        PlainTextResponse,
        RedirectResponse,
        StreamingResponse,
        UJSONResponse,
    )
    from fastapi.routing import APIRoute, APIWebSocketRoute, Mount
    from fastapi.security import (
        APIKeyCookie,
        APIKeyHeader,
        APIKeyQuery,
        HTTPAuthorizationCredentials,
        HTTPBasic,
        HTTPBasicCredentials,
        HTTPBearer,
        HTTPDigest,
        OAuth2,
        OAuth2AuthorizationCodeBearer,
        OAuth2PasswordBearer,
        OAuth2PasswordRequestForm,
        OAuth2PasswordRequestFormStrict,
        OpenIdConnect,
        SecurityScopes,
    )
    from fastapi.sse import EventSourceResponse, ServerSentEvent
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.routing import NoMatchFound
elif FRAMEWORK == "covet":
    from covet import (
        APIRouter,
        BackgroundTasks,
        Body,
        Cookie,
        Depends,
        File,
        Form,
        Header,
        HTMLResponse,
        HTTPException,
        JSONResponse,
        Path,
        PlainTextResponse,
        Query,
        RedirectResponse,
        Request,
        RequestValidationError,
        Response,
        Security,
        StreamingResponse,
        UploadFile,
        WebSocket,
        WebSocketDisconnect,
        WebSocketException,
        status,
    )
    from covet import CovetPy as FastAPI
    from covet.encoders import jsonable_encoder
    from covet.exception_handlers import http_exception_handler, request_validation_exception_handler
    from covet.exceptions import FastAPIError
    from covet.middleware import Middleware
    from covet.middleware.base import BaseHTTPMiddleware
    from covet.middleware.cors import CORSMiddleware
    from covet.middleware.gzip import GZipMiddleware
    from covet.middleware.httpsredirect import HTTPSRedirectMiddleware
    from covet.middleware.sessions import SessionMiddleware
    from covet.middleware.trustedhost import TrustedHostMiddleware
    from covet.openapi import models as openapi_models
    from covet.openapi.constants import REF_TEMPLATE
    from covet.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from covet.openapi.utils import get_openapi
    from covet.responses import ORJSONResponse, UJSONResponse
    from covet.routing import APIRoute, APIWebSocketRoute, Mount, NoMatchFound
    from covet.security import (
        APIKeyCookie,
        APIKeyHeader,
        APIKeyQuery,
        HTTPAuthorizationCredentials,
        HTTPBasic,
        HTTPBasicCredentials,
        HTTPBearer,
        HTTPDigest,
        OAuth2,
        OAuth2AuthorizationCodeBearer,
        OAuth2PasswordBearer,
        OAuth2PasswordRequestForm,
        OAuth2PasswordRequestFormStrict,
        OpenIdConnect,
        SecurityScopes,
    )
    from covet.sse import EventSourceResponse, ServerSentEvent
    from covet.staticfiles import StaticFiles
    from covet.templating import Jinja2Templates
else:
    raise RuntimeError(
        f"DIFF_FRAMEWORK is {FRAMEWORK!r}: set it to 'fastapi' or 'covet' to say which framework the sample apps "
        "of tests/differential import (the runner, test_differential.py, sets it)"
    )

__all__ = [
    "FRAMEWORK",
    # core
    "Body", "Cookie", "Depends", "FastAPI", "File", "Form", "HTMLResponse", "HTTPException", "Header", "JSONResponse",
    "Path", "PlainTextResponse", "Query", "RedirectResponse", "Request", "RequestValidationError", "Response",
    "UploadFile", "status",
    # docs pages
    "get_redoc_html", "get_swagger_ui_html", "get_swagger_ui_oauth2_redirect_html",
    # security
    "APIKeyCookie", "APIKeyHeader", "APIKeyQuery", "HTTPAuthorizationCredentials", "HTTPBasic",
    "HTTPBasicCredentials", "HTTPBearer", "HTTPDigest", "OAuth2", "OAuth2AuthorizationCodeBearer",
    "OAuth2PasswordBearer", "OAuth2PasswordRequestForm", "OAuth2PasswordRequestFormStrict", "OpenIdConnect",
    "Security", "SecurityScopes",
    # routing
    "APIRoute", "APIRouter", "APIWebSocketRoute", "Mount", "NoMatchFound",
    # responses
    "BackgroundTasks", "EventSourceResponse", "ORJSONResponse", "ServerSentEvent", "StreamingResponse",
    "UJSONResponse",
    # testclient & names
    "FastAPIError", "WebSocket", "WebSocketDisconnect", "WebSocketException", "http_exception_handler",
    "jsonable_encoder", "request_validation_exception_handler",
    # static files and templates
    "Jinja2Templates", "StaticFiles",
    # middleware classes
    "BaseHTTPMiddleware", "CORSMiddleware", "GZipMiddleware", "HTTPSRedirectMiddleware", "Middleware",
    "SessionMiddleware",
    "TrustedHostMiddleware",
    # OpenAPI names
    "REF_TEMPLATE", "get_openapi", "openapi_models",
]

# --- New areas: a block per area below this line, labelled with the area:
#         # --- <area> (issue NN: what it covers)
#         if FRAMEWORK == "fastapi":
#             from fastapi... import X
#         else:
#             from covet... import X
#         __all__ += ["X"]
# --- fileresponse (issue 14: FileResponse with Range/HEAD/validators; StaticFiles under Python middleware)
if FRAMEWORK == "fastapi":
    from fastapi.responses import FileResponse
else:
    from covet.responses import FileResponse
__all__ += ["FileResponse"]
