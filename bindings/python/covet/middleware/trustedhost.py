"""`TrustedHostMiddleware` (``fastapi.middleware.trustedhost``): Starlette's semantics, run natively."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from .native import NativeMiddleware

if TYPE_CHECKING:
    from covet.server.interface import Middleware

__all__ = ["ENFORCE_DOMAIN_WILDCARD", "TrustedHostMiddleware"]

ENFORCE_DOMAIN_WILDCARD = "Domain wildcard patterns must be like '*.example.com'."


class TrustedHostMiddleware(NativeMiddleware):
    native_kind = "trusted_host"

    def __init__(self, app: Any, allowed_hosts: Optional[Sequence[str]] = None, www_redirect: bool = True) -> None:
        super().__init__(app)
        hosts = ["*"] if allowed_hosts is None else list(allowed_hosts)
        for pattern in hosts:
            if "*" in pattern[1:] or (pattern.startswith("*") and pattern != "*" and not pattern.startswith("*.")):
                raise ValueError(f"TrustedHostMiddleware: allowed host {pattern!r}: {ENFORCE_DOMAIN_WILDCARD}")
        self.allowed_hosts = [pattern.lower() for pattern in hosts]
        self.allow_any = "*" in hosts
        self.www_redirect = bool(www_redirect)

    def native_options(self) -> dict[str, Any]:
        return {"allowed_hosts": self.allowed_hosts, "www_redirect": self.www_redirect}

    def python_middleware(self) -> Middleware:
        from .python_trustedhost import PythonTrustedHost  # deferred: only apps with it inside a Python middleware

        return PythonTrustedHost(self)
