"""Signed, timestamped values (HMAC-SHA256, itsdangerous-like) for cookies and tokens: the session cookies of
`covet.security.sessions`, the OpenID Connect login's flow and session cookies (`covet.security.oidc`). One
implementation, so that key rotation, clock-skew tolerance and the optional encryption behave the same
everywhere. A `salt` per use keeps the signatures of one use from being valid for another with the same key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

__all__ = ["SecretKeys", "Signer"]


SecretKeys = Union[str, bytes, Sequence[Union[str, bytes]]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_list(secret_keys: SecretKeys) -> list[bytes]:
    keys = [secret_keys] if isinstance(secret_keys, (str, bytes)) else list(secret_keys)
    out = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
    if not out or any(len(k) < 16 for k in out):
        raise ValueError("secret keys: give at least one, each at least 16 bytes "
                         "(e.g. secrets.token_urlsafe(32)); the first signs, all verify")
    return out


class Signer:
    """Timestamped HMAC-SHA256 signatures, itsdangerous-like: ``payload.timestamp.signature`` (URL-safe base64).
    Each secret key is first derived with `salt` (one key can serve several purposes without their signatures
    being interchangeable). The first key signs; every key verifies (rotation: put the new key first, drop the
    old one once every cookie it signed has expired). `encrypt`: AES-256-GCM under a key derived the same way
    (the `cryptography` package)."""

    def __init__(self, secret_keys: SecretKeys, salt: bytes = b"covet.session", encrypt: bool = False) -> None:
        keys = _key_list(secret_keys)
        self._mac_keys = [hmac.new(k, salt + b".sign", hashlib.sha256).digest() for k in keys]
        self._aead: list[Any] = []
        if encrypt:
            try:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            except ImportError as exc:
                raise RuntimeError("encrypted sessions need the `cryptography` package (pip install cryptography); "
                                   "or use encrypt=False (signed only) or a server-side store") from exc
            self._aead = [AESGCM(hmac.new(k, salt + b".encrypt", hashlib.sha256).digest()) for k in keys]

    def sign(self, payload: bytes, now: Optional[float] = None) -> str:
        if self._aead:
            nonce = secrets.token_bytes(12)
            payload = nonce + self._aead[0].encrypt(nonce, payload, None)
        body = f"{_b64(payload)}.{int(time.time() if now is None else now)}"
        mac = hmac.new(self._mac_keys[0], body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def unsign(self, token: str, max_age: Optional[float] = None, now: Optional[float] = None) -> Optional[bytes]:
        """The payload of `token` if a key signed it (and it is at most `max_age` seconds old), else None."""
        body, dot, signature = token.rpartition(".")
        if not dot or len(token) > 16384:
            return None
        try:
            mac = _unb64(signature)
        except ValueError:
            return None
        used = -1
        for i, key in enumerate(self._mac_keys):
            if hmac.compare_digest(hmac.new(key, body.encode(), hashlib.sha256).digest(), mac):
                used = i
                break
        if used < 0:
            return None
        encoded, _, stamp = body.rpartition(".")
        if not stamp.isdigit():
            return None
        age = (time.time() if now is None else now) - int(stamp)
        if max_age is not None and not -60 <= age <= max_age:
            return None
        try:
            payload = _unb64(encoded)
        except ValueError:
            return None
        if self._aead:
            if len(payload) < 28:
                return None
            try:
                payload = self._aead[used].decrypt(payload[:12], payload[12:], None)
            except Exception:
                return None
        return payload

    def dumps(self, value: dict[str, Any], now: Optional[float] = None) -> str:
        """`value` as compact JSON, signed (and encrypted when the signer encrypts)."""
        return self.sign(json.dumps(value, separators=(",", ":")).encode(), now)

    def loads(self, token: Optional[str], max_age: Optional[float] = None,
              now: Optional[float] = None) -> Optional[dict[str, Any]]:
        """The JSON object `dumps` signed into `token`, if valid and at most `max_age` seconds old; else None."""
        payload = self.unsign(token, max_age, now) if token else None
        if payload is None:
            return None
        try:
            value = json.loads(payload)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
