"""Authorization through real sockets: ``@requires`` and ``Security(..., scopes=[...])`` over JWTs (verified
natively), API keys and session logins; 401 with the right ``WWW-Authenticate`` when the request is not
authenticated, 403 (``insufficient_scope`` for bearer tokens) when it is but lacks a scope or a role."""

import time
from typing import Annotated, Any

import pytest

jwt = pytest.importorskip("jwt")  # PyJWT signs the test tokens (requirements-dev.txt)

from covet import CovetPy, Depends, Request, Security  # noqa: E402
from covet.middleware.sessions import SessionMiddleware  # noqa: E402
from covet.security import (  # noqa: E402
    APIKeyAuth,
    APIKeyStore,
    JWTBearer,
    Principal,
    SecurityScopes,
    SessionAuth,
    get_principal,
    login,
    requires,
)

SECRET = b"k" * 32


def _token(**claims: Any) -> dict[str, str]:
    now = int(time.time())
    body = {"sub": "ann", "exp": now + 300, **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")}


def _app() -> CovetPy:
    app = CovetPy()
    auth = JWTBearer(algorithms=["HS256"], keys=SECRET, realm="api")

    @app.get("/reports")
    @requires("reports:read", auth=auth)
    async def reports(request: Request) -> dict[str, Any]:
        principal = request.state.principal
        return {"sub": principal.id, "via": principal.via}

    @app.get("/admin")
    @requires(roles=["admin"], auth=auth)
    def admin() -> dict[str, bool]:  # a sync endpoint (run in the pool) keeps working under @requires
        return {"admin": True}

    async def current_user(security_scopes: SecurityScopes,
                           claims: Annotated[dict[str, Any], Security(auth, scopes=["profile"])]) -> str:
        return f"{claims['sub']}:{security_scopes.scope_str}"

    @app.get("/chain")
    async def chain(user: Annotated[str, Security(current_user, scopes=["items"])]) -> dict[str, str]:
        return {"user": user}

    @app.get("/any")
    @requires()  # authenticated by whoever recorded a principal before (here: the route's dependency)
    async def anyone(request: Request) -> dict[str, str]:
        principal = get_principal(request)
        assert principal is not None
        return {"sub": principal.id}

    app.add_api_route("/via-dependency", anyone, dependencies=[Depends(auth)])
    return app


class TestBearer:
    def test_401_without_or_with_a_bad_token_403_without_the_scope(self, serve: Any) -> None:
        client = serve(_app())
        r = client.get("/reports")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="api"'
        r = client.get("/reports", headers={"Authorization": "Bearer abc.def.ghi"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Bearer realm="api", error="invalid_token"')
        r = client.get("/reports", headers=_token(scope="other"))
        assert r.status_code == 403
        assert r.json() == {"detail": "Not enough permissions"}
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert 'scope="reports:read"' in r.headers["www-authenticate"]
        r = client.get("/reports", headers=_token(scope="other reports:read"))
        assert r.json() == {"sub": "ann", "via": "jwt"}

    def test_roles_from_the_claims(self, serve: Any) -> None:
        client = serve(_app())
        r = client.get("/admin", headers=_token(roles=["user"]))
        assert r.status_code == 403
        assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'  # a role, no scope missing
        assert client.get("/admin", headers=_token(roles=["user", "admin"])).json() == {"admin": True}
        assert client.get("/admin", headers=_token(realm_access={"roles": ["admin"]})).json() == {"admin": True}
        assert client.get("/admin").status_code == 401

    def test_scopes_accumulate_down_the_tree(self, serve: Any) -> None:
        client = serve(_app())
        r = client.get("/chain", headers=_token(scope="profile"))
        assert r.status_code == 403
        assert 'scope="items profile"' in r.headers["www-authenticate"]  # the route's first, as FastAPI
        r = client.get("/chain", headers=_token(scope="items profile"))
        # current_user's SecurityScopes: those declared on the way to it (the route's "items"); its own
        # Security(auth, scopes=["profile"]) adds "profile" for `auth` only, as in FastAPI.
        assert r.json() == {"user": "ann:items"}

    def test_requires_without_auth_uses_the_recorded_principal(self, serve: Any) -> None:
        client = serve(_app())
        r = client.get("/any")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert client.get("/via-dependency", headers=_token()).json() == {"sub": "ann"}

    def test_openapi_lists_the_scheme_and_scopes(self, serve: Any) -> None:
        schema = serve(_app()).get("/openapi.json").json()
        assert schema["paths"]["/reports"]["get"]["security"] == [{"JWTBearer": ["reports:read"]}]
        assert "JWTBearer" in schema["components"]["securitySchemes"]


def test_requires_over_api_keys_and_sessions(make_client: Any) -> None:
    import asyncio

    store = APIKeyStore()
    key, _ = asyncio.run(store.issue("svc", scopes=["read"], roles=["robot"]))
    api_key = APIKeyAuth(store)
    app = CovetPy()
    app.add_middleware(SessionMiddleware, secret_key="s" * 32, https_only=False)

    @app.get("/read")
    @requires("read", auth=api_key)
    async def read(request: Request) -> dict[str, Any]:
        p = request.state.principal
        return {"id": p.id, "via": p.via, "roles": sorted(p.roles)}

    @app.get("/write")
    @requires("write", auth=api_key)
    async def write() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/login")
    async def do_login(request: Request, admin: bool = False) -> dict[str, str]:
        login(request, "bob", roles=["admin"] if admin else [])
        return {"ok": "yes"}

    @app.get("/console")
    @requires(roles=["admin"], auth=SessionAuth())
    async def console(who: Annotated[Principal, Depends(SessionAuth())]) -> dict[str, str]:
        return {"id": who.id, "via": who.via}

    client = make_client(app)
    assert client.get("/read").headers["www-authenticate"] == "APIKey"
    assert client.get("/read", headers={"X-API-Key": key}).json() == {"id": "svc", "via": "api_key",
                                                                       "roles": ["robot"]}
    r = client.get("/write", headers={"X-API-Key": key})
    assert r.status_code == 403 and "www-authenticate" not in r.headers
    r = client.get("/console")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Session"
    client.post("/login")
    assert client.get("/console").status_code == 403  # logged in, not an admin
    client.post("/login?admin=true")
    assert client.get("/console").json() == {"id": "bob", "via": "session"}
