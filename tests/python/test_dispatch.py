"""How handlers run: eager Tasks, real suspension, the thread pool, request laziness and lifetime."""

from __future__ import annotations

import asyncio
import contextvars
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import pytest
from pydantic import BaseModel

import fake_native
from serverproc import require_compiled_engine
from covet import BackgroundTasks, CovetPy, Header, HTTPException, Request
from covet.background import BackgroundTask
from covet.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from covet.concurrency import TaskSet, eager_start_available, start_task
from covet.server.dispatch import Dispatcher
from covet.server.serve import Worker
from covet.server.sync_pool import SyncPool


class _Item(BaseModel):
    name: str
    price: float


class Harness:
    """The app's dispatcher over a fake engine, driven by hand on a running loop (no sockets)."""

    def __init__(self, app: CovetPy, loop: asyncio.AbstractEventLoop) -> None:
        worker = Worker(app, native=fake_native)
        self.server, targets = worker._make_server()
        self.executor = ThreadPoolExecutor(4)
        self.dispatcher = Dispatcher(app, self.server, targets, loop, self.executor)

    def request(self, method: str, target: str, **kwargs: Any) -> fake_native.NativeResponder:
        responder = self.server.inject(method, target, **kwargs)
        self.dispatcher.on_readable()  # what the loop's reader callback does
        return responder

    def close(self) -> None:
        self.executor.shutdown(wait=True)


@pytest.fixture
def harness_factory():  # type: ignore[no-untyped-def]
    made: list[Harness] = []

    def make(app: CovetPy) -> Harness:
        h = Harness(app, asyncio.get_running_loop())
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(params=["asyncio", "uvloop"])
def runner(request: pytest.FixtureRequest) -> Any:
    """Runs a coroutine to completion on asyncio's event loop, or on uvloop's (when installed)."""
    if request.param == "asyncio":
        return run
    uvloop = pytest.importorskip("uvloop")
    return uvloop.run


class TestEager:
    def test_async_handler_that_never_suspends_is_answered_inside_the_callback(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/users/{user_id}")
        async def get_user(user_id: int, q: str = "") -> dict:
            return {"id": user_id, "q": q}

        async def main() -> None:
            h = harness_factory(app)
            before = asyncio.all_tasks()
            responder = h.request("GET", "/users/7?q=x")
            # No await since the request was queued: the answer was produced synchronously (the request's
            # Task ran its first step at once, and finished in it).
            assert responder.status == 200 and responder.body == b'{"id":7,"q":"x"}'
            assert len(h.dispatcher.tasks) == 0 and asyncio.all_tasks() == before

        run(main())

    def test_errors_and_middleware_are_eager_too(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/n/{n}")
        async def n(n: int) -> int:
            return n

        @app.middleware("http")
        async def mw(request: Request, call_next):  # type: ignore[no-untyped-def]
            response = await call_next(request)
            response.headers["X-Mw"] = "1"
            return response

        async def main() -> None:
            h = harness_factory(app)
            ok = h.request("GET", "/n/1")
            bad = h.request("GET", "/n/x")
            assert (ok.status, ok.body, ("X-Mw", "1") in ok.headers) == (200, b"1", True)
            assert bad.status == 422 and len(h.dispatcher.tasks) == 0

        run(main())

    def test_body_and_header_routes_take_the_direct_path_with_fastapi_answers(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        """A route with a JSON body model, a header or a Request parameter runs its handler from `_handle` itself
        (no `_route_response` coroutine); its answers stay FastAPI's: 422 for a bad body or a wrong content type,
        the app's exception handler with the request. (A body the engine streams is collected first:
        test_request_stream.py, `test_after_a_body_parameter_the_body_comes_whole`.)"""
        app = CovetPy()

        class Refused(Exception):
            pass

        @app.exception_handler(Refused)
        async def refused(request: Request, exc: Refused) -> JSONResponse:
            return JSONResponse({"refused": request.headers.get("x-who", "?")}, status_code=409)

        @app.post("/items")
        async def items(item: _Item, x_who: Optional[str] = Header(None)) -> dict:
            if item.name == "refuse":
                raise Refused()
            return {"name": item.name, "who": x_who}

        async def main() -> None:
            h = harness_factory(app)
            (route,) = [r for r in h.dispatcher.targets if getattr(r, "path", "") == "/items"]
            assert route in h.dispatcher._direct
            json_type = [("Host", "fake"), ("Content-Type", "application/json"), ("X-Who", "ann")]
            ok = h.request("POST", "/items", headers=json_type, body=b'{"name":"a","price":1}')
            assert (ok.status, json.loads(ok.body)) == (200, {"name": "a", "who": "ann"})
            charset = [("Host", "fake"), ("content-type", "Application/JSON; charset=utf-8")]
            assert h.request("POST", "/items", headers=charset, body=b'{"name":"b","price":2}').status == 200
            bad = h.request("POST", "/items", headers=json_type, body=b'{"name":"a","price":"x"}')
            assert bad.status == 422 and json.loads(bad.body)["detail"][0]["loc"] == ["body", "price"]
            text = h.request("POST", "/items", headers=[("Host", "fake"), ("Content-Type", "text/plain")],
                             body=b'{"name":"a","price":1}')
            assert text.status == 422 and json.loads(text.body)["detail"][0]["type"] == "model_attributes_type"
            broken = h.request("POST", "/items", headers=json_type, body=b'{"name":')
            assert broken.status == 422 and json.loads(broken.body)["detail"][0]["type"] == "json_invalid"
            no_body = h.request("POST", "/items", headers=json_type)
            assert no_body.status == 422 and json.loads(no_body.body)["detail"][0]["type"] == "missing"
            handled = h.request("POST", "/items", headers=json_type, body=b'{"name":"refuse","price":1}')
            assert (handled.status, json.loads(handled.body)) == (409, {"refused": "ann"})
            assert len(h.dispatcher.tasks) == 0  # every one answered inside its callback

        run(main())

    def test_a_batch_is_answered_in_one_callback(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/i/{i}")
        async def item(i: int) -> int:
            return i * 2

        async def main() -> None:
            h = harness_factory(app)
            responders = [h.server.inject("GET", f"/i/{i}") for i in range(300)]
            h.dispatcher.on_readable()  # takes at most 256 ...
            assert sum(r.status == 200 for r in responders) == 256
            h.dispatcher.on_readable()  # ... the engine re-armed the eventfd for the rest
            assert [r.body for r in responders] == [str(i * 2).encode() for i in range(300)]

        run(main())


class TestSuspension:
    def test_suspending_handler_continues_in_a_task(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()
        gate = asyncio.Event()
        steps: list[str] = []

        @app.get("/wait")
        async def wait() -> dict:
            steps.append("start")
            await gate.wait()
            steps.append("after gate")
            await asyncio.sleep(0)
            value = await asyncio.get_running_loop().run_in_executor(None, lambda: 41)
            return {"value": value + 1}

        async def main() -> None:
            h = harness_factory(app)
            responder = h.request("GET", "/wait")
            assert steps == ["start"] and responder.status is None and len(h.dispatcher.tasks) == 1
            gate.set()
            await asyncio.gather(*h.dispatcher.tasks.tasks)
            assert steps == ["start", "after gate"]
            assert (responder.status, responder.body) == (200, b'{"value":42}')
            assert len(h.dispatcher.tasks) == 0

        run(main())

    def test_concurrent_sleeps_overlap(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/sleep")
        async def sleep() -> str:
            await asyncio.sleep(0.4)
            return "slept"

        client = make_client(app)
        client.get("/sleep")  # warm up
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: client.get("/sleep").json(), range(4)))
        assert results == ["slept"] * 4
        assert time.monotonic() - started < 1.2  # 4 x 0.4 s in sequence would be 1.6 s

    def test_eager_false_starts_on_the_next_loop_turn(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/eager")
        async def eager() -> str:
            return "eager"

        @app.get("/later", eager=False)
        async def later() -> str:
            return "later"

        async def main() -> None:
            h = harness_factory(app)
            assert h.request("GET", "/eager").status == 200
            responder = h.request("GET", "/later")
            assert responder.status is None and len(h.dispatcher.tasks) == 1
            await asyncio.sleep(0)
            assert (responder.status, responder.body) == (200, b'"later"')

        run(main())

    def test_eager_async_false_and_auto(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        async def main() -> None:
            for setting, expected in ((False, None), ("auto", 200), (True, 200)):
                app = CovetPy(eager_async=setting)

                @app.get("/x")
                async def x() -> int:
                    return 1

                assert harness_factory(app).request("GET", "/x").status == expected, setting

        run(main())
        with pytest.raises(ValueError, match="eager_async must be True, False or 'auto'"):
            CovetPy(eager_async="yes")  # type: ignore[arg-type]

    def test_every_handler_runs_in_its_task_from_the_first_line(self, make_client) -> None:  # type: ignore[no-untyped-def]
        """Against either engine, eager or not: a current Task, asyncio.timeout(), the same Task after awaits."""
        app = CovetPy()

        async def probe() -> dict[str, bool]:
            first = asyncio.current_task()
            async with asyncio.timeout(5):  # raises RuntimeError outside a Task
                await asyncio.sleep(0)
            return {"task": first is not None, "same": first is asyncio.current_task()}

        app.add_api_route("/eager", probe)
        app.add_api_route("/task", probe, eager=False)
        client = make_client(app)
        assert client.get("/eager").json() == {"task": True, "same": True}
        assert client.get("/task").json() == {"task": True, "same": True}

    def test_context_variables_do_not_leak_between_requests(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
        app = CovetPy()

        @app.get("/set/{value}")
        async def set_(value: str) -> str:
            before = var.get()
            var.set(value)
            return before

        async def main() -> None:
            h = harness_factory(app)
            assert h.request("GET", "/set/a").body == b'"unset"'
            assert h.request("GET", "/set/b").body == b'"unset"'
            assert var.get() == "unset"

        run(main())


class TestStartTask:
    """`start_task(eager=True)`: a real Task whose first step runs at once (3.12's eager tasks, or their
    equivalent on Python 3.11 with asyncio's and uvloop's loops)."""

    def test_first_step_runs_now_in_the_task(self, runner: Any) -> None:
        seen: list[object] = []

        async def first_step() -> str:
            seen.append(asyncio.current_task())
            return "done"

        async def main() -> None:
            loop = asyncio.get_running_loop()
            assert eager_start_available(loop)
            tasks = TaskSet()
            started: list[asyncio.Task[Any]] = []
            done_in_callback: list[bool] = []

            def callback() -> None:  # a plain loop callback (no Task current), as the reader callback is
                task = start_task(first_step(), loop, tasks, eager=True)
                started.append(task)
                done_in_callback.append(task.done())

            loop.call_soon(callback)
            await asyncio.sleep(0)
            assert done_in_callback == [True] and seen == started and started[0].result() == "done"
            assert len(tasks) == 0  # finished: nothing kept

        runner(main())

    def test_suspension_cancellation_timeout_and_taskgroup(self, runner: Any) -> None:
        log: list[object] = []

        async def worker(fut: asyncio.Future[int], never: asyncio.Future[None]) -> str:
            me = asyncio.current_task()
            async with asyncio.timeout(10):  # needs the Task from the first line on
                log.append(await fut)
            async with asyncio.TaskGroup() as tg:
                child = tg.create_task(asyncio.sleep(0, "child"))
            log.append(child.result())
            try:
                await never
            except asyncio.CancelledError:
                log.append(("cancelled", me is asyncio.current_task(), me.cancelling() if me else None))
                raise
            finally:
                log.append("finally")
            return "unreachable"

        async def main() -> None:
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[int] = loop.create_future()
            never: asyncio.Future[None] = loop.create_future()
            tasks = TaskSet()
            started: list[asyncio.Task[Any]] = []
            loop.call_soon(lambda: started.append(start_task(worker(fut, never), loop, tasks, eager=True)))
            await asyncio.sleep(0)
            (task,) = started
            assert not task.done() and len(tasks) == 1 and not log
            fut.set_result(5)
            for _ in range(5):
                await asyncio.sleep(0)
            assert log == [5, "child"]
            task.cancel()
            assert never.cancelled()  # the Task was really waiting on it
            with pytest.raises(asyncio.CancelledError):
                await task
            assert log == [5, "child", ("cancelled", True, 1), "finally"]
            await asyncio.sleep(0)
            assert len(tasks) == 0

        runner(main())

    def test_cancel_in_the_first_step(self, runner: Any) -> None:
        async def cancels_itself() -> str:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                return f"cancelled once: {task.uncancel() == 0}"
            return "not cancelled"

        async def main() -> None:
            loop = asyncio.get_running_loop()
            started: list[asyncio.Task[Any]] = []
            loop.call_soon(lambda: started.append(start_task(cancels_itself(), loop, TaskSet(), eager=True)))
            await asyncio.sleep(0)
            assert await started[0] == "cancelled once: True"

        runner(main())

    def test_started_from_inside_a_task(self, runner: Any) -> None:
        """The outer Task steps aside for the new one's first step, and is current again afterwards."""
        async def current() -> object:
            return asyncio.current_task()

        async def main() -> None:
            outer = asyncio.current_task()
            task = start_task(current(), asyncio.get_running_loop(), TaskSet(), eager=True)
            assert task.done() and task.result() is task
            assert asyncio.current_task() is outer

        runner(main())

    def test_a_loop_whose_ready_queue_differs_gets_plain_tasks(self) -> None:
        """A loop whose call_soon does not queue the Task's own step where expected: no eager start, the
        Task runs on the next turn as usual."""

        class WrappingLoop(asyncio.SelectorEventLoop):
            def call_soon(self, callback, *args, context=None):  # type: ignore[no-untyped-def,override]
                return super().call_soon(lambda *a: callback(*a), *args, context=context)

        async def first_line() -> object:
            return asyncio.current_task()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            started: list[asyncio.Task[Any]] = []
            loop.call_soon(lambda: started.append(start_task(first_line(), loop, TaskSet(), eager=True)))
            await asyncio.sleep(0)
            (task,) = started
            assert await task is task

        loop = WrappingLoop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()


class TestSyncHandlers:
    def test_blocking_sync_handler_does_not_stall_others(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()
        release = threading.Event()
        entered = threading.Event()

        @app.get("/block")
        def block() -> dict:
            entered.set()
            released = release.wait(10)
            return {"released": released, "thread": threading.current_thread().name}

        @app.get("/fast")
        async def fast() -> str:
            return "fast"

        @app.get("/fast-sync")
        def fast_sync() -> str:
            return "fast sync"

        client = make_client(app)
        with ThreadPoolExecutor(1) as pool:
            blocked = pool.submit(client.get, "/block")
            assert entered.wait(10)
            assert client.get("/fast").json() == "fast"  # served while /block still blocks its thread
            assert client.get("/fast-sync").json() == "fast sync"
            assert not blocked.done()
            release.set()
            r = blocked.result(10)
        assert r.json()["released"] is True and r.json()["thread"].startswith("covet-sync")

    def test_inline_sync_handlers_run_on_the_loop_thread(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()

        @app.get("/inline", inline=True)
        def inline() -> str:
            asyncio.get_running_loop()  # only works on the loop thread
            return threading.current_thread().name

        @app.get("/pooled")
        def pooled() -> str:
            return threading.current_thread().name

        client = make_client(app)
        assert client.get("/inline").json() == "covet-loop"
        assert client.get("/pooled").json().startswith("covet-sync")

        app2 = CovetPy(sync_handlers="inline")

        @app2.get("/t")
        def t() -> str:
            return threading.current_thread().name

        assert make_client(app2).get("/t").json() == "covet-loop"

    def test_sync_handlers_see_a_copy_of_the_context(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        var: contextvars.ContextVar[str] = contextvars.ContextVar("v", default="default")
        app = CovetPy()

        @app.middleware("http")
        async def set_var(request: Request, call_next):  # type: ignore[no-untyped-def]
            var.set(request.headers.get("x-v", "none"))
            return await call_next(request)

        @app.get("/v")
        def v() -> str:
            return var.get()

        async def main() -> None:
            h = harness_factory(app)
            r = h.request("GET", "/v", headers=[("Host", "h"), ("X-V", "from-mw")])
            await asyncio.gather(*h.dispatcher.tasks.tasks)
            assert r.body == b'"from-mw"'

        run(main())


class TestSyncLane:
    """Plain sync routes (no middleware, Request, dependencies ...) run handler, rendering and answer in the pool
    thread: no Task, coroutine or future on the loop (covet.server.dispatch, `_start_sync`)."""

    @staticmethod
    def _wait(responder: fake_native.NativeResponder) -> None:
        deadline = time.monotonic() + 10
        while responder.status is None and time.monotonic() < deadline:
            time.sleep(0.005)

    def test_a_plain_sync_route_is_answered_from_the_pool_without_a_task(self) -> None:
        app = CovetPy()

        @app.get("/items/{item_id}")
        def item(item_id: int, q: str = "") -> dict:
            return {"id": item_id, "q": q, "thread": threading.current_thread().name}

        @app.get("/mw-free-but-request")
        def with_request(request: Request) -> str:
            return request.url.path

        @app.get("/inline", inline=True)
        def inline(n: int = 0) -> dict:
            return {"n": n, "thread": threading.current_thread().name}

        async def main() -> None:
            worker = Worker(app, native=fake_native)
            server, targets = worker._make_server()
            pool = SyncPool(2, thread_name_prefix="lane")
            try:
                d = Dispatcher(app, server, targets, asyncio.get_running_loop(), pool)
                lane = {route.path: pooled for route, pooled in d._sync_lane.items()}
                assert lane == {"/items/{item_id}": True, "/inline": False}, \
                    "a route that needs the Request takes the ordinary way"
                inline_answer = server.inject("GET", "/inline?n=3")
                d.on_readable()
                # Answered inside the callback, on the loop thread, with no Task at all.
                assert inline_answer.status == 200 and not d.tasks.tasks
                assert json.loads(inline_answer.body) == {"n": 3, "thread": threading.current_thread().name}
                before = asyncio.all_tasks()
                responder = server.inject("GET", "/items/7?q=x")
                d.on_readable()
                assert not d.tasks.tasks and asyncio.all_tasks() == before, "no Task for a sync-lane request"
                await asyncio.get_running_loop().run_in_executor(None, self._wait, responder)
                assert responder.status == 200
                body = json.loads(responder.body)
                assert body["id"] == 7 and body["q"] == "x" and body["thread"].startswith("lane")
                bad = server.inject("GET", "/items/seven")  # invalid: the ordinary pipeline's 422
                d.on_readable()
                await asyncio.gather(*d.tasks.tasks)
                await asyncio.get_running_loop().run_in_executor(None, self._wait, bad)
                assert bad.status == 422
            finally:
                pool.shutdown(wait=True)

        run(main())

    @pytest.mark.parametrize("threads", [0, 1], ids=["embedded", "io-thread"])
    def test_errors_background_tasks_and_streams_finish_on_the_loop(self, threads: int) -> None:
        require_compiled_engine()
        from covet.serve import ThreadedWorker

        app = CovetPy()  # no middleware (the TestClient adds one, which keeps routes off the lane): a real server
        ran: list[str] = []

        class Teapot(Exception):
            pass

        @app.exception_handler(Teapot)
        async def teapot(request: Request, exc: Teapot) -> JSONResponse:
            return JSONResponse({"teapot": request.url.path}, status_code=418)

        @app.get("/ok")
        def ok() -> dict:
            return {"thread": threading.current_thread().name}

        @app.get("/missing")
        def missing() -> dict:
            raise HTTPException(404, "no such thing")

        @app.get("/teapot")
        def brew() -> dict:
            raise Teapot()

        @app.get("/boom")
        def boom() -> dict:
            raise ValueError("boom")

        @app.get("/later")
        def later() -> Response:
            return PlainTextResponse("sent", background=BackgroundTask(ran.append, "background"))

        @app.get("/inline-missing", inline=True)
        def inline_missing() -> dict:
            raise HTTPException(404, "not here either")

        @app.get("/stream")
        def stream() -> StreamingResponse:
            return StreamingResponse(iter([b"a", b"b", b"c"]), media_type="text/plain")

        @app.post("/echo")
        def echo(payload: dict) -> dict:
            return payload

        worker = ThreadedWorker(app, threads=threads).start()
        try:
            dispatcher = worker.worker.dispatcher
            assert isinstance(dispatcher, Dispatcher)
            assert {route.path for route in dispatcher._sync_lane} >= {"/ok", "/missing", "/boom", "/echo"}

            def call(method: str, path: str, body: Optional[bytes] = None) -> tuple[int, bytes]:
                conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
                try:
                    headers = {"content-type": "application/json"} if body is not None else {}
                    conn.request(method, path, body=body, headers=headers)
                    r = conn.getresponse()
                    return r.status, r.read()
                finally:
                    conn.close()

            status, body = call("GET", "/ok")
            assert status == 200 and json.loads(body)["thread"].startswith("covet-sync")
            assert call("GET", "/missing") == (404, b'{"detail":"no such thing"}')
            assert call("GET", "/teapot") == (418, b'{"teapot":"/teapot"}')
            assert call("GET", "/inline-missing") == (404, b'{"detail":"not here either"}')
            assert call("GET", "/boom") == (500, b"Internal Server Error")
            assert call("GET", "/later") == (200, b"sent")
            deadline = time.monotonic() + 5
            while not ran and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ran == ["background"]
            assert call("GET", "/stream") == (200, b"abc")
            assert call("POST", "/echo", b'{"a": [1, 2]}') == (200, b'{"a":[1,2]}')
            assert call("POST", "/echo", b"not json")[0] == 422
            # Many at once on several connections: every answer arrives (with the embedded engine, the pool's
            # answers are posted to the loop thread's engine and the loop is asked to poll).
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda _: call("GET", "/ok")[0], range(200)))
            assert results == [200] * 200
        finally:
            worker.stop()


class TestRequestLifetime:
    def test_nothing_is_read_from_the_engine_that_the_handler_does_not_need(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()
        natives: list[Any] = []

        @app.get("/p/{x}")
        async def p(x: int) -> int:
            return x

        @app.get("/q")
        async def q(limit: int = 1) -> int:
            return limit

        @app.get("/r")
        async def r(request: Request) -> str:
            natives.append(request._native)
            return request.method

        @app.post("/items")
        async def items(item: _Item) -> str:
            return item.name

        async def main() -> None:
            h = harness_factory(app)
            original = h.server.take

            def take(max_items: int = 256):  # type: ignore[no-untyped-def]
                items = original(max_items)
                natives.extend(native for _, native, _ in items)
                return items

            h.server.take = take  # type: ignore[method-assign]
            assert h.request("GET", "/p/3").body == b"3"
            assert h.request("GET", "/q?limit=4").body == b"4"
            assert h.request("GET", "/r").body == b'"GET"'
            json_type = [("Host", "fake"), ("Content-Type", "application/json")]
            assert h.request("POST", "/items", headers=json_type, body=b'{"name":"a","price":1}').body == b'"a"'
            assert [n.reads for n in natives[:2]] == [["params"], ["query_string"]]
            assert natives[2].reads == ["method"]
            # A JSON body: its content type is looked up alone, not every header converted.
            assert natives[4].reads == ["body", "header"]

        run(main())

    def test_headers_are_looked_up_one_name_at_a_time(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        """``request.headers.get``/``[]``/``in``/``getlist``, a Header() parameter and the cookies ask the engine for
        the names they read; only what needs every header (iteration here) converts them, once."""
        app = CovetPy()
        natives: list[Any] = []

        @app.get("/auth")
        async def auth(request: Request, x_trace: Optional[str] = Header(None)) -> dict:
            natives.append(request._native)
            headers = request.headers
            return {"auth": headers.get("Authorization"), "missing": headers.get("x-missing", "-"),
                    "has": ["x-missing" in headers, "ACCEPT" in headers], "accept": headers.getlist("accept"),
                    "host": headers["host"], "trace": x_trace, "session": request.cookies.get("s")}

        @app.get("/every")
        async def every(request: Request) -> list:
            natives.append(request._native)
            headers = request.headers
            names = sorted(headers)
            return [names, headers.get("x-a"), headers.getlist("x-a"), len(headers)]

        async def main() -> None:
            h = harness_factory(app)
            sent = [("Host", "fake"), ("Authorization", "Bearer t"), ("Accept", "a"), ("accept", "b"),
                    ("Cookie", "s=1"), ("X-Trace", "9")]
            answer = h.request("GET", "/auth", headers=sent)
            assert json.loads(answer.body) == {"auth": "Bearer t", "missing": "-", "has": [False, True],
                                               "accept": ["a", "b"], "host": "fake", "trace": "9", "session": "1"}
            assert "headers" not in natives[0].reads and set(natives[0].reads) == {"header", "header_values"}
            answer = h.request("GET", "/every", headers=[("Host", "fake"), ("X-A", "1"), ("x-a", "2")])
            assert json.loads(answer.body) == [["host", "x-a"], "1", ["1", "2"], 2]
            assert natives[1].reads == ["headers"]

        run(main())

    def test_headers_kept_without_their_request_stay_readable(self, make_client) -> None:  # type: ignore[no-untyped-def]
        """The engine lets a request go with its answer: headers kept past it (here alone, without the request)
        are converted first, and answer as before."""
        app = CovetPy()
        kept: list[Any] = []

        @app.get("/keep")
        async def keep(request: Request) -> str:
            headers = request.headers
            kept.append(headers)  # e.g. for a background job
            return headers.get("x-k", "")  # read in the engine first

        client = make_client(app)
        assert client.get("/keep", headers=[("X-K", "v"), ("X-M", "1"), ("X-M", "2")]).json() == "v"
        (headers,) = kept
        assert (headers.get("x-k"), headers["X-K"], "x-m" in headers, headers.getlist("x-m")) == ("v", "v", True,
                                                                                                  ["1", "2"])
        assert ("x-m", "1") in headers.items() and ("X-M", "2") in headers.raw

    def test_an_exception_handler_s_kept_headers_stay_readable(self, harness_factory) -> None:  # type: ignore[no-untyped-def]
        """A route whose plan needs no Request gets one made for its exception handler: headers that handler keeps
        past the answer (a background task's argument) are copied out first, as `_handle`'s are."""
        app = CovetPy()
        seen: list[Optional[str]] = []

        class Boom(Exception):
            pass

        @app.exception_handler(Boom)
        async def on_boom(request: Request, exc: Boom) -> JSONResponse:
            return JSONResponse({"boom": True}, background=BackgroundTask(lambda h: seen.append(h.get("x-k")),
                                                                          request.headers))

        @app.get("/e")
        async def e(tasks: BackgroundTasks) -> None:  # not on the direct path, no Request of its own
            raise Boom()

        async def main() -> None:
            h = harness_factory(app)
            answer = h.request("GET", "/e", headers=[("Host", "fake"), ("X-K", "v")])
            await asyncio.gather(*h.dispatcher.tasks.tasks)
            assert (answer.status, seen) == (200, ["v"])

        run(main())

    def test_engine_headers_answer_as_headers_do(self, make_client) -> None:  # type: ignore[no-untyped-def]
        """Looked up in the engine or converted, a request's headers give the same answers as `Headers` over the
        same list: first value, every value, case-insensitive names, absent names; copies and comparison."""
        import copy as copy_module
        import pickle

        from covet.datastructures import EngineHeaders, Headers, MutableHeaders

        app = CovetPy()

        @app.get("/compare")
        async def compare(request: Request) -> list:
            lazy = request.headers
            assert type(lazy) is EngineHeaders
            initial = (lazy._source, lazy._lower)
            assert initial[0] is not None and initial[1] is None
            names = ["x-a", "X-A", "x-b", "Host", "absent"]
            looked_up = [[lazy.get(n), lazy.get(n, "d"), n in lazy, lazy.getlist(n)] for n in names]
            try:
                lazy["absent"]
            except KeyError as exc:
                looked_up.append(exc.args)
            plain = Headers(list(lazy.raw))  # converts them (raw): from here on the lazy one answers as Headers
            converted = [[lazy.get(n), lazy.get(n, "d"), n in lazy, lazy.getlist(n)] for n in names]
            expected = [[plain.get(n), plain.get(n, "d"), n in plain, plain.getlist(n)] for n in names]
            copy = MutableHeaders(lazy._raw)
            copy["x-a"] = "3"
            copies = [copy_module.copy(lazy), copy_module.deepcopy(lazy), pickle.loads(pickle.dumps(lazy))]
            assert all(type(c) is Headers and c == plain for c in copies)
            # EngineHeaders(source) holds what Request.headers set up without its __init__ frame.
            made = EngineHeaders(initial[0])
            assert (made._source, made._lower) == initial
            assert [made.get(n) for n in names] == [plain.get(n) for n in names]
            return [looked_up[:-1] == expected == converted, list(looked_up[-1]), lazy == plain,
                    dict(lazy) == dict(plain), copy.getlist("x-a"), lazy.getlist("x-a")]

        client = make_client(app)
        answer = client.get("/compare", headers=[("X-A", "1"), ("x-b", ""), ("x-a", "2")])
        assert answer.json() == [True, ["absent"], True, True, ["3"], ["1", "2"]]

    def test_a_request_kept_after_the_response_stays_readable(self, make_client) -> None:  # type: ignore[no-untyped-def]
        app = CovetPy()
        kept: list[Request] = []

        @app.post("/keep")
        async def keep(request: Request) -> str:
            kept.append(request)  # e.g. for a background job
            return "kept"

        @app.post("/drop")
        async def drop(request: Request) -> str:
            return request.method

        client = make_client(app)
        assert client.post("/keep?a=1", content=b"payload", headers={"X-K": "v"}).json() == "kept"
        assert client.post("/drop").json() == "POST"
        (request,) = kept
        assert request.headers["x-k"] == "v" and request.query_params["a"] == "1"
        assert asyncio.run(request.body()) == b"payload" and request.client.host == "testclient"
