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
        UploadFile,
        status,
    )
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
    )
elif FRAMEWORK == "covet":
    from covet import (
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
        UploadFile,
        status,
    )
    from covet import CovetPy as FastAPI
else:
    raise RuntimeError(
        f"DIFF_FRAMEWORK is {FRAMEWORK!r}: set it to 'fastapi' or 'covet' to say which framework the sample apps "
        "of tests/differential import (the runner, test_differential.py, sets it)"
    )

__all__ = [
    "FRAMEWORK",
    "Body",
    "Cookie",
    "Depends",
    "FastAPI",
    "File",
    "Form",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "JSONResponse",
    "Path",
    "PlainTextResponse",
    "Query",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "UploadFile",
    "status",
]

# --- docs: the interactive docs pages' functions (fastapi.openapi.docs)
if FRAMEWORK == "fastapi":
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
else:
    from covet.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
__all__ += ["get_redoc_html", "get_swagger_ui_html", "get_swagger_ui_oauth2_redirect_html"]
# --- security (issue 14: security utilities, parameter models, Annotated validators)
if FRAMEWORK == "fastapi":
    from fastapi import Security
    from fastapi.responses import StreamingResponse
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
else:
    from covet import Security, StreamingResponse
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
__all__ += [
    "APIKeyCookie", "APIKeyHeader", "APIKeyQuery", "HTTPAuthorizationCredentials", "HTTPBasic",
    "HTTPBasicCredentials", "HTTPBearer", "HTTPDigest", "OAuth2", "OAuth2AuthorizationCodeBearer",
    "OAuth2PasswordBearer", "OAuth2PasswordRequestForm", "OAuth2PasswordRequestFormStrict", "OpenIdConnect",
    "Security", "SecurityScopes", "StreamingResponse",
]
# --- routing
if FRAMEWORK == "fastapi":
    from fastapi import APIRouter
    from starlette.routing import NoMatchFound
else:
    from covet import APIRouter
    from covet.routing import NoMatchFound
__all__ += ["APIRouter", "NoMatchFound"]
# --- responses (issue 14: response_model_* options, response_class, Response/BackgroundTasks parameters, SSE)
if FRAMEWORK == "fastapi":
    from fastapi import BackgroundTasks
    from fastapi.responses import ORJSONResponse, StreamingResponse, UJSONResponse
    from fastapi.sse import EventSourceResponse, ServerSentEvent
else:
    from covet import BackgroundTasks, StreamingResponse
    from covet.responses import ORJSONResponse, UJSONResponse
    from covet.sse import EventSourceResponse, ServerSentEvent
__all__ += ["BackgroundTasks", "EventSourceResponse", "ORJSONResponse", "ServerSentEvent", "StreamingResponse",
            "UJSONResponse"]
# --- testclient & names (issue 14)
if FRAMEWORK == "fastapi":
    from fastapi import WebSocket, WebSocketDisconnect, WebSocketException
    from fastapi.encoders import jsonable_encoder
    from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
    from fastapi.exceptions import FastAPIError
    from fastapi.responses import StreamingResponse
else:
    from covet import WebSocket, WebSocketDisconnect, WebSocketException
    from covet.encoders import jsonable_encoder
    from covet.exception_handlers import http_exception_handler, request_validation_exception_handler
    from covet.exceptions import FastAPIError
    from covet.responses import StreamingResponse
__all__ += ["WebSocket", "WebSocketDisconnect", "WebSocketException", "jsonable_encoder", "http_exception_handler",
            "request_validation_exception_handler", "FastAPIError", "StreamingResponse"]
# --- static files and templates (issue 14: StaticFiles, app.mount, Jinja2Templates)
if FRAMEWORK == "fastapi":
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates
else:
    from covet.staticfiles import StaticFiles
    from covet.templating import Jinja2Templates
__all__ += ["Jinja2Templates", "StaticFiles"]
# --- middleware classes (issue 14: add_middleware, Middleware, the native CORS/GZip/TrustedHost/HTTPSRedirect)
if FRAMEWORK == "fastapi":
    from fastapi.middleware import Middleware
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.middleware.gzip import GZipMiddleware
    from fastapi.middleware.httpsredirect import HTTPSRedirectMiddleware
    from fastapi.middleware.trustedhost import TrustedHostMiddleware
    from fastapi.responses import StreamingResponse
    from starlette.middleware.base import BaseHTTPMiddleware
else:
    from covet.middleware import Middleware
    from covet.middleware.base import BaseHTTPMiddleware
    from covet.middleware.cors import CORSMiddleware
    from covet.middleware.gzip import GZipMiddleware
    from covet.middleware.httpsredirect import HTTPSRedirectMiddleware
    from covet.middleware.trustedhost import TrustedHostMiddleware
    from covet.responses import StreamingResponse
__all__ += ["BaseHTTPMiddleware", "CORSMiddleware", "GZipMiddleware", "HTTPSRedirectMiddleware", "Middleware",
            "StreamingResponse", "TrustedHostMiddleware"]
# --- names (issue 14: OpenAPI models and constants, APIRoute for loops over app.routes)
if FRAMEWORK == "fastapi":
    from fastapi.openapi import models as openapi_models
    from fastapi.openapi.constants import REF_TEMPLATE
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute, APIWebSocketRoute, Mount
else:
    from covet.openapi import models as openapi_models
    from covet.openapi.constants import REF_TEMPLATE
    from covet.openapi.utils import get_openapi
    from covet.routing import APIRoute, APIWebSocketRoute, Mount
__all__ += ["APIRoute", "APIWebSocketRoute", "Mount", "REF_TEMPLATE", "get_openapi", "openapi_models"]
# --- fileresponse (issue 14: FileResponse with Range/HEAD/validators; StaticFiles under Python middleware)
if FRAMEWORK == "fastapi":
    from fastapi.responses import FileResponse
else:
    from covet.responses import FileResponse
__all__ += ["FileResponse"]
