"""OpenID Connect login for browser apps (authorization code + PKCE), with the user's claims as a dependency.

::

    from covet.security.oidc import OIDCLogin

    oidc = OIDCLogin(issuer="https://id.example.com", client_id="web", client_secret=os.environ["OIDC_SECRET"],
                     redirect_uri="https://app.example.com/auth/callback",
                     post_logout_redirect_uri="https://app.example.com/",
                     secret_key=os.environ["COOKIE_KEY"])       # 32+ random bytes; a list to rotate keys
    oidc.install(app)                                            # GET /auth/login, /auth/callback, /auth/logout

    @app.get("/api/me")
    async def me(user: Annotated[dict, Depends(oidc.user)]) -> dict:    # 401 when not logged in
        return {"sub": user["sub"], "email": user.get("email")}

The flow: ``/auth/login?next=/page`` redirects to the provider's authorization endpoint (found by discovery,
``{issuer}/.well-known/openid-configuration``) with a fresh ``state``, ``nonce`` and PKCE S256 challenge; these
(and the code verifier) are kept in a short-lived (``flow_max_age``, 10 min), signed, HttpOnly cookie scoped to
the callback path. The provider redirects back to ``redirect_uri``; there the ``state`` must equal the cookie's
(else 400: a forged or stale callback), ``iss`` (RFC 9207) must be the issuer when sent, the code is exchanged
at the token endpoint (client_secret_basic for a confidential client; a public client sends only its
``client_id`` and relies on PKCE), and the ID token is verified with the native JWT verifier: signature by a key
of the provider's JWK Set (refetched when a token names an unknown ``kid``: a key rotation at the provider is
picked up without a restart), ``iss``, ``aud`` containing ``client_id`` (and ``azp`` equal to it when there are
several audiences), ``exp``/``iat`` (``leeway`` seconds of skew), ``nonce`` equal to the cookie's, and
``at_hash`` when present. The claims of the provider's UserInfo endpoint (its ``sub`` must be the ID token's)
are added unless ``fetch_userinfo=False``. Then the user's claims (and the ID token, for logout) go into a signed
HttpOnly session cookie (``session_max_age``, 8 h) and the browser is sent to ``next`` (a local path only: no open
redirect). Any failure answers 400 (or 502 when the provider cannot be reached) and clears the flow cookie; the
code cannot be used twice (the provider refuses it).

``/auth/logout`` clears the session cookie and, when the provider has an ``end_session_endpoint``, redirects
there (RP-initiated logout: ``id_token_hint``, ``post_logout_redirect_uri``, ``client_id``), else to
``post_logout_redirect_uri`` (or ``/``). A logout another site started (``Sec-Fetch-Site: cross-site``) gets 403.

Server-side sessions (``store=RedisSessionStore(url)``, or any `covet.security.SessionStore`): the claims and
the ID token stay in the store and the session cookie holds only a signed random id, so a session can be ended
on the server: ``/auth/logout`` deletes its record, and **OpenID Connect Back-Channel Logout 1.0** is served at
``backchannel_logout_path`` (``/auth/backchannel-logout``; register ``{site}{path}`` as the client's
``backchannel_logout_uri``, with ``backchannel_logout_session_required``). The provider POSTs a ``logout_token``
there when the user logs out at the provider (or the provider ends the session); it is verified as an ID token
is (signature by the provider's JWK Set through the native verifier, ``iss``, ``aud`` = ``client_id``, ``exp``,
``iat``), then: ``typ`` ``logout+jwt`` when present, the ``events`` claim with
``http://schemas.openid.net/event/backchannel-logout``, a ``jti``, a ``sid`` and/or ``sub``, and no ``nonce`` (an
ID token is not a logout token); a ``jti`` seen before is refused (replay; claimed atomically where the store has
``save_if_absent``: ``RedisSessionStore`` with ``SET NX``, so concurrent posts to several workers cannot all pass;
``MemorySessionStore`` within its one process). The
sessions of that provider session (``sid``, from the ID token at login) or, with only ``sub``, every session of
that user are deleted from the store: the next request with their cookie gets 401. Answers: 200
(``Cache-Control: no-store``), or 400 ``{"error": "invalid_request", "error_description": ...}``.

Limits: without a store the session is a signed cookie, not a server-side record: a copied cookie stays valid
until it expires even after logout (keep ``session_max_age`` short, or use ``store=``). Cookies are ``Secure``
when ``redirect_uri`` is https. One login in progress per browser (a second ``/auth/login`` replaces the first
one's flow cookie).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Optional

from covet.concurrency import run_in_threadpool
from covet.connection import HTTPConnection
from covet.exceptions import HTTPException
from covet.requests import Request
from covet.responses import JSONResponse, RedirectResponse, Response

from .jwt import JWTBearer, _check_url, _fetch_json
from .sessions import Session, SessionStore
from .signing import SecretKeys, Signer

__all__ = ["OIDCLogin", "ProviderMetadata", "LogoutTokenError"]

logger = logging.getLogger("covet.security.oidc")

FLOW_SALT = b"covet.oidc-flow"
SESSION_SALT = b"covet.oidc-session"
SESSION_ID_SALT = b"covet.oidc-session-id"  # the cookie of a server-side session: its id
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_INDEX_LIMIT = 64  # sessions remembered per provider session id or user (the newest): a bound on an index record
_MAX_COOKIE = 3900  # browsers keep 4096 bytes per cookie (name, value and attributes)
_AT_HASH = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


class LogoutTokenError(ValueError):
    """A back-channel logout token refused (the message says why; the endpoint answers it with 400)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _local_path(target: Optional[str]) -> str:
    """`target` when it is a path on this site, else "/" (``next=https://evil`` or ``//evil`` is no redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return "/"
    return target


class ProviderMetadata:
    """An issuer's discovery document, fetched once (in a thread) and kept for `ttl` seconds."""

    def __init__(self, issuer: str, *, timeout: float = 5.0, ttl: float = 3600.0) -> None:
        _check_url(issuer, "issuer")
        self.issuer = issuer
        self.timeout = timeout
        self.ttl = ttl
        self._document: Optional[dict[str, Any]] = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        with self._lock:
            if self._document is not None and time.monotonic() - self._fetched < self.ttl:
                return self._document
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document, _ = _fetch_json(url, self.timeout)
            if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                raise ValueError(f"{url}: the discovery document's issuer is not {self.issuer!r}")
            for name in ("authorization_endpoint", "token_endpoint"):
                if not isinstance(document.get(name), str):
                    raise ValueError(f"{url}: no {name}")
            for name in ("authorization_endpoint", "token_endpoint", "end_session_endpoint",
                         "introspection_endpoint"):
                if isinstance(document.get(name), str):
                    _check_url(document[name], name)
            self._document = document
            self._fetched = time.monotonic()
            return document

    async def get(self) -> dict[str, Any]:
        if self._document is not None and time.monotonic() - self._fetched < self.ttl:
            return self._document
        try:
            return await run_in_threadpool(self._load)
        except Exception as exc:
            if self._document is not None:  # keep the last good document while the provider is away
                logger.warning("OpenID discovery refresh failed (keeping the previous document): %s", exc)
                return self._document
            logger.warning("OpenID discovery failed: %s", exc)
            raise HTTPException(502, "the OpenID provider cannot be reached; try again later") from exc


def _post_form(url: str, form: dict[str, str], auth: Optional[tuple[str, str]], timeout: float) -> tuple[int, Any]:
    """POSTs `form` (with HTTP Basic client authentication when `auth`); the status and the JSON answer."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
               "User-Agent": "covet-oidc"}
    if auth is not None:
        # RFC 6749 §2.3.1: client id and secret are form-urlencoded before Basic encoding.
        pair = f"{urllib.parse.quote(auth[0], safe='')}:{urllib.parse.quote(auth[1], safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read(1 << 20)
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read(1 << 20)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


class OIDCLogin:
    """An OpenID Connect relying party for a browser app (see the module doc)."""

    def __init__(self, *, issuer: str, client_id: str, redirect_uri: str, secret_key: SecretKeys,
                 client_secret: Optional[str] = None, scopes: Sequence[str] = ("openid", "profile", "email"),
                 post_logout_redirect_uri: Optional[str] = None, algorithms: Sequence[str] = ("RS256",),
                 login_path: str = "/auth/login", logout_path: str = "/auth/logout",
                 cookie_name: str = "covet_oidc", session_max_age: int = 8 * 3600, flow_max_age: int = 600,
                 leeway: float = 60, http_timeout: float = 5.0, jwks_refresh_interval: float = 30.0,
                 token_endpoint: Optional[str] = None, fetch_userinfo: bool = True,
                 extra_authorize_params: Optional[dict[str, str]] = None, store: Optional[SessionStore] = None,
                 backchannel_logout_path: Optional[str] = "/auth/backchannel-logout") -> None:
        if "openid" not in scopes:
            raise ValueError("scopes must include 'openid' (it is what makes the provider issue an ID token)")
        _check_url(redirect_uri, "redirect_uri")
        if token_endpoint is not None:
            _check_url(token_endpoint, "token_endpoint")
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.callback_path = urllib.parse.urlsplit(redirect_uri).path or "/"
        self.scopes = list(scopes)
        self.post_logout_redirect_uri = post_logout_redirect_uri
        self.login_path = login_path
        self.logout_path = logout_path
        self.cookie_name = cookie_name
        self.flow_cookie = cookie_name + "_flow"
        self.session_max_age = session_max_age
        self.flow_max_age = flow_max_age
        self.http_timeout = http_timeout
        self.token_endpoint = token_endpoint
        self.fetch_userinfo = fetch_userinfo
        self.extra_authorize_params = dict(extra_authorize_params or {})
        self.secure_cookies = urllib.parse.urlsplit(redirect_uri).scheme == "https"
        # One signer per cookie, each with its own salt: a flow cookie is never a valid session, nor the reverse.
        self.flow_signer = Signer(secret_key, salt=FLOW_SALT)
        self.session_signer = Signer(secret_key, salt=SESSION_SALT if store is None else SESSION_ID_SALT)
        self.store = store
        self.backchannel_logout_path = backchannel_logout_path if store is not None else None
        self.backchannel_logouts = 0  # logout tokens accepted (sessions revoked by the provider)
        self.metadata = ProviderMetadata(issuer, timeout=http_timeout)
        # The ID token verifier: the native JWT verifier with this issuer's JWK Set (discovery), aud = client_id.
        self.id_tokens = JWTBearer(algorithms=list(algorithms), issuer=issuer, audience=client_id, leeway=leeway,
                                   require_iat=True, jwks_refresh_interval=jwks_refresh_interval,
                                   http_timeout=http_timeout, cache_size=0)

    # -- the routes --------------------------------------------------------------------------------------------
    def install(self, app: Any) -> None:
        """Adds the login, callback and logout routes to `app` (a CovetPy app or an APIRouter)."""
        app.add_api_route(self.login_path, self.login, methods=["GET"], include_in_schema=False)
        app.add_api_route(self.callback_path, self.callback, methods=["GET"], include_in_schema=False)
        app.add_api_route(self.logout_path, self.logout, methods=["GET", "POST"], include_in_schema=False)
        if self.backchannel_logout_path is not None:
            app.add_api_route(self.backchannel_logout_path, self.backchannel_logout, methods=["POST"],
                              include_in_schema=False)

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int, path: str) -> None:
        response.set_cookie(name, value, max_age=max_age, path=path, secure=self.secure_cookies, httponly=True,
                            samesite="lax")

    def _clear_cookie(self, response: Response, name: str, path: str) -> None:
        response.set_cookie(name, "", max_age=0, expires=0, path=path, secure=self.secure_cookies, httponly=True,
                            samesite="lax")

    async def login(self, request: Request) -> Response:
        """Redirects to the provider with a new state, nonce and PKCE challenge (kept in the flow cookie)."""
        metadata = await self.metadata.get()
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        params = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scopes), "state": state, "nonce": nonce,
            "code_challenge": _b64(hashlib.sha256(verifier.encode("ascii")).digest()),
            "code_challenge_method": "S256", **self.extra_authorize_params,
        }
        endpoint = metadata["authorization_endpoint"]
        url = endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(params)
        response = RedirectResponse(url, status_code=302)
        flow = {"state": state, "nonce": nonce, "verifier": verifier,
                "next": _local_path(request.query_params.get("next"))}
        self._set_cookie(response, self.flow_cookie, self.flow_signer.dumps(flow), self.flow_max_age,
                         self.callback_path)
        return response

    def _refuse(self, status: int, detail: str) -> HTTPException:
        # The flow cookie is single use: whatever went wrong, the browser has to start again at the login path.
        return HTTPException(status, detail, headers={
            "Set-Cookie": f"{self.flow_cookie}=; Max-Age=0; Path={self.callback_path}; HttpOnly; SameSite=lax"
                          + ("; Secure" if self.secure_cookies else ""),
            "Cache-Control": "no-store"})

    async def callback(self, request: Request) -> Response:
        """The provider's redirect back: checks state (and iss), exchanges the code, verifies the ID token,
        starts the session."""
        query = request.query_params
        flow = self.flow_signer.loads(request.cookies.get(self.flow_cookie), self.flow_max_age)
        if flow is None:
            raise self._refuse(400, f"login session missing or expired: start again at {self.login_path}")
        if not hmac.compare_digest(str(query.get("state", "")).encode(), str(flow.get("state", "")).encode()):
            raise self._refuse(400, "login refused: state mismatch (a forged or stale callback)")
        if "error" in query:
            raise self._refuse(401, f"login refused by the provider: {str(query['error'])[:100]}")
        if "iss" in query and query["iss"] != self.issuer:
            raise self._refuse(400, "login refused: the callback's iss is not the configured issuer (RFC 9207)")
        code = query.get("code")
        if not code:
            raise self._refuse(400, "login refused: the callback has no code")
        metadata = await self.metadata.get()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": str(flow["verifier"])}
        auth: Optional[tuple[str, str]] = None
        if self.client_secret is None:
            form["client_id"] = self.client_id
        else:
            auth = (self.client_id, self.client_secret)
        endpoint = self.token_endpoint or metadata["token_endpoint"]
        try:
            status, tokens = await run_in_threadpool(_post_form, endpoint, form, auth, self.http_timeout)
        except OSError as exc:
            logger.warning("OpenID token endpoint %s: %s", endpoint, exc)
            raise self._refuse(502, "the OpenID provider cannot be reached; try again later") from exc
        if status != 200 or not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            error = tokens.get("error", f"HTTP {status}") if isinstance(tokens, dict) else f"HTTP {status}"
            logger.info("OpenID code exchange refused: %s", error)
            raise self._refuse(400, f"login refused: the code exchange failed ({str(error)[:100]})")
        id_token: str = tokens["id_token"]
        claims = await self.validate_id_token(id_token, str(flow["nonce"]), tokens.get("access_token"))
        userinfo = metadata.get("userinfo_endpoint")
        if self.fetch_userinfo and isinstance(userinfo, str) and isinstance(tokens.get("access_token"), str):
            claims = {**await self._userinfo(userinfo, tokens["access_token"], claims["sub"]), **claims}
        response = RedirectResponse(str(flow.get("next") or "/"), status_code=303)
        self._clear_cookie(response, self.flow_cookie, self.callback_path)
        session: dict[str, Any] = {"claims": claims, "id_token": id_token}
        if self.store is not None:
            value = self.session_signer.sign((await self._store_session(session)).encode("ascii"))
            self._set_cookie(response, self.cookie_name, value, self.session_max_age, "/")
            response.headers["Cache-Control"] = "no-store"
            return response
        value = self.session_signer.dumps(session)
        if len(value) + len(self.cookie_name) > _MAX_COOKIE:
            del session["id_token"]  # logout then goes without id_token_hint
            value = self.session_signer.dumps(session)
        if len(value) + len(self.cookie_name) > _MAX_COOKIE:
            raise self._refuse(500, "the ID token's claims do not fit in a cookie; ask for fewer scopes")
        self._set_cookie(response, self.cookie_name, value, self.session_max_age, "/")
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _userinfo(self, url: str, access_token: str, sub: str) -> dict[str, Any]:
        """The UserInfo endpoint's claims (OIDC Core §5.3), {} when it fails; its `sub` must be the ID token's
        (§5.3.2), else 400."""
        def get() -> Any:
            _check_url(url, "userinfo_endpoint")
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {access_token}",
                                                           "Accept": "application/json", "User-Agent": "covet-oidc"})
            with urllib.request.urlopen(request, timeout=self.http_timeout) as response:
                return json.loads(response.read(1 << 20))

        try:
            answer = await run_in_threadpool(get)
        except Exception as exc:  # the login stands on the ID token; the extra claims are missing
            logger.warning("OpenID UserInfo %s: %s", url, exc)
            return {}
        if not isinstance(answer, dict) or answer.get("sub") != sub:
            raise self._refuse(400, "login refused: the UserInfo sub is not the ID token's")
        return answer

    async def validate_id_token(self, id_token: str, nonce: str, access_token: Any = None) -> dict[str, Any]:
        """The claims of `id_token` when it is valid for this client (signature, iss, aud, azp, exp, iat, nonce,
        at_hash), else HTTPException 400."""
        try:
            claims = await self.id_tokens.verify(id_token)
        except HTTPException as exc:
            if exc.status_code >= 500:
                raise
            raise self._refuse(400, f"login refused: invalid ID token ({exc.detail})") from None
        audiences = claims.get("aud")
        if isinstance(audiences, list) and len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise self._refuse(400, "login refused: invalid ID token (azp is not this client)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise self._refuse(400, "login refused: invalid ID token (no sub)")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise self._refuse(400, "login refused: invalid ID token (nonce mismatch)")
        at_hash = claims.get("at_hash")
        if at_hash is not None:
            head = id_token.split(".")[0]
            alg = str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("alg", ""))
            digest = _AT_HASH.get(alg[-3:]) if alg != "EdDSA" else hashlib.sha512
            if not isinstance(access_token, str) or digest is None:
                raise self._refuse(400, "login refused: invalid ID token (at_hash without an access token)")
            full = digest(access_token.encode("ascii")).digest()
            if not hmac.compare_digest(_b64(full[:len(full) // 2]).encode(), str(at_hash).encode()):
                raise self._refuse(400, "login refused: invalid ID token (at_hash mismatch)")
        return claims

    def session(self, request: HTTPConnection) -> Optional[dict[str, Any]]:
        """The session cookie's content ({"claims": ..., "id_token": ...}) when it is valid, else None. Cookie
        sessions only: with a `store`, ``await load_session(request)``."""
        if self.store is not None:
            raise RuntimeError("OIDCLogin(store=...) keeps sessions server-side: use await oidc.load_session(request)")
        return self.session_signer.loads(request.cookies.get(self.cookie_name), self.session_max_age)

    async def load_session(self, request: HTTPConnection) -> Optional[dict[str, Any]]:
        """The request's session ({"claims": ..., "id_token": ...}) when it is valid (and, with a `store`, not
        logged out or revoked), else None."""
        if self.store is None:
            return self.session(request)
        session_id = self._session_id(request)
        return await self.store.load(session_id) if session_id is not None else None

    def _session_id(self, request: HTTPConnection) -> Optional[str]:
        cookie = request.cookies.get(self.cookie_name)
        payload = self.session_signer.unsign(cookie, self.session_max_age) if cookie else None
        return payload.decode("ascii", "replace") if payload is not None else None

    # -- server-side sessions and back-channel logout --------------------------------------------------------------
    def _index_key(self, kind: str, value: str) -> str:
        """The store key listing the sessions of a provider session id (`kind` "sid") or a user ("sub"). Never a
        session id: those have no ':'."""
        digest = hashlib.sha256(f"{self.issuer}\0{self.client_id}\0{value}".encode()).hexdigest()
        return f"oidc-{kind}:{digest}"

    async def _store_session(self, session: dict[str, Any]) -> str:
        """Saves a new session under a new id, indexed by its provider session id (``sid``) and user (``sub``)."""
        assert self.store is not None
        session_id = Session.new_id()
        await self.store.save(session_id, session, self.session_max_age)
        claims = session["claims"]
        for kind in ("sid", "sub"):
            value = claims.get(kind)
            if not isinstance(value, str) or not value:
                continue
            key = self._index_key(kind, value)
            index = await self.store.load(key) or {}
            ids = [i for i in index.get("ids", []) if isinstance(i, str)][-(_INDEX_LIMIT - 1):]
            await self.store.save(key, {"ids": [*ids, session_id]}, self.session_max_age)
        return session_id

    def _logout_token_refused(self, why: str) -> LogoutTokenError:
        return LogoutTokenError(why)

    async def backchannel_logout(self, request: Request) -> Response:
        """OpenID Connect Back-Channel Logout 1.0: the provider's POST with a ``logout_token`` (see the module
        doc). 200 when the token is valid (the matching sessions deleted), else 400."""
        if not request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
            return JSONResponse({"error": "invalid_request", "error_description": "expected an "
                                 "application/x-www-form-urlencoded body"}, status_code=400)
        try:
            form = await request.form()
            token = form.get("logout_token")
            if not isinstance(token, str) or not token:
                raise self._logout_token_refused("no logout_token")
            revoked = await self.revoke_logout_token(token)
        except LogoutTokenError as exc:
            logger.info("OpenID back-channel logout refused: %s", exc)
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)}, status_code=400,
                                headers={"Cache-Control": "no-store"})
        logger.info("OpenID back-channel logout: %d session(s) revoked", revoked)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    async def revoke_logout_token(self, token: str) -> int:
        """Verifies a back-channel `logout_token` and deletes the sessions it names; how many were deleted.
        `LogoutTokenError` when the token is not a valid, new logout token for this client."""
        if self.store is None:
            raise RuntimeError("back-channel logout needs server-side sessions: OIDCLogin(store=...)")
        try:
            head = token.split(".")[0]
            header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        except ValueError:
            raise self._logout_token_refused("the logout_token is not a JWT") from None
        typ = header.get("typ") if isinstance(header, dict) else None
        if typ is not None and str(typ).lower() not in ("logout+jwt", "application/logout+jwt", "jwt"):
            raise self._logout_token_refused(f"the logout_token's typ is {str(typ)[:40]!r}, not logout+jwt")
        try:
            claims = await self.id_tokens.verify(token)  # signature (provider's JWKS), iss, aud, exp, iat
        except HTTPException as exc:
            if exc.status_code >= 500:
                raise
            raise self._logout_token_refused(f"invalid logout_token ({exc.detail})") from None
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
            raise self._logout_token_refused(f"the logout_token has no {BACKCHANNEL_LOGOUT_EVENT} event")
        if "nonce" in claims:
            raise self._logout_token_refused("a logout_token must not have a nonce (an ID token is not one)")
        sid, sub, jti = claims.get("sid"), claims.get("sub"), claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise self._logout_token_refused("the logout_token has no jti")
        if not (isinstance(sid, str) and sid) and not (isinstance(sub, str) and sub):
            raise self._logout_token_refused("the logout_token has neither sid nor sub")
        replay_key = self._index_key("jti", jti)
        exp = claims.get("exp")
        ttl = max(int(exp - time.time()) + 120 if isinstance(exp, (int, float)) else 600, 60)
        # The jti's marker is claimed in one step where the store can (Redis SET NX): of two concurrent posts of one
        # token, to two workers, only one gets past here.
        claim = getattr(self.store, "save_if_absent", None)
        if claim is not None:
            first_use = await claim(replay_key, {"jti": True}, ttl)
        else:
            first_use = await self.store.load(replay_key) is None
            if first_use:
                await self.store.save(replay_key, {"jti": True}, ttl)
        if not first_use:
            raise self._logout_token_refused("the logout_token was used already (jti replayed)")
        kind, value = ("sid", sid) if isinstance(sid, str) and sid else ("sub", sub)
        assert isinstance(value, str)
        index_key = self._index_key(kind, value)
        try:
            index = await self.store.load(index_key) or {}
            revoked = 0
            for session_id in index.get("ids", []):
                if not isinstance(session_id, str):
                    continue
                session = await self.store.load(session_id)
                if session is None:
                    continue
                session_claims = session.get("claims")
                session_sub = session_claims.get("sub") if isinstance(session_claims, dict) else None
                if isinstance(sub, str) and sub and session_sub != sub:
                    continue  # a sid and a sub that do not belong together: revoke nothing of another user
                await self.store.delete(session_id)
                revoked += 1
            await self.store.delete(index_key)
        except BaseException:
            # The store failed part way: free the jti, so that the provider's retry of this token is not refused
            # as a replay while sessions it names stay alive.
            with contextlib.suppress(Exception):
                await self.store.delete(replay_key)
            raise
        self.backchannel_logouts += 1
        return revoked

    async def logout(self, request: Request) -> Response:
        """Clears the session and sends the browser to the provider's end_session_endpoint (RP-initiated
        logout) when it has one. A request another site started (``Sec-Fetch-Site: cross-site``) is refused:
        no forced logout through a link or form elsewhere."""
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise HTTPException(403, "logout must start from this site")
        session = await self.load_session(request)
        if self.store is not None:
            session_id = self._session_id(request)
            if session_id is not None:
                await self.store.delete(session_id)
        target = self.post_logout_redirect_uri or "/"
        try:
            metadata: dict[str, Any] = await self.metadata.get()
        except HTTPException:
            metadata = {}  # the provider is away: log out here at least
        end_session = metadata.get("end_session_endpoint")
        if isinstance(end_session, str):
            params = {"client_id": self.client_id}
            if session is not None and isinstance(session.get("id_token"), str):
                params["id_token_hint"] = session["id_token"]
            if self.post_logout_redirect_uri:
                params["post_logout_redirect_uri"] = self.post_logout_redirect_uri
            target = end_session + ("&" if "?" in end_session else "?") + urllib.parse.urlencode(params)
        response = RedirectResponse(target, status_code=303)
        self._clear_cookie(response, self.cookie_name, "/")
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- dependencies --------------------------------------------------------------------------------------------
    async def user(self, request: HTTPConnection) -> dict[str, Any]:
        """The logged-in user's ID token claims; 401 when there is no valid session."""
        session = await self.load_session(request)
        if session is None or not isinstance(session.get("claims"), dict):
            raise HTTPException(401, "Not authenticated", headers={"Cache-Control": "no-store"})
        claims: dict[str, Any] = session["claims"]
        return claims

    async def optional_user(self, request: HTTPConnection) -> Optional[dict[str, Any]]:
        """The logged-in user's claims, or None."""
        session = await self.load_session(request)
        if session is None or not isinstance(session.get("claims"), dict):
            return None
        claims: dict[str, Any] = session["claims"]
        return claims
