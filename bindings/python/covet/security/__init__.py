"""Security schemes, as in FastAPI's `fastapi.security`: dependencies that read credentials from the request
(``Authorization`` header, API key, OAuth2 bearer token) and describe themselves for OpenAPI (`SecurityBase`:
``.model``, ``.scheme_name``). Use them with ``Depends(scheme)`` or ``Security(scheme, scopes=[...])``."""

from __future__ import annotations

from .api_key import APIKeyCookie, APIKeyHeader, APIKeyQuery
from .base import SecurityBase
from .http import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
)
from .oauth2 import (
    OAuth2,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    SecurityScopes,
)
from .open_id_connect_url import OpenIdConnect

__all__ = [
    "APIKeyCookie", "APIKeyHeader", "APIKeyQuery",
    "HTTPAuthorizationCredentials", "HTTPBasic", "HTTPBasicCredentials", "HTTPBearer", "HTTPDigest",
    "OAuth2", "OAuth2AuthorizationCodeBearer", "OAuth2PasswordBearer", "OAuth2PasswordRequestForm",
    "OAuth2PasswordRequestFormStrict", "OpenIdConnect", "SecurityBase", "SecurityScopes",
]
