"""Background tasks: work that runs after the response is sent (FastAPI's and Starlette's ``BackgroundTasks``).

::

    @app.post("/signup")
    def signup(email: str, tasks: BackgroundTasks) -> dict:
        tasks.add_task(send_welcome_mail, email)   # runs once the response is on its way
        return {"ok": True}

A parameter annotated `BackgroundTasks` (in the handler or in any of its dependencies: one object per request)
collects tasks; a `Response` returned with ``background=`` carries its own. They run in order after the
response has been handed to the engine: ``async def`` tasks on the event loop, plain functions in the app's
thread pool. A task that raises is logged and the tasks after it do not run (as in Starlette).

`pending()` / `wait_idle()` / `wait_idle_async()` count the responses whose tasks are not finished yet, process-wide:
a test client waits for them after each request, as Starlette's TestClient does (its ASGI call returns only once
they are done).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any, Optional

from .concurrency import run_in_threadpool

__all__ = ["BackgroundTask", "BackgroundTasks", "pending", "wait_idle", "wait_idle_async"]


def _is_async_callable(obj: Any) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(getattr(type(obj), "__call__", None))


class BackgroundTask:
    """One call, ``func(*args, **kwargs)``, to make after the response is sent."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = _is_async_callable(func)

    async def __call__(self) -> None:
        if self.is_async:
            await self.func(*self.args, **self.kwargs)
        else:
            await run_in_threadpool(self.func, *self.args, **self.kwargs)


class BackgroundTasks(BackgroundTask):
    """Several `BackgroundTask`s, run in the order they were added."""

    def __init__(self, tasks: Optional[Sequence[BackgroundTask]] = None) -> None:
        self.tasks: list[BackgroundTask] = list(tasks) if tasks else []

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    async def __call__(self) -> None:
        for task in self.tasks:
            await task()


# -- what the runtime tracks ---------------------------------------------------------------------------------
_pending = 0
_idle = threading.Condition()


def _started() -> None:
    """The runtime calls this before sending a response that has background work (so a client that has the
    response sees it pending), and `_finished` once that work is over."""
    global _pending
    with _idle:
        _pending += 1


def _finished() -> None:
    global _pending
    with _idle:
        _pending -= 1
        if _pending == 0:
            _idle.notify_all()


def pending() -> int:
    """Background tasks (per response) started and not finished yet, in this process."""
    return _pending


def wait_idle(timeout: Optional[float] = None) -> bool:
    """Blocks until no background work is pending in this process (False if `timeout` seconds passed first).

    For test clients: call it after reading a response to see the effects of its background tasks."""
    with _idle:
        return _idle.wait_for(lambda: _pending == 0, timeout)


async def wait_idle_async() -> None:
    """`wait_idle` for a client on an event loop that may be the server's own (it must not block): polls. Bound
    it with ``asyncio.timeout(...)`` / ``asyncio.wait_for(...)``."""
    delay = 0.0005
    while _pending:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


# -- per-request values for `Response` and `BackgroundTasks` parameters --------------------------------------
class RequestExtras:
    """The objects behind a request's `Response` and `BackgroundTasks` parameters: one of each per request,
    shared by the handler and its dependencies, made on first use (covet.params fills the parameters, the
    runtime merges them into the response)."""

    __slots__ = ("response", "tasks")

    def __init__(self) -> None:
        self.response: Any = None  # a covet.responses.Response whose status_code starts as None
        self.tasks: Optional[BackgroundTasks] = None

    def background_tasks(self) -> BackgroundTasks:
        tasks = self.tasks
        if tasks is None:
            tasks = self.tasks = BackgroundTasks()
        return tasks


request_extras: contextvars.ContextVar[Optional[RequestExtras]] = contextvars.ContextVar(
    "covet_request_extras", default=None)
"""Set by the runtime, in the request's own context, for routes that take a `Response` or `BackgroundTasks`."""
