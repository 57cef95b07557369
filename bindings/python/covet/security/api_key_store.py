"""API keys checked against hashed storage: `APIKeyStore` issues, verifies, rotates and revokes keys; `APIKeyAuth`
is the dependency that authenticates requests with them.

::

    store = APIKeyStore(pepper=os.environb[b"API_KEY_PEPPER"])          # >= 32 random bytes, kept secret
    key, record = await store.issue("alice", scopes=["items:read"], expires_in=90 * 86400)
    # give `key` to alice once: only its keyed hash is stored

    api_key = APIKeyAuth(store, header="X-API-Key", query="api_key")   # and/or cookie="..."

    @app.get("/items")
    async def items(who: Annotated[Principal, Security(api_key, scopes=["items:read"])]) -> list[str]: ...

A key reads ``ck_<key id>_<secret>``: the id (12 characters) finds the record, the secret (43 characters,
256 random bits) proves possession. The store keeps HMAC-SHA256(pepper, key) only, compared in constant
time: a leak of the storage alone gives no usable key, and the pepper alone gives none either. An unknown id
costs the same hash and comparison as a known one.

Each record carries its owner, scopes, roles, name, creation time and expiry. ``rotate(key_id, overlap=...)``
issues a new key with the same metadata and keeps the old one valid for `overlap` seconds more (clients
switch over meanwhile); ``revoke(key_id)`` ends one at once.

Storage is pluggable: `APIKeyBackend` (async ``get``/``put``/``delete`` by key id) — `MemoryAPIKeyBackend`
by default; a database table with the `APIKeyRecord` fields works the same.

`APIKeyAuth` answers 401 ``WWW-Authenticate: APIKey`` for a missing, unknown, expired or revoked key, 403
when the key lacks a scope declared with ``Security(..., scopes=[...])``, and 429 with ``Retry-After`` once a
client (its address) has sent `max_failures` bad keys within `failure_window` seconds (`FailureLimiter`): from
then on until the window ends, its requests are refused before any key is looked up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Any, Optional, Protocol, Union

from covet.connection import HTTPConnection
from covet.exceptions import HTTPException
from covet.params.markers import SecurityScopes

from .authorization import Principal, check_access, set_principal
from .base import SecurityBase, scheme_model
from .failures import FailureLimiter, KeyRateLimiter

__all__ = ["APIKeyRecord", "APIKeyBackend", "MemoryAPIKeyBackend", "APIKeyStore", "APIKeyAuth"]

PREFIX = "ck"
_ID_LENGTH = 12
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclasses.dataclass(frozen=True)
class APIKeyRecord:
    """What is stored for one key: never the key, only its keyed hash (hex)."""

    key_id: str
    key_hash: str
    owner: str
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    name: str = ""
    created_at: float = 0.0
    expires_at: Optional[float] = None  # Unix time; None: does not expire
    revoked: bool = False
    replaced_by: Optional[str] = None  # the key id that rotation issued in its place
    rate_limit: Optional[int] = None  # requests a minute this key may make (APIKeyAuth answers 429 beyond)

    def valid_at(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


class APIKeyBackend(Protocol):
    """Where `APIKeyStore` keeps its records, by key id."""

    async def get(self, key_id: str) -> Optional[APIKeyRecord]: ...

    async def put(self, record: APIKeyRecord) -> None: ...

    async def delete(self, key_id: str) -> None: ...


class MemoryAPIKeyBackend:
    """Records in a dict (one process; gone at exit)."""

    def __init__(self) -> None:
        self.records: dict[str, APIKeyRecord] = {}

    async def get(self, key_id: str) -> Optional[APIKeyRecord]:
        return self.records.get(key_id)

    async def put(self, record: APIKeyRecord) -> None:
        self.records[record.key_id] = record

    async def delete(self, key_id: str) -> None:
        self.records.pop(key_id, None)


def _split(key: str) -> Optional[tuple[str, str]]:
    """(key id, secret) of a well-formed key, else None."""
    parts = key.split("_", 2)  # the secret (URL-safe base64) may itself hold "_"
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != _ID_LENGTH or not 32 <= len(parts[2]) <= 64:
        return None
    return parts[1], parts[2]


class APIKeyStore:
    """Issues and verifies API keys; see the module doc. `pepper`: the server secret the stored hashes are keyed
    with (at least 32 bytes; keep it out of the key storage). None makes a random one: keys then live as long
    as the process (tests, development). `clock`: Unix time (tests)."""

    def __init__(self, pepper: Union[bytes, str, None] = None, backend: Optional[APIKeyBackend] = None,
                 clock: Any = time.time) -> None:
        if pepper is None:
            pepper = secrets.token_bytes(32)
        if isinstance(pepper, str):
            pepper = pepper.encode()
        if len(pepper) < 32:
            raise ValueError("APIKeyStore: the pepper must be at least 32 bytes (secrets.token_bytes(32))")
        self._pepper = pepper
        self.backend: APIKeyBackend = backend if backend is not None else MemoryAPIKeyBackend()
        self._clock = clock
        self._dummy_hash = self.hash("x" * 60)

    def hash(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    async def _new_key_id(self) -> str:
        for _ in range(8):
            key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
            if await self.backend.get(key_id) is None:
                return key_id
        raise RuntimeError("APIKeyStore: could not find a free key id")  # pragma: no cover - 36^12 ids

    async def issue(self, owner: str, *, scopes: Sequence[str] = (), roles: Sequence[str] = (), name: str = "",
                    expires_in: Optional[float] = None, expires_at: Optional[float] = None,
                    rate_limit: Optional[int] = None) -> tuple[str, APIKeyRecord]:
        """A new key for `owner`: (the key, shown once; its record, as stored). `rate_limit`: requests a
        minute (a token bucket per key in each `APIKeyAuth`; None: unlimited)."""
        now = self._clock()
        if expires_in is not None:
            expires_at = now + expires_in
        key_id = await self._new_key_id()
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = APIKeyRecord(key_id, self.hash(key), owner, frozenset(scopes), frozenset(roles), name, now,
                              expires_at, rate_limit=rate_limit)
        await self.backend.put(record)
        return key, record

    async def verify(self, key: str) -> Optional[APIKeyRecord]:
        """The record of `key` when it is a current key (known, the hash matches, not expired, not revoked);
        else None. The comparison is constant-time, and unknown ids cost the same comparison."""
        parts = _split(key)
        record = await self.backend.get(parts[0]) if parts is not None else None
        expected = record.key_hash if record is not None else self._dummy_hash
        matches = hmac.compare_digest(self.hash(key), expected)
        if record is None or not matches or not record.valid_at(self._clock()):
            return None
        return record

    async def rotate(self, key_id: str, *, overlap: float = 86400.0,
                     expires_in: Optional[float] = None) -> tuple[str, APIKeyRecord]:
        """A new key with `key_id`'s metadata; the old one stays valid for `overlap` seconds more (never longer
        than it already would). `expires_in`: the new key's lifetime (default: the old one's)."""
        old = await self.backend.get(key_id)
        if old is None or not old.valid_at(self._clock()):
            raise KeyError(f"API key {key_id!r} is unknown, expired or revoked: issue a new key instead")
        now = self._clock()
        if expires_in is None and old.expires_at is not None:
            expires_in = old.expires_at - old.created_at
        key, new = await self.issue(old.owner, scopes=sorted(old.scopes), roles=sorted(old.roles), name=old.name,
                                    expires_in=expires_in, rate_limit=old.rate_limit)
        ends = now + overlap if old.expires_at is None else min(old.expires_at, now + overlap)
        await self.backend.put(dataclasses.replace(old, expires_at=ends, replaced_by=new.key_id))
        return key, new

    async def revoke(self, key_id: str) -> None:
        record = await self.backend.get(key_id)
        if record is not None:
            await self.backend.put(dataclasses.replace(record, revoked=True))


class APIKeyAuth(SecurityBase):
    """The dependency authenticating a request by API key (see the module doc): the key is read from the
    `header`, else the `query` parameter, else the `cookie` (those given); the result is a `Principal` (``id``:
    the owner, ``via="api_key"``, ``details``: key id and name), also recorded for ``@requires``.
    `failures`: the brute-force guard (default: 10 bad keys a minute per client address)."""

    def __init__(self, store: APIKeyStore, *, header: Optional[str] = "X-API-Key", query: Optional[str] = None,
                 cookie: Optional[str] = None, failures: Optional[FailureLimiter] = None,
                 scheme_name: Optional[str] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        if not (header or query or cookie):
            raise ValueError("APIKeyAuth needs where the key is: header=, query= and/or cookie=")
        self.store = store
        self.header, self.query, self.cookie = header, query, cookie
        self.failures = failures if failures is not None else FailureLimiter()
        self.rates = KeyRateLimiter()
        location, name = next((loc, n) for loc, n in (("header", header), ("query", query), ("cookie", cookie)) if n)
        self.model = scheme_model("apiKey", description, **{"in": location, "name": name})
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def read_key(self, request: HTTPConnection) -> Optional[str]:
        for found in (request.headers.get(self.header) if self.header else None,
                      request.query_params.get(self.query) if self.query else None,
                      request.cookies.get(self.cookie) if self.cookie else None):
            if found:
                return found
        return None

    @staticmethod
    def _too_many(retry_after: int, detail: str = "Too many failed authentication attempts") -> HTTPException:
        return HTTPException(429, detail, headers={"Retry-After": str(retry_after)})

    async def __call__(self, request: HTTPConnection, security_scopes: SecurityScopes) -> Optional[Principal]:
        client = request.client.host if request.client else ""
        locked = self.failures.retry_after(client)
        if locked:
            raise self._too_many(locked)
        key = self.read_key(request)
        if key is None:
            if self.auto_error:
                raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "APIKey"})
            return None
        record = await self.store.verify(key)
        if record is None:
            locked = self.failures.failure(client)
            if locked:
                raise self._too_many(locked)
            raise HTTPException(401, "Invalid API key", headers={"WWW-Authenticate": "APIKey"})
        if record.rate_limit is not None:
            wait = self.rates.acquire(record.key_id, record.rate_limit)
            if wait:
                raise self._too_many(wait, "API key rate limit exceeded")
        principal = Principal(record.owner, record.scopes, record.roles, "api_key",
                              {"key_id": record.key_id, "name": record.name, "expires_at": record.expires_at})
        set_principal(request, principal)
        check_access(principal, security_scopes.scopes)
        return principal
