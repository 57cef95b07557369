"""OAuth 2.0 token introspection (RFC 7662) for resource servers whose tokens are opaque (not JWTs).

::

    from covet.security.introspection import TokenIntrospection

    auth = TokenIntrospection(introspection_endpoint="https://id.example.com/token/introspection",
                              client_id="api", client_secret=os.environ["API_SECRET"], audience="urn:api")

    @app.get("/items")
    async def items(token: Annotated[dict, Security(auth, scopes=["items:read"])]) -> list: ...

The dependency reads ``Authorization: Bearer <token>`` and asks the provider about it (POST ``token=...&
token_type_hint=access_token``, the resource server authenticating with HTTP Basic ``client_id:client_secret``).
An ``active: false`` answer, an ``exp`` in the past, another ``iss`` or an ``aud`` without ``audience`` (when
configured) answer 401 ``Bearer error="invalid_token"``; missing scopes 403 ``insufficient_scope``. The answer
(active or not) is cached by the token's SHA-256 for ``cache_ttl`` seconds (60) but never past the token's
``exp``: a revoked token can be used for at most ``cache_ttl`` seconds, and the provider sees one request per
token per ``cache_ttl``. The provider's answer is the claims given to the handler.

``jwt_bearer(..., introspection=TokenIntrospection(...))`` verifies JWTs natively and sends the other (opaque)
tokens here.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Optional, Union

from covet.concurrency import run_in_threadpool
from covet.connection import HTTPConnection
from covet.exceptions import HTTPException
from covet.params.markers import SecurityScopes

from .base import SecurityBase, scheme_model
from .jwt import _check_url, _quoted, scope_check
from .utils import get_authorization_scheme_param

__all__ = ["TokenIntrospection"]

logger = logging.getLogger("covet.security.introspection")


class TokenIntrospection(SecurityBase):
    """A dependency that introspects ``Authorization: Bearer <token>`` at the provider (see the module doc)."""

    def __init__(self, *, introspection_endpoint: str, client_id: str, client_secret: str,
                 issuer: Optional[str] = None, audience: Union[str, Sequence[str], None] = None,
                 cache_ttl: float = 60.0, cache_size: int = 4096, http_timeout: float = 5.0,
                 scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        _check_url(introspection_endpoint, "introspection_endpoint")
        if not 0 <= cache_ttl <= 3600:
            raise ValueError("cache_ttl must be between 0 and 3600 seconds")
        self.introspection_endpoint = introspection_endpoint
        self.client_id = client_id
        self.client_secret = client_secret
        self.issuer = issuer
        self.audiences = [audience] if isinstance(audience, str) else list(audience or [])
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self.http_timeout = http_timeout
        self._cache: OrderedDict[bytes, tuple[float, Optional[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()
        self.requests = 0  # introspection requests sent (for tests and metrics)
        self.model = scheme_model("http", description, scheme="bearer")
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def _ask(self, token: str) -> Optional[dict[str, Any]]:
        from .oidc import _post_form  # the same form POST with client authentication as the login flow

        self.requests += 1
        status, answer = _post_form(self.introspection_endpoint,
                                    {"token": token, "token_type_hint": "access_token"},
                                    (self.client_id, self.client_secret), self.http_timeout)
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise RuntimeError(f"introspection endpoint answered HTTP {status}"
                               f"{' ' + str(answer.get('error')) if isinstance(answer, dict) else ''}")
        return answer if answer["active"] else None

    def _cached(self, key: bytes, now: float) -> tuple[bool, Optional[dict[str, Any]]]:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return False, None
            if entry[0] <= now:
                del self._cache[key]
                return False, None
            self._cache.move_to_end(key)
            return True, entry[1]

    def _remember(self, key: bytes, claims: Optional[dict[str, Any]], now: float) -> None:
        until = now + self.cache_ttl
        exp = claims.get("exp") if claims is not None else None
        if isinstance(exp, (int, float)):
            until = min(until, float(exp))
        with self._lock:
            self._cache[key] = (until, claims)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _invalid(self, message: str) -> HTTPException:
        return HTTPException(401, message, headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{_quoted(message)}"'})

    async def introspect(self, token: str) -> dict[str, Any]:
        """The provider's answer for an active, acceptable `token`, else HTTPException 401."""
        key = hashlib.sha256(token.encode()).digest()
        now = time.time()
        found, claims = self._cached(key, now)
        if not found:
            try:
                claims = await run_in_threadpool(self._ask, token)
            except Exception as exc:
                logger.warning("token introspection failed: %s", exc)
                raise self._invalid("token introspection unavailable") from exc
            if self.cache_ttl > 0:
                self._remember(key, claims, now)
        if claims is None:
            raise self._invalid("token inactive")
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and exp <= now:
            raise self._invalid("token expired")
        if self.issuer is not None and claims.get("iss", self.issuer) != self.issuer:
            raise self._invalid("wrong issuer")
        if self.audiences:
            aud = claims.get("aud")
            held = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not any(a in held for a in self.audiences):
                raise self._invalid("wrong audience")
        return claims

    async def __call__(self, request: HTTPConnection,
                       security_scopes: SecurityScopes) -> Optional[dict[str, Any]]:
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        if not token or scheme.lower() != "bearer":
            if self.auto_error:
                raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
            return None
        claims = await self.introspect(token.strip())
        if security_scopes.scopes:
            scope_check(claims, security_scopes.scopes, "Bearer")
        return claims
