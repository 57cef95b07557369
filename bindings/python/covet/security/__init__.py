"""Security schemes, as in FastAPI's `fastapi.security`: dependencies that read credentials from the request
(``Authorization`` header, API key, OAuth2 bearer token) and describe themselves for OpenAPI (`SecurityBase`:
``.model``, ``.scheme_name``). Use them with ``Depends(scheme)`` or ``Security(scheme, scopes=[...])``.

Beyond FastAPI's: `JWTBearer`/`jwt_bearer` (JWTs verified natively), `requires` and `Principal`
(authorization), `APIKeyStore`/`APIKeyAuth` (hashed API keys, rotation, brute-force guard), and sessions
(`login`/`logout`, the stores; the middleware is `covet.middleware.sessions.SessionMiddleware`)."""

from __future__ import annotations

from .api_key import APIKeyCookie, APIKeyHeader, APIKeyQuery
from .api_key_store import APIKeyAuth, APIKeyBackend, APIKeyRecord, APIKeyStore, MemoryAPIKeyBackend
from .authorization import Principal, check_access, get_principal, requires, set_principal
from .base import SecurityBase
from .failures import FailureLimiter, KeyRateLimiter
from .http import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
)
from .jwt import JWTBearer, jwt_bearer
from .oauth2 import (
    OAuth2,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    SecurityScopes,
)
from .open_id_connect_url import OpenIdConnect
from .sessions import (
    MemorySessionStore,
    RedisSessionStore,
    Session,
    SessionAuth,
    SessionStore,
    login,
    logout,
    session_principal,
)
from .signing import Signer

__all__ = [
    "APIKeyCookie", "APIKeyHeader", "APIKeyQuery",
    "HTTPAuthorizationCredentials", "HTTPBasic", "HTTPBasicCredentials", "HTTPBearer", "HTTPDigest",
    "OAuth2", "OAuth2AuthorizationCodeBearer", "OAuth2PasswordBearer", "OAuth2PasswordRequestForm",
    "OAuth2PasswordRequestFormStrict", "OpenIdConnect", "SecurityBase", "SecurityScopes",
    "JWTBearer", "jwt_bearer",
    "Principal", "requires", "check_access", "get_principal", "set_principal",
    "APIKeyAuth", "APIKeyBackend", "APIKeyRecord", "APIKeyStore", "MemoryAPIKeyBackend",
    "FailureLimiter", "KeyRateLimiter",
    "Session", "SessionAuth", "SessionStore", "MemorySessionStore", "RedisSessionStore", "Signer",
    "login", "logout", "session_principal",
]
