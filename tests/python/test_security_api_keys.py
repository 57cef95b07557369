"""API keys through real sockets: keys in a header, the query or a cookie, checked against keyed hashes
(`APIKeyStore`), with their owner, scopes and expiry; rotation with an overlap window; revocation; and brute
force: a client that keeps sending bad keys gets 429 with ``Retry-After`` — even for a valid key — while other
clients keep being served."""

import asyncio
import hashlib
import hmac
from typing import Annotated, Any

import pytest

from covet import CovetPy, Security
from covet.security import APIKeyAuth, APIKeyStore, FailureLimiter, KeyRateLimiter, MemoryAPIKeyBackend, Principal

PEPPER = b"p" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _app(store: APIKeyStore, failures: FailureLimiter) -> CovetPy:
    app = CovetPy()
    auth = APIKeyAuth(store, header="X-API-Key", query="api_key", cookie="key", failures=failures)

    @app.get("/whoami")
    async def whoami(who: Annotated[Principal, Security(auth)]) -> dict[str, Any]:
        return {"owner": who.id, "key_id": who.details["key_id"]}

    @app.get("/items")
    async def items(who: Annotated[Principal, Security(auth, scopes=["items:read"])]) -> list[str]:
        return ["a", "b"]

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


def test_the_store_keeps_only_a_keyed_hash() -> None:
    backend = MemoryAPIKeyBackend()
    store = APIKeyStore(pepper=PEPPER, backend=backend)
    key, record = _run(store.issue("alice", scopes=["items:read"], name="ci"))
    assert key.startswith(f"ck_{record.key_id}_") and len(key) >= 3 + 12 + 1 + 43
    stored = backend.records[record.key_id]
    assert key not in repr(stored) and key.split("_", 2)[2] not in repr(stored)
    assert stored.key_hash == hmac.new(PEPPER, key.encode(), hashlib.sha256).hexdigest()
    assert _run(store.verify(key)) == stored
    # Another pepper (a stolen table without the server secret) verifies nothing.
    thief = APIKeyStore(pepper=b"q" * 32, backend=backend)
    assert _run(thief.verify(key)) is None
    for bad in ("", key + "x", key[:-1], "ck_" + record.key_id, key.replace("ck_", "xk_"), "ck__" + "a" * 43):
        assert _run(store.verify(bad)) is None
    with pytest.raises(ValueError, match="at least 32 bytes"):
        APIKeyStore(pepper=b"short")


def test_keys_in_header_query_cookie_scopes_expiry_and_revocation(make_client: Any) -> None:
    clock = Clock()
    store = APIKeyStore(pepper=PEPPER, clock=clock)
    key, record = _run(store.issue("alice", scopes=["items:read"], expires_in=3600))
    other, _ = _run(store.issue("bob"))
    client = make_client(_app(store, FailureLimiter(max_failures=100)))
    assert client.get("/whoami", headers={"X-API-Key": key}).json() == {"owner": "alice", "key_id": record.key_id}
    assert client.get(f"/whoami?api_key={key}").json()["owner"] == "alice"
    assert client.get("/whoami", cookies={"key": key}).json()["owner"] == "alice"
    r = client.get("/whoami")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "APIKey"
    assert r.json() == {"detail": "Not authenticated"}
    assert client.get("/items", headers={"X-API-Key": key}).json() == ["a", "b"]
    r = client.get("/items", headers={"X-API-Key": other})  # bob's key has no items:read
    assert r.status_code == 403 and r.json() == {"detail": "Not enough permissions"}
    clock.now += 3601  # expired
    r = client.get("/whoami", headers={"X-API-Key": key})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid API key"}
    _run(store.revoke([k for k in store.backend.records if k != record.key_id][0]))  # type: ignore[attr-defined]
    assert client.get("/whoami", headers={"X-API-Key": other}).status_code == 401


def test_rotation_keeps_the_old_key_for_the_overlap_window(make_client: Any) -> None:
    clock = Clock()
    store = APIKeyStore(pepper=PEPPER, clock=clock)
    old_key, old = _run(store.issue("alice", scopes=["items:read"]))
    new_key, new = _run(store.rotate(old.key_id, overlap=600))
    assert new.owner == "alice" and new.scopes == old.scopes and new.key_id != old.key_id
    client = make_client(_app(store, FailureLimiter(max_failures=100)))
    for key in (old_key, new_key):  # both valid during the overlap
        assert client.get("/items", headers={"X-API-Key": key}).status_code == 200
    clock.now += 601
    assert client.get("/items", headers={"X-API-Key": old_key}).status_code == 401
    assert client.get("/items", headers={"X-API-Key": new_key}).status_code == 200
    with pytest.raises(KeyError, match="issue a new key"):
        _run(store.rotate(old.key_id))


def test_brute_force_gets_429_and_other_clients_keep_being_served(make_client: Any) -> None:
    store = APIKeyStore(pepper=PEPPER)
    key, record = _run(store.issue("alice"))
    app = _app(store, FailureLimiter(max_failures=5, window=60))
    attacker = make_client(app, client=("203.0.113.9", 4444))
    honest = make_client(app, client=("198.51.100.7", 5555))
    statuses = []
    for i in range(8):  # guesses with the right key id (the prefix is public) and random secrets
        guess = f"ck_{record.key_id}_{'A' * 40}{i:03d}"
        statuses.append(attacker.get("/whoami", headers={"X-API-Key": guess}).status_code)
    assert statuses == [401] * 4 + [429] * 4
    r = attacker.get("/whoami", headers={"X-API-Key": key})  # locked out: not even a valid key is checked
    assert r.status_code == 429 and r.json() == {"detail": "Too many failed authentication attempts"}
    assert 0 < int(r.headers["retry-after"]) <= 60
    assert attacker.get("/health").status_code == 200  # the server keeps serving, routes without keys too
    assert honest.get("/whoami", headers={"X-API-Key": key}).json()["owner"] == "alice"
    assert honest.get("/whoami", headers={"X-API-Key": "ck_nope"}).status_code == 401  # its own count


def test_failure_limiter_window_and_bound() -> None:
    clock = Clock()
    limiter = FailureLimiter(max_failures=3, window=10, max_clients=4, clock=clock)
    assert [limiter.failure("a") for _ in range(3)] == [0, 0, 10]
    assert limiter.retry_after("a") == 10
    clock.now += 9.5
    assert limiter.retry_after("a") == 1
    clock.now += 0.5
    assert limiter.retry_after("a") == 0 and limiter.failure("a") == 0  # a new window
    for i in range(10):
        limiter.failure(f"c{i}")
    assert len(limiter) <= 4


def test_per_key_rate_limit(make_client: Any) -> None:
    store = APIKeyStore(pepper=PEPPER)
    limited, record = _run(store.issue("batch", rate_limit=3))
    unlimited, _ = _run(store.issue("ui"))
    client = make_client(_app(store, FailureLimiter()))
    statuses = [client.get("/whoami", headers={"X-API-Key": limited}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    r = client.get("/whoami", headers={"X-API-Key": limited})
    assert r.json() == {"detail": "API key rate limit exceeded"} and int(r.headers["retry-after"]) >= 1
    assert all(client.get("/whoami", headers={"X-API-Key": unlimited}).status_code == 200 for _ in range(10))
    _, rotated = _run(store.rotate(record.key_id, overlap=60))
    assert rotated.rate_limit == 3  # rotation keeps the metadata


def test_key_rate_limiter_refills() -> None:
    clock = Clock()
    limiter = KeyRateLimiter(max_keys=2, clock=clock)
    assert [limiter.acquire("k", 2) for _ in range(3)] == [0, 0, 30]  # 2 a minute: one every 30 s
    clock.now += 30
    assert limiter.acquire("k", 2) == 0
    assert limiter.acquire("k", 0) == 0  # no limit
    for name in ("a", "b", "c"):
        limiter.acquire(name, 5)
    assert len(limiter._buckets) <= 2
