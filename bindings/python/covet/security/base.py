"""`SecurityBase`: what every security scheme (``HTTPBearer()``, ``APIKeyHeader(name=...)`` ...) is.

A scheme is a dependency (``Depends(scheme)`` or ``Security(scheme, scopes=[...])``) that reads the credentials
from the request, and it describes itself for OpenAPI: `model` is the OpenAPI security scheme object (a plain
dict, FastAPI's shape: ``{"type": "http", "scheme": "bearer"}``) and `scheme_name` its key under
``components.securitySchemes`` (the class name unless given).
"""

from __future__ import annotations

from typing import Any, Optional

from covet.connection import HTTPConnection
from covet.exceptions import HTTPException
from covet.params.markers import SecurityBase

__all__ = ["SecurityBase", "AuthorizationHeaderScheme", "scheme_model"]


def scheme_model(kind: str, description: str | None, **fields: Any) -> dict[str, Any]:
    """An OpenAPI security scheme object: ``type``, the `fields` that are not None and the description."""
    model: dict[str, Any] = {"type": kind}
    model.update((key, value) for key, value in fields.items() if value is not None)
    if description is not None:
        model["description"] = description
    return model


class AuthorizationHeaderScheme(SecurityBase):
    """A scheme whose dependency gives the whole ``Authorization`` header value (`OAuth2`, `OpenIdConnect`);
    checking it is the app's job. A missing header answers 401 ``Not authenticated`` with ``WWW-Authenticate:
    Bearer``, or gives None with ``auto_error=False`` (FastAPI's behaviour)."""

    auto_error: bool

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})

    async def __call__(self, request: HTTPConnection) -> Optional[str]:
        authorization = request.headers.get("authorization")
        if not authorization:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return authorization
