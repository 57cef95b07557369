"""``Depends``: dependency plans, solving, caching, teardown, overrides — on the plan, and served."""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, AsyncIterator, Iterator, Optional

import pytest
from pydantic import BaseModel, computed_field

from covet import (
    Body,
    Cookie,
    CovetPy,
    Depends,
    Form,
    Header,
    HTTPException,
    JSONResponse,
    Request,
    RequestValidationError,
    Response,
    UploadFile,
)
from covet.params import RequestPlan, build_plan


class Native:
    """Just enough of a native request for `Request`."""

    def __init__(self, query: str = "", headers: Optional[list[tuple[str, str]]] = None, body: bytes = b"",
                 params: Optional[dict[str, str]] = None, method: str = "GET", path: str = "/") -> None:
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = headers or []
        self.body = body
        self.params = params or {}
        self.client = ("127.0.0.1", 5000)
        self.http_version = "1.1"

    def header(self, name: str) -> Optional[str]:  # the engine's lookups: case-insensitive
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class App:
    """What `solve` reads from the app: ``dependency_overrides``."""

    def __init__(self) -> None:
        self.dependency_overrides: dict[Any, Any] = {}


def solve(plan: RequestPlan, native: Native, app: Any = None, executor: Any = None,
          body: Optional[Any] = None) -> dict[str, Any]:
    """Solves `plan` for one request; `body(kwargs)` runs inside the scope (like the handler)."""

    async def run() -> dict[str, Any]:
        async with plan.solve(Request(native, app), executor) as kwargs:
            if body is not None:
                body(kwargs)
            return kwargs

    return asyncio.run(run())


def errors_of(exc_info: pytest.ExceptionInfo[RequestValidationError]) -> list[tuple[tuple[Any, ...], str]]:
    return [(tuple(e["loc"]), e["type"]) for e in exc_info.value.errors()]


# --- dependencies used below ----------------------------------------------------------------------


async def pagination(skip: int = 0, limit: int = 10) -> dict[str, int]:
    return {"skip": skip, "limit": limit}


def token(x_token: str = Header()) -> str:
    return x_token


class Settings:
    def __init__(self, mode: str = "prod") -> None:
        self.mode = mode


class RoleChecker:
    """A parameterised dependency: an instance with an async ``__call__``."""

    def __init__(self, role: str) -> None:
        self.role = role

    async def __call__(self, x_role: str = Header()) -> bool:
        return x_role == self.role


class Item(BaseModel):
    name: str


class User(BaseModel):
    id: int


# --- on the plan -------------------------------------------------------------------------------------


class TestPlan:
    def test_dependencies_are_read_at_registration(self) -> None:
        async def handler(page: dict = Depends(pagination), tok: Annotated[str, Depends(token)] = "",
                          settings: Settings = Depends(), q: str = "") -> None: ...

        plan = build_plan(handler, [])
        assert [(d.name, d.kind) for d in plan.dependencies] == [("page", "async"), ("tok", "sync"),
                                                                  ("settings", "sync")]
        assert plan.dependencies[2].call is Settings
        assert [s.name for s in plan.specs] == ["q"]  # dependencies are not parameters of the handler's own
        assert plan.needs_request and not plan.trivial
        assert [s.key for s in plan.dependencies[1].plan.header] == ["x-token"]

    def test_plans_without_dependencies_are_unchanged(self) -> None:
        async def handler(a: int, q: str = "") -> None: ...

        plan = build_plan(handler, ["a"])
        assert plan.dependencies == () and not plan.needs_request
        assert plan.extract(Native(query="q=x", params={"a": "1"}), None) == {"a": 1, "q": "x"}
        assert build_plan(lambda: None, []).trivial

    def test_kinds(self) -> None:
        def gen() -> Iterator[int]:
            yield 1

        async def agen() -> AsyncIterator[int]:
            yield 1

        class AsyncCallable:
            async def __call__(self) -> int:
                return 1

        async def handler(a: int = Depends(gen), b: int = Depends(agen), c: int = Depends(AsyncCallable()),
                          d: int = Depends(functools.partial(pagination, limit=5))) -> None: ...

        assert [d.kind for d in build_plan(handler, []).dependencies] == ["gen", "asyncgen", "async", "async"]

    def test_route_dependencies(self) -> None:
        async def handler() -> None: ...

        plan = build_plan(handler, [], [Depends(token)])
        assert [(d.name, d.call) for d in plan.dependencies] == [(None, token)]
        assert not plan.trivial and plan.needs_request
        with pytest.raises(TypeError, match="Depends"):
            build_plan(handler, [], [token])  # type: ignore[list-item]

    def test_depends_without_a_callable_needs_an_annotation(self) -> None:
        async def handler(x=Depends()) -> None: ...  # type: ignore[no-untyped-def]

        with pytest.raises(TypeError, match="needs a class"):
            build_plan(handler, [])
        with pytest.raises(TypeError, match="callable"):
            Depends(42)  # type: ignore[arg-type]

    def test_body_parameters_across_the_tree_are_embedded(self) -> None:
        async def item_dep(item: Item) -> Item:
            return item

        async def handler(item: Item = Depends(item_dep), user: User = Body()) -> None: ...

        plan = build_plan(handler, [])
        assert plan.body[0].embed and plan.dependencies[0].plan.body[0].embed
        kwargs = solve(plan, Native(body=b'{"item": {"name": "x"}, "user": {"id": 3}}',
                                    headers=[("content-type", "application/json")]))
        assert kwargs == {"item": Item(name="x"), "user": User(id=3)}

    def test_a_lone_body_parameter_in_a_dependency_reads_the_whole_body(self) -> None:
        async def item_dep(item: Item) -> str:
            return item.name

        async def handler(name: str = Depends(item_dep)) -> None: ...

        native = Native(headers=[("content-type", "application/json")], body=b'{"name": "n"}')
        assert solve(build_plan(handler, []), native) == {"name": "n"}


class TestSolve:
    def test_parameters_of_dependencies_come_from_the_request(self) -> None:
        async def cookie_dep(session: str = Cookie(), request: Request = None) -> str:  # type: ignore[assignment]
            return f"{session}:{request.method}"

        async def handler(item_id: int, page: dict = Depends(pagination), tok: str = Depends(token),
                          s: str = Depends(cookie_dep), settings: Settings = Depends()) -> None: ...

        native = Native(query="skip=5&mode=dev", headers=[("X-Token", "t"), ("Cookie", "session=abc")],
                        params={"item_id": "7"})
        kwargs = solve(build_plan(handler, ["item_id"]), native)
        assert kwargs["item_id"] == 7 and kwargs["page"] == {"skip": 5, "limit": 10}
        assert (kwargs["tok"], kwargs["s"], kwargs["settings"].mode) == ("t", "abc:GET", "dev")

    def test_parameterised_callable_instances(self) -> None:
        async def handler(admin: bool = Depends(RoleChecker("admin")),
                          editor: Annotated[bool, Depends(RoleChecker("editor"))] = False) -> None: ...

        assert solve(build_plan(handler, []), Native(headers=[("x-role", "admin")])) == {"admin": True, "editor": False}

    def test_dependencies_can_use_path_parameters(self) -> None:
        async def load(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        async def handler(item: dict = Depends(load)) -> None: ...

        assert solve(build_plan(handler, ["item_id"]), Native(params={"item_id": "3"})) == {"item": {"id": 3}}

    def test_sub_dependencies_and_the_per_request_cache(self) -> None:
        calls: list[str] = []

        def db() -> str:
            calls.append("db")
            return "conn"

        async def repo(conn: str = Depends(db)) -> str:
            calls.append("repo")
            return f"repo({conn})"

        def fresh(conn: str = Depends(db, use_cache=False)) -> str:
            return conn

        async def handler(r: str = Depends(repo), conn: str = Depends(db), again: str = Depends(fresh)) -> None: ...

        plan = build_plan(handler, [])
        assert solve(plan, Native()) == {"r": "repo(conn)", "conn": "conn", "again": "conn"}
        assert calls == ["db", "repo", "db"]  # cached for `conn`, called again for use_cache=False
        solve(plan, Native())
        assert calls.count("db") == 4  # the cache is per request

    def test_validation_errors_of_the_whole_tree_are_reported_together(self) -> None:
        called: list[str] = []

        async def checked(limit: int) -> int:
            called.append("checked")
            return limit

        async def fine() -> str:
            called.append("fine")
            return "ok"

        async def handler(n: int = Depends(checked), f: str = Depends(fine), tok: str = Depends(token),
                          q: int = 0) -> None: ...

        with pytest.raises(RequestValidationError) as info:
            solve(build_plan(handler, []), Native(query="limit=x&q=y"))
        assert errors_of(info) == [(("query", "limit"), "int_parsing"), (("header", "x-token"), "missing"),
                                   (("query", "q"), "int_parsing")]
        assert called == ["fine"]  # a dependency with invalid parameters is not called; the others are

    def test_invalid_json_is_reported_before_any_dependency_runs(self) -> None:
        called: list[str] = []

        async def first() -> None:
            called.append("first")

        async def handler(_: None = Depends(first), item: Item = Body()) -> None: ...

        with pytest.raises(RequestValidationError) as info:
            solve(build_plan(handler, []), Native(body=b"{bad", headers=[("content-type", "application/json")]))
        assert errors_of(info) == [(("body", 1), "json_invalid")] and called == []

    def test_http_exception_from_a_dependency_propagates(self) -> None:
        def forbid() -> None:
            raise HTTPException(403, "no")

        async def handler(_: None = Depends(forbid)) -> None: ...

        with pytest.raises(HTTPException) as info:
            solve(build_plan(handler, []), Native())
        assert info.value.status_code == 403

    def test_sync_dependencies_run_in_the_executor(self) -> None:
        threads: list[str] = []

        def where() -> str:
            threads.append(threading.current_thread().name)
            return "x"

        def gen_where() -> Iterator[str]:
            threads.append(threading.current_thread().name)
            yield "g"
            threads.append(threading.current_thread().name)

        async def handler(a: str = Depends(where), b: str = Depends(gen_where)) -> None: ...

        plan = build_plan(handler, [])
        with ThreadPoolExecutor(1, thread_name_prefix="deps") as executor:
            assert solve(plan, Native(), executor=executor) == {"a": "x", "b": "g"}
        assert len(threads) == 3 and all(t.startswith("deps") for t in threads)
        threads.clear()
        solve(plan, Native())  # no executor: called directly
        assert threads == [threading.current_thread().name] * 3

    def test_overrides(self) -> None:
        async def override_token(x_alt: str = Header("alt")) -> str:
            return f"override:{x_alt}"

        async def handler(tok: str = Depends(token)) -> None: ...

        plan = build_plan(handler, [])
        app = App()
        app.dependency_overrides[token] = override_token
        assert solve(plan, Native(), app) == {"tok": "override:alt"}  # the override's own parameters apply
        assert solve(plan, Native(headers=[("x-alt", "h")]), app) == {"tok": "override:h"}
        app.dependency_overrides.clear()
        assert solve(plan, Native(headers=[("x-token", "real")]), app) == {"tok": "real"}

    def test_route_dependencies_run_first_and_are_not_passed(self) -> None:
        order: list[str] = []

        async def audit() -> str:
            order.append("audit")
            return "ignored"

        async def mine() -> str:
            order.append("mine")
            return "m"

        async def handler(m: str = Depends(mine)) -> None: ...

        assert solve(build_plan(handler, [], [Depends(audit)]), Native()) == {"m": "m"}
        assert order == ["audit", "mine"]


class TestTeardown:
    def test_generators_are_torn_down_after_the_block_in_reverse_order(self) -> None:
        log: list[str] = []

        def sync_gen() -> Iterator[str]:
            log.append("sync enter")
            yield "s"
            log.append("sync exit")

        async def async_gen(s: str = Depends(sync_gen)) -> AsyncIterator[str]:
            log.append("async enter")
            yield "a"
            log.append("async exit")

        async def handler(a: str = Depends(async_gen)) -> None: ...

        solve(build_plan(handler, []), Native(), body=lambda kwargs: log.append(f"handler {kwargs['a']}"))
        assert log == ["sync enter", "async enter", "handler a", "async exit", "sync exit"]

    @pytest.mark.parametrize("threaded", [False, True])
    def test_the_block_s_exception_is_thrown_into_the_generators(self, threaded: bool) -> None:
        log: list[str] = []

        def session() -> Iterator[str]:
            try:
                yield "s"
            except KeyError as exc:
                log.append(f"rollback {exc}")
                raise
            else:
                log.append("commit")
            finally:
                log.append("close")

        async def handler(s: str = Depends(session)) -> None: ...

        def fail(kwargs: dict[str, Any]) -> None:
            raise KeyError("boom")

        plan = build_plan(handler, [])
        with ThreadPoolExecutor(1) as executor:
            with pytest.raises(KeyError):
                solve(plan, Native(), executor=executor if threaded else None, body=fail)
            assert log == ["rollback 'boom'", "close"]
            solve(plan, Native(), executor=executor if threaded else None)
        assert log[2:] == ["commit", "close"]

    def test_a_dependency_may_translate_the_exception(self) -> None:
        async def translate() -> AsyncIterator[None]:
            try:
                yield
            except LookupError as exc:
                raise HTTPException(404, str(exc)) from exc

        async def handler(_: None = Depends(translate)) -> None: ...

        def fail(kwargs: dict[str, Any]) -> None:
            raise LookupError("gone")

        with pytest.raises(HTTPException) as info:
            solve(build_plan(handler, []), Native(), body=fail)
        assert (info.value.status_code, info.value.detail) == (404, "gone")

    def test_a_swallowed_exception_is_an_error(self) -> None:
        async def swallow() -> AsyncIterator[None]:
            try:
                yield
            except Exception:
                pass

        async def handler(_: None = Depends(swallow)) -> None: ...

        def fail(kwargs: dict[str, Any]) -> None:
            raise ValueError("lost")

        with pytest.raises(RuntimeError, match="No response object was returned") as info:
            solve(build_plan(handler, []), Native(), body=fail)
        assert isinstance(info.value.__cause__, ValueError)

    def test_entered_generators_are_torn_down_when_solving_fails(self) -> None:
        log: list[str] = []

        async def resource() -> AsyncIterator[str]:
            try:
                yield "r"
            except HTTPException as exc:
                log.append(f"saw {exc.status_code}")
                raise
            finally:
                log.append("released")

        def deny(r: str = Depends(resource)) -> None:
            raise HTTPException(401)

        async def handler(r: str = Depends(resource), _: None = Depends(deny)) -> None: ...

        with pytest.raises(HTTPException):
            solve(build_plan(handler, []), Native())
        assert log == ["saw 401", "released"]


# --- served ------------------------------------------------------------------------------------------


class Report(BaseModel):
    value: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rendered(self) -> bool:
        EVENTS.append("rendered")
        return True


EVENTS: list[str] = []


@pytest.fixture
def events() -> Iterator[list[str]]:
    EVENTS.clear()
    yield EVENTS
    EVENTS.clear()


def _served_app() -> CovetPy:
    app = CovetPy()

    async def session() -> AsyncIterator[str]:
        EVENTS.append("open")
        try:
            yield "session"
        except HTTPException as exc:
            EVENTS.append(f"http error {exc.status_code}")
            raise
        except Exception as exc:
            EVENTS.append(f"error {exc}")
            raise
        finally:
            EVENTS.append("close")

    def current_user(x_user: Optional[str] = Header(None)) -> str:
        if x_user is None:
            raise HTTPException(401, "who are you?", headers={"WWW-Authenticate": "Bearer"})
        return x_user

    @app.get("/items")
    async def items(page: Annotated[dict, Depends(pagination)], q: int = 0) -> dict:
        return {"page": page, "q": q}

    @app.get("/me")
    def me(user: str = Depends(current_user), s: str = Depends(session)) -> dict:  # a sync handler
        EVENTS.append("handler")
        return {"user": user, "session": s}

    def thread_name() -> str:
        return threading.current_thread().name

    @app.get("/inline", inline=True)
    def inline(dependency_thread: str = Depends(thread_name)) -> str:
        return dependency_thread

    @app.get("/pooled")
    async def pooled(dependency_thread: str = Depends(thread_name)) -> str:
        return dependency_thread

    @app.get("/report")
    async def report(s: str = Depends(session)) -> Report:
        EVENTS.append("handler")
        return Report(value=s)

    @app.get("/fail/{kind}")
    async def fail(kind: str, s: str = Depends(session)) -> None:
        if kind == "http":
            raise HTTPException(409, "conflict")
        raise LookupError("not there")

    @app.exception_handler(LookupError)
    async def on_lookup(request: Request, exc: LookupError) -> Response:
        return JSONResponse({"lookup": str(exc)}, status_code=404)

    @app.get("/overridable")
    async def overridable(tok: str = Depends(token)) -> str:
        return tok

    return app


@pytest.fixture
def served(make_client):  # type: ignore[no-untyped-def]
    app = _served_app()
    return app, make_client(app)


class TestServed:
    def test_values_and_merged_validation_errors(self, served) -> None:  # type: ignore[no-untyped-def]
        _, client = served
        assert client.get("/items?skip=2&q=1").json() == {"page": {"skip": 2, "limit": 10}, "q": 1}
        r = client.get("/items?skip=x&q=y")
        assert r.status_code == 422
        assert [(tuple(e["loc"]), e["type"]) for e in r.json()["detail"]] == [
            (("query", "skip"), "int_parsing"), (("query", "q"), "int_parsing")]

    def test_http_exception_in_a_dependency(self, served, events) -> None:  # type: ignore[no-untyped-def]
        _, client = served
        r = client.get("/me")
        assert (r.status_code, r.json(), r.headers["www-authenticate"]) == (401, {"detail": "who are you?"}, "Bearer")
        assert events == []  # the handler and its other dependencies did not run
        r = client.get("/me", headers={"X-User": "ann"})
        assert r.json() == {"user": "ann", "session": "session"}
        assert events == ["open", "handler", "close"]

    def test_teardown_runs_after_rendering(self, served, events) -> None:  # type: ignore[no-untyped-def]
        _, client = served
        assert client.get("/report").json() == {"value": "session", "rendered": True}
        assert events == ["open", "handler", "rendered", "close"]

    def test_handler_exceptions_reach_the_dependency_then_the_handlers(self, served, events) -> None:  # type: ignore[no-untyped-def]
        _, client = served
        r = client.get("/fail/http")
        assert (r.status_code, r.json()) == (409, {"detail": "conflict"})
        assert events == ["open", "http error 409", "close"]
        events.clear()
        r = client.get("/fail/lookup")
        assert (r.status_code, r.json()) == (404, {"lookup": "not there"})
        assert events == ["open", "error not there", "close"]

    def test_sync_dependencies_follow_the_route_s_thread_policy(self, served) -> None:  # type: ignore[no-untyped-def]
        _, client = served
        assert client.get("/inline").json() == "covet-loop"  # inline: on the event-loop thread
        assert client.get("/pooled").json().startswith("covet-sync")  # otherwise in the pool, as in FastAPI

    def test_dependency_overrides(self, served) -> None:  # type: ignore[no-untyped-def]
        app, client = served
        assert client.get("/overridable").status_code == 422
        app.dependency_overrides[token] = lambda: "overridden"
        try:
            assert client.get("/overridable").json() == "overridden"
        finally:
            app.dependency_overrides.clear()
        assert client.get("/overridable", headers={"X-Token": "t"}).json() == "t"

    def test_route_and_app_dependencies(self, make_client) -> None:  # type: ignore[no-untyped-def]
        seen: list[str] = []

        async def app_wide(request: Request) -> None:
            seen.append(f"app {request.url.path}")

        def require_key(x_key: str = Header()) -> None:
            if x_key != "secret":
                raise HTTPException(403)

        app = CovetPy(dependencies=[Depends(app_wide)])

        @app.get("/open")
        async def open_route() -> str:
            return "open"

        @app.get("/guarded", dependencies=[Depends(require_key)])
        async def guarded() -> str:
            return "guarded"

        client = make_client(app)
        assert client.get("/open").json() == "open"
        assert client.get("/guarded").status_code == 422  # the dependency's header is required
        assert client.get("/guarded", headers={"X-Key": "nope"}).status_code == 403
        assert client.get("/guarded", headers={"X-Key": "secret"}).json() == "guarded"
        assert seen == ["app /open", "app /guarded", "app /guarded", "app /guarded"]
        with pytest.raises(TypeError, match="constant route"):
            app.get("/c", constant=True)

    def test_with_middleware(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.middleware("http")
        async def add_header(request: Request, call_next):  # type: ignore[no-untyped-def]
            response = await call_next(request)
            response.headers["x-mw"] = "1"
            return response

        @app.get("/p")
        async def p(page: dict = Depends(pagination)) -> dict:
            return page

        client = make_client(app)
        r = client.get("/p?limit=3")
        assert r.json() == {"skip": 0, "limit": 3} and r.headers["x-mw"] == "1"

    def test_form_parameters_in_dependencies(self, make_client) -> None:  # type: ignore[no-untyped-def]
        async def credentials(username: str = Form(), password: str = Form()) -> str:
            return f"{username}:{password}"

        app = CovetPy()

        @app.post("/login")
        async def login(creds: str = Depends(credentials), avatar: Optional[UploadFile] = None) -> dict:
            return {"creds": creds, "avatar": avatar.filename if avatar else None}

        client = make_client(app)
        assert client.post("/login", data={"username": "a", "password": "b"}).json() == {"creds": "a:b", "avatar": None}
        r = client.post("/login", data={"username": "a", "password": "b"}, files={"avatar": ("me.png", b"png")})
        assert r.json() == {"creds": "a:b", "avatar": "me.png"}
        r = client.post("/login", data={"username": "a"})
        assert [tuple(e["loc"]) for e in r.json()["detail"]] == [("body", "password")]


class TestTeardownScope:
    """``Depends(scope=...)`` on ``yield`` dependencies: "request" (the default) tears down once the response is
    sent, "function" before sending — as FastAPI 0.12x+."""

    def test_request_scope_after_the_streamed_body_function_scope_before(self, make_client) -> None:  # type: ignore[no-untyped-def]
        from covet import StreamingResponse

        log: list[str] = []
        app = CovetPy()

        async def per_request() -> AsyncIterator[str]:
            log.append("request open")
            yield "r"
            log.append("request close")

        def per_function() -> Iterator[str]:
            log.append("function open")
            yield "f"
            log.append("function close")

        @app.get("/stream")
        async def stream(a: str = Depends(per_request),
                         b: str = Depends(per_function, scope="function")) -> StreamingResponse:
            async def body() -> AsyncIterator[bytes]:
                log.append("body")
                yield (a + b).encode()

            return StreamingResponse(body())

        client = make_client(app)
        assert client.get("/stream").text == "rf"
        for _ in range(100):  # the request-scoped teardown follows the response on the server
            if len(log) == 5:
                break
            threading.Event().wait(0.01)
        assert log == ["request open", "function open", "function close", "body", "request close"]

    def test_an_exception_after_yield(self, make_client, caplog) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        def raises() -> Iterator[int]:
            yield 1
            raise HTTPException(418, "after yield")

        @app.get("/request")
        async def request_scoped(x: int = Depends(raises)) -> int:
            return x

        @app.get("/function")
        async def function_scoped(x: int = Depends(raises, scope="function")) -> int:
            return x

        client = make_client(app)
        r = client.get("/function")
        assert (r.status_code, r.json()) == (418, {"detail": "after yield"})  # before sending: it decides
        with caplog.at_level("ERROR", logger="covet"):
            r = client.get("/request")
            assert (r.status_code, r.json()) == (200, 1)  # already sent: logged instead
            for _ in range(100):
                if "after 'yield' failed" in caplog.text:
                    break
                threading.Event().wait(0.01)
        assert "after 'yield' failed after the response to GET /request was sent" in caplog.text

    def test_a_request_scoped_dependency_cannot_use_a_function_scoped_one(self) -> None:
        def inner() -> Iterator[int]:
            yield 1

        def outer(i: int = Depends(inner, scope="function")) -> Iterator[int]:
            yield i

        async def handler(o: int = Depends(outer)) -> None: ...

        with pytest.raises(TypeError, match='has a scope of "request", it cannot depend on dependencies with scope'):
            build_plan(handler, [])

        async def fine(o: int = Depends(outer, scope="function")) -> None: ...

        build_plan(fine, [])


class TestLifespanScope:
    """``Depends(f, scope="lifespan")`` (beyond FastAPI: its open request #617): made once while the app serves,
    torn down at shutdown."""

    def test_made_once_and_torn_down_at_shutdown(self, native) -> None:  # type: ignore[no-untyped-def]
        from covet.testing import TestClient

        log: list[str] = []
        app = CovetPy()

        async def settings() -> dict:
            log.append("settings")
            return {"dsn": "db://"}

        def pool(cfg: dict = Depends(settings, scope="lifespan")) -> Iterator[str]:
            log.append("pool open")
            yield f"pool({cfg['dsn']})"
            log.append("pool close")

        @app.get("/q")
        async def query(p: str = Depends(pool, scope="lifespan"), n: int = 0) -> list[Any]:
            return [p, n]

        with TestClient(app) as client:
            assert [client.get(f"/q?n={i}").json() for i in range(3)] == [["pool(db://)", i] for i in range(3)]
            assert log == ["settings", "pool open"]
        assert log == ["settings", "pool open", "pool close"]

    def test_a_lifespan_dependency_cannot_read_the_request(self) -> None:
        def per_user(x_user: str = Header()) -> str:
            return x_user

        def reads(user: str = Depends(per_user), request: Request = None) -> str:  # type: ignore[assignment]
            return user

        async def handler(v: str = Depends(reads, scope="lifespan")) -> None: ...

        with pytest.raises(TypeError, match=r'"[^"]*reads" has scope="lifespan" .* but reads the request: request, '
                                            r'Depends\(.*per_user\)'):
            build_plan(handler, [])
        with pytest.raises(ValueError, match="scope must be"):
            Depends(per_user, scope="app")  # type: ignore[arg-type]
