"""``starlette.middleware.sessions`` under the compatibility shim (`covet.compat`): Starlette's `SessionMiddleware`
constructor (``secret_key``, ``session_cookie``, ``max_age``, ``path``, ``same_site``, ``https_only``, ``domain``)
with Starlette's defaults, on covet's sessions (`covet.middleware.sessions`): ``request.session`` and
``websocket.session`` behave as Starlette's.

Differences kept on purpose: covet's cookie format (``payload.timestamp.mac``, HMAC-SHA256 with a derived key;
Starlette's is itsdangerous' HMAC-SHA1), a secret key of at least 16 bytes, and the cookie is always ``HttpOnly``
(as Starlette's). A cookie Starlette signed before the migration is still read (same secret key, its own format
and ``max_age``), so users stay logged in; the response then carries covet's cookie. Only the default of
``https_only`` is Starlette's (False); `covet.middleware.sessions`, which ``covet migrate`` rewrites the import to,
defaults to True (a ``Secure`` cookie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any, Literal, Optional

from covet.middleware.sessions import SessionMiddleware as _CovetSessionMiddleware
from covet.security.sessions import Session, SessionStore
from covet.security.signing import SecretKeys

__all__ = ["SessionMiddleware"]


class SessionMiddleware(_CovetSessionMiddleware):
    def __init__(self, app: Any, secret_key: SecretKeys, session_cookie: str = "session",
                 max_age: Optional[int] = 14 * 24 * 60 * 60, path: str = "/",
                 same_site: Literal["lax", "strict", "none"] = "lax", https_only: bool = False,
                 domain: Optional[str] = None, store: Optional[SessionStore] = None, encrypt: bool = False,
                 allowed_origins: Sequence[str] = ()) -> None:
        super().__init__(app, secret_key, session_cookie, max_age, path, same_site, https_only, domain, store,
                         encrypt, allowed_origins)
        keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
        # itsdangerous' TimestampSigner(secret_key) as Starlette makes it: salt "itsdangerous.Signer", key
        # derivation "django-concat" (SHA-1 of salt + "signer" + key), HMAC-SHA1.
        self._starlette_keys = [hashlib.sha1(b"itsdangerous.Signersigner" + (k.encode() if isinstance(k, str) else k))
                                .digest() for k in keys]

    async def _load(self, cookie: Optional[str]) -> Session:
        session = await super()._load(cookie)
        if session or not cookie or self.store is not None or self.signer.unsign(cookie, self.max_age) is not None:
            return session
        data = self._starlette_session(cookie)
        if data is None:
            return session
        migrated = Session(data)
        migrated.modified = True
        return migrated

    def _starlette_session(self, cookie: str) -> Optional[dict[str, Any]]:
        """The data of a cookie Starlette's SessionMiddleware signed with this secret key, if valid and young
        enough."""
        value, _, signature = cookie.rpartition(".")
        payload, _, stamp = value.rpartition(".")
        if not payload or not stamp or len(cookie) > 16384:
            return None
        try:
            mac = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
            timestamp = int.from_bytes(base64.urlsafe_b64decode(stamp + "=" * (-len(stamp) % 4)), "big")
        except ValueError:
            return None
        if not any(hmac.compare_digest(hmac.new(key, value.encode(), hashlib.sha1).digest(), mac)
                   for key in self._starlette_keys):
            return None
        if self.max_age is not None and not -60 <= time.time() - timestamp <= self.max_age:
            return None
        try:
            data = json.loads(base64.b64decode(payload))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
