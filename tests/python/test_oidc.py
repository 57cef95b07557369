"""OpenID Connect against a real provider: npm `oidc-provider` (tests/python/oidc/provider.mjs, pinned by its
package-lock.json, installed by scripts/setup.sh), started once for the module.

- resource server: the provider's JWT access tokens verified by `jwt_bearer` with discovery; its opaque access
  tokens by token introspection (RFC 7662), cached; a key rotation at the provider (restarted with a new key)
  picked up without restarting the app;
- the browser login flow (`covet.security.oidc.OIDCLogin`) end to end in headless Chromium over the DevTools
  protocol: redirected to the provider, log in, consent, back logged in, an API call with the session, logout
  at the provider, the API then answers 401; again after a key rotation;
- attacks on the flow, each refused while the server keeps serving: wrong state, a replayed code, a nonce
  mismatch, an ID token for another audience, a tampered ID token, a callback without the flow cookie, an open
  redirect in ``next``, a forged session cookie.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any, Optional

import pytest
from serverproc import ServerProcess, free_port, service_setting

from covet import CovetPy, Depends, Request, Security
from covet.responses import HTMLResponse, RedirectResponse, Response
from covet.security.oidc import FLOW_SALT, SESSION_SALT

HERE = Path(__file__).resolve().parent / "oidc"
USER, PASSWORD = "alice", "wonderland"
WEB_SECRET = "covet-web-secret"
API = "urn:covet:api"
COOKIE_KEY = b"k" * 32


class Provider:
    """The oidc-provider process; `rotate(kid)` restarts it on the same port with a new signing key."""

    def __init__(self, port: int, app_port: int) -> None:
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
            pytest.fail("the OpenID provider for these tests is not installed: needs Node.js (Debian's nodejs) and "
                        "`npm ci --prefix tests/python/oidc` (scripts/setup.sh does both)")
        version = subprocess.run([node, "-p", "process.versions.node"], capture_output=True, text=True,
                                 timeout=30).stdout.strip()
        if tuple(int(x) for x in [*version.split("."), "0", "0"][:2]) < (20, 19):
            pytest.fail(f"oidc-provider 9 needs Node.js >= 20.19; {node} is {version or 'unknown'} "
                        "(Debian trixie's nodejs, or NodeSource's on bookworm)")
        self.node = node
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        app = f"http://127.0.0.1:{app_port}"
        self.env = {"PORT": str(port),
                    "OIDC_REDIRECT_URIS": json.dumps([f"{app}/auth/callback", f"{app}/spa/callback",
                                                      f"{app}/bcl/callback"]),
                    "OIDC_POST_LOGOUT_URIS": json.dumps([f"{app}/"]),
                    "OIDC_BACKCHANNEL_LOGOUT_URI": f"{app}/bcl/backchannel-logout"}
        self.kid = ""
        self.process: Optional[ServerProcess] = None
        self.start("k1")

    def start(self, kid: str) -> None:
        self.kid = kid
        self.process = ServerProcess([self.node, "provider.mjs"], cwd=HERE, env={**self.env, "OIDC_KID": kid},
                                     ready=r"oidc-provider listening on (\d+)")

    def rotate(self, kid: str) -> None:
        assert self.process is not None
        self.process.stop()
        self.start(kid)

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()

    def token(self, **form: str) -> dict[str, Any]:
        """A client_credentials grant for the confidential client."""
        request = urllib.request.Request(
            self.issuer + "/token", data=urllib.parse.urlencode({"grant_type": "client_credentials", **form}).encode(),
            headers={"Authorization": "Basic " + base64.b64encode(f"covet-web:{WEB_SECRET}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer


class FakeTokenEndpoint:
    """A token endpoint answering whatever ID token the test sets: a man in the middle (or a compromised
    endpoint) for the ID token checks."""

    def __init__(self) -> None:
        self.id_token = ""
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.dumps({"access_token": "opaque", "token_type": "Bearer", "id_token": endpoint.id_token})
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Env:
    def __init__(self, provider: Provider, app: CovetPy, base: str, fake: FakeTokenEndpoint) -> None:
        self.provider = provider
        self.app = app
        self.base = base
        self.fake = fake


def _session_store() -> Any:
    """Redis when the test services run (`scripts/services.sh start`), else one process's memory: the same
    `SessionStore` interface, and this test's worker runs in the test's process."""
    from covet.security import MemorySessionStore, RedisSessionStore

    url = service_setting("COVET_TEST_REDIS_URL")
    if url:
        try:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return RedisSessionStore(url, prefix=f"covet-test-oidc:{os.getpid()}:")
        except Exception:
            if os.environ.get("COVET_REQUIRE_SERVICES"):
                raise
    return MemorySessionStore()


def _make_app(issuer: str, base: str, fake: FakeTokenEndpoint) -> CovetPy:
    from covet.security.introspection import TokenIntrospection
    from covet.security.jwt import jwt_bearer
    from covet.security.oidc import OIDCLogin

    app = CovetPy()
    oidc = OIDCLogin(issuer=issuer, client_id="covet-web", client_secret=WEB_SECRET,
                     redirect_uri=f"{base}/auth/callback", post_logout_redirect_uri=f"{base}/",
                     secret_key=COOKIE_KEY, jwks_refresh_interval=0.2)
    spa = OIDCLogin(issuer=issuer, client_id="covet-spa", redirect_uri=f"{base}/spa/callback",
                    login_path="/spa/login", logout_path="/spa/logout", cookie_name="covet_spa",
                    secret_key=COOKIE_KEY, jwks_refresh_interval=0.2)
    # The same relying party, but its token endpoint is the test's (ID tokens the test chooses).
    mitm = OIDCLogin(issuer=issuer, client_id="covet-web", client_secret=WEB_SECRET,
                     redirect_uri=f"{base}/mitm/callback", login_path="/mitm/login", logout_path="/mitm/logout",
                     cookie_name="covet_mitm", secret_key=COOKIE_KEY, token_endpoint=fake.url,
                     jwks_refresh_interval=0.2)
    # Server-side sessions with back-channel logout (the provider's client covet-bcl posts logout tokens).
    bcl = OIDCLogin(issuer=issuer, client_id="covet-bcl", client_secret="covet-bcl-secret",
                    redirect_uri=f"{base}/bcl/callback", post_logout_redirect_uri=f"{base}/",
                    login_path="/bcl/login", logout_path="/bcl/logout", cookie_name="covet_bcl",
                    backchannel_logout_path="/bcl/backchannel-logout", secret_key=COOKIE_KEY,
                    jwks_refresh_interval=0.2, store=_session_store())
    for rp in (oidc, spa, mitm, bcl):
        rp.install(app)
    logout_tokens: list[str] = []  # what the provider posted to the back-channel endpoint (for the replay test)

    @app.middleware("http")
    async def record_logout_tokens(request: Request, call_next: Any) -> Response:
        if request.url.path == "/bcl/backchannel-logout":
            form = urllib.parse.parse_qs((await request.body()).decode())
            logout_tokens.extend(form.get("logout_token", []))
        response: Response = await call_next(request)
        return response
    introspection = TokenIntrospection(introspection_endpoint=issuer + "/token/introspection",
                                       client_id="covet-web", client_secret=WEB_SECRET, cache_ttl=1)
    bearer = jwt_bearer(issuer=issuer, audience=API, algorithms=["RS256"], jwks_refresh_interval=0.2,
                        introspection=introspection)

    @app.get("/")
    def home() -> HTMLResponse:
        return HTMLResponse("<!DOCTYPE html><title>home</title><a id=login href='/auth/login?next=/private'>Log in</a>")

    @app.get("/private")
    async def private(request: Request) -> Response:
        user = await oidc.optional_user(request)
        if user is None:
            return RedirectResponse("/auth/login?next=/private", status_code=302)
        return HTMLResponse(f"<!DOCTYPE html><title>private</title><p id=hello>Hello {user['name']}</p>"
                            "<a id=logout href='/auth/logout'>Log out</a>")

    @app.get("/api/me")
    async def me(user: Annotated[dict[str, Any], Depends(oidc.user)]) -> dict[str, Any]:
        return {"sub": user["sub"], "email": user.get("email"), "name": user.get("name")}

    @app.get("/api/bcl-me")
    async def bcl_me(user: Annotated[dict[str, Any], Depends(bcl.user)]) -> dict[str, Any]:
        return {"sub": user["sub"], "sid": user.get("sid")}

    @app.get("/api/spa-me")
    async def spa_me(user: Annotated[dict[str, Any], Depends(spa.user)]) -> dict[str, Any]:
        return {"sub": user["sub"]}

    @app.get("/api/mitm-me")
    async def mitm_me(user: Annotated[dict[str, Any], Depends(mitm.user)]) -> dict[str, Any]:
        return {"sub": user["sub"]}

    @app.get("/rs/items")
    async def items(token: Annotated[dict[str, Any], Security(bearer, scopes=["api:read"])]) -> dict[str, Any]:
        return {"client": token.get("client_id"), "sub": token.get("sub")}

    @app.get("/rs/opaque")
    async def opaque(token: Annotated[dict[str, Any], Depends(introspection)]) -> dict[str, Any]:
        return {"client": token.get("client_id"), "active": token.get("active")}

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    app.state.oidc, app.state.spa, app.state.mitm, app.state.bcl = oidc, spa, mitm, bcl
    app.state.logout_tokens = logout_tokens
    app.state.bearer, app.state.introspection = bearer, introspection
    return app


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    import importlib

    from covet.server import engine
    from covet.server.serve import ThreadedWorker

    if os.environ.get("COVET_NATIVE", "").strip() == "fake":
        pytest.skip("COVET_NATIVE=fake: these tests need the compiled engine")
    try:
        native = importlib.import_module("covet._native")
    except ImportError as exc:
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail(f"compiled engine required: {exc}")
        pytest.skip(f"compiled engine not available: {exc}")
    app_port = free_port()
    provider = Provider(free_port(), app_port)
    fake = FakeTokenEndpoint()
    previous = engine.use_native(native)
    worker: Any = None
    try:
        base = f"http://127.0.0.1:{app_port}"
        app = _make_app(provider.issuer, base, fake)
        worker = ThreadedWorker(app, "127.0.0.1", app_port, 2).start()
        yield Env(provider, app, base, fake)
    finally:
        if worker is not None:
            worker.stop()
        engine.use_native(previous)
        fake.close()
        provider.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


class Agent:
    """A user agent without a browser: cookies (by host, as browsers keep them), redirects stepped by hand."""

    def __init__(self) -> None:
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, url: str, form: Optional[dict[str, str]] = None,
                headers: Optional[dict[str, str]] = None) -> tuple[int, Any, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    def cookie(self, name: str) -> Optional[str]:
        return next((c.value for c in self.jar if c.name == name), None)

    def set_cookie(self, name: str, value: str) -> None:
        for c in self.jar:
            if c.name == name:
                c.value = value
                return
        raise AssertionError(f"no cookie {name}")

    def login(self, url: str, until: str, password: str = PASSWORD) -> str:
        """Follows `url` through the provider's login and consent pages; the redirect URL starting with `until`
        (the app's callback, not followed)."""
        form: Optional[dict[str, str]] = None
        for _ in range(20):
            status, headers, body = self.request(url, form)
            form = None
            if status in (301, 302, 303, 307):
                url = urllib.parse.urljoin(url, headers["Location"])
                if url.startswith(until):
                    return url
                continue
            assert status == 200, f"{url}: HTTP {status} {body[:300]}"
            action = re.search(r'<form[^>]*action="([^"]+)"', body)
            assert action, f"{url}: no form: {body[:300]}"
            url = urllib.parse.urljoin(url, action.group(1).replace("&amp;", "&"))
            if 'name="password"' in body:
                form = {"prompt": "login", "login": USER, "password": password}
            else:
                assert 'value="consent"' in body, body[:300]
                form = {"prompt": "consent"}
        raise AssertionError("the login flow did not come back to the app")


def _jwt_parts(token: str) -> list[dict[str, Any]]:
    return [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in token.split(".")[:2]]


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _serving(env: Env) -> None:
    status, _, body = Agent().request(env.base + "/health")
    assert (status, json.loads(body)) == (200, {"ok": True})


# -- resource server ---------------------------------------------------------------------------------------------
class TestResourceServer:
    def test_jwt_access_tokens_from_the_provider(self, env: Env) -> None:
        token = env.provider.token(scope="api:read", resource=API)["access_token"]
        header, claims = _jwt_parts(token)
        assert header["kid"] == env.provider.kid and claims["aud"] == API
        agent = Agent()
        status, _, body = agent.request(env.base + "/rs/items", headers={"Authorization": f"Bearer {token}"})
        assert status == 200, body
        assert json.loads(body) == {"client": "covet-web", "sub": "covet-web"}
        # Tampered: the signature no longer matches.
        head, _, sig = token.split(".")
        forged = ".".join([head, _b64({**claims, "scope": "api:read admin"}), sig])
        status, headers, body = agent.request(env.base + "/rs/items", headers={"Authorization": f"Bearer {forged}"})
        assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"], body
        # A token for the provider's userinfo (opaque, no api:read audience) is not accepted as a JWT for the API.
        _serving(env)

    def test_opaque_tokens_by_introspection_cached(self, env: Env) -> None:
        introspection = env.app.state.introspection
        token = env.provider.token(scope="api:read")["access_token"]
        assert token.count(".") == 0  # opaque
        agent = Agent()
        before = introspection.requests
        for _ in range(3):
            status, _, body = agent.request(env.base + "/rs/opaque", headers={"Authorization": f"Bearer {token}"})
            assert status == 200, body
            assert json.loads(body) == {"client": "covet-web", "active": True}
        assert introspection.requests == before + 1  # cached
        # jwt_bearer with introspection: opaque tokens go to the provider, and the scope check applies.
        status, _, body = agent.request(env.base + "/rs/items", headers={"Authorization": f"Bearer {token}"})
        assert status == 200, body
        # An unknown token: inactive.
        status, headers, body = agent.request(env.base + "/rs/opaque", headers={"Authorization": "Bearer nope" * 4})
        assert status == 401 and "token inactive" in headers["WWW-Authenticate"], body
        # Revoked at the provider: refused once the cache entry is older than cache_ttl (1 s here).
        request = urllib.request.Request(
            env.provider.issuer + "/token/revocation", data=urllib.parse.urlencode({"token": token}).encode(),
            headers={"Authorization": "Basic " + base64.b64encode(f"covet-web:{WEB_SECRET}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        import time

        time.sleep(1.1)
        status, _, body = agent.request(env.base + "/rs/opaque", headers={"Authorization": f"Bearer {token}"})
        assert status == 401, body


# -- back-channel logout (server-side sessions) -----------------------------------------------------------------
def _logout_at_the_provider(env: Env, agent: Agent) -> None:
    """The user ends their session at the provider (its end-session page, confirmed): the provider posts a
    logout token to each client's back-channel URI before it answers."""
    status, _, body = agent.request(env.provider.issuer + "/session/end?client_id=covet-bcl")
    assert status == 200, body[:300]
    action = re.search(r'<form[^>]*action="([^"]+)"', body)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', body)
    assert action and xsrf, body[:500]
    status, headers, body = agent.request(urllib.parse.urljoin(env.provider.issuer, action.group(1)),
                                          {"xsrf": xsrf.group(1), "logout": "yes"})
    assert status in (302, 303), body[:300]


def _post_logout_token(env: Env, token: str) -> tuple[int, Any]:
    status, _, body = Agent().request(env.base + "/bcl/backchannel-logout", {"logout_token": token})
    return status, json.loads(body) if body else None


class TestBackChannelLogout:
    def _login(self, env: Env) -> Agent:
        agent = Agent()
        callback = agent.login(env.base + "/bcl/login?next=/api/bcl-me", env.base + "/bcl/callback")
        assert agent.request(callback)[0] == 303
        return agent

    def test_logout_at_the_provider_revokes_the_server_side_session(self, env: Env) -> None:
        bcl = env.app.state.bcl
        alice, other = self._login(env), self._login(env)  # two browsers: two provider sessions (sids)
        status, _, body = alice.request(env.base + "/api/bcl-me")
        assert status == 200, body
        sid = json.loads(body)["sid"]
        assert sid and sid != json.loads(other.request(env.base + "/api/bcl-me")[2])["sid"]
        cookie = alice.cookie("covet_bcl")
        assert cookie is not None and "alice" not in cookie  # only a signed id in the cookie
        accepted = bcl.backchannel_logouts
        _logout_at_the_provider(env, alice)
        assert bcl.backchannel_logouts == accepted + 1
        token = env.app.state.logout_tokens[-1]
        header, claims = _jwt_parts(token)
        assert header["typ"] == "logout+jwt" and claims["sid"] == sid and "nonce" not in claims
        # the next request with that session, even with a copy of its cookie, is refused
        assert alice.request(env.base + "/api/bcl-me")[0] == 401
        assert Agent().request(env.base + "/api/bcl-me", headers={"Cookie": f"covet_bcl={cookie}"})[0] == 401
        # the other browser's session (another sid) is untouched
        assert other.request(env.base + "/api/bcl-me")[0] == 200
        # replayed: the same jti is refused, and nothing is revoked
        status, answer = _post_logout_token(env, token)
        assert status == 400 and answer["error"] == "invalid_request"
        assert "jti replayed" in answer["error_description"]
        assert bcl.backchannel_logouts == accepted + 1
        assert other.request(env.base + "/api/bcl-me")[0] == 200

    def test_tokens_that_are_not_valid_logout_tokens_are_refused(self, env: Env) -> None:
        agent = self._login(env)
        token = env.app.state.logout_tokens[-1] if env.app.state.logout_tokens else None
        if token is None:
            _logout_at_the_provider(env, self._login(env))
            token = env.app.state.logout_tokens[-1]
        head, payload, sig = token.split(".")
        claims = _jwt_parts(token)[1]
        id_token = TestLoginAttacks()._real_id_token(env, "/auth")  # aud covet-web, has a nonce, no events
        cases = {
            "invalid signature": ".".join([head, _b64({**claims, "jti": "new", "sid": "other"}), sig]),
            "aud": id_token,  # an ID token of another client
            "alg none": _b64({"alg": "none", "typ": "logout+jwt"}) + "." + payload + ".",
            "not a JWT": "garbage",
        }
        for name, bad in cases.items():
            status, answer = _post_logout_token(env, bad)
            assert status == 400 and answer["error"] == "invalid_request", (name, answer)
        status, _, body = Agent().request(env.base + "/bcl/backchannel-logout", {"other": "x"})
        assert status == 400 and "no logout_token" in body
        assert agent.request(env.base + "/api/bcl-me")[0] == 200  # nothing was revoked
        _serving(env)

    def test_logout_token_claims_checked_beyond_the_signature(self, env: Env) -> None:
        """A logout token signed by the provider's key must still be one: events, no nonce, jti, sid or sub.
        Signed here with a key the app trusts for this check (the provider's key is not the test's)."""
        import asyncio
        import time

        import jwt as pyjwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from covet.security import MemorySessionStore
        from covet.security.jwt import JWTBearer
        from covet.security.oidc import BACKCHANNEL_LOGOUT_EVENT, LogoutTokenError, OIDCLogin

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rp = OIDCLogin(issuer=env.provider.issuer, client_id="covet-bcl", redirect_uri=env.base + "/bcl/callback",
                       secret_key=COOKIE_KEY, store=MemorySessionStore())
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        rp.id_tokens = JWTBearer(algorithms=["RS256"], issuer=env.provider.issuer, audience="covet-bcl",
                                 keys=[pem.decode()], require_iat=True, cache_size=0)
        now = int(time.time())
        good = {"iss": env.provider.issuer, "aud": "covet-bcl", "iat": now, "exp": now + 120, "jti": "j1",
                "sub": "alice", "sid": "s1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}

        def sign(claims: dict[str, Any], typ: str = "logout+jwt") -> str:
            return pyjwt.encode(claims, key, algorithm="RS256", headers={"typ": typ})

        async def revoke(token: str) -> Any:
            try:
                return await rp.revoke_logout_token(token)
            except LogoutTokenError as exc:
                return str(exc)

        def without(name: str) -> dict[str, Any]:
            return {k: v for k, v in good.items() if k != name}

        cases = {
            "no events": (sign({**without("events"), "jti": "a"}), "event"),
            "another event": (sign({**good, "jti": "b", "events": {"urn:other": {}}}), "event"),
            "a nonce": (sign({**good, "jti": "c", "nonce": "n"}), "nonce"),
            "no jti": (sign(without("jti")), "no jti"),
            "neither sid nor sub": (sign({k: v for k, v in good.items() if k not in ("sid", "sub")} | {"jti": "d"}),
                                    "neither sid nor sub"),
            "an ID token's typ": (sign({**good, "jti": "e"}, typ="at+jwt"), "typ"),
            "expired": (sign({**good, "jti": "f", "iat": now - 900, "exp": now - 600}), "expired"),
        }
        for name, (token, why) in cases.items():
            result = asyncio.run(revoke(token))
            assert isinstance(result, str) and why in result, (name, result)
        assert asyncio.run(revoke(sign(good))) == 0  # valid: no session of that sid here
        assert "replayed" in asyncio.run(revoke(sign(good)))

    def test_concurrent_posts_of_one_logout_token_pass_once(self, env: Env) -> None:
        """The jti's replay marker is claimed atomically (Redis SET NX, the test services' store): of 8 concurrent
        posts of one logout token, as 8 workers would see them, exactly one is accepted."""
        import asyncio
        import time

        import jwt as pyjwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from covet.security import RedisSessionStore
        from covet.security.jwt import JWTBearer
        from covet.security.oidc import BACKCHANNEL_LOGOUT_EVENT, LogoutTokenError, OIDCLogin

        store = _session_store()
        if not isinstance(store, RedisSessionStore):
            pytest.skip("needs the test services' Redis (scripts/services.sh start)")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        now = int(time.time())
        token = pyjwt.encode({"iss": env.provider.issuer, "aud": "covet-bcl", "iat": now, "exp": now + 120,
                              "jti": f"race-{os.getpid()}-{now}", "sid": "s-race",
                              "events": {BACKCHANNEL_LOGOUT_EVENT: {}}},
                             key, algorithm="RS256", headers={"typ": "logout+jwt"})

        async def race() -> list[Any]:
            # One OIDCLogin (and Redis client) per simulated worker.
            workers = []
            for _ in range(8):
                rp = OIDCLogin(issuer=env.provider.issuer, client_id="covet-bcl",
                               redirect_uri=env.base + "/bcl/callback", secret_key=COOKIE_KEY,
                               store=_session_store())
                rp.id_tokens = JWTBearer(algorithms=["RS256"], issuer=env.provider.issuer, audience="covet-bcl",
                                         keys=[pem.decode()], require_iat=True, cache_size=0)
                workers.append(rp)

            async def revoke(rp: OIDCLogin) -> Any:
                try:
                    return await rp.revoke_logout_token(token)
                except LogoutTokenError as exc:
                    return str(exc)

            return await asyncio.gather(*(revoke(rp) for rp in workers))

        results = asyncio.run(race())
        assert results.count(0) == 1, results
        assert all("replayed" in r for r in results if r != 0), results


# -- login flow attacks (no browser) ----------------------------------------------------------------------------
class TestLoginAttacks:
    def test_login_api_logout_without_a_browser(self, env: Env) -> None:
        agent = Agent()
        callback = agent.login(env.base + "/auth/login?next=/api/me", env.base + "/auth/callback")
        status, headers, _ = agent.request(callback)
        assert status == 303 and headers["Location"] == "/api/me"
        assert agent.cookie("covet_oidc_flow") in (None, "")
        status, _, body = agent.request(env.base + "/api/me")
        assert status == 200 and json.loads(body)["email"] == "alice@example.com", body
        status, _, _ = agent.request(env.base + "/auth/logout", headers={"Sec-Fetch-Site": "cross-site"})
        assert status == 403  # started by another site: still logged in
        assert agent.request(env.base + "/api/me")[0] == 200
        status, headers, _ = agent.request(env.base + "/auth/logout", headers={"Sec-Fetch-Site": "same-origin"})
        assert status == 303
        end = urllib.parse.urlsplit(headers["Location"])
        assert end.path == "/session/end"
        query = urllib.parse.parse_qs(end.query)
        assert query["post_logout_redirect_uri"] == [env.base + "/"] and query["id_token_hint"]
        assert agent.request(env.base + "/api/me")[0] == 401

    def test_public_client_with_pkce(self, env: Env) -> None:
        agent = Agent()
        callback = agent.login(env.base + "/spa/login", env.base + "/spa/callback")
        assert agent.request(callback)[0] == 303
        status, _, body = agent.request(env.base + "/api/spa-me")
        assert (status, json.loads(body)) == (200, {"sub": USER})

    def test_wrong_state(self, env: Env) -> None:
        agent = Agent()
        callback = agent.login(env.base + "/auth/login", env.base + "/auth/callback")
        forged = re.sub(r"state=[^&]+", "state=forged", callback)
        status, _, body = agent.request(forged)
        assert status == 400 and "state mismatch" in body, body
        assert agent.request(env.base + "/api/me")[0] == 401
        _serving(env)

    def test_replayed_code(self, env: Env) -> None:
        agent = Agent()
        callback = agent.login(env.base + "/auth/login", env.base + "/auth/callback")
        flow = agent.cookie("covet_oidc_flow")
        assert flow
        assert agent.request(callback)[0] == 303
        # An attacker replays the callback with the flow cookie it copied: the provider refuses the used code.
        thief = Agent()
        status, _, body = thief.request(callback, headers={"Cookie": f"covet_oidc_flow={flow}"})
        assert status == 400 and "code exchange failed (invalid_grant)" in body, body
        # Without the flow cookie the callback is refused before the provider is asked.
        status, _, body = Agent().request(callback)
        assert status == 400 and "login session missing or expired" in body, body
        _serving(env)

    def test_nonce_mismatch(self, env: Env) -> None:
        from covet.security.signing import Signer

        agent = Agent()
        callback = agent.login(env.base + "/auth/login", env.base + "/auth/callback")
        # The flow cookie names another nonce than the one the provider put in the ID token (an ID token
        # injected from another login). Re-signed here with the app's key: only the nonce check can refuse it.
        signer = Signer(COOKIE_KEY, salt=FLOW_SALT)
        flow = signer.loads(agent.cookie("covet_oidc_flow"), 600)
        assert flow is not None
        agent.set_cookie("covet_oidc_flow", signer.dumps({**flow, "nonce": "another"}))
        status, _, body = agent.request(callback)
        assert status == 400 and "nonce mismatch" in body, body
        assert agent.request(env.base + "/api/me")[0] == 401
        _serving(env)

    def _mitm_callback(self, env: Env, agent: Agent) -> str:
        status, headers, _ = agent.request(env.base + "/mitm/login")
        assert status == 302
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)["state"][0]
        return f"{env.base}/mitm/callback?code=anything&state={state}"

    def _real_id_token(self, env: Env, prefix: str) -> str:
        """A real ID token from the provider, for the confidential client (`/auth`) or the public one (`/spa`),
        taken from the session cookie the app set."""
        from covet.security.signing import Signer

        agent = Agent()
        callback = agent.login(env.base + f"{prefix}/login", env.base + f"{prefix}/callback")
        assert agent.request(callback)[0] == 303
        name = "covet_oidc" if prefix == "/auth" else "covet_spa"
        session = Signer(COOKIE_KEY, salt=SESSION_SALT).loads(agent.cookie(name), 3600)
        assert session is not None
        token: str = session["id_token"]
        return token

    def test_id_token_for_another_audience(self, env: Env) -> None:
        env.fake.id_token = self._real_id_token(env, "/spa")  # aud covet-spa, signed by the provider
        agent = Agent()
        status, _, body = agent.request(self._mitm_callback(env, agent))
        assert status == 400 and "invalid ID token" in body and "aud" in body, body
        assert agent.request(env.base + "/api/mitm-me")[0] == 401
        _serving(env)

    def test_tampered_id_token(self, env: Env) -> None:
        token = self._real_id_token(env, "/auth")
        head, payload, sig = token.split(".")
        claims = _jwt_parts(token)[1]
        env.fake.id_token = ".".join([head, _b64({**claims, "sub": "mallory"}), sig])
        agent = Agent()
        status, _, body = agent.request(self._mitm_callback(env, agent))
        assert status == 400 and "invalid ID token (invalid signature)" in body, body
        # The untampered token fails only on its nonce (it belongs to another login): every check runs.
        env.fake.id_token = token
        agent = Agent()
        status, _, body = agent.request(self._mitm_callback(env, agent))
        assert status == 400 and "nonce mismatch" in body, body
        # alg=none with the same claims.
        env.fake.id_token = _b64({"alg": "none", "typ": "JWT"}) + "." + payload + "."
        agent = Agent()
        status, _, body = agent.request(self._mitm_callback(env, agent))
        assert status == 400 and "invalid ID token" in body, body
        assert agent.request(env.base + "/api/mitm-me")[0] == 401
        _serving(env)

    def test_forged_session_and_open_redirect(self, env: Env) -> None:
        from covet.security.signing import Signer

        forged = Signer(b"x" * 32, salt=SESSION_SALT).dumps({"claims": {"sub": "mallory"}})
        status, _, _ = Agent().request(env.base + "/api/me", headers={"Cookie": f"covet_oidc={forged}"})
        assert status == 401
        # A flow cookie is not a session (keys derived per purpose).
        flow = Signer(COOKIE_KEY, salt=FLOW_SALT).dumps({"claims": {"sub": "mallory"}})
        assert Agent().request(env.base + "/api/me", headers={"Cookie": f"covet_oidc={flow}"})[0] == 401
        agent = Agent()
        callback = agent.login(env.base + "/auth/login?next=//evil.example/x", env.base + "/auth/callback")
        status, headers, _ = agent.request(callback)
        assert status == 303 and headers["Location"] == "/"
        # The provider reporting an error (here: the user refused) is no login.
        agent = Agent()
        status, headers, _ = agent.request(env.base + "/auth/login")
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)["state"][0]
        status, _, body = agent.request(f"{env.base}/auth/callback?error=access_denied&state={state}")
        assert status == 401 and "access_denied" in body
        _serving(env)


# -- the browser -------------------------------------------------------------------------------------------------
def _browser_login(page: Any, env: Env) -> None:
    page.goto(env.base + "/private")
    page.wait_for("location.pathname.startsWith('/interaction/') && !!document.querySelector('input[name=login]')",
                  what="the provider's login page")
    assert page.evaluate("location.origin") == env.provider.issuer
    page.type_into("input[name=login]", USER)
    page.type_into("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for("!!document.querySelector('input[value=consent]') || !!document.getElementById('hello')",
                  what="the consent page")
    if page.evaluate("!!document.querySelector('input[value=consent]')"):
        page.click("button[type=submit]", "Continue")
    page.wait_for(f"location.href === {json.dumps(env.base + '/private')} && !!document.getElementById('hello')",
                  what="back on the app, logged in")
    assert page.evaluate("document.getElementById('hello').textContent") == "Hello Alice Liddell"


def _api_status(page: Any) -> Any:
    return page.evaluate("fetch('/api/me').then(async r => [r.status, await r.text()])")


def test_browser_login_api_logout_and_key_rotation(env: Env) -> None:
    from cdp import Chromium, require_chromium

    path = require_chromium("for the browser login")
    oidc = env.app.state.oidc
    with Chromium.start(path) as browser:
        page = browser.page()
        _browser_login(page, env)
        status, body = _api_status(page)
        assert status == 200 and json.loads(body) == {"sub": USER, "email": "alice@example.com",
                                                      "name": "Alice Liddell"}, body
        assert "covet_oidc" not in page.evaluate("document.cookie")  # HttpOnly
        # Log out: the app clears its cookie and sends the browser to the provider, which asks to confirm.
        page.click("#logout")
        page.wait_for("!!document.querySelector('button[name=logout]')", what="the provider's logout page")
        page.click("button[name=logout]")
        page.wait_for(f"location.href === {json.dumps(env.base + '/')}", what="back on the app after logout")
        status, _ = _api_status(page)
        assert status == 401
        # The provider's session ended too: logging in again asks for the password.
        page.goto(env.base + "/private")
        page.wait_for("!!document.querySelector('input[name=password]')", what="the login page again")

        # Key rotation at the provider (restarted with a new key): the next login's ID token has a new kid,
        # the app refetches the JWK Set without restarting.
        fetches = oidc.id_tokens.jwks.fetches
        env.provider.rotate("k2")
        _browser_login(page, env)
        assert oidc.id_tokens.jwks.fetches == fetches + 1
        assert "k2" in oidc.id_tokens.jwks._kids
        status, _ = _api_status(page)
        assert status == 200
        # Nothing of the app failed but the one 401 asked for (the provider's pages ask for a web font,
        # which the browser cannot reach here).
        app_failures = [f for f in page.failed if f.startswith(env.base) and f != f"{env.base}/api/me: HTTP 401"]
        assert not app_failures, app_failures


def test_resource_server_key_rotation(env: Env) -> None:
    """A JWT access token signed with the provider's new key is accepted without restarting the app; one
    signed with the retired key is not (it is no longer in the JWK Set)."""
    old = env.provider.token(scope="api:read", resource=API)["access_token"]
    agent = Agent()
    assert agent.request(env.base + "/rs/items", headers={"Authorization": f"Bearer {old}"})[0] == 200
    env.provider.rotate(env.provider.kid + "r")
    new = env.provider.token(scope="api:read", resource=API)["access_token"]
    assert _jwt_parts(new)[0]["kid"] == env.provider.kid
    import time

    time.sleep(0.3)  # jwks_refresh_interval (0.2 s here)
    status, _, body = agent.request(env.base + "/rs/items", headers={"Authorization": f"Bearer {new}"})
    assert status == 200, body
    time.sleep(0.3)
    status, headers, body = agent.request(env.base + "/rs/items", headers={"Authorization": f"Bearer {old}"})
    assert status == 401 and "unknown key id" in headers["WWW-Authenticate"], body
    _serving(env)


# -- the ID token checks that oidc-provider's tokens do not exercise (no at_hash in the code flow, one audience) --
class _LocalProvider:
    """Discovery, JWK Set, token and UserInfo endpoints whose answers the test sets (ID tokens signed here)."""

    def __init__(self, jwk: dict[str, Any]) -> None:
        self.token_answer: dict[str, Any] = {}
        self.userinfo: dict[str, Any] = {}
        local = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self._send({"issuer": local.issuer, "authorization_endpoint": local.issuer + "/auth",
                                "token_endpoint": local.issuer + "/token", "jwks_uri": local.issuer + "/jwks",
                                "userinfo_endpoint": local.issuer + "/me"})
                elif self.path == "/jwks":
                    self._send({"keys": [jwk]})
                elif self.path == "/me":
                    self._send(local.userinfo)
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._send(local.token_answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_at_hash_azp_userinfo_and_iss_checks(serve: Any) -> None:
    import hashlib
    import time

    jwt = pytest.importorskip("jwt")  # PyJWT (requirements-dev.txt) signs the ID tokens
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric import rsa

    from covet.security.oidc import OIDCLogin

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "t1", "alg": "RS256"}
    local = _LocalProvider(jwk)
    try:
        app = CovetPy()
        oidc = OIDCLogin(issuer=local.issuer, client_id="web", client_secret="s", secret_key=COOKIE_KEY,
                         redirect_uri="http://127.0.0.1/cb")
        oidc.install(app)

        @app.get("/me")
        async def me(user: Annotated[dict[str, Any], Depends(oidc.user)]) -> dict[str, Any]:
            return user

        base = f"http://127.0.0.1:{serve(app).port}"

        def attempt(at_hash: Optional[str] = "ok", aud: Any = "web", azp: Optional[str] = None,
                    userinfo_sub: str = "u1", iss_param: Optional[str] = None) -> tuple[int, str, Agent]:
            agent = Agent()
            status, headers, _ = agent.request(base + "/auth/login")
            assert status == 302
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)
            access = "access-token-value"
            digest = hashlib.sha256(access.encode()).digest()
            good = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
            now = int(time.time())
            claims: dict[str, Any] = {"iss": local.issuer, "sub": "u1", "aud": aud, "iat": now, "exp": now + 300,
                      "nonce": query["nonce"][0], "at_hash": good if at_hash == "ok" else at_hash, "azp": azp}
            token = jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256",
                               headers={"kid": "t1"})
            local.token_answer = {"access_token": access, "token_type": "Bearer", "id_token": token}
            local.userinfo = {"sub": userinfo_sub, "email": "u1@example.com"}
            callback = f"{base}/cb?code=c&state={query['state'][0]}"
            if iss_param is not None:
                callback += "&iss=" + urllib.parse.quote(iss_param)
            status, _, body = agent.request(callback)
            return status, body, agent

        status, body, agent = attempt()
        assert status == 303, body
        user = json.loads(agent.request(base + "/me")[2])
        assert (user["sub"], user["iss"], user["aud"], user["email"]) == ("u1", local.issuer, "web", "u1@example.com")
        assert attempt(at_hash=None)[0] == 303  # at_hash is optional in the code flow
        status, body, _ = attempt(at_hash="AAAAAAAAAAAAAAAAAAAAAA")
        assert status == 400 and "at_hash mismatch" in body, body
        status, body, _ = attempt(aud=["web", "other"])
        assert status == 400 and "azp" in body, body
        assert attempt(aud=["web", "other"], azp="web")[0] == 303
        status, body, _ = attempt(userinfo_sub="someone-else")
        assert status == 400 and "UserInfo sub" in body, body
        status, body, _ = attempt(iss_param="http://evil.example")
        assert status == 400 and "RFC 9207" in body, body
        assert attempt(iss_param=local.issuer)[0] == 303
    finally:
        local.close()


def test_introspection_cache_never_outlives_exp(serve: Any) -> None:
    import time

    from covet.security.introspection import TokenIntrospection

    local = _LocalProvider({})
    try:
        app = CovetPy()
        auth = TokenIntrospection(introspection_endpoint=local.issuer + "/introspect", client_id="api",
                                  client_secret="s", audience="urn:api", issuer=local.issuer, cache_ttl=60)

        @app.get("/data")
        async def data(token: Annotated[dict[str, Any], Security(auth, scopes=["read"])]) -> dict[str, Any]:
            return {"sub": token["sub"]}

        base = f"http://127.0.0.1:{serve(app).port}"
        agent = Agent()
        bearer = {"Authorization": "Bearer opaque-1"}
        local.token_answer = {"active": True, "sub": "u1", "scope": "read", "aud": "urn:api", "iss": local.issuer,
                              "exp": int(time.time()) + 2}
        for _ in range(3):
            status, _, body = agent.request(base + "/data", headers=bearer)
            assert (status, json.loads(body)) == (200, {"sub": "u1"})
        assert auth.requests == 1
        time.sleep(max(0.0, local.token_answer["exp"] - time.time()) + 0.1)
        status, headers, _ = agent.request(base + "/data", headers=bearer)
        assert status == 401 and "token expired" in headers["WWW-Authenticate"]
        assert auth.requests == 2  # the cache entry ended at exp, not after cache_ttl
        # Another audience, another issuer, a missing scope.
        for answer, status_code, cause in (({"aud": "urn:other"}, 401, "wrong audience"),
                                           ({"iss": "http://evil.example"}, 401, "wrong issuer"),
                                           ({"scope": "write"}, 403, "insufficient_scope")):
            local.token_answer = {"active": True, "sub": "u1", "scope": "read", "aud": "urn:api",
                                  "iss": local.issuer, "exp": int(time.time()) + 60, **answer}
            status, headers, _ = agent.request(base + "/data", headers={"Authorization": f"Bearer {cause}"})
            assert status == status_code and cause in headers["WWW-Authenticate"], (cause, status)
    finally:
        local.close()
