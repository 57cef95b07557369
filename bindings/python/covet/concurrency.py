"""Running coroutines eagerly, and sync code in the thread pool.

`start_eagerly` runs a coroutine's first step right away, on the calling (event-loop) thread. A request
whose handler never suspends is thereby answered within the callback that received it — no Task, no
event-loop round trip. A coroutine that does suspend is handed to an asyncio Task that continues it
exactly where it stopped: the Task sees the same future the coroutine is waiting on.

Caveat of the eager step: no asyncio Task is current while it runs (``asyncio.current_task()`` is None
until the first suspension). Code that needs a current task right at the start of a handler — on Python
3.11 that is ``asyncio.timeout()`` — should run in a Task: declare the route with ``eager=False``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Iterator
from typing import Any, Optional, TypeVar

__all__ = ["start_eagerly", "run_in_threadpool", "iterate_in_threadpool"]

T = TypeVar("T")
logger = logging.getLogger("covet")


class _Resume:
    """Awaitable continuing `coro`, whose last step yielded `pending`: re-yields it, then keeps going."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        pending, self._pending = self._pending, None
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # e.g. CancelledError thrown in by the Task: pass it on
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _continue(coro: Coroutine[Any, Any, T], pending: Any) -> T:
    return await _Resume(coro, pending)  # type: ignore[no-any-return]


def _log_task_failure(task: "asyncio.Task[Any]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("request task failed", exc_info=task.exception())


class TaskSet:
    """Keeps strong references to running request tasks (asyncio only keeps weak ones)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def add(self, task: "asyncio.Task[Any]") -> None:
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: "asyncio.Task[Any]") -> None:
        self.tasks.discard(task)
        _log_task_failure(task)

    def __len__(self) -> int:
        return len(self.tasks)


def start_eagerly(
    coro: Coroutine[Any, Any, Any],
    loop: asyncio.AbstractEventLoop,
    tasks: TaskSet,
    context: Optional[contextvars.Context] = None,
) -> Optional["asyncio.Task[Any]"]:
    """Run `coro`'s first step now (in `context`, default: a copy of the current one).

    Returns None when the coroutine finished in that step, else the Task that continues it. The
    coroutine must handle its own exceptions; anything escaping is logged.
    """
    if context is None:
        context = contextvars.copy_context()
    try:
        pending = context.run(coro.send, None)
    except StopIteration:
        return None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        logger.exception("request failed")
        return None
    # Created inside the context, the Task runs the rest in (a copy of) it on every Python version.
    task = context.run(loop.create_task, _continue(coro, pending))
    tasks.add(task)
    return task


async def run_in_threadpool(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run the blocking `func(*args, **kwargs)` in the loop's default executor (the app's thread pool),
    in a copy of the current context."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(None, call)


async def iterate_in_threadpool(iterable: Iterable[T]) -> AsyncIterator[T]:
    """An async iterator over a blocking iterable, each ``next()`` running in the thread pool."""
    loop = asyncio.get_running_loop()
    iterator: Iterator[T] = iter(iterable)
    done = object()
    while True:
        item = await loop.run_in_executor(None, next, iterator, done)  # type: ignore[arg-type]
        if item is done:
            return
        yield item  # type: ignore[misc]

