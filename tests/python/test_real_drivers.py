"""Real asyncio libraries inside covet handlers: asyncpg against PostgreSQL, redis-py's asyncio client against
Redis, httpx.AsyncClient and aiohttp's client, plus the asyncio features they are built on (a current Task,
``asyncio.timeout()``, contextvars, TaskGroup, cancellation).

Whatever way a handler is started (eagerly or as a Task, by default or by request), it must see exactly what a
Task sees: asyncpg's pool uses ``asyncio.timeout()``, which refuses to run outside a Task, and an app that
catches database errors would otherwise answer 200 with empty results.

Served by the compiled engine, on the event-loop thread (threads=0) and on an I/O thread (threads=1), with
the default eager setting, eager asked for, and eager off; COVET_NATIVE=fake serves them with the pure-Python
stand-in instead. The database servers come from ``scripts/services.sh start`` (``build/services.env``) or
from the environment (``COVET_TEST_POSTGRES_DSN``, ``COVET_TEST_REDIS_URL``). Without them these tests skip, unless
``COVET_REQUIRE_SERVICES=1`` (as scripts/test.sh sets), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional

import pytest
from serverproc import SERVICES_ENV, service_setting

from covet import CovetPy, Request, Response
from covet.serve import ThreadedWorker
from covet.server import engine as _engine

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
handler_var: contextvars.ContextVar[str] = contextvars.ContextVar("handler_var", default="unset")


def _services() -> dict[str, str]:
    values = {key: value for key in ("COVET_TEST_POSTGRES_DSN", "COVET_TEST_REDIS_URL")
              if (value := service_setting(key))}
    missing = [k for k in ("COVET_TEST_POSTGRES_DSN", "COVET_TEST_REDIS_URL") if not values.get(k)]
    if missing:
        reason = (f"{', '.join(missing)} not set and {SERVICES_ENV} missing: run `scripts/services.sh start` "
                  "(needs the Debian packages postgresql and redis-server)")
        if os.environ.get("COVET_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    return values


def _engine_module() -> Any:
    """The compiled engine; the pure-Python stand-in with COVET_NATIVE=fake (e.g. on a Python the engine is
    not built for: handlers run the same way, only the engine differs)."""
    if os.environ.get("COVET_NATIVE", "real") == "fake":
        import fake_native

        return fake_native
    module = sys.modules.get("covet._native")  # conftest loads it (installed or from build-py*/)
    if module is None:
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail("compiled engine required: covet._native not found")
        pytest.skip("compiled engine not available")
    return module


async def taskgroup_report() -> dict[str, Any]:
    """TaskGroups in the current Task: one whose children succeed, one whose failing child cancels its
    sibling and (by cancelling the parent Task) the group's wait."""
    async def child(i: int) -> int:
        await asyncio.sleep(0.001 * i)
        return i * 10

    async with asyncio.TaskGroup() as tg:
        children = [tg.create_task(child(i)) for i in range(3)]
    values = [c.result() for c in children]

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("child failed")

    errors: list[str] = []
    try:
        async with asyncio.TaskGroup() as tg:
            sibling = tg.create_task(asyncio.sleep(10))
            tg.create_task(failing())
    except* ValueError as group:
        errors = [str(e) for e in group.exceptions]
    task = asyncio.current_task()
    assert task is not None
    # cancelling(): 0 from Python 3.12 on; 3.11's TaskGroup leaves the parent's count raised in this case.
    return {"values": values, "errors": errors, "sibling_cancelled": sibling.cancelled(),
            "cancelling": task.cancelling()}


def make_app(dsn: str, redis_url: str, eager_async: Optional[bool]) -> CovetPy:
    import aiohttp
    import asyncpg
    import httpx
    import redis.asyncio as aioredis

    @contextlib.asynccontextmanager
    async def lifespan(app: CovetPy) -> AsyncIterator[None]:
        # A pool smaller than the concurrency: handlers wait in acquire() (asyncio.timeout inside asyncpg).
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=5)
        # No floor connections (asyncpg keeps min_size ones open); any idle for 0.3 s is closed and the next
        # acquire() connects again, inside the handler.
        app.state.idle_pool = await asyncpg.create_pool(
            dsn, min_size=0, max_size=2, max_inactive_connection_lifetime=0.3)
        app.state.redis = aioredis.from_url(redis_url)
        app.state.httpx = httpx.AsyncClient(timeout=10)
        app.state.aiohttp = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            yield
        finally:
            await app.state.aiohttp.close()
            await app.state.httpx.aclose()
            await app.state.redis.aclose()
            await app.state.idle_pool.close()
            await app.state.pool.close()

    options: dict[str, Any] = {} if eager_async is None else {"eager_async": eager_async}
    app = CovetPy(lifespan=lifespan, **options)

    @app.middleware("http")
    async def set_request_id(request: Request, call_next):  # type: ignore[no-untyped-def]
        request_id.set(request.headers.get("x-request-id", "missing"))
        return await call_next(request)

    # Like the ported FastAPI app of the issue, the handler catches database errors and answers anyway: a
    # driver failing inside it shows up as an "error" field next to empty rows.
    async def rows(pool: Any, n: int, with_pid: bool = False) -> dict[str, Any]:
        try:
            async with pool.acquire() as conn:
                records = await conn.fetch("SELECT g, g * g AS sq FROM generate_series(1, $1::int) AS g", n)
                pid = conn.get_server_pid()
            result: dict[str, Any] = {"rows": [[r["g"], r["sq"]] for r in records]}
            if with_pid:
                result["pid"] = pid
            return result
        except Exception as exc:  # noqa: BLE001 - the pattern of the issue: errors become empty answers
            return {"rows": [], "error": f"{type(exc).__name__}: {exc}"}

    @app.get("/pg/{n}")
    async def pg(n: int) -> dict[str, Any]:
        return await rows(app.state.pool, n)

    @app.get("/pg-idle/{n}")
    async def pg_idle(n: int) -> dict[str, Any]:
        return await rows(app.state.idle_pool, n, with_pid=True)

    @app.get("/redis/{key}")
    async def redis_roundtrip(key: str, value: str) -> dict[str, Any]:
        try:
            r = app.state.redis
            await r.set(f"covet-test:{key}", value, ex=60)
            got = await r.get(f"covet-test:{key}")
            return {"value": got.decode() if got is not None else None}
        except Exception as exc:  # noqa: BLE001
            return {"value": None, "error": f"{type(exc).__name__}: {exc}"}

    @app.get("/plain/{word}")
    async def plain(word: str) -> dict[str, str]:
        return {"echo": word}

    @app.get("/httpx/{word}")
    async def via_httpx(word: str, request: Request) -> dict[str, Any]:
        r = await app.state.httpx.get(f"http://127.0.0.1:{request.url.port}/plain/{word}")
        return {"status": r.status_code, "body": r.json()}

    @app.get("/aiohttp/{word}")
    async def via_aiohttp(word: str, request: Request) -> dict[str, Any]:
        async with app.state.aiohttp.get(f"http://127.0.0.1:{request.url.port}/plain/{word}") as r:
            return {"status": r.status, "body": await r.json()}

    @app.get("/task")
    async def task_identity() -> dict[str, Any]:
        first = asyncio.current_task()  # before any suspension
        async with asyncio.timeout(5):  # needs a current Task from the first line on
            await asyncio.sleep(0)
        return {"task": first is not None, "same": first is asyncio.current_task()}

    @app.get("/timeout-expires")
    async def timeout_expires() -> Response:
        task = asyncio.current_task()
        assert task is not None
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            # The Timeout uncancelled the Task: it is not left "cancelling" (later awaits would break).
            return Response({"timed_out": True, "cancelling": task.cancelling()}, status_code=504)
        return Response({"timed_out": False}, status_code=200)

    @app.get("/wait-for")
    async def wait_for() -> dict[str, Any]:
        try:
            await asyncio.wait_for(asyncio.sleep(10), 0.02)
        except TimeoutError:
            return {"timed_out": True}
        return {"timed_out": False}

    @app.get("/context")
    async def context() -> dict[str, str]:
        leaked = handler_var.get()  # set by an earlier request: must not be visible here
        handler_var.set(request_id.get())
        await asyncio.sleep(0.001)
        return {"before_await": request_id.get(), "leaked": leaked, "mine": handler_var.get()}

    @app.get("/taskgroup")
    async def taskgroup() -> dict[str, Any]:
        return await taskgroup_report()

    return app


MODES = [
    pytest.param((0, None), id="embedded-default"),
    pytest.param((1, None), id="io-thread-default"),
    pytest.param((0, True), id="embedded-eager"),
    pytest.param((1, True), id="io-thread-eager"),
    pytest.param((0, False), id="embedded-task"),
]


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest) -> Iterator[ThreadedWorker]:
    threads, eager = request.param
    services = _services()
    for driver in ("asyncpg", "redis", "aiohttp", "httpx"):  # requirements-dev.txt
        try:
            __import__(driver)
        except ImportError as exc:
            reason = f"{driver} not installed: pip install -r requirements-dev.txt ({exc})"
            if os.environ.get("COVET_REQUIRE_SERVICES"):
                pytest.fail(reason)
            pytest.skip(reason)
    native = _engine_module()
    previous = _engine.use_native(native)
    app = make_app(services["COVET_TEST_POSTGRES_DSN"], services["COVET_TEST_REDIS_URL"], eager)
    worker = ThreadedWorker(app, threads=threads).start()
    try:
        yield worker
    finally:
        worker.stop()
        _engine.use_native(previous)


async def _get_many(
    port: int, paths: list[str], in_flight: int, headers: Optional[list[dict[str, str]]] = None
) -> list[Any]:
    import httpx

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        async def one(i: int) -> Any:
            async with gate:
                return await client.get(paths[i], headers=headers[i] if headers else None)

        return await asyncio.gather(*(one(i) for i in range(len(paths))))


def _expected_rows(n: int) -> list[list[int]]:
    return [[g, g * g] for g in range(1, n + 1)]


def test_asyncpg_pool_under_concurrency(server: ThreadedWorker) -> None:
    sizes = [1 + i % 17 for i in range(200)]
    responses = asyncio.run(_get_many(server.port, [f"/pg/{n}" for n in sizes], in_flight=20))
    for n, r in zip(sizes, responses):
        assert r.status_code == 200
        assert r.json() == {"rows": _expected_rows(n)}, r.text


def test_asyncpg_reconnects_after_the_idle_timeout(server: ThreadedWorker) -> None:
    """The pool closes connections idle for 0.3 s; the handler's acquire() then reconnects (asyncpg's
    connect runs under a timeout), sequentially and concurrently."""
    def get(n: int) -> dict[str, Any]:
        (r,) = asyncio.run(_get_many(server.port, [f"/pg-idle/{n}"], in_flight=1))
        body: dict[str, Any] = r.json()
        assert body.get("rows") == _expected_rows(n), body
        return body

    pids = [get(2)["pid"]]
    for n in (3, 4):
        time.sleep(0.7)  # past max_inactive_connection_lifetime: the pool closed its idle connection
        pids.append(get(n)["pid"])
    assert len(set(pids)) == 3, f"expected a new server connection after each idle period: {pids}"
    responses = asyncio.run(_get_many(server.port, [f"/pg-idle/{1 + i % 5}" for i in range(20)], in_flight=4))
    assert [r.json()["rows"] for r in responses] == [_expected_rows(1 + i % 5) for i in range(20)]


def test_redis_set_get(server: ThreadedWorker) -> None:
    paths = [f"/redis/k{server.port}-{i}?value=v{i}" for i in range(100)]
    responses = asyncio.run(_get_many(server.port, paths, in_flight=20))
    assert [r.json() for r in responses] == [{"value": f"v{i}"} for i in range(100)]


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
def test_http_clients_calling_a_local_endpoint(server: ThreadedWorker, client: str) -> None:
    responses = asyncio.run(_get_many(server.port, [f"/{client}/w{i}" for i in range(40)], in_flight=10))
    assert [r.json() for r in responses] == [{"status": 200, "body": {"echo": f"w{i}"}} for i in range(40)]


def test_current_task_and_timeout_from_the_first_line(server: ThreadedWorker) -> None:
    responses = asyncio.run(_get_many(server.port, ["/task"] * 20, in_flight=5))
    assert [r.json() for r in responses] == [{"task": True, "same": True}] * 20


def test_expiring_timeout_cancels_the_handler_cleanly(server: ThreadedWorker) -> None:
    responses = asyncio.run(_get_many(server.port, ["/timeout-expires"] * 10 + ["/wait-for"] * 10, in_flight=10))
    assert [(r.status_code, r.json()) for r in responses[:10]] == [(504, {"timed_out": True, "cancelling": 0})] * 10
    assert [r.json() for r in responses[10:]] == [{"timed_out": True}] * 10


def test_contextvars_from_middleware_and_no_leaks(server: ThreadedWorker) -> None:
    headers = [{"x-request-id": f"req-{i}"} for i in range(200)]
    responses = asyncio.run(_get_many(server.port, ["/context"] * 200, in_flight=20, headers=headers))
    assert [r.json() for r in responses] == [
        {"before_await": f"req-{i}", "leaked": "unset", "mine": f"req-{i}"} for i in range(200)]


def test_taskgroup_and_child_failure(server: ThreadedWorker) -> None:
    in_a_plain_task = asyncio.run(taskgroup_report())  # what asyncio itself gives on this Python
    assert in_a_plain_task["values"] == [0, 10, 20] and in_a_plain_task["errors"] == ["child failed"]
    responses = asyncio.run(_get_many(server.port, ["/taskgroup"] * 10, in_flight=5))
    assert [r.json() for r in responses] == [in_a_plain_task] * 10
