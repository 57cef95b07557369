"""`SecurityHeadersMiddleware` and `CSRFMiddleware`, run natively by the engine (C++: covet/middleware/
security_headers.hpp and csrf.hpp), and the helpers a handler or template uses with them: `csp_nonce(request)`
(the per-request nonce for ``<script nonce="...">``) and `csrf_token(request)` (the token for a form's hidden
``csrf_token`` field). See docs/security.md, "Security headers" and "CSRF"."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .native import NativeMiddleware

if TYPE_CHECKING:
    from covet.connection import HTTPConnection
    from covet.server.interface import Middleware

__all__ = ["CSRFMiddleware", "SecurityHeadersMiddleware", "csp_nonce", "csrf_input", "csrf_token"]


def _native_attribute(request: HTTPConnection, name: str) -> str:
    native = getattr(request, "_native", None)
    return str(getattr(native, name, "") or "")


def csp_nonce(request: HTTPConnection) -> str:
    """This request's Content-Security-Policy nonce (SecurityHeadersMiddleware with a ``{nonce}`` policy), for
    ``<script nonce="{{ nonce }}">``; "" when there is none."""
    return _native_attribute(request, "csp_nonce")


def csrf_token(request: HTTPConnection) -> str:
    """The CSRF token to put in this request's forms (CSRFMiddleware): the cookie's, or a new one the response
    sets as the cookie. "" without the middleware."""
    return _native_attribute(request, "csrf_token")


def csrf_input(request: HTTPConnection, field: str = "csrf_token") -> str:
    """A hidden form field holding `csrf_token(request)`: ``<input type="hidden" name="csrf_token" value="...">``
    (the token is base64url and '.', nothing to escape)."""
    return f'<input type="hidden" name="{field}" value="{csrf_token(request)}">'


class SecurityHeadersMiddleware(NativeMiddleware):
    """Safe default response headers: HSTS on HTTPS responses, an optional Content-Security-Policy ("{nonce}" in it
    becomes a fresh nonce per request: `csp_nonce`), nosniff, Referrer-Policy, X-Frame-Options and
    Cross-Origin-Opener-Policy. A header the handler sets itself wins."""

    native_kind = "security_headers"

    def __init__(
        self,
        app: Any,
        hsts_max_age: int = 31536000,
        hsts_include_subdomains: bool = False,
        hsts_preload: bool = False,
        content_security_policy: str = "",
        csp_report_only: bool = False,
        content_type_options: bool = True,
        referrer_policy: str = "strict-origin-when-cross-origin",
        frame_options: str = "DENY",
        cross_origin_opener_policy: str = "same-origin",
    ) -> None:
        super().__init__(app)
        self.options: dict[str, Any] = {
            "hsts_max_age": int(hsts_max_age),
            "hsts_include_subdomains": bool(hsts_include_subdomains),
            "hsts_preload": bool(hsts_preload),
            "content_security_policy": str(content_security_policy),
            "csp_report_only": bool(csp_report_only),
            "content_type_options": bool(content_type_options),
            "referrer_policy": str(referrer_policy),
            "frame_options": str(frame_options),
            "cross_origin_opener_policy": str(cross_origin_opener_policy),
        }

    def native_options(self) -> dict[str, Any]:
        return dict(self.options)

    def python_middleware(self) -> Middleware:
        raise TypeError("SecurityHeadersMiddleware runs in the engine only: add it after every Python middleware "
                        "(app.add_middleware order), so that it is the outermost")


class CSRFMiddleware(NativeMiddleware):
    """Refuses cross-site requests with unsafe methods (Origin / Sec-Fetch-Site, as Go's CrossOriginProtection)
    and form posts without the signed double-submit token (`csrf_token`): 403 naming the cause."""

    native_kind = "csrf"

    def __init__(
        self,
        app: Any,
        secret: str | bytes,
        trusted_origins: Collection[str] = (),
        exempt_paths: Collection[str] = (),
        exempt_bearer: bool = True,
        check_token: bool = True,
        cookie_name: str = "csrftoken",
        header_name: str = "X-CSRF-Token",
        form_field: str = "csrf_token",
        cookie_samesite: str = "Lax",
    ) -> None:
        super().__init__(app)
        for name, values in (("trusted_origins", trusted_origins), ("exempt_paths", exempt_paths)):
            if isinstance(values, str):
                raise TypeError(f"CSRFMiddleware: {name} must be a list of strings, not the string {values!r}")
        secret_text = secret.decode("latin-1") if isinstance(secret, bytes) else str(secret)
        if len(secret_text.encode("latin-1", "replace")) < 16:
            raise ValueError("CSRFMiddleware: the secret must be at least 16 bytes (e.g. secrets.token_urlsafe(32))")
        self.options: dict[str, Any] = {
            "secret": secret_text,
            "trusted_origins": list(trusted_origins),
            "exempt_paths": list(exempt_paths),
            "exempt_bearer": bool(exempt_bearer),
            "check_token": bool(check_token),
            "cookie_name": cookie_name,
            "header_name": header_name,
            "form_field": form_field,
            "cookie_samesite": cookie_samesite,
        }

    def native_options(self) -> dict[str, Any]:
        return dict(self.options)

    def python_middleware(self) -> Middleware:
        raise TypeError("CSRFMiddleware runs in the engine only: add it after every Python middleware "
                        "(app.add_middleware order), so that it is the outermost")
