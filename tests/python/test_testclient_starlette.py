"""`covet.testing.TestClient` behaves as Starlette's (httpx-based) TestClient, through a real server: URLs
resolved against base_url, redirects followed, the cookie jar, client headers, header pairs, the client
address, root_path, keyword checking, WebSocket exceptions re-raised, the lifespan under ``with``."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
from collections.abc import AsyncIterator
from typing import Any

import fake_native
import pytest

from covet import BackgroundTasks, CovetPy, Request, Response, WebSocket, WebSocketDisconnect, WebSocketException
from covet.responses import PlainTextResponse, RedirectResponse, StreamingResponse
from covet.testing import AsyncTestClient, TestClient, TooManyRedirects


def _app() -> CovetPy:
    app = CovetPy()

    @app.get("/heroes/")
    async def heroes() -> list[str]:
        return ["ann"]

    @app.get("/api/items")
    async def api_items() -> str:
        return "api items"

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"headers": {k: request.headers.getlist(k) for k in request.headers},
                "cookies": request.cookies, "client": list(request.client), "host": request.headers.get("host"),
                "root_path": request.scope["root_path"], "path": request.url.path, "query": request.query_string}

    @app.route("/go/{status}", methods=["GET", "POST", "PUT", "HEAD"])
    async def go(status: int, request: Request) -> Response:
        return RedirectResponse("/landing", status_code=status)

    @app.route("/landing", methods=["GET", "POST", "PUT", "HEAD"])
    async def landing(request: Request) -> dict[str, Any]:
        return {"method": request.method, "body": (await request.body()).decode(),
                "content_type": request.headers.get("content-type"), "cookie": request.headers.get("cookie")}

    @app.get("/loop")
    async def loop() -> Response:
        return RedirectResponse("/loop")

    @app.get("/login")
    async def login() -> Response:
        response = RedirectResponse("/echo", status_code=303)
        response.set_cookie("session", "s1")
        return response

    @app.get("/scoped")
    async def scoped() -> Response:
        response = PlainTextResponse("ok")
        response.set_cookie("only_here", "1", path="/echo")
        response.set_cookie("everywhere", "2")
        return response

    @app.get("/logout")
    async def logout() -> Response:
        response = PlainTextResponse("bye")
        response.delete_cookie("everywhere")
        return response

    @app.get("/gzipped")
    async def gzipped() -> Response:
        return Response(gzip.compress(b"squeezed"), headers={"Content-Encoding": "gzip"},
                        media_type="text/plain")

    return app


class TestURLs:
    def test_relative_urls_resolve_against_base_url(self, make_client: Any) -> None:
        client = make_client(_app())
        assert client.get("heroes/").json() == ["ann"]
        assert client.get("/heroes/").json() == ["ann"]
        assert client.get("http://testserver/heroes/").json() == ["ann"]
        r = client.get("echo?a=1", params={"b": "2"})
        assert (r.json()["query"], r.json()["host"], r.url) == ("a=1&b=2", "testserver", "http://testserver/echo?a=1&b=2")

    def test_a_base_url_with_a_path_prefixes_relative_urls(self, make_client: Any) -> None:
        client = make_client(_app(), base_url="http://example.org/api")
        assert client.get("items").json() == "api items"
        assert client.get("/items").json() == "api items"
        assert client.get("/echo").status_code == 404  # /api/echo
        assert client.get("http://example.org/echo").json()["host"] == "example.org"


class TestRedirects:
    def test_followed_by_default_with_history(self, make_client: Any) -> None:
        client = make_client(_app())
        r = client.get("/go/307")
        assert (r.status_code, r.json()["method"], r.url) == (200, "GET", "http://testserver/landing")
        assert (r.url.path, r.url.hostname, str(r.url)) == ("/landing", "testserver", "http://testserver/landing")
        assert [h.status_code for h in r.history] == [307]
        assert r.history[0].headers["location"] == "/landing"

    @pytest.mark.parametrize(("status", "method", "after"), [
        (301, "POST", "GET"), (302, "POST", "GET"), (303, "POST", "GET"), (303, "PUT", "GET"),
        (307, "POST", "POST"), (308, "PUT", "PUT"), (302, "PUT", "PUT"),
    ])
    def test_methods_and_bodies_as_httpx(self, make_client: Any, status: int, method: str, after: str) -> None:
        client = make_client(_app())
        r = client.request(method, f"/go/{status}", content=b"payload", headers={"Content-Type": "text/plain"})
        body = "payload" if after == method else ""
        assert (r.json()["method"], r.json()["body"]) == (after, body)

    def test_off_for_the_client_or_one_request(self, make_client: Any) -> None:
        client = make_client(_app(), follow_redirects=False)
        r = client.get("/go/307")
        assert (r.status_code, r.headers["location"], r.is_redirect, r.history) == (307, "/landing", True, [])
        assert client.get("/go/307", follow_redirects=True).status_code == 200
        client = make_client(_app())
        assert client.get("/go/302", follow_redirects=False).status_code == 302

    def test_too_many(self, make_client: Any) -> None:
        client = make_client(_app())
        with pytest.raises(TooManyRedirects, match="more than 20 redirects"):
            client.get("/loop")


class TestCookies:
    def test_client_cookies_are_sent_and_set_with_the_jar_api(self, make_client: Any) -> None:
        client = make_client(_app(), cookies={"a": "1"})
        client.cookies.set("b", "2")
        client.cookies["c"] = "3"
        assert client.get("/echo").json()["cookies"] == {"a": "1", "b": "2", "c": "3"}
        assert client.cookies.get("b") == "2" and client.cookies.get("zz") is None and "a" in client.cookies
        client.cookies.delete("a")
        assert client.get("/echo").json()["cookies"] == {"b": "2", "c": "3"}
        client.cookies.clear()
        assert client.get("/echo").json()["cookies"] == {}

    def test_per_request_cookies_are_not_kept(self, make_client: Any) -> None:
        client = make_client(_app())
        assert client.get("/echo", cookies={"once": "x"}).json()["cookies"] == {"once": "x"}
        assert client.get("/echo").json()["cookies"] == {}

    def test_response_cookies_persist_with_their_path_and_expiry(self, make_client: Any) -> None:
        client = make_client(_app())
        r = client.get("/login")  # sets a cookie, then 303 to /echo: the redirect already sends it
        assert r.json()["cookies"] == {"session": "s1"}
        assert r.history[0].cookies == {"session": "s1"}
        client.get("/scoped")
        assert client.get("/echo").json()["cookies"] == {"session": "s1", "only_here": "1", "everywhere": "2"}
        assert sorted(client.post("/landing").json()["cookie"].split("; ")) == ["everywhere=2", "session=s1"]
        client.get("/logout")  # expires it
        assert client.cookies.get("everywhere") is None
        assert client.get("/echo").json()["cookies"] == {"session": "s1", "only_here": "1"}

    def test_an_explicit_cookie_header_wins(self, make_client: Any) -> None:
        client = make_client(_app(), cookies={"a": "1"})
        assert client.get("/echo", headers={"Cookie": "z=9"}).json()["cookies"] == {"z": "9"}


class TestHeadersAndClient:
    def test_defaults_like_starlette(self, make_client: Any) -> None:
        client = make_client(_app())
        data = client.get("/echo").json()
        assert data["client"] == ["testclient", 50000]
        assert data["headers"]["user-agent"] == ["testclient"]
        assert data["headers"]["accept"] == ["*/*"]
        assert client.headers["user-agent"] == "testclient"

    def test_client_headers_and_request_headers(self, make_client: Any) -> None:
        client = make_client(_app(), headers={"X-Token": "t1", "User-Agent": "mine"}, client=("10.0.0.1", 1234))
        client.headers["X-Extra"] = "e"
        data = client.get("/echo", headers={"x-token": "t2"}).json()
        assert data["headers"]["x-token"] == ["t2"] and data["headers"]["x-extra"] == ["e"]
        assert data["headers"]["user-agent"] == ["mine"] and data["client"] == ["10.0.0.1", 1234]

    def test_headers_as_a_list_of_pairs_repeat_a_name(self, make_client: Any) -> None:
        client = make_client(_app())
        data = client.get("/echo", headers=[("X-Multi", "1"), ("X-Multi", "2")]).json()
        assert data["headers"]["x-multi"] == ["1", "2"]

    def test_basic_auth(self, make_client: Any) -> None:
        client = make_client(_app())
        assert client.get("/echo", auth=("ann", "pw")).json()["headers"]["authorization"] == ["Basic YW5uOnB3"]

    def test_root_path(self, make_client: Any) -> None:
        assert make_client(_app(), root_path="/v1").get("/echo").json()["root_path"] == "/v1"
        assert make_client(_app()).get("/echo").json()["root_path"] == ""

    def test_gzip_bodies_are_decoded(self, make_client: Any) -> None:
        r = make_client(_app()).get("/gzipped")
        assert (r.content, r.headers["content-encoding"]) == (b"squeezed", "gzip")


def _stream_app() -> CovetPy:
    app = CovetPy()

    @app.get("/endless")
    async def endless() -> Response:
        async def events() -> AsyncIterator[bytes]:
            n = 0
            while True:
                n += 1
                yield f"data: {n}\n\n".encode()
                await asyncio.sleep(0.01)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/lines")
    async def lines() -> Response:
        async def chunks() -> AsyncIterator[str]:
            for piece in ("one\ntw", "o\r\nthree\n", "fo", "ur"):
                yield piece

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/fails-late")
    async def fails_late() -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"partial"
            raise Broken("mid-stream")

        return StreamingResponse(chunks())

    @app.get("/fails-early")
    async def fails_early() -> Response:
        raise Broken("before the response")

    return app


class TestStream:
    def test_an_endless_stream_is_read_a_piece_at_a_time(self, make_client: Any) -> None:
        client = make_client(_stream_app())
        with client.stream("GET", "/endless") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert [next(lines) for _ in range(4)] == ["data: 1", "", "data: 2", ""]
        assert client.get("/lines").text == "one\ntwo\r\nthree\nfour"  # the client goes on

    def test_lines_text_and_read(self, make_client: Any) -> None:
        client = make_client(_stream_app())
        with client.stream("GET", "/lines") as response:
            assert list(response.iter_lines()) == ["one", "two", "three", "four"]
            assert response.read() == b"one\ntwo\r\nthree\nfour"
        with client.stream("GET", "/lines") as response:
            assert "".join(response.iter_text()) == "one\ntwo\r\nthree\nfour"

    def test_server_exceptions(self, make_client: Any) -> None:
        client = make_client(_stream_app())
        with pytest.raises(Broken, match="before the response"), client.stream("GET", "/fails-early"):
            pass
        # Once the response has started, a failing body iterator cuts it short (the server logs the exception):
        # the client sees the response end early, not the app's exception (Starlette re-raises that).
        with client.stream("GET", "/fails-late") as response, pytest.raises(http.client.IncompleteRead):
            response.read()


class TestAsyncClient:
    def test_same_jar_headers_and_redirects(self, native: Any) -> None:
        async def go() -> Any:
            async with AsyncTestClient(_app(), headers={"X-A": "1"}) as client:
                client.cookies.set("c", "v")
                r = await client.get("login")
                assert client.cookies.get("session") == "s1"
                return r.json()

        data = asyncio.run(go())
        assert data["cookies"] == {"c": "v", "session": "s1"} and data["headers"]["x-a"] == ["1"]


class TestKeywords:
    def test_an_unknown_keyword_is_a_clear_type_error(self, native: Any) -> None:
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'bogus'.*base_url.*max_body_bytes"):
            TestClient(_app(), bogus=1)

    def test_server_options_still_pass(self, make_client: Any) -> None:
        client = make_client(_app(), max_body_bytes=10)
        assert client.post("/landing", content=b"x" * 100).status_code == 413

    def test_trio_is_refused(self) -> None:
        with pytest.raises(ValueError, match="asyncio"):
            TestClient(_app(), backend="trio")

    def test_an_unknown_request_keyword(self, make_client: Any) -> None:
        with pytest.raises(TypeError):
            make_client(_app()).get("/echo", bogus=1)


class TestLifespan:
    def test_with_runs_startup_and_shutdown(self, native: Any) -> None:
        events: list[str] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: CovetPy) -> AsyncIterator[None]:
            events.append("startup")
            yield
            events.append("shutdown")

        app = CovetPy(lifespan=lifespan)

        @app.get("/")
        async def root() -> list[str]:
            return events

        with TestClient(app) as client:
            assert client.get("/").json() == ["startup"]
        assert events == ["startup", "shutdown"]
        client = TestClient(app)  # without `with`: no lifespan, as in Starlette
        try:
            assert client.get("/").json() == ["startup", "shutdown"]
        finally:
            client.close()
        assert events == ["startup", "shutdown"]


class Broken(Exception):
    pass


def _ws_app() -> CovetPy:
    app = CovetPy()

    @app.websocket("/ws/after-accept")
    async def after_accept(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise Broken("after accept")

    @app.websocket("/ws/before-accept")
    async def before_accept(websocket: WebSocket) -> None:
        raise Broken("before accept")

    @app.websocket("/ws/deny")
    async def deny(websocket: WebSocket) -> None:
        raise WebSocketException(1008, "no")

    @app.websocket("/ws/close-first")
    async def close_first(websocket: WebSocket) -> None:
        await websocket.close(1013)

    @app.websocket("/ws/refuse")
    async def refuse(websocket: WebSocket) -> None:
        await websocket.accept()
        raise WebSocketException(4001, "go away")

    @app.websocket("/ws/who")
    async def who(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"client": list(websocket.client), "ua": websocket.headers.get("user-agent"),
                                   "cookies": websocket.cookies})
        await websocket.close()

    return app


class TestWebSockets:
    @pytest.fixture(autouse=True)
    def _compiled(self, native: Any) -> None:
        if native is fake_native:  # the stand-in has no WebSockets
            pytest.skip("WebSockets need the compiled engine")

    def test_an_exception_after_accept_is_raised_by_receive(self) -> None:
        with TestClient(_ws_app()) as client, client.websocket_connect("/ws/after-accept") as ws:
            ws.send_text("go")
            with pytest.raises(Broken, match="after accept"):
                ws.receive_text()

    def test_an_exception_is_raised_when_the_session_ends(self) -> None:
        with TestClient(_ws_app()) as client, pytest.raises(Broken, match="after accept"), \
                client.websocket_connect("/ws/after-accept") as ws:
            ws.send_text("go")

    def test_an_exception_before_accept_is_raised_when_entering(self) -> None:
        with TestClient(_ws_app()) as client, pytest.raises(Broken, match="before accept"), \
                client.websocket_connect("/ws/before-accept"):
            raise AssertionError("entered")

    @pytest.mark.parametrize(("path", "code", "reason"), [("/ws/deny", 1008, "no"), ("/ws/close-first", 1013, "")])
    def test_closing_before_accept_is_raised_when_entering(self, path: str, code: int, reason: str) -> None:
        with TestClient(_ws_app()) as client:
            with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path):
                raise AssertionError("entered")
            assert (info.value.code, info.value.reason) == (code, reason)
            with client.websocket_connect("/ws/who") as ws:  # the client is still usable
                assert ws.receive_json()["ua"] == "testclient"

    def test_not_raised_when_told_not_to(self) -> None:
        with TestClient(_ws_app(), raise_server_exceptions=False) as client, \
                client.websocket_connect("/ws/after-accept") as ws:
            ws.send_text("go")
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 1011

    def test_websocket_exception_closes_with_its_code(self) -> None:
        with TestClient(_ws_app()) as client, client.websocket_connect("/ws/refuse") as ws:
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert (info.value.code, info.value.reason) == (4001, "go away")

    def test_client_address_headers_and_cookies(self) -> None:
        with TestClient(_ws_app(), cookies={"sid": "1"}) as client, client.websocket_connect("ws/who") as ws:
            assert ws.receive_json() == {"client": ["testclient", 50000], "ua": "testclient", "cookies": {"sid": "1"}}


def test_background_tasks_are_done_when_the_call_returns() -> None:
    """FastAPI's "Background Tasks" tutorial test shape: the task's effect is visible on the next line (Starlette's
    TestClient returns once the response's background tasks are done)."""
    import time

    app = CovetPy()
    log: list[str] = []

    def write_log(message: str) -> None:
        time.sleep(0.2)  # slower than the response
        log.append(message)

    async def write_later(message: str) -> None:
        await asyncio.sleep(0.2)
        log.append(message)

    @app.post("/send/{email}")
    async def send(email: str, tasks: BackgroundTasks) -> dict:
        tasks.add_task(write_log, f"sync {email}")
        tasks.add_task(write_later, f"async {email}")
        return {"message": "sent"}

    with TestClient(app) as client:
        r = client.post("/send/a@example.com")
        assert r.json() == {"message": "sent"}
        assert log == ["sync a@example.com", "async a@example.com"]
