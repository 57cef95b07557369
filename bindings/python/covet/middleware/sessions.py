"""`SessionMiddleware` (``starlette.middleware.sessions``'s, with safer defaults): ``request.session`` is a dict
kept across requests, in a signed (optionally encrypted) cookie, or in a server-side store with only an opaque
signed id in the cookie. See `covet.security.sessions` for the formats, the stores and `login`/`logout`.

::

    app.add_middleware(SessionMiddleware, secret_key=[new_key, old_key])                 # signed cookie
    app.add_middleware(SessionMiddleware, secret_key=key, store=RedisSessionStore(url))  # server-side

Options (Starlette's names): `secret_key` (one key or a list: the first signs, all verify), `session_cookie`
("session"), `max_age` (14 days; None: a browser-session cookie, and a day in a server store), `path` ("/"),
`same_site` ("lax"), `https_only` (**True**: the cookie is ``Secure``; Starlette's default is False),
`domain`; and `store`, `encrypt`. The cookie is always ``HttpOnly``.

As Starlette's: a cookie session's cookie is written when the session changed (its signature carries the time,
checked against `max_age`, so `max_age` counts from the last change) and removed when a session that held data
is emptied; a response whose handler read ``request.session`` gets ``Vary: Cookie``. A server-side session's
cookie (its id) is set on every response while it holds data, and its record is written to the store when it
changed, or when its `max_age` is half gone (both expiries then restart).

WebSocket routes see the same session as ``websocket.session`` (as under Starlette's middleware), loaded from the
handshake's cookie. Changes made there are not saved: after the handshake there is no response to carry a
cookie, and a long-lived connection writing its (by then old) copy back to a store could undo what HTTP requests
did meanwhile, a logout included. Before that, a handshake that carries the session cookie from another origin
(cross-site WebSocket hijacking: browsers attach cookies to any site's WebSocket handshake, and no CORS check
applies) is refused with 403: its ``Origin`` must name the ``Host`` it was sent to, or one of `allowed_origins`
(``["https://app.example.com"]``). Handshakes without ``Origin`` (not from a browser) or without the cookie pass.
With a `store`, an open WebSocket closes (1008, "session ended") when its session ends: at once on a logout or
login in this worker, within `websocket_check_interval` seconds (30; None: never) when it ended elsewhere
(`covet.middleware.session_websockets`). A cookie session cannot be revoked: its WebSockets stay open.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Optional

from covet.requests import Request
from covet.responses import PlainTextResponse, Response
from covet.security.sessions import Session, SessionStore, attach_session
from covet.security.signing import SecretKeys, Signer

from .base import BaseHTTPMiddleware, RequestResponseEndpoint
from .session_websockets import SessionWebSockets

if TYPE_CHECKING:
    from covet.websockets import WebSocket

__all__ = ["SessionMiddleware"]

_SERVER_SIDE_DEFAULT_TTL = 86400
_TOUCHED = "_t"  # when a server-side session was last written (inside its data)


class SessionMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, secret_key: SecretKeys, session_cookie: str = "session",
                 max_age: Optional[int] = 14 * 24 * 60 * 60, path: str = "/",
                 same_site: Literal["lax", "strict", "none"] = "lax", https_only: bool = True,
                 domain: Optional[str] = None, store: Optional[SessionStore] = None, encrypt: bool = False,
                 allowed_origins: Sequence[str] = (), websocket_check_interval: Optional[float] = 30.0) -> None:
        super().__init__(app)
        if same_site == "none" and not https_only:
            raise ValueError("same_site='none' needs https_only=True (browsers drop SameSite=None cookies that "
                             "are not Secure)")
        salt = b"covet.session.id" if store is not None else b"covet.session"
        self.signer = Signer(secret_key, salt=salt, encrypt=encrypt and store is None)
        self.session_cookie = session_cookie
        self.max_age = max_age
        self.path = path
        self.same_site = same_site
        self.https_only = https_only
        self.domain = domain
        self.store = store
        if isinstance(allowed_origins, str):
            raise TypeError("allowed_origins is a list of origins: ['https://app.example.com']")
        self.allowed_origins = frozenset(_origin(o) for o in allowed_origins)
        self.websockets = (SessionWebSockets(store, websocket_check_interval)
                           if store is not None and websocket_check_interval is not None else None)

    @property
    def _ttl(self) -> int:
        return self.max_age if self.max_age is not None else _SERVER_SIDE_DEFAULT_TTL

    async def _load(self, cookie: Optional[str]) -> Session:
        payload = self.signer.unsign(cookie, self.max_age) if cookie else None
        if payload is None:
            return Session()
        if self.store is None:
            try:
                data = json.loads(payload)
            except ValueError:
                return Session()
            return Session(data if isinstance(data, dict) else None)
        session_id = payload.decode("ascii", "replace")
        data = await self.store.load(session_id)
        if data is None:  # expired, logged out, or never stored: a new session, never this id
            return Session()
        touched = data.pop(_TOUCHED, None)
        session = Session(data, session_id)
        session.touched = touched if isinstance(touched, int) else None
        return session

    async def websocket_connect(self, websocket: WebSocket) -> bool:
        """A WebSocket handshake, before its endpoint (`covet.server.websockets`): refuses a cross-origin one
        carrying the session cookie (403), else loads ``websocket.session`` (changes to it are not saved)."""
        cookie = websocket.cookies.get(self.session_cookie)
        if cookie is not None:
            refusal = self._cross_origin(websocket)
            if refusal is not None:
                await websocket.send_denial_response(PlainTextResponse(refusal, status_code=403))
                return False
        session = await self._load(cookie)
        attach_session(websocket, session)
        if self.websockets is not None and session.session_id is not None:
            self.websockets.track(session.session_id, websocket)
        return True

    def _cross_origin(self, websocket: WebSocket) -> Optional[str]:
        """Why this handshake's Origin may not use the session, or None."""
        origin = websocket.headers.get("origin")
        if origin is None:
            return None  # not sent by a browser, so no cookie was attached on anyone else's behalf
        normalized = _origin(origin)
        if normalized in self.allowed_origins:
            return None
        host = websocket.headers.get("host", "").strip().lower()
        scheme, _, netloc = normalized.partition("://")
        if scheme in ("http", "https") and host and netloc == host:
            return None
        return (f"Forbidden: cross-origin WebSocket handshake with a session cookie: Origin {origin} is not the "
                f"Host {host or '(none)'} nor one of SessionMiddleware's allowed_origins")

    def _set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(self.session_cookie, value, max_age=self.max_age, path=self.path, domain=self.domain,
                            secure=self.https_only, httponly=True, samesite=self.same_site)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        cookie = request.cookies.get(self.session_cookie)
        session = await self._load(cookie)
        had_data = bool(session)
        attach_session(request, session)
        response = await call_next(request)
        if session.accessed:  # what the handler answered depends on the cookie: caches must know
            vary = response.headers.get("vary")
            if not vary or "cookie" not in vary.lower():
                response.headers["vary"] = f"{vary}, Cookie" if vary else "Cookie"
        if self.store is None:  # as Starlette: the cookie is written when the session changed
            if session.modified and session:
                self._set_cookie(response, self.signer.sign(json.dumps(session, separators=(",", ":")).encode()))
            elif session.modified and had_data:  # emptied (an invalid cookie is left alone)
                response.delete_cookie(self.session_cookie, path=self.path, domain=self.domain)
            return response
        await self._save(session, cookie, response)
        return response

    async def _save(self, session: Session, cookie: Optional[str], response: Response) -> None:
        assert self.store is not None
        if session.previous_id is not None:
            await self._end(session.previous_id)
        if not session:
            if session.session_id is not None:
                await self._end(session.session_id)
            if cookie is not None:
                response.delete_cookie(self.session_cookie, path=self.path, domain=self.domain)
            return
        now = int(time.time())
        stale = session.touched is None or now - session.touched > self._ttl // 2
        if session.session_id is None or session.modified or stale:
            if session.session_id is None:
                session.session_id = Session.new_id()
            data = dict(session)
            data[_TOUCHED] = now
            await self.store.save(session.session_id, data, self._ttl)
        self._set_cookie(response, self.signer.sign(session.session_id.encode()))


    async def _end(self, session_id: str) -> None:
        """Deletes a session's record; its WebSockets in this worker close now (elsewhere at their next check)."""
        assert self.store is not None
        await self.store.delete(session_id)
        if self.websockets is not None:
            await self.websockets.end(session_id)


def _origin(value: str) -> str:
    """An origin as compared: lower case, without a trailing slash (``Origin: null`` stays ``null``)."""
    return value.strip().lower().rstrip("/")
