"""API keys read from a query parameter, a header or a cookie: `APIKeyQuery`, `APIKeyHeader`, `APIKeyCookie`.

::

    api_key = APIKeyHeader(name="X-API-Key")

    @app.get("/items")
    async def items(key: Annotated[str, Depends(api_key)]) -> list[str]: ...

A missing (or empty) key answers 401 ``{"detail": "Not authenticated"}`` with ``WWW-Authenticate: APIKey``;
with ``auto_error=False`` the dependency gives None instead.
"""

from __future__ import annotations

from typing import Optional

from covet.connection import HTTPConnection
from covet.exceptions import HTTPException

from .base import SecurityBase, scheme_model

__all__ = ["APIKeyBase", "APIKeyQuery", "APIKeyHeader", "APIKeyCookie"]


class APIKeyBase(SecurityBase):
    """An API key in the request at `location` ("query", "header" or "cookie") under `name`."""

    def __init__(self, location: str, name: str, description: Optional[str], scheme_name: Optional[str],
                 auto_error: bool) -> None:
        self.name = name
        self.auto_error = auto_error
        self.model = scheme_model("apiKey", description, **{"in": location, "name": name})
        self.scheme_name = scheme_name or type(self).__name__

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "APIKey"})

    def check_api_key(self, api_key: Optional[str]) -> Optional[str]:
        """`api_key`, or None / the 401 (by `auto_error`) when it is missing or empty."""
        if not api_key:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return api_key


class APIKeyQuery(APIKeyBase):
    """An API key in the query string: ``?api_key=...`` with ``APIKeyQuery(name="api_key")``."""

    def __init__(self, *, name: str, scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        super().__init__("query", name, description, scheme_name, auto_error)

    async def __call__(self, request: HTTPConnection) -> Optional[str]:
        return self.check_api_key(request.query_params.get(self.name))


class APIKeyHeader(APIKeyBase):
    """An API key in a header: ``X-API-Key: ...`` with ``APIKeyHeader(name="X-API-Key")``."""

    def __init__(self, *, name: str, scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        super().__init__("header", name, description, scheme_name, auto_error)

    async def __call__(self, request: HTTPConnection) -> Optional[str]:
        return self.check_api_key(request.headers.get(self.name))


class APIKeyCookie(APIKeyBase):
    """An API key in a cookie: ``Cookie: session=...`` with ``APIKeyCookie(name="session")``."""

    def __init__(self, *, name: str, scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        super().__init__("cookie", name, description, scheme_name, auto_error)

    async def __call__(self, request: HTTPConnection) -> Optional[str]:
        return self.check_api_key(request.cookies.get(self.name))
