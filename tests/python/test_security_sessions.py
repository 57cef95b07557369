"""Sessions through real sockets: ``request.session`` in a signed (optionally encrypted) cookie with key rotation
and max-age, the cookie's defaults (``Secure``, ``HttpOnly``, ``SameSite=Lax``), tampering refused, and
server-side sessions on a real Redis (`scripts/services.sh start`; skipped without one unless
COVET_REQUIRE_SERVICES is set) with only an opaque id in the cookie — and session fixation: an id an attacker
planted before the victim's login is not the one authenticated after it."""

import asyncio
import base64
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from serverproc import service_setting

from covet import CovetPy, Request
from covet.middleware.sessions import SessionMiddleware
from covet.security import MemorySessionStore, RedisSessionStore, Signer, login, logout, session_principal

KEY_OLD = "old-key-" + "o" * 24
KEY_NEW = "new-key-" + "n" * 24


def _redis_url() -> Optional[str]:
    url = service_setting("COVET_TEST_REDIS_URL")
    if url:
        try:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return url
        except Exception as exc:
            reason = f"Redis at {url} does not answer: {exc}"
    else:
        reason = "COVET_TEST_REDIS_URL not set and build/services.env missing: run `scripts/services.sh start`"
    if os.environ.get("COVET_REQUIRE_SERVICES"):
        pytest.fail(reason)
    pytest.skip(reason)
    return None


def _app(**options: Any) -> CovetPy:
    app = CovetPy()
    app.add_middleware(SessionMiddleware, **options)

    @app.get("/count")
    async def count(request: Request) -> dict[str, int]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @app.get("/peek")
    async def peek(request: Request) -> dict[str, Any]:
        return dict(request.session)

    @app.post("/login")
    async def do_login(request: Request, user: str) -> dict[str, str]:
        login(request, user, scopes=["profile"])  # a real app checks a password first
        return {"user": user}

    @app.post("/logout")
    async def do_logout(request: Request) -> dict[str, bool]:
        logout(request)
        return {"ok": True}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Optional[str]]:
        principal = session_principal(request)
        return {"user": principal.id if principal else None}

    return app


def _session_cookie(response: Any, name: str = "session") -> str:
    for value in response.headers.getlist("set-cookie"):
        if value.startswith(name + "="):
            return str(value)
    raise AssertionError(f"no {name} cookie in {response.headers}")


def _value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1].strip('"')


class TestCookieSessions:
    def test_defaults_secure_httponly_lax_max_age(self, make_client: Any) -> None:
        client = make_client(_app(secret_key=KEY_NEW))
        header = _session_cookie(client.get("/count"))
        attributes = [a.strip().lower() for a in header.split(";")[1:]]
        assert {"secure", "httponly", "samesite=lax", "path=/", f"max-age={14 * 86400}"} <= set(attributes)

    def test_data_survives_requests_and_tampering_is_refused(self, make_client: Any) -> None:
        client = make_client(_app(secret_key=KEY_NEW, https_only=False))
        assert [client.get("/count").json()["n"] for _ in range(3)] == [1, 2, 3]
        cookie = client.cookies["session"]
        payload, stamp, mac = cookie.strip('"').split(".")
        assert json.loads(base64.urlsafe_b64decode(payload + "==")) == {"n": 3}  # signed, not encrypted
        forged = base64.urlsafe_b64encode(b'{"n":1000}').rstrip(b"=").decode()
        for bad in (f"{forged}.{stamp}.{mac}", f"{payload}.{stamp}.{mac[:-2]}AA", "garbage", ""):
            client.cookies.clear()
            r = client.get("/peek", cookies={"session": bad})
            assert r.json() == {}
        signer = Signer(KEY_NEW)
        too_old = signer.sign(b'{"n":7}', now=time.time() - 15 * 86400)
        client.cookies.clear()
        assert client.get("/peek", cookies={"session": too_old}).json() == {}
        assert client.get("/peek", cookies={"session": signer.sign(b'{"n":7}')}).json() == {"n": 7}

    def test_key_rotation_newest_signs_all_verify(self, make_client: Any) -> None:
        old_cookie = Signer(KEY_OLD).sign(b'{"n":41}')
        client = make_client(_app(secret_key=[KEY_NEW, KEY_OLD], https_only=False))
        r = client.get("/count", cookies={"session": old_cookie})
        assert r.json() == {"n": 42}
        new_cookie = _value(_session_cookie(r))
        assert Signer(KEY_NEW).unsign(new_cookie) == b'{"n":42}'  # re-signed with the newest key
        assert Signer(KEY_OLD).unsign(new_cookie) is None
        dropped = make_client(_app(secret_key=[KEY_NEW], https_only=False))  # the old key retired
        assert dropped.get("/peek", cookies={"session": old_cookie}).json() == {}

    def test_encrypted_cookie(self, make_client: Any) -> None:
        pytest.importorskip("cryptography")
        client = make_client(_app(secret_key=KEY_NEW, https_only=False, encrypt=True))
        client.post("/login?user=carol")
        cookie = client.cookies["session"].strip('"')
        assert b"carol" not in base64.urlsafe_b64decode(cookie.split(".")[0] + "==")
        assert client.get("/me").json() == {"user": "carol"}
        plain = Signer(KEY_NEW).sign(b'{"_auth":{"id":"mallory"}}')  # signed but not encrypted: refused
        client.cookies.clear()
        assert client.get("/me", cookies={"session": plain}).json() == {"user": None}

    def test_logout_removes_the_cookie(self, make_client: Any) -> None:
        client = make_client(_app(secret_key=KEY_NEW, https_only=False))
        client.post("/login?user=dan")
        assert client.get("/me").json() == {"user": "dan"}
        r = client.post("/logout")
        assert "max-age=0" in _session_cookie(r).lower()
        assert client.get("/me").json() == {"user": None}


@pytest.fixture
def redis_store() -> Iterator[RedisSessionStore]:
    url = _redis_url()
    assert url is not None
    yield RedisSessionStore(url, prefix=f"covet-test:{secrets.token_hex(4)}:")


def _stored(store: RedisSessionStore) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(_redis_url() or "")
    keys = client.keys(store.prefix + "*")
    return {k.decode()[len(store.prefix):]: json.loads(client.get(k)) for k in keys}


class TestServerSideSessions:
    def test_data_lives_in_redis_the_cookie_holds_an_opaque_id(self, make_client: Any,
                                                               redis_store: RedisSessionStore) -> None:
        client = make_client(_app(secret_key=KEY_NEW, https_only=False, store=redis_store, max_age=600))
        assert [client.get("/count").json()["n"] for _ in range(3)] == [1, 2, 3]
        stored = _stored(redis_store)
        assert len(stored) == 1
        session_id, data = next(iter(stored.items()))
        assert data["n"] == 3
        cookie = client.cookies["session"].strip('"')
        assert Signer(KEY_NEW, salt=b"covet.session.id").unsign(cookie) == session_id.encode()
        import redis

        ttl = redis.Redis.from_url(_redis_url() or "").ttl(redis_store.prefix + session_id)
        assert 0 < ttl <= 600

    def test_unknown_or_unsigned_ids_are_never_adopted(self, make_client: Any,
                                                       redis_store: RedisSessionStore) -> None:
        client = make_client(_app(secret_key=KEY_NEW, https_only=False, store=redis_store))
        made_up = Signer(KEY_NEW, salt=b"covet.session.id").sign(b"attacker-chosen-id")
        for cookie in (made_up, "attacker-chosen-id"):
            client.cookies.clear()
            r = client.get("/count", cookies={"session": cookie})
            assert r.json() == {"n": 1}
            assert "attacker-chosen-id" not in _stored(redis_store)

    def test_session_fixation_is_prevented(self, make_client: Any, redis_store: RedisSessionStore) -> None:
        app = _app(secret_key=KEY_NEW, https_only=False, store=redis_store)
        attacker = make_client(app)
        victim = make_client(app)
        # The attacker gets a valid session from the site and plants its cookie in the victim's browser.
        attacker.get("/count")
        planted = attacker.cookies["session"]
        planted_id = Signer(KEY_NEW, salt=b"covet.session.id").unsign(planted.strip('"'))
        assert planted_id is not None and planted_id.decode() in _stored(redis_store)
        victim.cookies.set("session", planted)
        assert victim.get("/count").json() == {"n": 2}  # the victim uses the planted session...
        r = victim.post("/login?user=victim")  # ...then logs in
        assert r.status_code == 200
        after = _value(_session_cookie(r))
        assert after.strip('"') != planted.strip('"')
        assert victim.get("/me").json() == {"user": "victim"}
        # The planted id is not the authenticated one: its record is gone, the attacker is not logged in.
        assert planted_id.decode() not in _stored(redis_store)
        assert attacker.get("/me").json() == {"user": None}
        assert victim.get("/peek").json()["n"] == 2  # the data carried over to the new id
        victim.post("/logout")
        assert victim.get("/me").json() == {"user": None}
        assert all("_auth" not in data for data in _stored(redis_store).values())


def test_memory_store_and_regenerate() -> None:
    store = MemorySessionStore()
    asyncio.run(store.save("a", {"x": 1}, 60))
    assert asyncio.run(store.load("a")) == {"x": 1}
    asyncio.run(store.save("b", {"x": 2}, -1))  # already expired
    assert asyncio.run(store.load("b")) is None


def _save_if_absent_holds_one_claim(store: Any) -> None:
    assert asyncio.run(store.save_if_absent("once", {"n": 1}, 60)) is True
    assert asyncio.run(store.save_if_absent("once", {"n": 2}, 60)) is False
    assert asyncio.run(store.load("once")) == {"n": 1}  # the first claim's data stays
    asyncio.run(store.delete("once"))
    assert asyncio.run(store.save_if_absent("once", {"n": 3}, 60)) is True


def test_memory_store_save_if_absent() -> None:
    store = MemorySessionStore()
    _save_if_absent_holds_one_claim(store)
    asyncio.run(store.save("stale", {"x": 1}, -1))  # an expired record does not block a claim
    assert asyncio.run(store.save_if_absent("stale", {"x": 2}, 60)) is True


def test_redis_store_save_if_absent(redis_store: RedisSessionStore) -> None:
    _save_if_absent_holds_one_claim(redis_store)


def test_request_session_needs_the_middleware(make_client: Any) -> None:
    app = CovetPy()

    @app.get("/")
    async def root(request: Request) -> dict[str, Any]:
        return dict(request.session)

    with pytest.raises(AssertionError, match="SessionMiddleware must be installed"):
        make_client(app).get("/")
