"""`covet.security`: the security schemes as dependencies (served: missing / invalid / valid credentials,
auto_error=False), their OpenAPI scheme objects, ``Security(..., scopes=...)`` and `SecurityScopes`, the
OAuth2 password form; and the parameter features that came with them (parameter models, Annotated validators,
strict_content_type)."""

import base64
from typing import Annotated, Any, Optional

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict

from covet import CovetPy, Depends, Header, HTTPException, Query, Security
from covet.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OpenIdConnect,
    SecurityBase,
    SecurityScopes,
)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _unauthorized(response: Any, challenge: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["www-authenticate"] == challenge


class TestSchemeModels:
    def test_openapi_objects(self) -> None:
        assert HTTPBasic().model == {"type": "http", "scheme": "basic"}
        assert HTTPBearer(bearerFormat="JWT", description="d").model == {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "d"}
        assert HTTPDigest(scheme_name="D").scheme_name == "D"
        assert APIKeyHeader(name="X-Key").model == {"type": "apiKey", "in": "header", "name": "X-Key"}
        assert APIKeyCookie(name="s").scheme_name == "APIKeyCookie"
        assert OAuth2PasswordBearer(tokenUrl="token", scopes={"a": "A"}).model == {
            "type": "oauth2", "flows": {"password": {"tokenUrl": "token", "scopes": {"a": "A"}}}}
        assert OAuth2AuthorizationCodeBearer("https://a", "https://t", refreshUrl="https://r").model["flows"] == {
            "authorizationCode": {"authorizationUrl": "https://a", "tokenUrl": "https://t",
                                  "refreshUrl": "https://r", "scopes": {}}}
        assert OpenIdConnect(openIdConnectUrl="https://o").model == {"type": "openIdConnect",
                                                                      "openIdConnectUrl": "https://o"}
        assert all(isinstance(s, SecurityBase) for s in (HTTPBasic(), APIKeyQuery(name="k"), OpenIdConnect(
            openIdConnectUrl="u")))

    def test_security_marker_and_plan(self) -> None:
        scheme = OAuth2PasswordBearer(tokenUrl="token")
        marker = Security(scheme, scopes=["a", "b"])
        assert isinstance(marker, Depends) and marker.scopes == ("a", "b") and marker.dependency is scheme

        async def handler(token: Annotated[str, marker]) -> None: ...

        app = CovetPy()
        route = app.add_api_route("/x", handler)
        (dependency,) = route.plan.dependencies
        assert dependency.call is scheme and dependency.own_scopes == ("a", "b")
        assert dependency.plan.scopes == ("a", "b")


def _schemes_app() -> CovetPy:
    app = CovetPy()
    basic = HTTPBasic(realm="r")
    bearer = HTTPBearer(auto_error=False)
    key = APIKeyHeader(name="X-API-Key")
    cookie = APIKeyCookie(name="session", auto_error=False)

    @app.get("/basic")
    def read_basic(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> dict[str, str]:
        return {"user": credentials.username, "password": credentials.password}

    @app.get("/bearer")
    async def read_bearer(
            credentials: Annotated[Optional[HTTPAuthorizationCredentials], Depends(bearer)]) -> Any:
        return None if credentials is None else credentials.model_dump()

    @app.get("/key")
    async def read_key(value: Annotated[str, Depends(key)],
                       session: Annotated[Optional[str], Depends(cookie)]) -> dict[str, Any]:
        return {"key": value, "session": session}

    return app


class TestServedSchemes:
    def test_http_basic(self, make_client: Any) -> None:
        client = make_client(_schemes_app())
        _unauthorized(client.get("/basic"), 'Basic realm="r"')
        _unauthorized(client.get("/basic", headers={"Authorization": "Basic !!!"}), 'Basic realm="r"')
        _unauthorized(client.get("/basic", headers={"Authorization": "Bearer x"}), 'Basic realm="r"')
        assert client.get("/basic", headers=_basic("ann", "p:w")).json() == {"user": "ann", "password": "p:w"}

    def test_optional_bearer(self, make_client: Any) -> None:
        client = make_client(_schemes_app())
        assert client.get("/bearer").json() is None
        assert client.get("/bearer", headers={"Authorization": "Basic x"}).json() is None
        assert client.get("/bearer", headers={"Authorization": "Bearer t1"}).json() == {
            "scheme": "Bearer", "credentials": "t1"}

    def test_api_keys(self, make_client: Any) -> None:
        client = make_client(_schemes_app())
        _unauthorized(client.get("/key"), "APIKey")
        assert client.get("/key", headers={"X-API-Key": "k", "Cookie": "session=s"}).json() == {
            "key": "k", "session": "s"}


def _scopes_app(calls: list[list[str]]) -> CovetPy:
    app = CovetPy()
    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "", "items": ""})
    grants = {"alice": {"me", "items"}, "bob": {"me"}}

    async def current_user(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> str:
        calls.append(security_scopes.scopes)
        if not set(security_scopes.scopes) <= grants.get(token, set()):
            raise HTTPException(401, "Not enough permissions",
                                headers={"WWW-Authenticate": f'Bearer scope="{security_scopes.scope_str}"'})
        return token

    async def active(user: Annotated[str, Security(current_user, scopes=["me"])]) -> str:
        return user

    @app.get("/items")
    async def items(user: Annotated[str, Security(active, scopes=["items"])]) -> str:
        return user

    @app.get("/both")
    async def both(a: Annotated[str, Security(current_user, scopes=["me"])],
                   b: Annotated[str, Security(current_user, scopes=["me"])],
                   c: Annotated[str, Security(current_user)]) -> list[str]:
        return [a, b, c]

    @app.post("/token")
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
        return {"access_token": form.username, "token_type": "bearer", "scopes": form.scopes}

    return app


class TestScopes:
    def test_scopes_add_up_along_the_chain(self, make_client: Any) -> None:
        calls: list[list[str]] = []
        client = make_client(_scopes_app(calls))
        _unauthorized(client.get("/items"), "Bearer")
        r = client.get("/items", headers={"Authorization": "Bearer bob"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer scope="items me"'
        assert client.get("/items", headers={"Authorization": "Bearer alice"}).json() == "alice"
        assert calls == [["items", "me"], ["items", "me"]]

    def test_cached_per_set_of_scopes(self, make_client: Any) -> None:
        calls: list[list[str]] = []
        client = make_client(_scopes_app(calls))
        assert client.get("/both", headers={"Authorization": "Bearer bob"}).json() == ["bob", "bob", "bob"]
        assert calls == [["me"], []]  # the same scopes share one call; other scopes call again

    def test_override_keeps_the_scopes(self, make_client: Any) -> None:
        app = CovetPy()
        seen: list[list[str]] = []

        async def user(security_scopes: SecurityScopes) -> str:
            return "real"

        async def fake_user(security_scopes: SecurityScopes) -> str:
            seen.append(security_scopes.scopes)
            return "fake"

        @app.get("/x")
        async def handler(u: Annotated[str, Security(user, scopes=["s1"])]) -> str:
            return u

        app.dependency_overrides[user] = fake_user
        assert make_client(app).get("/x").json() == "fake"
        assert seen == [["s1"]]

    def test_password_form(self, make_client: Any) -> None:
        client = make_client(_scopes_app([]))
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        r = client.post("/token", content=b"username=a&password=b&scope=me+items", headers=form)
        assert r.json() == {"access_token": "a", "token_type": "bearer", "scopes": ["me", "items"]}
        r = client.post("/token", content=b"grant_type=other&username=a&password=b", headers=form)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "grant_type"]
        r = client.post("/token", content=b"scope=x", headers=form)
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "username"], ["body", "password"]]


class Item(BaseModel):
    name: str


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = 10
    tags: list[str] = []


class Agent(BaseModel):
    user_agent: str
    x_trace: Optional[str] = None


def _isbn(value: str) -> str:
    if not value.startswith("isbn-"):
        raise ValueError("must start with isbn-")
    return value


class TestParameterFeatures:
    def test_models_as_parameter_groups(self, make_client: Any) -> None:
        app = CovetPy()

        @app.get("/q")
        async def q(filters: Annotated[Filters, Query()]) -> dict[str, Any]:
            return filters.model_dump()

        @app.get("/h")
        async def h(agent: Annotated[Agent, Header()]) -> dict[str, Any]:
            return agent.model_dump()

        client = make_client(app)
        assert client.get("/q?limit=3&tags=a&tags=b").json() == {"limit": 3, "tags": ["a", "b"]}
        r = client.get("/q?limit=3&tool=x")
        assert r.status_code == 422
        assert r.json()["detail"] == [{"type": "extra_forbidden", "loc": ["query", "tool"],
                                       "msg": "Extra inputs are not permitted", "input": "x"}]
        assert client.get("/h", headers={"User-Agent": "ua", "X-Trace": "t"}).json() == {
            "user_agent": "ua", "x_trace": "t"}

    def test_annotated_validators_are_applied(self, make_client: Any) -> None:
        app = CovetPy()

        @app.get("/v")
        async def v(code: Annotated[Optional[str], AfterValidator(lambda c: c and _isbn(c))] = None) -> Any:
            return code

        client = make_client(app)
        assert client.get("/v?code=isbn-1").json() == "isbn-1"
        assert client.get("/v").json() is None
        r = client.get("/v?code=x")
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "value_error"

    def test_strict_content_type(self, make_client: Any) -> None:
        strict, lax = CovetPy(), CovetPy(strict_content_type=False)
        for app in (strict, lax):
            @app.post("/i")
            async def create(item: Item) -> str:
                return item.name

        raw = {"content": b'{"name": "n"}'}
        r = make_client(strict).post("/i", **raw)
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "model_attributes_type"
        assert make_client(lax).post("/i", **raw).json() == "n"
        assert make_client(strict).post("/i", json={"name": "n"}).json() == "n"

    @pytest.mark.parametrize("body", [b"[1]", b'"text"'])
    def test_a_json_non_object_for_a_model(self, make_client: Any, body: bytes) -> None:
        app = CovetPy()

        @app.post("/i")
        async def create(item: Item) -> str:
            return item.name

        r = make_client(app).post("/i", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "model_attributes_type"


def test_security_requirements_for_openapi() -> None:
    """What the OpenAPI generator reads: each scheme in the tree with the scopes declared on the way to it."""
    oauth2 = OAuth2PasswordBearer(tokenUrl="token")
    key = APIKeyQuery(name="k")

    async def user(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> str:
        return token

    async def handler(a: Annotated[str, Security(user, scopes=["me"])],
                      b: Annotated[str, Security(user, scopes=["items", "me"])],
                      c: Annotated[str, Depends(key)]) -> None: ...

    app = CovetPy()
    route = app.add_api_route("/x", handler, dependencies=[Depends(key)])
    assert route.plan.security_requirements() == [(key, ()), (oauth2, ("me",)), (oauth2, ("items", "me"))]


def test_type_aliases_of_annotated_parameters_and_dependencies(make_client: Any) -> None:
    """PEP 695 ``type X = Annotated[...]`` (``TypeAliasType``) for parameters and dependencies."""
    from typing_extensions import TypeAliasType

    async def pagination(skip: int = 0) -> int:
        return skip

    Skip = TypeAliasType("Skip", Annotated[int, Depends(pagination)])  # type: ignore[misc]
    Limit = TypeAliasType("Limit", Annotated[int, Query(ge=1, le=10)])  # type: ignore[misc]
    app = CovetPy()

    @app.get("/a")
    async def aliased(skip: Skip, limit: Limit = 5) -> list[int]:
        return [skip, limit]

    client = make_client(app)
    assert client.get("/a?skip=2&limit=3").json() == [2, 3]
    assert client.get("/a").json() == [0, 5]
    assert client.get("/a?limit=11").json()["detail"][0]["type"] == "less_than_equal"
