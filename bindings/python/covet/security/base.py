"""`SecurityBase`: what every security scheme (``HTTPBearer()``, ``APIKeyHeader(name=...)`` ...) is.

A scheme is a dependency (``Depends(scheme)`` or ``Security(scheme, scopes=[...])``) that reads the credentials
from the request, and it describes itself for OpenAPI: `model` is the OpenAPI security scheme object (a plain
dict, FastAPI's shape: ``{"type": "http", "scheme": "bearer"}``) and `scheme_name` its key under
``components.securitySchemes`` (the class name unless given).
"""

from __future__ import annotations

from typing import Any

from covet.params.markers import SecurityBase

__all__ = ["SecurityBase", "scheme_model"]


def scheme_model(kind: str, description: str | None, **fields: Any) -> dict[str, Any]:
    """An OpenAPI security scheme object: ``type``, the `fields` that are not None and the description."""
    model: dict[str, Any] = {"type": kind}
    model.update((key, value) for key, value in fields.items() if value is not None)
    if description is not None:
        model["description"] = description
    return model
