"""OpenAPI 3.1 for CovetPy apps: the schema of an app's routes, as FastAPI generates it (`get_openapi`), and the
interactive docs pages (`covet.openapi.docs`: Swagger UI at ``/docs``, ReDoc at ``/redoc``, served from assets
bundled in the package).

``app.openapi()`` builds the schema once (cached in ``app.openapi_schema``) and ``openapi_url`` serves it; a user may
replace ``app.openapi`` with a function that calls `get_openapi` and adjusts the result, as in FastAPI.
"""

from __future__ import annotations

from .utils import get_openapi

__all__ = ["get_openapi"]
