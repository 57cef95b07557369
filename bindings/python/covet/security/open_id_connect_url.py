"""`OpenIdConnect`: OpenID Connect discovery, for OpenAPI; the dependency gives the ``Authorization`` header."""

from __future__ import annotations

from typing import Optional

from .base import AuthorizationHeaderScheme, scheme_model

__all__ = ["OpenIdConnect"]


class OpenIdConnect(AuthorizationHeaderScheme):
    """OpenID Connect with its discovery URL (`openIdConnectUrl`).

    The dependency gives the whole ``Authorization`` header value (checking the token is the app's job); a
    missing header answers 401 ``Not authenticated`` with ``WWW-Authenticate: Bearer``, or gives None with
    ``auto_error=False``."""

    def __init__(self, *, openIdConnectUrl: str, scheme_name: Optional[str] = None,
                 description: Optional[str] = None, auto_error: bool = True) -> None:
        self.model = scheme_model("openIdConnect", description, openIdConnectUrl=openIdConnectUrl)
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error
