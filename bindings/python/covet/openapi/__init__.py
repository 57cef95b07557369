"""OpenAPI 3.1: the schema of an app's routes, as FastAPI generates it (`get_openapi`).

``app.openapi()`` builds it once (cached in ``app.openapi_schema``) and ``openapi_url`` serves it; a user may
replace ``app.openapi`` with a function that calls `get_openapi` and adjusts the result, as in FastAPI.
"""

from __future__ import annotations

from .utils import get_openapi

__all__ = ["get_openapi"]
