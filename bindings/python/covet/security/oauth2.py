"""OAuth2: `OAuth2PasswordBearer`, `OAuth2AuthorizationCodeBearer`, `OAuth2` (any flows), the token endpoint's
form `OAuth2PasswordRequestForm` (and its `...Strict` variant), and `SecurityScopes`.

::

    oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token", scopes={"items": "Read items."})

    @app.post("/token")
    async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        ...  # check form.username / form.password, form.scopes
        return {"access_token": token, "token_type": "bearer"}

    async def current_user(security_scopes: SecurityScopes,
                           token: Annotated[str, Depends(oauth2_scheme)]) -> User:
        ...  # security_scopes.scopes: the scopes the routes' Security(...) declared

    @app.get("/items")
    async def items(user: Annotated[User, Security(current_user, scopes=["items"])]) -> list[Item]: ...

The bearer schemes give the token of ``Authorization: Bearer <token>``; a missing header or another scheme
answers 401 ``{"detail": "Not authenticated"}`` with ``WWW-Authenticate: Bearer`` (None with
``auto_error=False``). Checking the token (and its scopes) is the app's job.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from covet.connection import HTTPConnection
from covet.params import Form
from covet.params.markers import SecurityScopes

from .base import AuthorizationHeaderScheme, scheme_model
from .utils import get_authorization_scheme_param

__all__ = ["OAuth2", "OAuth2PasswordBearer", "OAuth2AuthorizationCodeBearer", "OAuth2PasswordRequestForm",
           "OAuth2PasswordRequestFormStrict", "SecurityScopes"]


class OAuth2PasswordRequestForm:
    """The form of an OAuth2 password-flow token request (``application/x-www-form-urlencoded``): `username`,
    `password`, optional `grant_type` (``password`` if given), `scope` (split into `scopes`), `client_id`,
    `client_secret`. Use it as ``form: Annotated[OAuth2PasswordRequestForm, Depends()]``."""

    def __init__(
        self,
        *,
        grant_type: Annotated[Union[str, None], Form(pattern="^password$")] = None,
        username: Annotated[str, Form()],
        password: Annotated[str, Form(json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[Union[str, None], Form()] = None,
        client_secret: Annotated[Union[str, None], Form(json_schema_extra={"format": "password"})] = None,
    ) -> None:
        self.grant_type = grant_type
        self.username = username
        self.password = password
        self.scopes = scope.split()
        self.client_id = client_id
        self.client_secret = client_secret


class OAuth2PasswordRequestFormStrict(OAuth2PasswordRequestForm):
    """`OAuth2PasswordRequestForm` with `grant_type` required (``password``), as the OAuth2 spec says.

    Its `password` and `client_secret` carry no ``format: password`` in the schema: FastAPI 0.165 declares them
    with a plain ``Form()`` here (only the lax form has it), and the schema is kept the same."""

    def __init__(
        self,
        grant_type: Annotated[str, Form(pattern="^password$")],
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[Union[str, None], Form()] = None,
        client_secret: Annotated[Union[str, None], Form()] = None,
    ) -> None:
        super().__init__(grant_type=grant_type, username=username, password=password, scope=scope,
                         client_id=client_id, client_secret=client_secret)


def _flows_dict(flows: Any) -> dict[str, Any]:
    """OAuth flows as a plain dict: a pydantic model (``covet.openapi.models.OAuthFlows``) is dumped by alias
    without None values; in a dict, each flow's None values are dropped and its ``scopes`` default to ``{}``, as
    FastAPI's model fills them in."""
    dump = getattr(flows, "model_dump", None)
    if dump is not None:
        return dict(dump(by_alias=True, exclude_none=True, mode="json"))
    plain: dict[str, Any] = {}
    for name, flow in dict(flows).items():
        flow_dump = getattr(flow, "model_dump", None)
        if flow_dump is not None:
            plain[name] = dict(flow_dump(by_alias=True, exclude_none=True, mode="json"))
        elif flow is not None:
            plain[name] = {"scopes": {}} | {k: v for k, v in flow.items() if v is not None}
    return plain


class OAuth2(AuthorizationHeaderScheme):
    """OAuth2 with the given `flows` (OpenAPI's OAuth Flows object); gives the whole ``Authorization`` header."""

    def __init__(self, *, flows: Any = None, scheme_name: Optional[str] = None,
                 description: Optional[str] = None, auto_error: bool = True) -> None:
        self.model = scheme_model("oauth2", description, flows=_flows_dict(flows or {}))
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def _bearer_token(self, request: HTTPConnection) -> Optional[str]:
        authorization = request.headers.get("authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "bearer":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return param


class OAuth2PasswordBearer(OAuth2):
    """The OAuth2 password flow (tokens from `tokenUrl`); gives the bearer token."""

    def __init__(self, tokenUrl: str, scheme_name: Optional[str] = None,
                 scopes: Optional[dict[str, str]] = None, description: Optional[str] = None,
                 auto_error: bool = True, refreshUrl: Optional[str] = None) -> None:
        flow = {"tokenUrl": tokenUrl, "refreshUrl": refreshUrl, "scopes": scopes or {}}
        super().__init__(flows={"password": flow}, scheme_name=scheme_name, description=description,
                         auto_error=auto_error)

    async def __call__(self, request: HTTPConnection) -> Optional[str]:
        return self._bearer_token(request)


class OAuth2AuthorizationCodeBearer(OAuth2):
    """The OAuth2 authorization-code flow (`authorizationUrl`, `tokenUrl`); gives the bearer token."""

    def __init__(self, authorizationUrl: str, tokenUrl: str,
                 refreshUrl: Optional[str] = None, scheme_name: Optional[str] = None,
                 scopes: Optional[dict[str, str]] = None, description: Optional[str] = None,
                 auto_error: bool = True) -> None:
        flow = {"authorizationUrl": authorizationUrl, "tokenUrl": tokenUrl, "refreshUrl": refreshUrl,
                "scopes": scopes or {}}
        super().__init__(flows={"authorizationCode": flow}, scheme_name=scheme_name, description=description,
                         auto_error=auto_error)

    async def __call__(self, request: HTTPConnection) -> Optional[str]:
        return self._bearer_token(request)
