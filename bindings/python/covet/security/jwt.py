"""JWT bearer authentication, verified natively (OpenSSL 3.0, ``covet._native.JwtVerifier``) with secure defaults.

::

    from covet.security.jwt import jwt_bearer

    auth = jwt_bearer(issuer="https://id.example.com", audience="api", algorithms=["RS256"])

    @app.get("/me")
    async def me(claims: Annotated[dict, Depends(auth)]) -> dict:
        return {"sub": claims["sub"]}

The dependency reads ``Authorization: Bearer <token>``, verifies it and gives its claims (a dict). Any failure
answers 401 with ``WWW-Authenticate: Bearer error="invalid_token", error_description="<cause>"`` (RFC 6750 §3);
a request without a bearer token gets ``WWW-Authenticate: Bearer`` and ``{"detail": "Not authenticated"}`` (or
None with ``auto_error=False``). The cause is a fixed text (``token expired``, ``invalid signature`` ...), never
the token.

Keys come from one of:
  - ``keys=[...]``: JWKs (dicts or JSON text), PEM public keys or certificates (str), HMAC secrets (bytes);
  - ``jwks_url=...``: a JWK Set fetched over HTTPS;
  - ``issuer=...`` alone: OpenID Connect discovery, ``{issuer}/.well-known/openid-configuration`` → ``jwks_uri``
    (the document's ``issuer`` must be the configured one).

A fetched JWK Set is cached for ``jwks_cache_ttl`` seconds (or the response's ``Cache-Control: max-age``, kept
within 60 s .. 1 day), refreshed in a background thread when it gets old (requests keep using the previous keys
meanwhile), and refetched when a token names a ``kid`` it does not hold, at most once per
``jwks_refresh_interval`` seconds (default 30): a key rotation at the provider is picked up without a restart,
and tokens with made-up kids cannot make the server hammer the provider. The fetch is done here, in Python
(urllib, in a thread of the app's pool, never on the event loop): it happens once per rotation, not per request,
and the provider's HTTPS, proxies and CA settings are Python's; the per-request work (parse, signature, claims)
is native, with the GIL released.

Secure defaults: the accepted ``algorithms`` must be listed (``none`` does not exist), and each key pins the
algorithms that fit its type (an RSA public key can never be used as an HMAC secret); ``exp`` is required;
``exp``/``nbf``/``iat`` allow ``leeway`` seconds of clock skew (at most 300); ``iss`` must equal ``issuer``
when given; ``aud`` must contain one of ``audience`` when given, and a token carrying an ``aud`` is refused when
none is configured; tokens over ``max_token_bytes`` (8 KiB) and JSON nested deeper than 8 are refused before any
parsing; duplicate JSON names and ``crit`` headers are refused; HMAC secrets in a fetched JWK Set are ignored;
JWK Sets are fetched over HTTPS only (plain HTTP is allowed for loopback addresses, for tests).

With ``introspection=TokenIntrospection(...)`` (covet.security.introspection), tokens that are not JWTs (opaque
access tokens) are checked at the provider's introspection endpoint (RFC 7662) instead.

Clients send the same token with every request until it expires: the last ``cache_size`` (512) tokens that
verified are remembered with the key set that verified them, so a repeated token skips the signature check
(the clock checks still run on every request; a new key set starts with no remembered tokens; 0 turns it off).
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

from covet.concurrency import run_in_threadpool
from covet.connection import HTTPConnection
from covet.exceptions import HTTPException
from covet.params.markers import SecurityScopes

from .authorization import Principal, set_principal
from .base import SecurityBase, scheme_model
from .utils import get_authorization_scheme_param

if TYPE_CHECKING:
    from .introspection import TokenIntrospection

__all__ = ["JWTBearer", "JWKSCache", "jwt_bearer", "scope_check", "ALGORITHMS"]

logger = logging.getLogger("covet.security.jwt")

ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
              "ES256", "ES384", "ES512", "EdDSA")
_MAX_DOCUMENT = 1 << 20  # bytes read from a discovery document or JWK Set

KeyInput = Union[dict[str, Any], str, bytes]


def _native() -> Any:
    try:
        module = importlib.import_module("covet._native")
    except ImportError as exc:  # pragma: no cover - the engine is part of every install
        raise RuntimeError("covet.security.jwt needs covet's compiled engine (covet._native)") from exc
    if not hasattr(module, "JwtVerifier"):
        raise RuntimeError("this covet._native was built without JWT support; reinstall covet")
    return module


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, what: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "https" or (scheme == "http" and _is_loopback(url)):
        return
    raise ValueError(f"{what} {url!r} must be an https:// URL (plain http only for loopback addresses)")


def _fetch_json(url: str, timeout: float) -> tuple[Any, Optional[float]]:
    """The JSON document at `url` and its Cache-Control max-age (None when absent)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "covet-jwks"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read(_MAX_DOCUMENT + 1)
        cache_control = response.headers.get("Cache-Control", "")
    if len(body) > _MAX_DOCUMENT:
        raise ValueError(f"{url}: document larger than {_MAX_DOCUMENT} bytes")
    max_age: Optional[float] = None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age" and value.isdigit():
            max_age = float(value)
    return json.loads(body), max_age


class JWKSCache:
    """The keys of a JWK Set URL (or of an issuer's discovery document), cached and refreshed.

    `keys()` gives the current native key set (fetching it the first time); `refresh_for_unknown_kid()`
    refetches when allowed (at most once per `refresh_interval` seconds) and says whether the set changed;
    `start_background_refresh()` refetches in a thread once the set is older than its time to live."""

    def __init__(self, *, jwks_url: Optional[str] = None, issuer: Optional[str] = None, ttl: float = 300.0,
                 refresh_interval: float = 30.0, timeout: float = 5.0) -> None:
        if jwks_url is None and issuer is None:
            raise ValueError("JWKSCache needs jwks_url or issuer (for OpenID Connect discovery)")
        if jwks_url is not None:
            _check_url(jwks_url, "jwks_url")
        if issuer is not None and jwks_url is None:
            _check_url(issuer, "issuer")
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.ttl = ttl
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self._keys: Optional[Any] = None
        self._kids: frozenset[str] = frozenset()
        self._expires = 0.0
        self._last_fetch = -1e18
        self._lock = threading.Lock()
        self._background: Optional[threading.Thread] = None
        self.fetches = 0  # how many times the JWK Set was fetched (for tests and metrics)
        self.attempts = 0  # first-fetch attempts (a provider that cannot be reached: one per refresh interval)

    def _discover(self) -> str:
        assert self.issuer is not None
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document, _ = _fetch_json(url, self.timeout)
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError(f"{url}: the discovery document's issuer is not {self.issuer!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError(f"{url}: no jwks_uri")
        _check_url(jwks_uri, "jwks_uri")
        return jwks_uri

    def _fetch(self) -> None:
        """Fetches the set now (the caller holds the lock)."""
        self._last_fetch = time.monotonic()
        url = self.jwks_url or self._discover()
        document, max_age = _fetch_json(url, self.timeout)
        keys = _native().JwtKeySet.from_jwks(json.dumps(document))
        for reason in keys.skipped:
            logger.info("JWK Set %s: key skipped: %s", url, reason)
        self.fetches += 1
        self._keys = keys
        self._kids = frozenset(keys.kids())
        ttl = self.ttl if max_age is None else min(max(max_age, 60.0), 86400.0)
        self._expires = self._last_fetch + ttl

    def keys(self) -> Any:
        """The current key set, fetched (blocking) when there is none yet. While the provider cannot be
        reached, one attempt per `refresh_interval`: the others fail at once instead of each waiting for the
        timeout in a thread of the pool."""
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    if time.monotonic() - self._last_fetch < self.refresh_interval:
                        raise RuntimeError("JWK Set unavailable: the last fetch failed, retried after the "
                                           "refresh interval")
                    self.attempts += 1
                    self._fetch()
        return self._keys

    def loaded(self) -> bool:
        return self._keys is not None

    def refresh_for_unknown_kid(self) -> bool:
        """Refetches unless the last fetch was under `refresh_interval` seconds ago; True when the set's kids
        changed (worth verifying again). Fetch errors are logged and keep the previous set."""
        with self._lock:
            if time.monotonic() - self._last_fetch < self.refresh_interval:
                return False
            before = self._kids
            try:
                self._fetch()
            except Exception as exc:
                logger.warning("JWK Set refresh failed: %s", exc)
                return False
            return self._kids != before

    def start_background_refresh(self) -> None:
        """Refetches in a daemon thread once the set is past its time to live (one thread at a time)."""
        if self._keys is None or time.monotonic() < self._expires:
            return
        if self._background is not None and self._background.is_alive():
            return

        def run() -> None:
            with self._lock:
                if time.monotonic() < self._expires:
                    return
                try:
                    self._fetch()
                except Exception as exc:
                    # Keep the old keys; try again after the refresh interval rather than on every request.
                    self._expires = time.monotonic() + self.refresh_interval
                    logger.warning("JWK Set refresh failed (keeping the previous keys): %s", exc)

        self._background = threading.Thread(target=run, name="covet-jwks-refresh", daemon=True)
        self._background.start()


def _quoted(text: str) -> str:
    """`text` as an RFC 6750 error_description (printable ASCII without '"' and '\\')."""
    return "".join(c for c in text if " " <= c <= "~" and c not in '"\\')


def scope_check(claims: dict[str, Any], required: Sequence[str], challenge: str = "Bearer") -> None:
    """403 ``insufficient_scope`` (RFC 6750 §3.1) unless the token grants every scope in `required`: its
    ``scope`` claim (space separated, RFC 8693/9068) or ``scp`` (a list or a string)."""
    granted: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(v for v in value if isinstance(v, str))
    missing = [s for s in required if s not in granted]
    if missing:
        scope = _quoted(" ".join(required))
        challenge += (", " if challenge != "Bearer" else " ") + \
            f'error="insufficient_scope", error_description="missing scope", scope="{scope}"'
        raise HTTPException(403, "Not enough permissions", headers={"WWW-Authenticate": challenge})


class JWTBearer(SecurityBase):
    """A dependency that verifies ``Authorization: Bearer <JWT>`` and gives the claims (see the module doc).

    Use it with ``Depends(scheme)`` or ``Security(scheme, scopes=[...])``: with scopes, the token's ``scope``
    (or ``scp``) claim must grant each of them, else 403 with ``Bearer error="insufficient_scope"``. It describes
    itself for OpenAPI as an HTTP bearer scheme with ``bearerFormat: JWT``."""

    def __init__(self, *, algorithms: Sequence[str], issuer: Optional[str] = None,
                 audience: Union[str, Sequence[str], None] = None, jwks_url: Optional[str] = None,
                 keys: Union[KeyInput, Iterable[KeyInput], None] = None, leeway: float = 0,
                 require_iat: bool = False, require_nbf: bool = False, max_token_bytes: int = 8192,
                 cache_size: int = 512, jwks_cache_ttl: float = 300.0, jwks_refresh_interval: float = 30.0,
                 http_timeout: float = 5.0, introspection: Optional[TokenIntrospection] = None,
                 realm: Optional[str] = None, scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        if isinstance(algorithms, str) or not algorithms:
            raise ValueError("algorithms must list the accepted algorithms, e.g. algorithms=['RS256']")
        unknown = [a for a in algorithms if a not in ALGORITHMS]
        if unknown:
            raise ValueError(f"unsupported JWT algorithms {unknown}; supported: {', '.join(ALGORITHMS)} (never none)")
        if not 0 <= leeway <= 300:
            raise ValueError("leeway must be between 0 and 300 seconds")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        native = _native()
        self.algorithms = list(algorithms)
        self.issuer = issuer
        self.audiences = audiences
        self.realm = realm
        self.verifier = native.JwtVerifier(algorithms=self.algorithms, issuer=issuer or "", audiences=audiences,
                                           leeway=int(leeway), require_iat=require_iat, require_nbf=require_nbf,
                                           max_token_bytes=max_token_bytes, cache_entries=cache_size)
        self.static_keys: Optional[Any] = None
        self.jwks: Optional[JWKSCache] = None
        self.introspection = introspection
        if keys is not None:
            self.static_keys = self._load_keys(native, keys)
        elif jwks_url is not None or issuer is not None:
            self.jwks = JWKSCache(jwks_url=jwks_url, issuer=issuer, ttl=jwks_cache_ttl,
                                  refresh_interval=jwks_refresh_interval, timeout=http_timeout)
        else:
            raise ValueError("JWTBearer needs keys=..., jwks_url=... or issuer=... (OpenID Connect discovery)")
        self.model = scheme_model("http", description, scheme="bearer", bearerFormat="JWT")
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def _load_keys(self, native: Any, keys: Union[KeyInput, Iterable[KeyInput]]) -> Any:
        items: list[KeyInput] = [keys] if isinstance(keys, (dict, str, bytes)) else list(keys)
        key_set = native.JwtKeySet()
        for item in items:
            if isinstance(item, bytes):
                hmac_algorithms = [a for a in self.algorithms if a.startswith("HS")]
                if not hmac_algorithms:
                    raise ValueError("an HMAC secret (bytes) was given but algorithms lists no HS256/HS384/HS512")
                key_set.add_secret(item, hmac_algorithms)
            elif isinstance(item, str) and item.lstrip().startswith("-----BEGIN"):
                key_set.add_pem(item, self.algorithms)
            elif isinstance(item, (dict, str)):
                document = json.loads(item) if isinstance(item, str) else item
                if not isinstance(document, dict):
                    raise ValueError("a str key must be a PEM public key, or a JWK or JWK Set in JSON")
                for jwk in document.get("keys", [document]):
                    key_set.add_jwk(json.dumps(jwk))
            else:
                raise TypeError(f"unsupported key {type(item).__name__}: a JWK dict, a PEM str or an HMAC secret "
                                "(bytes)")
        if len(key_set) == 0:
            raise ValueError("keys=... holds no usable key")
        return key_set

    def _challenge(self, error: Optional[str] = None) -> str:
        params = []
        if self.realm:
            params.append(f'realm="{_quoted(self.realm)}"')
        if error is not None:
            params.append(f'error="invalid_token", error_description="{_quoted(error)}"')
        return "Bearer" + (" " + ", ".join(params) if params else "")

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": self._challenge()})

    def invalid_token(self, message: str) -> HTTPException:
        return HTTPException(401, message, headers={"WWW-Authenticate": self._challenge(message)})

    async def _key_set(self) -> Any:
        if self.static_keys is not None:
            return self.static_keys
        assert self.jwks is not None
        if not self.jwks.loaded():
            try:
                return await run_in_threadpool(self.jwks.keys)
            except Exception as exc:
                logger.warning("JWK Set fetch failed: %s", exc)
                raise self.invalid_token("signing keys unavailable") from exc
        self.jwks.start_background_refresh()
        return self.jwks.keys()

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of `token`, or HTTPException 401 (invalid_token). With `introspection`, a token that is
        not a JWT (opaque: not three dot-separated parts) is introspected at the provider (RFC 7662)."""
        if self.introspection is not None and token.count(".") != 2:
            return await self.introspection.introspect(token)
        keys = await self._key_set()
        error, result = self.verifier.verify(token, keys)
        if (error == "unknown_kid" and self.jwks is not None
                and await run_in_threadpool(self.jwks.refresh_for_unknown_kid)):
            error, result = self.verifier.verify(token, self.jwks.keys())
        if error is not None:
            raise self.invalid_token(result)
        claims: dict[str, Any] = result
        return claims

    def check_scopes(self, claims: dict[str, Any], required: Sequence[str]) -> None:
        """403 ``insufficient_scope`` (RFC 6750 §3.1) unless the token grants every scope in `required`."""
        scope_check(claims, required, self._challenge())

    async def __call__(self, request: HTTPConnection,
                       security_scopes: SecurityScopes) -> Optional[dict[str, Any]]:
        authorization = request.headers.get("authorization")
        scheme, token = get_authorization_scheme_param(authorization)
        if not (authorization and token) or scheme.lower() != "bearer":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        claims = await self.verify(token.strip())
        if security_scopes.scopes:  # declared with Security(scheme, scopes=[...]) on the way here
            self.check_scopes(claims, security_scopes.scopes)
        set_principal(request, Principal.from_claims(claims))  # for @requires and get_principal
        return claims


def jwt_bearer(*, algorithms: Sequence[str], issuer: Optional[str] = None,
               audience: Union[str, Sequence[str], None] = None, jwks_url: Optional[str] = None,
               keys: Union[KeyInput, Iterable[KeyInput], None] = None, **options: Any) -> JWTBearer:
    """A `JWTBearer` dependency: ``Depends(jwt_bearer(issuer=..., audience=..., algorithms=[...]))``."""
    return JWTBearer(algorithms=algorithms, issuer=issuer, audience=audience, jwks_url=jwks_url, keys=keys,
                     **options)
