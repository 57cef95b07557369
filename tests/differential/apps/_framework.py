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
