"""Differential cases of the security utilities (apps/security_app.py) and the parameter features of issue 14
(apps/params_groups_app.py): parameter models, Annotated validators, strict_content_type, embedded bodies."""

from __future__ import annotations

import base64

from cases import Case, case


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


_FORM = "application/x-www-form-urlencoded"

CASES: list[Case] = [
    # --- HTTP Basic
    case("security/basic-missing", "GET", "/basic"),
    case("security/basic-valid", "GET", "/basic", headers=_basic("alice", "secret")),
    case("security/basic-other-scheme", "GET", "/basic", headers={"Authorization": "Bearer abc"}),
    case("security/basic-not-base64", "GET", "/basic", headers={"Authorization": "Basic %%%"}),
    case("security/basic-no-colon", "GET", "/basic",
         headers={"Authorization": "Basic " + base64.b64encode(b"alice").decode()}),
    case("security/basic-empty-password", "GET", "/basic", headers=_basic("alice", "")),
    case("security/basic-lowercase-scheme", "GET", "/basic",
         headers={"Authorization": "basic " + base64.b64encode(b"a:b").decode()}),
    case("security/basic-realm-missing", "GET", "/basic-realm"),
    case("security/basic-realm-malformed", "GET", "/basic-realm", headers={"Authorization": "Basic !!"}),
    case("security/basic-realm-valid", "GET", "/basic-realm", headers=_basic("bob", "pw")),
    case("security/basic-check-wrong", "GET", "/basic-check", headers=_basic("alice", "nope")),
    case("security/basic-check-right", "GET", "/basic-check", headers=_basic("alice", "secret")),
    # --- HTTP Bearer / Digest
    case("security/bearer-missing", "GET", "/bearer"),
    case("security/bearer-valid", "GET", "/bearer", headers={"Authorization": "Bearer abc.def"}),
    case("security/bearer-other-scheme", "GET", "/bearer", headers={"Authorization": "Basic abc"}),
    case("security/bearer-no-credentials", "GET", "/bearer", headers={"Authorization": "Bearer"}),
    case("security/bearer-optional-missing", "GET", "/bearer-optional"),
    case("security/bearer-optional-other", "GET", "/bearer-optional", headers={"Authorization": "Token x"}),
    case("security/bearer-optional-valid", "GET", "/bearer-optional", headers={"Authorization": "bearer tok"}),
    case("security/digest-missing", "GET", "/digest"),
    case("security/digest-valid", "GET", "/digest", headers={"Authorization": 'Digest username="a", nonce="n"'}),
    case("security/digest-other", "GET", "/digest", headers={"Authorization": "Bearer x"}),
    # --- API keys
    case("security/key-header-missing", "GET", "/key-header"),
    case("security/key-header-empty", "GET", "/key-header", headers={"X-API-Key": ""}),
    case("security/key-header-valid", "GET", "/key-header", headers={"x-api-key": "k1"}),
    case("security/key-query-missing", "GET", "/key-query"),
    case("security/key-query-valid", "GET", "/key-query?api_key=k2"),
    case("security/key-cookie-missing", "GET", "/key-cookie"),
    case("security/key-cookie-valid", "GET", "/key-cookie", headers={"Cookie": "session=s3"}),
    # --- OAuth2 / OpenID Connect
    case("security/oauth2-optional-missing", "GET", "/oauth2-optional"),
    case("security/oauth2-optional-valid", "GET", "/oauth2-optional", headers={"Authorization": "Bearer t"}),
    case("security/oauth2-code-missing", "GET", "/oauth2-code"),
    case("security/oauth2-code-other", "GET", "/oauth2-code", headers={"Authorization": "Basic x"}),
    case("security/oauth2-code-valid", "GET", "/oauth2-code", headers={"Authorization": "Bearer code-tok"}),
    case("security/oauth2-plain-missing", "GET", "/oauth2-plain"),
    case("security/oauth2-plain-valid", "GET", "/oauth2-plain", headers={"Authorization": "Anything goes"}),
    case("security/openid-missing", "GET", "/openid"),
    case("security/openid-valid", "GET", "/openid", headers={"Authorization": "Bearer idt"}),
    # --- the token endpoint (OAuth2PasswordRequestForm)
    case("security/token-valid", "POST", "/token", body=b"username=alice&password=secret&scope=me+items",
         content_type=_FORM),
    case("security/token-grant", "POST", "/token",
         body=b"grant_type=password&username=bob&password=pw&client_id=cli", content_type=_FORM),
    case("security/token-bad-grant", "POST", "/token", body=b"grant_type=code&username=bob&password=pw",
         content_type=_FORM),
    case("security/token-wrong-password", "POST", "/token", body=b"username=bob&password=x", content_type=_FORM),
    case("security/token-missing-fields", "POST", "/token", body=b"scope=me", content_type=_FORM),
    case("security/token-no-body", "POST", "/token"),
    case("security/token-json", "POST", "/token", json_body={"username": "bob", "password": "pw"}),
    case("security/token-strict-no-grant", "POST", "/token-strict", body=b"username=bob&password=pw",
         content_type=_FORM),
    case("security/token-strict-valid", "POST", "/token-strict",
         body=b"grant_type=password&username=bob&password=pw", content_type=_FORM),
    # --- scopes: Security() and SecurityScopes
    case("security/me-missing", "GET", "/users/me"),
    case("security/me-unknown-token", "GET", "/users/me", headers={"Authorization": "Bearer carol"}),
    case("security/me-valid", "GET", "/users/me", headers={"Authorization": "Bearer bob"}),
    case("security/items-not-enough", "GET", "/users/me/items", headers={"Authorization": "Bearer bob"}),
    case("security/items-valid", "GET", "/users/me/items", headers={"Authorization": "Bearer alice"}),
    case("security/scopes-twice", "GET", "/scopes-twice", headers={"Authorization": "Bearer alice"}),
    case("security/route-security-denied", "GET", "/route-security", headers={"Authorization": "Bearer bob"}),
    case("security/route-security-ok", "GET", "/route-security", headers={"Authorization": "Bearer alice"}),
    case("security/scopes-direct", "GET", "/scopes-direct"),
    case("security/either-none", "GET", "/either"),
    case("security/either-key", "GET", "/either?api_key=k"),
    case("security/either-bearer", "GET", "/either", headers={"Authorization": "Bearer b"}),
    # --- the OpenAPI security scheme objects
    case("security/models", "GET", "/models"),
]
