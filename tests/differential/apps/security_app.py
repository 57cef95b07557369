"""Sample app: the security utilities — every scheme with missing / invalid / valid credentials, auto_error=False,
OAuth2 scopes with Security() and SecurityScopes, and an OAuth2PasswordRequestForm token endpoint."""

from __future__ import annotations

from typing import Annotated

from _framework import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    Depends,
    FastAPI,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
    HTTPException,
    OAuth2,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    OpenIdConnect,
    Security,
    SecurityScopes,
)

app = FastAPI()

basic = HTTPBasic()
basic_realm = HTTPBasic(realm="simple", auto_error=False)
bearer = HTTPBearer(bearerFormat="JWT", description="A JWT")
bearer_optional = HTTPBearer(auto_error=False)
digest = HTTPDigest()
key_header = APIKeyHeader(name="X-API-Key")
key_query = APIKeyQuery(name="api_key", auto_error=False)
key_cookie = APIKeyCookie(name="session", scheme_name="SessionCookie")
oauth2_password = OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "Read yourself.", "items": "Read items."})
oauth2_optional = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)
oauth2_code = OAuth2AuthorizationCodeBearer(authorizationUrl="https://auth/authorize", tokenUrl="https://auth/token")
oauth2_plain = OAuth2(flows={"clientCredentials": {"tokenUrl": "https://auth/cc", "scopes": {}}})
openid = OpenIdConnect(openIdConnectUrl="https://auth/.well-known/openid-configuration")

USERS = {"alice": {"password": "secret", "scopes": ["me", "items"]}, "bob": {"password": "pw", "scopes": ["me"]}}


@app.get("/basic")
def read_basic(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> dict:
    return {"username": credentials.username, "password": credentials.password}


@app.get("/basic-realm")
def read_basic_realm(credentials: Annotated[HTTPBasicCredentials | None, Depends(basic_realm)]) -> dict:
    return {"credentials": None if credentials is None else credentials.username}


@app.get("/basic-check")
def read_basic_checked(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> dict:
    user = USERS.get(credentials.username)
    if user is None or user["password"] != credentials.password:
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})
    return {"username": credentials.username}


@app.get("/bearer")
async def read_bearer(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> dict:
    return {"scheme": credentials.scheme, "credentials": credentials.credentials}


@app.get("/bearer-optional")
async def read_bearer_optional(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_optional)]) -> dict:
    return {"credentials": None if credentials is None else credentials.credentials}


@app.get("/digest")
async def read_digest(credentials: Annotated[HTTPAuthorizationCredentials, Depends(digest)]) -> dict:
    return {"scheme": credentials.scheme, "credentials": credentials.credentials}


@app.get("/key-header")
async def read_key_header(key: Annotated[str, Depends(key_header)]) -> dict:
    return {"key": key}


@app.get("/key-query")
async def read_key_query(key: Annotated[str | None, Depends(key_query)]) -> dict:
    return {"key": key}


@app.get("/key-cookie")
async def read_key_cookie(key: Annotated[str, Security(key_cookie)]) -> dict:
    return {"key": key}


@app.get("/oauth2-optional")
async def read_oauth2_optional(token: Annotated[str | None, Depends(oauth2_optional)]) -> dict:
    return {"token": token}


@app.get("/oauth2-code")
async def read_oauth2_code(token: Annotated[str, Depends(oauth2_code)]) -> dict:
    return {"token": token}


@app.get("/oauth2-plain")
async def read_oauth2_plain(authorization: Annotated[str, Depends(oauth2_plain)]) -> dict:
    return {"authorization": authorization}


@app.get("/openid")
async def read_openid(authorization: Annotated[str, Depends(openid)]) -> dict:
    return {"authorization": authorization}


@app.post("/token")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict:
    user = USERS.get(form.username)
    if user is None or user["password"] != form.password:
        raise HTTPException(status_code=400, detail="Incorrect username or password")
    return {"access_token": form.username, "token_type": "bearer", "scopes": form.scopes,
            "grant_type": form.grant_type, "client_id": form.client_id}


@app.post("/token-strict")
async def login_strict(form: Annotated[OAuth2PasswordRequestFormStrict, Depends()]) -> dict:
    return {"username": form.username, "grant_type": form.grant_type}


async def current_user(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2_password)]) -> dict:
    authenticate = f'Bearer scope="{security_scopes.scope_str}"' if security_scopes.scopes else "Bearer"
    user = USERS.get(token)
    if user is None:
        raise HTTPException(status_code=401, detail="Could not validate credentials",
                            headers={"WWW-Authenticate": authenticate})
    for scope in security_scopes.scopes:
        if scope not in user["scopes"]:
            raise HTTPException(status_code=401, detail="Not enough permissions",
                                headers={"WWW-Authenticate": authenticate})
    return {"username": token, "required": security_scopes.scopes}


async def current_active_user(user: Annotated[dict, Security(current_user, scopes=["me"])]) -> dict:
    return user


@app.get("/users/me")
async def read_me(user: Annotated[dict, Depends(current_active_user)]) -> dict:
    return user


@app.get("/users/me/items")
async def read_my_items(user: Annotated[dict, Security(current_active_user, scopes=["items"])]) -> dict:
    return {"owner": user["username"], "required": user["required"]}


@app.get("/scopes-twice")
async def scopes_twice(a: Annotated[dict, Security(current_user, scopes=["me"])],
                       b: Annotated[dict, Security(current_user, scopes=["items"])]) -> dict:
    return {"a": a["required"], "b": b["required"]}


@app.get("/route-security", dependencies=[Security(current_user, scopes=["items"])])
async def route_security() -> dict:
    return {"ok": True}


@app.get("/scopes-direct")
async def scopes_direct(security_scopes: SecurityScopes) -> dict:
    return {"scopes": security_scopes.scopes, "scope_str": security_scopes.scope_str}


@app.get("/either")
async def either(bearer_token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_optional)],
                 key: Annotated[str | None, Depends(key_query)]) -> dict:
    if bearer_token is None and key is None:
        raise HTTPException(status_code=403, detail="Give a bearer token or an api_key")
    return {"via": "bearer" if bearer_token is not None else "key"}


@app.get("/models")
async def models() -> dict:
    schemes = [basic, basic_realm, bearer, digest, key_header, key_query, key_cookie, oauth2_password, oauth2_code,
               oauth2_plain, openid]
    out = {}
    for scheme in schemes:
        model = scheme.model
        if hasattr(model, "model_dump"):
            model = model.model_dump(by_alias=True, exclude_none=True, mode="json")
        out[scheme.scheme_name + ("" if scheme.scheme_name not in out else "2")] = model
    return out
