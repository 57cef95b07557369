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

# --- static files and templates (issue 14: StaticFiles, app.mount, Jinja2Templates)
if FRAMEWORK == "fastapi":
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates
else:
    from covet.staticfiles import StaticFiles
    from covet.templating import Jinja2Templates
__all__ += ["Jinja2Templates", "StaticFiles"]
