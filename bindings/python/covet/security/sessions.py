"""Sessions: ``request.session`` (a dict), kept in a signed cookie or in a server-side store, with the login
helpers that rotate the session id (no session fixation). The middleware is
`covet.middleware.sessions.SessionMiddleware`; this module holds what it is built on.

Cookie sessions (no `store`): the session's JSON travels in the cookie, signed with HMAC-SHA256
(`Signer`: a list of keys, the first signs, every one verifies, so keys rotate without logging anyone out) and
timestamped (older than `max_age`: ignored). With ``encrypt=True`` the JSON is encrypted with AES-256-GCM before
signing (needs the `cryptography` package; without it, the data is readable by the client, only not
changeable).

Server-side sessions (`store`: `RedisSessionStore`, `MemorySessionStore` or any `SessionStore`): the data stays
on the server; the cookie holds only an opaque random id (256 bits), signed, so that ids that were never issued
are refused before the store is asked. An id the store does not know (expired, logged out, made up) starts a
new session with a new id: the server never adopts an id it did not just issue.

Login: ``login(request, user_id, scopes=..., roles=...)`` calls ``request.session.regenerate()``, which gives
the session a new id (the old record is deleted), then records the principal in it. Whatever id an attacker
planted in the victim's browser before the login is not the one that is authenticated after it.
"""

from __future__ import annotations

import json
import secrets
import time
import weakref
from collections.abc import Sequence
from typing import Any, Optional, Protocol

from covet.connection import HTTPConnection
from covet.exceptions import HTTPException

from .authorization import SESSION_AUTH_KEY as _AUTH_KEY
from .authorization import SESSION_STATE_KEY as _STATE_KEY
from .authorization import Principal, session_principal, set_principal

__all__ = ["Session", "SessionStore", "MemorySessionStore", "RedisSessionStore", "SessionAuth",
           "login", "logout", "session_principal", "get_session"]

class SessionStore(Protocol):
    """A server-side session store: data (a JSON-able dict) by session id, with a time to live."""

    async def load(self, session_id: str) -> Optional[dict[str, Any]]: ...

    async def save(self, session_id: str, data: dict[str, Any], ttl: int) -> None: ...

    async def delete(self, session_id: str) -> None: ...

    # Optional: `save_if_absent(key, data, ttl) -> bool` saves only when nothing live is stored under `key` and says
    # whether it did, as one atomic step (a single-use marker: OIDCLogin's logout-token `jti`). A store without it
    # gets a load then a save, which two concurrent callers can both pass.


class MemorySessionStore:
    """Sessions in a dict (one process; tests and development)."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[float, str]] = {}

    async def load(self, session_id: str) -> Optional[dict[str, Any]]:
        found = self.data.get(session_id)
        if found is None or found[0] < time.time():
            self.data.pop(session_id, None)
            return None
        loaded: dict[str, Any] = json.loads(found[1])
        return loaded

    async def save(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        self.data[session_id] = (time.time() + ttl, json.dumps(data))

    async def save_if_absent(self, key: str, data: dict[str, Any], ttl: int) -> bool:
        """Saves `data` unless a live record is under `key` (no await in between: atomic on the loop)."""
        found = self.data.get(key)
        if found is not None and found[0] >= time.time():
            return False
        self.data[key] = (time.time() + ttl, json.dumps(data))
        return True

    async def delete(self, session_id: str) -> None:
        self.data.pop(session_id, None)


class RedisSessionStore:
    """Sessions in Redis (redis-py's asyncio client: the `redis` package), as JSON under ``prefix + id`` with
    Redis' own expiry (``SET ... EX ttl``): every worker and machine sharing the Redis shares the sessions.
    Give `url` (``redis://host:6379/0``; a client is made per event loop, since an asyncio connection belongs to
    the loop that opened it) or an existing ``redis.asyncio.Redis`` `client` (used from its own loop only)."""

    def __init__(self, url: Optional[str] = None, *, client: Any = None, prefix: str = "covet:session:") -> None:
        if client is None and url is None:
            raise ValueError("RedisSessionStore needs url='redis://...' or client=redis.asyncio.Redis(...)")
        if client is None:
            try:
                import redis.asyncio  # noqa: F401  (checked here, at configuration time)
            except ImportError as exc:
                raise RuntimeError("RedisSessionStore needs the `redis` package (pip install redis)") from exc
        self.url = url
        self._client = client
        self._clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.prefix = prefix

    @property
    def client(self) -> Any:
        """The client for the running event loop."""
        if self._client is not None:
            return self._client
        import asyncio

        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            assert self.url is not None
            client = self._clients[loop] = aioredis.from_url(self.url)
        return client

    async def load(self, session_id: str) -> Optional[dict[str, Any]]:
        raw = await self.client.get(self.prefix + session_id)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def save(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        await self.client.set(self.prefix + session_id, json.dumps(data), ex=max(ttl, 1))

    async def save_if_absent(self, key: str, data: dict[str, Any], ttl: int) -> bool:
        """``SET ... NX EX ttl``: one atomic step for every worker and machine sharing the Redis."""
        return bool(await self.client.set(self.prefix + key, json.dumps(data), ex=max(ttl, 1), nx=True))

    async def delete(self, session_id: str) -> None:
        await self.client.delete(self.prefix + session_id)

    async def close(self) -> None:
        """Closes the running loop's client (call it at shutdown, e.g. in the app's lifespan)."""
        await self.client.aclose()


class Session(dict[str, Any]):
    """``request.session``: a dict that knows whether it changed, and its id (server-side sessions).
    `regenerate()` gives it a new id at the next save (the old record is deleted): call it whenever the
    privilege level changes (login, logout, sudo mode); `login()` does."""

    def __init__(self, data: Optional[dict[str, Any]] = None, session_id: Optional[str] = None) -> None:
        super().__init__(data or {})
        self.session_id = session_id  # None: not stored yet (or a cookie session)
        self.previous_id: Optional[str] = None  # an id regenerate() retired (deleted at save)
        self.modified = False
        self.accessed = False  # read through request.session: the response varies by Cookie
        self.touched: Optional[int] = None  # when the store last saved it (Unix time; server-side sessions)

    def regenerate(self) -> None:
        if self.session_id is not None:
            self.previous_id = self.previous_id or self.session_id
        self.session_id = None
        self.modified = True

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(32)

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.modified = True
        super().__delitem__(key)

    def clear(self) -> None:
        self.modified = True
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.modified = True
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self.modified = True
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.modified = True
        return super().setdefault(key, default)

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.modified = True
        return super().__ior__(other)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.modified = True
        super().update(*args, **kwargs)


def attach_session(request: HTTPConnection, session: Session) -> None:
    setattr(request.state, _STATE_KEY, session)


def get_session(request: HTTPConnection) -> Optional[Session]:
    """The request's session, None without a `SessionMiddleware`."""
    found = getattr(request.state, _STATE_KEY, None) if _STATE_KEY in request.state else None
    return found if isinstance(found, Session) else None


def _require_session(request: HTTPConnection) -> Session:
    session = get_session(request)
    if session is None:
        raise AssertionError("SessionMiddleware must be installed to use sessions "
                             "(app.add_middleware(SessionMiddleware, secret_key=...))")
    return session


def login(request: HTTPConnection, user_id: str, *, scopes: Sequence[str] = (), roles: Sequence[str] = (),
          **details: Any) -> Principal:
    """Logs `user_id` in to the request's session: a new session id first (`Session.regenerate`: no fixation),
    then the principal (its scopes, roles and JSON-able `details`) in the session. Returns the principal."""
    session = _require_session(request)
    session.regenerate()
    session[_AUTH_KEY] = {"id": user_id, "scopes": sorted(scopes), "roles": sorted(roles), "details": details}
    principal = Principal(user_id, frozenset(scopes), frozenset(roles), "session", details)
    set_principal(request, principal)
    return principal


def logout(request: HTTPConnection) -> None:
    """Ends the session: its data cleared, its id retired (the server-side record deleted, the cookie removed)."""
    session = _require_session(request)
    session.clear()
    session.regenerate()


class SessionAuth:
    """A dependency giving the session's logged-in `Principal` (``Depends(SessionAuth())``, or ``auth=`` of
    ``@requires``); not logged in: 401 (``WWW-Authenticate: Session``, or `challenge`) or, with `login_url`,
    a 303 redirect there (browser pages)."""

    def __init__(self, *, login_url: Optional[str] = None, challenge: str = "Session",
                 auto_error: bool = True) -> None:
        self.login_url = login_url
        self.challenge = challenge
        self.auto_error = auto_error

    async def __call__(self, request: HTTPConnection) -> Optional[Principal]:
        principal = session_principal(request)
        if principal is None:
            if not self.auto_error:
                return None
            if self.login_url is not None:
                raise HTTPException(303, "Login required", headers={"Location": self.login_url})
            raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": self.challenge})
        set_principal(request, principal)
        return principal
