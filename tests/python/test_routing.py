"""Path syntax translation, duplicate detection, native routing behaviour seen through the app."""

from __future__ import annotations

import uuid
from typing import Annotated, Optional

import pytest
from pydantic import BaseModel

from covet import Body, Cookie, CovetPy, Header, Path, Query
from covet.routing import Route, parse_path


async def _noop() -> None:
    return None


def _route(path: str, endpoint) -> Route:  # type: ignore[no-untyped-def]
    return Route.build(path, endpoint, ["GET"])


class TestTranslation:
    def test_annotation_picks_the_native_type(self) -> None:
        async def h(a: int, b: float, c: uuid.UUID, d: str, e: bool, f: Optional[int] = None) -> None: ...

        route = _route("/x/{a}/{b}/{c}/{d}/{e}/{f}", h)
        assert route.native_pattern == "/x/{a:int}/{b:float}/{c:uuid}/{d}/{e}/{f:int}"
        # FastAPI answers a mistyped value with 422, so an untyped twin is registered too
        assert route.fallback_pattern == "/x/{a}/{b}/{c}/{d}/{e}/{f}"

    def test_explicit_types_and_catch_all_are_kept(self) -> None:
        async def h(a: int, p: str) -> None: ...

        route = _route("/files/{a:int}/{p:path}", h)
        assert route.native_pattern == "/files/{a:int}/{p:path}"
        assert route.fallback_pattern is None  # written by hand: the user asked for native 404s

    def test_unannotated_and_missing_parameters_are_strings(self) -> None:
        def h(a):  # type: ignore[no-untyped-def]
            return a

        assert _route("/u/{a}/{b}", h).native_pattern == "/u/{a}/{b}"

    def test_static_path(self) -> None:
        route = _route("/health", _noop)
        assert route.native_pattern == "/health" and route.fallback_pattern is None

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            ("users", "must start with '/'"),
            ("/users/{id", "fully literal or exactly one"),
            ("/users/x{id}", "fully literal or exactly one"),
            ("/users/{}", "empty parameter name"),
            ("/users/{1x}", "invalid parameter name"),
            ("/users/{id:date}", "unknown parameter type 'date'"),
            ("/a/{x}/b/{x}", "duplicate parameter name 'x'"),
            ("/a/{p:path}/b", "must be the last segment"),
        ],
    )
    def test_bad_paths_fail_when_the_route_is_added(self, path: str, message: str) -> None:
        app = CovetPy()
        with pytest.raises(ValueError, match=message):
            app.get(path)(_noop)

    def test_parse_path_segments(self) -> None:
        segments = parse_path("/a/{b:int}/c")
        assert segments is not None
        assert [(s.text, s.is_param, s.type) for s in segments] == [("a", False, None), ("b", True, "int"), ("c", False, None)]
        assert parse_path("/static/only") is None


class TestDuplicates:
    def test_same_method_same_shape_names_both_routes(self) -> None:
        app = CovetPy(duplicate_routes="error")

        @app.get("/users/{user_id}")
        async def first(user_id: int) -> None: ...

        with pytest.raises(ValueError) as info:

            @app.get("/users/{uid}")
            async def second(uid: int) -> None: ...

        message = str(info.value)
        assert "/users/{uid}" in message and "second" in message
        assert "/users/{user_id}" in message and "first" in message
        assert "duplicate_routes='error'" in message

    def test_first_route_wins_by_default(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy(openapi_url=None)

        @app.get("/users/{user_id}")
        async def first(user_id: int) -> dict:
            return {"first": user_id}

        @app.api_route("/users/{uid}", methods=["GET", "DELETE"])
        async def second(uid: int) -> dict:
            return {"second": uid}

        assert [r.name for r in app.routes] == ["first", "second"]  # both listed, as in FastAPI
        client = make_client(app)
        assert client.get("/users/3").json() == {"first": 3}
        assert client.delete("/users/3").json() == {"second": 3}  # the method the first route lacks

    def test_different_types_or_methods_are_not_duplicates(self) -> None:
        app = CovetPy(openapi_url=None)  # no docs pages in app.routes (nor at /docs)

        @app.get("/items/{item_id}")
        async def by_id(item_id: int) -> None: ...

        @app.get("/items/{name}")
        async def by_name(name: str) -> None: ...

        @app.post("/items/{item_id}")
        async def post(item_id: int) -> None: ...

        assert [r.name for r in app.routes] == ["by_id", "by_name", "post"]

    def test_constant_route_clashes_with_handler_route(self) -> None:
        app = CovetPy(duplicate_routes="error")
        app.add_constant_route("/health", {"ok": True})
        with pytest.raises(ValueError, match="/health"):
            app.get("/health")(_noop)

    def test_route_method_list(self) -> None:
        app = CovetPy(openapi_url=None)  # no docs pages in app.routes (nor at /docs)

        @app.route("/multi", methods=["GET", "post"])
        async def multi() -> None: ...

        (route,) = app.routes
        assert route.methods == ("GET", "POST")
        with pytest.raises(ValueError, match="unknown HTTP method"):
            app.route("/x", methods=["FETCH"])(_noop)


def test_route_listing_describes_routes() -> None:
    app = CovetPy(openapi_url=None)  # no docs pages in app.routes (nor at /docs)

    @app.get("/a")
    async def a() -> None: ...

    @app.put("/b/{x}")
    def b(x: int) -> None: ...

    app.add_constant_route("/c", "x")
    described = [r.describe() for r in app.routes]
    assert described == ["GET /a -> a", "PUT /b/{x} -> b", "GET /c -> constant 200"]


class TestServedRouting:
    def test_typed_routes_share_a_prefix(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/items/{item_id}")
        async def by_id(item_id: int) -> dict:
            return {"id": item_id}

        @app.get("/items/{name}")
        async def by_name(name: str) -> dict:
            return {"name": name}

        @app.get("/items/special")
        async def special() -> str:
            return "special"

        client = make_client(app)
        assert client.get("/items/42").json() == {"id": 42}
        assert client.get("/items/bolt").json() == {"name": "bolt"}
        assert client.get("/items/special").json() == "special"

    def test_mistyped_path_value_is_422_like_fastapi(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/users/{user_id}")
        async def get_user(user_id: int) -> dict:
            return {"id": user_id}

        client = make_client(app)
        r = client.get("/users/abc")
        assert r.status_code == 422
        assert r.json() == {"detail": [{"type": "int_parsing", "loc": ["path", "user_id"],
                                        "msg": "Input should be a valid integer, unable to parse string as an integer",
                                        "input": "abc"}]}
        # beyond int64 the native int matcher declines; the fallback still converts like pydantic
        assert client.get("/users/123456789012345678901234567890").json() == {"id": 123456789012345678901234567890}

    def test_explicit_native_type_gives_404(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/n/{x:int}")
        async def n(x: int) -> int:
            return x

        client = make_client(app)
        assert client.get("/n/7").json() == 7
        assert client.get("/n/seven").status_code == 404

    def test_automatic_head_and_native_405(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy(auto_head=True)
        seen: list[str] = []

        @app.get("/thing")
        async def thing() -> dict:
            return {"a": 1}

        @app.middleware("http")
        async def record(request, call_next):  # type: ignore[no-untyped-def]
            seen.append(request.method)
            return await call_next(request)

        client = make_client(app)
        head = client.head("/thing")
        assert head.status_code == 200 and head.content == b""
        r = client.delete("/thing")
        assert r.status_code == 405
        assert [m.strip() for m in r.headers["allow"].split(",")] == ["GET", "HEAD"]
        missing = client.get("/missing")
        assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})  # FastAPI's body
        assert missing.headers["content-type"] == "application/json"
        assert r.json() == {"detail": "Method Not Allowed"}
        assert seen == ["HEAD", "DELETE", "GET"]  # the middleware sees 404 and 405, as in FastAPI

    def test_head_is_405_by_default_as_fastapi(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/thing")
        async def thing() -> dict:
            return {"a": 1}

        @app.head("/both")
        @app.get("/both")
        async def both() -> dict:
            return {"b": 1}

        client = make_client(app)
        head = client.head("/thing")
        assert (head.status_code, head.headers["allow"], head.content) == (405, "GET", b"")
        r = client.delete("/thing")
        assert (r.status_code, r.headers["allow"], r.json()) == (405, "GET", {"detail": "Method Not Allowed"})
        assert client.head("/both").status_code == 200
        missing = client.get("/missing")  # no middleware: the engine's 404
        assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})

    def test_path_catch_all_and_percent_decoding(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/files/{file_path:path}")
        async def files(file_path: str) -> str:
            return file_path

        @app.get("/tag/{name}")
        async def tag(name: str) -> str:
            return name

        client = make_client(app)
        assert client.get("/files/a/b/c.txt").json() == "a/b/c.txt"
        assert client.get("/tag/caf%C3%A9%20bar").json() == "café bar"

    def test_path_constraints(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/page/{n}")
        async def page(n: int = Path(ge=1)) -> int:
            return n

        client = make_client(app)
        assert client.get("/page/3").json() == 3
        r = client.get("/page/0")
        assert r.status_code == 422
        (err,) = r.json()["detail"]
        assert err["type"] == "greater_than_equal" and err["loc"] == ["path", "n"] and err["ctx"] == {"ge": 1}


class TestRedirectSlashes:
    """FastAPI/Starlette's ``redirect_slashes``: 307 to the other slash form when only that form has a route."""

    @staticmethod
    def _app(**options) -> CovetPy:  # type: ignore[no-untyped-def]
        app = CovetPy(**options)

        @app.get("/items/")
        async def items() -> dict:
            return {"items": []}

        @app.post("/things")
        async def things() -> dict:
            return {"things": []}

        @app.get("/users/{user_id}")
        async def user(user_id: int) -> dict:
            return {"id": user_id}

        @app.get("/users/me/")
        async def me() -> dict:
            return {"me": True}

        return app

    def test_both_directions_any_method_query_kept(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(self._app(), follow_redirects=False)
        r = client.get("/items?q=1&r=a%20b")
        assert (r.status_code, r.content) == (307, b"")
        assert r.headers["location"] == "http://testserver/items/?q=1&r=a%20b"  # absolute, as Starlette's
        assert client.get("/items/").json() == {"items": []}
        # method-independent: the redirect is answered before the method is looked at, as in Starlette
        r = client.post("/items")
        assert (r.status_code, r.headers["location"]) == (307, "http://testserver/items/")
        assert client.head("/items").status_code == 307
        r = client.get("/things/")
        assert (r.status_code, r.headers["location"]) == (307, "http://testserver/things")
        assert client.post("/things").json() == {"things": []}

    def test_only_when_the_other_form_has_a_route(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(self._app(), follow_redirects=False)
        assert client.get("/nothing/").status_code == 404
        assert client.get("/nothing").status_code == 404
        assert client.get("/items//").status_code == 404  # Starlette strips every slash: /items has no route
        r = client.get("/things")  # a route on the path, another method: 405, not a redirect
        assert (r.status_code, r.headers["allow"]) == (405, "POST")

    def test_parameters_and_a_more_specific_route(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(self._app(), follow_redirects=False)
        r = client.get("/users/7/")
        assert (r.status_code, r.headers["location"]) == (307, "http://testserver/users/7")
        assert client.get("/users/7").json() == {"id": 7}
        # /users/me is /users/{user_id} (first match in FastAPI: 422), never a redirect to /users/me/
        assert client.get("/users/me").status_code == 422
        assert client.get("/users/me/").json() == {"me": True}

    def test_off(self, make_client) -> None:  # type: ignore[no-untyped-def]
        client = make_client(self._app(redirect_slashes=False))
        assert client.get("/items").status_code == 404
        assert client.get("/things/").status_code == 404

    def test_a_route_already_there_is_never_shadowed(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy(openapi_url=None)  # no docs pages in app.routes (nor at /docs)

        @app.get("/{name}")
        async def anything(name: str) -> str:
            return f"name {name}"

        @app.get("/docs/")
        async def docs() -> str:
            return "docs"

        client = make_client(app, follow_redirects=False)
        assert client.get("/docs").json() == "name docs"  # /{name} answers it, as in FastAPI
        assert client.get("/docs/").json() == "docs"
        r = client.get("/other/")
        assert (r.status_code, r.headers["location"]) == (307, "http://testserver/other")


class Item(BaseModel):
    name: str


class TestOpenAPIKeywords:
    """FastAPI's OpenAPI-only keywords are accepted and kept (for the schema) without changing what is served."""

    def test_app_metadata(self) -> None:
        app = CovetPy(title="Shop", version="2.0", description="the shop", summary="s",
                      servers=[{"url": "https://shop.example"}], openapi_url="/api/openapi.json", docs_url=None,
                      redoc_url="/api/redoc", openapi_tags=[{"name": "items", "description": "Items"}],
                      terms_of_service="https://shop.example/tos", contact={"name": "Dee"},
                      license_info={"name": "MIT"})
        assert (app.title, app.version, app.description, app.summary) == ("Shop", "2.0", "the shop", "s")
        assert app.servers == [{"url": "https://shop.example"}]
        assert (app.openapi_url, app.docs_url, app.redoc_url) == ("/api/openapi.json", None, "/api/redoc")
        assert app.openapi_tags == [{"name": "items", "description": "Items"}]
        assert (app.terms_of_service, app.contact, app.license_info) == (
            "https://shop.example/tos", {"name": "Dee"}, {"name": "MIT"})
        defaults = CovetPy()
        assert (defaults.description, defaults.servers, defaults.openapi_tags) == ("", [], None)
        assert (defaults.openapi_url, defaults.docs_url, defaults.redoc_url) == ("/openapi.json", "/docs", "/redoc")

    def test_route_keywords_are_stored_and_change_nothing(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy(openapi_url=None)  # no docs pages in app.routes (nor at /docs)

        @app.get("/items/{item_id}", tags=["items"], summary="Read an item", description="Long text",
                 responses={404: {"description": "Not found"}, "default": {"description": "Other"}},
                 deprecated=True, openapi_extra={"x-internal": True}, operation_id="read_item",
                 include_in_schema=False, name="read", response_description="The item")
        async def read_item(
            item_id: Annotated[int, Path(title="Id", description="the id", deprecated=False, examples=[1])],
            q: Annotated[str, Query(deprecated=True, examples=["a"], include_in_schema=False, max_length=3)] = "x",
            x_tag: Annotated[Optional[str], Header(title="Tag", description="a tag", examples=["t"])] = None,
            session: Annotated[Optional[str], Cookie(deprecated=True, include_in_schema=False)] = None,
        ) -> dict:
            return {"id": item_id, "q": q, "tag": x_tag, "session": session}

        @app.post("/items", status_code=201, tags=["items"], summary="Create")
        async def create(item: Annotated[Item, Body(examples=[{"name": "bolt"}], deprecated=True,
                                                    title="Item", description="the item")]) -> Item:
            return item

        route = app.routes[0]
        assert route.tags == ["items"] and (route.summary, route.description) == ("Read an item", "Long text")
        assert route.responses == {404: {"description": "Not found"}, "default": {"description": "Other"}}
        assert (route.deprecated, route.openapi_extra, route.operation_id) == (True, {"x-internal": True},
                                                                               "read_item")
        assert (route.include_in_schema, route.name, route.response_description) == (False, "read", "The item")
        plain = app.routes[1]
        assert (plain.tags, plain.description, plain.responses, plain.deprecated, plain.include_in_schema) == (
            ["items"], None, {}, None, True)
        assert plain.response_description == "Successful Response"  # FastAPI's default

        client = make_client(app)
        r = client.get("/items/3?q=ab", headers={"x-tag": "t1", "cookie": "session=s1"})
        assert r.json() == {"id": 3, "q": "ab", "tag": "t1", "session": "s1"}
        assert client.get("/items/3?q=abcd").status_code == 422  # constraints next to them still apply
        r = client.post("/items", json={"name": "bolt"})
        assert (r.status_code, r.json()) == (201, {"name": "bolt"})
