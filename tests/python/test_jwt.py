"""`covet.security.jwt`: JWT bearer tokens verified natively, through real sockets.

Keys are made here with `cryptography`, valid tokens signed with PyJWT (and their claims cross-checked with
PyJWT's own verification); the attacks (alg=none, algorithm confusion, expired, not yet valid, wrong aud/iss,
unknown kid, tampered signature, oversize, malformed base64/JSON) must each get 401 with an RFC 6750
challenge while the server keeps serving; a key rotation at a local OpenID provider (http.server serving the
discovery document and the JWK Set) is picked up without a restart, and unknown kids do not make the server
fetch more than once per refresh interval."""


import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import pytest

jwt = pytest.importorskip("jwt")  # PyJWT (requirements-dev.txt): signs the test tokens, cross-checks claims
crypto = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402

from covet import CovetPy, Depends, Security  # noqa: E402

AUD = "api"
SECRET = b"s" * 48


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwk(public_key: Any, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.get_default_algorithms()[
        "RS256" if isinstance(public_key, rsa.RSAPublicKey) else
        "ES256" if isinstance(public_key, ec.EllipticCurvePublicKey) else "EdDSA"].to_jwk(public_key))
    jwk["kid"] = kid
    return jwk


class Provider:
    """A small OpenID provider: the discovery document and a JWK Set that the test can change (rotation)."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.jwks_requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": provider.issuer + "/jwks.json"}
                elif self.path == "/jwks.json":
                    provider.jwks_requests += 1
                    body = provider.jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Keys:
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p256 = ec.generate_private_key(ec.SECP256R1())
    ed = ed25519.Ed25519PrivateKey.generate()


def _rsa_pem() -> bytes:
    return Keys.rs.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    p.jwks = {"keys": [_jwk(Keys.rs.public_key(), "k1"), _jwk(Keys.p256.public_key(), "e1")]}
    yield p
    p.close()


def _claims(provider: Provider, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "user-1", "iss": provider.issuer, "aud": AUD, "iat": now, "exp": now + 300,
                              "scope": "read write", "n": [1, 2.5, {"x": None}]}
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: Any = None, alg: str = "RS256", kid: str = "k1") -> str:
    token: str = jwt.encode(claims, key if key is not None else Keys.rs, algorithm=alg, headers={"kid": kid})
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _app(provider: Provider, **options: Any) -> CovetPy:
    from covet.security.jwt import jwt_bearer

    app = CovetPy()
    auth = jwt_bearer(issuer=provider.issuer, audience=AUD, algorithms=["RS256", "ES256"],
                      jwks_refresh_interval=options.pop("jwks_refresh_interval", 0.3), max_token_bytes=4096,
                      **options)
    local = jwt_bearer(algorithms=["EdDSA", "HS256"], audience=AUD, keys=[
        Keys.ed.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        SECRET])

    @app.get("/me")
    async def me(claims: Annotated[dict[str, Any], Depends(auth)]) -> dict[str, Any]:
        return claims

    @app.get("/secure")
    def secure(claims: Annotated[dict[str, Any], Security(auth)]) -> dict[str, str]:
        return {"sub": claims["sub"]}

    @app.get("/write")
    def write(claims: Annotated[dict[str, Any], Security(auth, scopes=["write"])]) -> dict[str, str]:
        return {"sub": claims["sub"]}

    @app.get("/admin")
    def admin(claims: Annotated[dict[str, Any], Security(auth, scopes=["read", "admin"])]) -> dict[str, str]:
        return {"sub": claims["sub"]}

    @app.get("/local")
    async def local_route(claims: Annotated[dict[str, Any], Depends(local)]) -> dict[str, Any]:
        return {"sub": claims["sub"]}

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    app.state.auth = auth
    return app


def _refused(response: Any, cause: str) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="'), challenge
    assert cause in challenge, challenge
    assert cause in response.json()["detail"]


class TestJwtBearer:
    def test_valid_tokens_give_the_claims_as_pyjwt_reads_them(self, serve: Any, provider: Provider) -> None:
        client = serve(_app(provider))
        rs = _sign(_claims(provider))
        es = _sign(_claims(provider, sub="user-2"), Keys.p256, "ES256", "e1")
        for token, key in ((rs, Keys.rs.public_key()), (es, Keys.p256.public_key())):
            r = client.get("/me", headers=_bearer(token))
            assert r.status_code == 200, r.text
            assert r.json() == jwt.decode(token, key, algorithms=["RS256", "ES256"], audience=AUD,
                                          issuer=provider.issuer)
        assert client.get("/secure", headers=_bearer(es)).json() == {"sub": "user-2"}
        ed = jwt.encode(_claims(provider), Keys.ed, algorithm="EdDSA")
        hs = jwt.encode(_claims(provider, sub="h"), SECRET, algorithm="HS256")
        assert client.get("/local", headers=_bearer(ed)).json() == {"sub": "user-1"}
        assert client.get("/local", headers=_bearer(hs)).json() == {"sub": "h"}
        assert provider.jwks_requests == 1  # fetched once, then cached
        # The same token again: its signature was checked once, its claims are checked every time.
        hits = client.app.state.auth.verifier.cache_hits
        assert client.get("/me", headers=_bearer(rs)).status_code == 200
        assert client.app.state.auth.verifier.cache_hits == hits + 1

    def test_scopes_declared_with_security_are_required(self, serve: Any, provider: Provider) -> None:
        client = serve(_app(provider))
        token = _sign(_claims(provider))  # scope: "read write"
        assert client.get("/write", headers=_bearer(token)).json() == {"sub": "user-1"}
        r = client.get("/admin", headers=_bearer(token))
        assert r.status_code == 403
        assert r.headers["www-authenticate"] == (
            'Bearer error="insufficient_scope", error_description="missing scope", scope="read admin"')
        scp = _sign(_claims(provider, scope=None, scp=["admin", "read"]))
        assert client.get("/admin", headers=_bearer(scp)).json() == {"sub": "user-1"}
        flipped = scp[:-10] + ("A" if scp[-10] != "A" else "B") + scp[-9:]
        _refused(client.get("/admin", headers=_bearer(flipped)), "invalid signature")  # 401 before 403

    def test_missing_token_is_a_challenge_without_error(self, serve: Any, provider: Provider) -> None:
        client = serve(_app(provider))
        for headers in ({}, {"Authorization": "Basic dTpw"}, {"Authorization": "Bearer"}):
            r = client.get("/me", headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json() == {"detail": "Not authenticated"}

    def test_attacks_are_refused_and_the_server_keeps_serving(self, serve: Any, provider: Provider) -> None:
        client = serve(_app(provider))
        now = int(time.time())
        good = _sign(_claims(provider))
        header, payload, signature = good.split(".")
        unsigned_none = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + payload + "."
        # HS256 "signed" with the RSA public key's PEM, the key the server holds for RS256.
        confusion_input = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode()) + "." + payload
        confusion_mac = hmac.new(_rsa_pem(), confusion_input.encode(), hashlib.sha256).digest()
        confusion = confusion_input + "." + _b64(confusion_mac)
        tampered_payload = _b64(json.dumps(_claims(provider, sub="admin")).encode())
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        attacks = {
            "alg none is never accepted": unsigned_none,
            "signature algorithm not allowed": confusion,
            "token expired": _sign(_claims(provider, iat=now - 600, exp=now - 300)),
            "token not yet valid": _sign(_claims(provider, nbf=now + 300)),
            "wrong audience": _sign(_claims(provider, aud="other-service")),
            "wrong issuer": _sign(_claims(provider, iss="https://evil.example")),
            "unknown key id": _sign(_claims(provider), kid="nope"),
            "invalid signature": f"{header}.{tampered_payload}.{signature}",
            "invalid signature ": f"{header}.{payload}.{flipped}",
            # Over max_token_bytes (4096 here), under the engine's 8 KiB header limit (which answers 431).
            "token too large": _sign(_claims(provider, pad="x" * 4000)),
            "not valid base64url": f"{header}!.{payload}.{signature}",
            "not valid base64url ": f"{header}.{payload}.{signature}=",
            "not a valid JSON object": _b64(b'{"alg":"RS256",') + "." + payload + "." + signature,
            "malformed token": "abc.def",
            "required claim missing": _sign({k: v for k, v in _claims(provider).items() if k != "exp"}),
        }
        for cause, token in attacks.items():
            _refused(client.get("/me", headers=_bearer(token)), cause.strip())
            assert client.get("/health").json() == {"ok": True}
            assert client.get("/me", headers=_bearer(good)).status_code == 200
        # The local scheme (EdDSA + HS256 keys) refuses an HS256 token made with the Ed25519 public key's PEM,
        # and an RS256 token (not among its algorithms).
        ed_pem = Keys.ed.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        forged_input = _b64(b'{"alg":"HS256"}') + "." + payload
        forged = forged_input + "." + _b64(hmac.new(ed_pem, forged_input.encode(), hashlib.sha256).digest())
        _refused(client.get("/local", headers=_bearer(forged)), "invalid signature")
        _refused(client.get("/local", headers=_bearer(good)), "signature algorithm not allowed")
        # The token never appears in the answer.
        r = client.get("/me", headers=_bearer(confusion))
        assert payload not in r.text and payload not in r.headers["www-authenticate"]

    def test_key_rotation_is_picked_up_without_restart(self, serve: Any, provider: Provider) -> None:
        client = serve(_app(provider))
        assert client.get("/me", headers=_bearer(_sign(_claims(provider)))).status_code == 200
        assert provider.jwks_requests == 1
        # The provider rotates: k2 (a new RSA key) replaces k1.
        provider.jwks = {"keys": [_jwk(Keys.rs2.public_key(), "k2")]}
        time.sleep(0.35)  # past the refresh interval of the test app
        new = _sign(_claims(provider), Keys.rs2, kid="k2")
        r = client.get("/me", headers=_bearer(new))
        assert r.status_code == 200, r.text
        assert provider.jwks_requests == 2
        # Tokens of the retired key are refused now; a burst of unknown kids fetches at most once per interval.
        before, start = provider.jwks_requests, time.monotonic()
        _refused(client.get("/me", headers=_bearer(_sign(_claims(provider)))), "unknown key id")
        for i in range(20):
            _refused(client.get("/me", headers=_bearer(_sign(_claims(provider), kid=f"made-up-{i}"))), "unknown key id")
        # At most one fetch per 0.3 s refresh interval (plus one at the start), however slow this machine is.
        assert provider.jwks_requests - before <= 2 + (time.monotonic() - start) / 0.3
        assert client.get("/me", headers=_bearer(new)).status_code == 200

    def test_unreachable_provider_refuses_without_crashing(self, serve: Any, provider: Provider) -> None:
        app = _app(provider, jwks_refresh_interval=60)
        provider.close()
        client = serve(app)
        for _ in range(5):
            _refused(client.get("/me", headers=_bearer(_sign(_claims(provider)))), "signing keys unavailable")
            assert client.get("/health").status_code == 200
        assert app.state.auth.jwks.attempts == 1  # not one fetch per request while the provider is down


class TestConfiguration:
    def test_insecure_configurations_are_refused(self, native: Any) -> None:
        if getattr(native, "__name__", "") == "fake_native":
            pytest.skip("needs the compiled engine")
        from covet.security.jwt import JWTBearer, jwt_bearer

        pem = _rsa_pem()
        with pytest.raises(ValueError, match="algorithms"):
            jwt_bearer(algorithms=[], keys=[SECRET])
        with pytest.raises(ValueError, match="none"):
            jwt_bearer(algorithms=["none"], keys=[SECRET])
        with pytest.raises(ValueError, match="algorithm confusion"):
            jwt_bearer(algorithms=["HS256"], keys=[pem])  # the RSA public key as an HMAC secret
        with pytest.raises(ValueError, match="fits this key"):
            jwt_bearer(algorithms=["HS256"], keys=[pem.decode()])  # the PEM as an RSA key with HS256 only
        with pytest.raises(ValueError, match="lists no HS256"):
            jwt_bearer(algorithms=["RS256"], keys=[SECRET])
        with pytest.raises(ValueError, match="32 bytes"):
            jwt_bearer(algorithms=["HS256"], keys=[b"short"])
        with pytest.raises(ValueError, match="leeway"):
            jwt_bearer(algorithms=["RS256"], keys=[pem.decode()], leeway=301)
        with pytest.raises(ValueError, match="https"):
            jwt_bearer(algorithms=["RS256"], jwks_url="http://keys.example.com/jwks.json")
        with pytest.raises(ValueError, match=r"keys=\.\.\."):
            JWTBearer(algorithms=["RS256"])
        scheme = jwt_bearer(algorithms=["RS256"], keys=[pem.decode()])
        assert scheme.model == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        app = CovetPy()

        @app.get("/me")
        def me(claims: Annotated[dict[str, Any], Security(scheme, scopes=["read"])]) -> dict[str, Any]:
            return claims

        schema = app.openapi()
        assert schema["components"]["securitySchemes"] == {"JWTBearer": scheme.model}
        assert schema["paths"]["/me"]["get"]["security"] == [{"JWTBearer": ["read"]}]
        assert "parameters" not in schema["paths"]["/me"]["get"]  # security_scopes is not a request parameter
