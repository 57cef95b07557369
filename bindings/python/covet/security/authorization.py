"""Authorization: who the request is (`Principal`) and what it may do (`requires`).

Every authenticator of `covet.security` — `JWTBearer` (the verified claims), `APIKeyAuth` (the key's metadata)
and the session login (`covet.security.sessions.login`) — records a `Principal` on the request when it succeeds
(``request.state.principal``): an id, the scopes and the roles it was granted, and how it was authenticated.

``@requires(...)`` guards an endpoint::

    @app.get("/admin")
    @requires("admin:write", roles=["admin"], auth=jwt)      # auth: the authenticating dependency
    async def admin(request: Request) -> dict: ...

`auth` is the dependency that authenticates (a `JWTBearer`, an `APIKeyAuth`, a `SessionAuth`, or any dependency
giving a `Principal` or JWT claims); it is added to the endpoint as ``Security(auth, scopes=[...])``, so the
scopes add up along the dependency tree exactly as FastAPI's do and appear in the OpenAPI document. Without
`auth`, the principal an earlier dependency or middleware recorded is used.

Status codes (RFC 6750 §3.1, RFC 9110 §15.5.2/§15.5.4):
  - no credentials, or credentials that do not verify: **401** with a ``WWW-Authenticate`` challenge (the
    scheme's own: ``Bearer error="invalid_token", ...`` for a bad JWT, ``APIKey`` for API keys);
  - authenticated but lacking a scope or a role: **403** ``{"detail": "Not enough permissions"}``, with
    ``WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`` when the principal came from a bearer
    token (the scopes the resource needs).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Optional, TypeVar

from covet.connection import HTTPConnection
from covet.exceptions import HTTPException
from covet.params.markers import Security, SecurityScopes

__all__ = ["Principal", "requires", "get_principal", "set_principal", "check_access", "scopes_of", "roles_of",
           "session_principal"]

F = TypeVar("F", bound=Callable[..., Any])


def _names(value: Any) -> list[str]:
    """A claim holding names: a space-separated string or a list of strings."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a JWT grants: its ``scope`` claim (space separated, RFC 8693/9068) and ``scp`` (a list or a
    string)."""
    return frozenset(_names(claims.get("scope")) + _names(claims.get("scp")))


def roles_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The roles a JWT grants: its ``roles`` claim (a list or a space-separated string; RFC 9068 §2.2.3.1),
    plus Keycloak's ``realm_access.roles``."""
    roles = _names(claims.get("roles"))
    realm = claims.get("realm_access")
    if isinstance(realm, Mapping):
        roles += _names(realm.get("roles"))
    return frozenset(roles)


@dataclasses.dataclass(frozen=True)
class Principal:
    """The authenticated party of a request.

    `id`: the subject (a JWT's ``sub``, an API key's owner, the id given at session login); `scopes` and
    `roles`: what it was granted; `via`: ``"jwt"``, ``"api_key"`` or ``"session"``; `details`: the JWT's
    claims, the API key's metadata or the session login's extra data."""

    id: str
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    via: str = ""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        return cls(str(claims.get("sub", "")), scopes_of(claims), roles_of(claims), "jwt", claims)

    def missing(self, scopes: Iterable[str] = (), roles: Iterable[str] = ()) -> tuple[list[str], list[str]]:
        """The `scopes` and `roles` this principal was not granted."""
        return [s for s in scopes if s not in self.scopes], [r for r in roles if r not in self.roles]


_STATE_KEY = "principal"


def set_principal(request: HTTPConnection, principal: Principal) -> None:
    """Records who the request is (``request.state.principal``): authenticators call this on success."""
    setattr(request.state, _STATE_KEY, principal)


def get_principal(request: HTTPConnection) -> Optional[Principal]:
    """The principal an authenticator recorded on this request, else the one logged in to its session (when a
    `SessionMiddleware` is installed), else None."""
    found = getattr(request.state, _STATE_KEY, None) if _STATE_KEY in request.state else None
    if isinstance(found, Principal):
        return found
    principal = session_principal(request)
    if principal is not None:
        set_principal(request, principal)
    return principal


SESSION_STATE_KEY = "_covet_session"  # where SessionMiddleware puts the request's Session (request.state)
SESSION_AUTH_KEY = "_auth"  # where covet.security.sessions.login() keeps the principal inside the session


def session_principal(request: HTTPConnection) -> Optional[Principal]:
    """The principal `covet.security.sessions.login()` recorded in the request's session, else None (also
    without a `SessionMiddleware`)."""
    state = request.state
    session = getattr(state, SESSION_STATE_KEY) if SESSION_STATE_KEY in state else None
    auth = session.get(SESSION_AUTH_KEY) if isinstance(session, dict) else None
    if not isinstance(auth, dict) or not isinstance(auth.get("id"), str):
        return None
    return Principal(auth["id"], frozenset(auth.get("scopes") or ()), frozenset(auth.get("roles") or ()),
                     "session", auth.get("details") or {})


def _quoted(text: str) -> str:
    return "".join(c for c in text if " " <= c <= "~" and c not in '"\\')


def check_access(principal: Principal, scopes: Sequence[str] = (), roles: Sequence[str] = ()) -> None:
    """403 unless `principal` holds every one of `scopes` and `roles`. A principal authenticated by a bearer
    token gets the RFC 6750 challenge ``Bearer error="insufficient_scope", scope="<the scopes needed>"``."""
    missing_scopes, missing_roles = principal.missing(scopes, roles)
    if not missing_scopes and not missing_roles:
        return
    headers: Optional[dict[str, str]] = None
    if principal.via == "jwt":
        challenge = 'Bearer error="insufficient_scope"'
        if missing_scopes:
            challenge += f', scope="{_quoted(" ".join(scopes))}"'
        headers = {"WWW-Authenticate": challenge}
    raise HTTPException(403, "Not enough permissions", headers=headers)


def _as_principal(value: Any) -> Optional[Principal]:
    if isinstance(value, Principal):
        return value
    if isinstance(value, Mapping):  # verified JWT claims (JWTBearer)
        return Principal.from_claims(value)
    return None


def _authorizer(auth: Any, roles: tuple[str, ...], challenge: str) -> Callable[..., Any]:
    """The dependency `requires` adds: runs `auth` (if any), checks the accumulated scopes and `roles`."""

    async def authorize(request: HTTPConnection, security_scopes: SecurityScopes, **found: Any) -> Principal:
        principal = _as_principal(found.get("value")) if auth is not None else None
        if principal is None:
            principal = get_principal(request)
        if principal is None:
            raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": challenge})
        set_principal(request, principal)
        check_access(principal, security_scopes.scopes, roles)
        return principal

    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=HTTPConnection),
        inspect.Parameter("security_scopes", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=SecurityScopes),
    ]
    if auth is not None:
        # `auth` receives the same SecurityScopes (Security accumulates them down the tree, as in FastAPI).
        parameters.append(inspect.Parameter("value", inspect.Parameter.KEYWORD_ONLY, default=Security(auth)))
    authorize.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    authorize.__annotations__ = {"request": HTTPConnection, "security_scopes": SecurityScopes,
                                 "return": Principal}
    return authorize


_HIDDEN = "covet_principal__"


def requires(*scopes: str, roles: Sequence[str] = (), auth: Any = None,
             challenge: str = "Bearer") -> Callable[[F], F]:
    """Guards an endpoint: the request must be authenticated (401 otherwise) and hold every scope in `scopes`
    and every role in `roles` (403 otherwise). See the module doc.

    `auth`: the authenticating dependency (`JWTBearer`, `APIKeyAuth`, `SessionAuth` or any dependency giving a
    `Principal` or JWT claims), declared as ``Security(auth, scopes=scopes)``; None: the principal already
    recorded on the request (by another dependency, or the session login). `challenge`: the
    ``WWW-Authenticate`` value of the 401 when there is no principal and no `auth` to answer it. The endpoint
    may take a ``Principal``-typed dependency of its own, or read ``request.state.principal``."""
    if isinstance(roles, str):
        roles = [roles]
    role_names = tuple(roles)
    authorize = _authorizer(auth, role_names, challenge)
    marker = Security(authorize, scopes=list(scopes))

    def decorate(endpoint: F) -> F:
        signature = inspect.signature(endpoint)
        if _HIDDEN in signature.parameters:
            raise TypeError("@requires applied twice to one endpoint: give all scopes and roles in one @requires")
        hidden = inspect.Parameter(_HIDDEN, inspect.Parameter.KEYWORD_ONLY, default=marker)
        params = list(signature.parameters.values())
        position = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
        params.insert(position, hidden)
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(endpoint):
            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                kwargs.pop(_HIDDEN, None)
                return await endpoint(*args, **kwargs)
            wrapper = async_wrapper
        else:
            @functools.wraps(endpoint)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                kwargs.pop(_HIDDEN, None)
                return endpoint(*args, **kwargs)
            wrapper = sync_wrapper
        setattr(wrapper, "__signature__", signature.replace(parameters=params))  # noqa: B010 (read by inspect)
        return wrapper  # type: ignore[return-value]

    return decorate
