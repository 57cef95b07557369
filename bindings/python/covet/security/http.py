"""HTTP authentication schemes: `HTTPBasic`, `HTTPBearer`, `HTTPDigest` (RFC 7617 / 6750 / 7616), read from
the ``Authorization`` header.

::

    basic = HTTPBasic()

    @app.get("/me")
    def me(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> dict[str, str]:
        return {"username": credentials.username}

A missing header, another scheme, or (Basic) credentials that do not decode answer 401
``{"detail": "Not authenticated"}`` with ``WWW-Authenticate`` naming the scheme (``Basic realm="..."`` when a
realm is given). With ``auto_error=False`` a missing header or another scheme gives None instead; malformed
Basic credentials still answer 401, as in FastAPI. `HTTPDigest` only splits the header: checking a digest is
the app's job.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Optional

from pydantic import BaseModel

from covet.connection import HTTPConnection
from covet.exceptions import HTTPException

from .base import SecurityBase, scheme_model
from .utils import get_authorization_scheme_param

__all__ = ["HTTPBasicCredentials", "HTTPAuthorizationCredentials", "HTTPBase", "HTTPBasic", "HTTPBearer",
           "HTTPDigest"]


class HTTPBasicCredentials(BaseModel):
    """What `HTTPBasic` gives: the decoded user name and password."""

    username: str
    password: str


class HTTPAuthorizationCredentials(BaseModel):
    """What `HTTPBearer` / `HTTPDigest` give: the ``Authorization`` header split at its first space."""

    scheme: str
    credentials: str


class HTTPBase(SecurityBase):
    """An HTTP authentication `scheme` (RFC 7235): gives the header's scheme and credentials, any scheme."""

    def __init__(self, *, scheme: str, scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        self.scheme = scheme
        self.model = scheme_model("http", description, scheme=scheme)
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_authenticate_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.scheme.title()}

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(401, "Not authenticated", headers=self.make_authenticate_headers())

    def _split(self, request: HTTPConnection, expected: Optional[str]) -> Optional[HTTPAuthorizationCredentials]:
        """The header's scheme and credentials; None / 401 when missing or (with `expected`) another scheme."""
        authorization = request.headers.get("authorization")
        scheme, credentials = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and credentials) or (
                expected is not None and scheme.lower() != expected):
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)

    async def __call__(self, request: HTTPConnection) -> Optional[HTTPAuthorizationCredentials]:
        return self._split(request, None)


class HTTPBasic(HTTPBase):
    """HTTP Basic authentication: gives `HTTPBasicCredentials` (user name and password)."""

    def __init__(self, *, scheme_name: Optional[str] = None, realm: Optional[str] = None,
                 description: Optional[str] = None, auto_error: bool = True) -> None:
        super().__init__(scheme="basic", scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.realm = realm

    def make_authenticate_headers(self) -> dict[str, str]:
        if self.realm:
            return {"WWW-Authenticate": f'Basic realm="{self.realm}"'}
        return {"WWW-Authenticate": "Basic"}

    async def __call__(self, request: HTTPConnection) -> Optional[HTTPBasicCredentials]:  # type: ignore[override]
        authorization = request.headers.get("authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "basic":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        try:
            data = b64decode(param).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise self.make_not_authenticated_error() from exc
        username, separator, password = data.partition(":")
        if not separator:
            raise self.make_not_authenticated_error()
        return HTTPBasicCredentials(username=username, password=password)


class HTTPBearer(HTTPBase):
    """HTTP Bearer tokens: gives `HTTPAuthorizationCredentials` (``scheme="Bearer"``, the token)."""

    def __init__(self, *, bearerFormat: Optional[str] = None, scheme_name: Optional[str] = None,
                 description: Optional[str] = None, auto_error: bool = True) -> None:
        super().__init__(scheme="bearer", scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.model = scheme_model("http", description, scheme="bearer", bearerFormat=bearerFormat)

    async def __call__(self, request: HTTPConnection) -> Optional[HTTPAuthorizationCredentials]:
        return self._split(request, "bearer")


class HTTPDigest(HTTPBase):
    """HTTP Digest, for OpenAPI: gives the header's `HTTPAuthorizationCredentials`; verifying is the app's job."""

    def __init__(self, *, scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        super().__init__(scheme="digest", scheme_name=scheme_name, description=description, auto_error=auto_error)

    async def __call__(self, request: HTTPConnection) -> Optional[HTTPAuthorizationCredentials]:
        return self._split(request, "digest")
