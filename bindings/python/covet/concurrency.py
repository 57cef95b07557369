"""Starting request coroutines as Tasks — eagerly where that is exact — and sync code in the thread pool.

Every async request pipeline runs in a real `asyncio.Task`, so handlers and the libraries they call see
exactly what they see under any asyncio server: ``asyncio.current_task()`` is their Task from the first line
on, ``asyncio.timeout()``, ``TaskGroup``, ``Task.cancel()``/``uncancel()`` and contextvars behave as usual.

*Eager start* (`start_task` with ``eager=True``) runs the Task's first step right away, inside the callback
that received the request, instead of one event-loop turn later: a handler that never suspends is answered
within that callback (and, with the embedded engine, sent with the rest of its batch). It is Python 3.12's
eager task: the Task's own step, with the Task current.

- Python >= 3.12: ``asyncio.Task(coro, loop=loop, context=ctx, eager_start=True)``.
- Python 3.11 has no eager tasks. On asyncio's own event loop and on uvloop's, `start_task` creates the
  Task while the loop's ``call_soon`` is shadowed by an instance attribute that keeps the step the Task
  schedules (no Handle is built and queued), and runs that step at once. The step that runs is the Task's
  own (C) step function, so the semantics are the Task's; only the moment differs, as with 3.12's eager
  tasks (started from inside another Task, that one steps aside for the step, as in 3.12). On another event
  loop (a loop class with a ``call_soon`` of its own, which may do more than schedule the callback) the
  Task simply runs when the loop gets to it: never a step outside a Task.
  `eager_start_available(loop)` says whether a loop allows eager starts at all.

Running a coroutine's first step bare, with no Task current (what CovetPy did before), is not offered:
``asyncio.timeout()`` raises ``RuntimeError: Timeout should be used inside a task`` there, which broke
asyncpg's pool, and a TaskGroup or ``current_task().cancel()`` could not work either.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, Optional, TypeVar

__all__ = ["start_task", "eager_start_available", "run_in_threadpool", "iterate_in_threadpool",
           "contextmanager_in_threadpool"]

T = TypeVar("T")
logger = logging.getLogger("covet")

NATIVE_EAGER_TASKS = sys.version_info >= (3, 12)  # asyncio.Task(..., eager_start=True)
_Task = asyncio.Task
_current_tasks: dict[Any, Any] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]  # loop -> its current Task (C dict)
_enter_task = asyncio.tasks._enter_task  # 3.11: make a Task current (C accelerated), as the Task step does
_leave_task = asyncio.tasks._leave_task


def _log_task_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:  # retrieves it: no "never retrieved" warning
        logger.error("request task failed", exc_info=task.exception())


class TaskSet:
    """Keeps strong references to running request tasks (asyncio only keeps weak ones); logs the failures of
    those that end with an exception unless `log_failures` is False (their owner handles them)."""

    def __init__(self, log_failures: bool = True) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._log_failures = log_failures

    def add(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if self._log_failures:
            _log_task_failure(task)

    def __len__(self) -> int:
        return len(self.tasks)


def eager_start_available(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `start_task(..., eager=True)` can run a Task's first step at once on `loop`: always on
    Python >= 3.12; on 3.11 on asyncio's own event loops and uvloop's (`_catchable`)."""
    if NATIVE_EAGER_TASKS:
        return True
    return _catchable(type(loop)) and hasattr(loop, "__dict__")


_base_call_soon = asyncio.BaseEventLoop.call_soon
_catchable_types: dict[type, bool] = {}


def _catchable(loop_type: type) -> bool:
    """Whether the ``call_soon`` of `loop_type` is one that only schedules its callback (asyncio's, uvloop's), so
    that a Task's first step caught in its stead (`_StepCatcher`) and run at once loses nothing."""
    known = _catchable_types.get(loop_type)
    if known is None:
        call_soon = getattr(loop_type, "call_soon", None)
        uvloop = sys.modules.get("uvloop.loop")  # loaded by whoever made a uvloop event loop
        known = call_soon is _base_call_soon or (
            uvloop is not None and call_soon is getattr(getattr(uvloop, "Loop", None), "call_soon", False))
        _catchable_types[loop_type] = known
    return known


class _StepCatcher:
    """Stands in for one loop's ``call_soon`` while a Task is constructed (Python 3.11): Task.__init__ schedules
    its first step through the loop's ``call_soon`` attribute; `call_soon` keeps the step instead of building a
    Handle that would be taken straight back off the ready queue. The step is the Task's own. One per loop (kept
    in the loop's ``__dict__``), so loops in other threads never share one."""

    __slots__ = ("step", "call_soon")

    def __init__(self) -> None:
        self.step: Optional[Callable[[], Any]] = None
        self.call_soon = self._keep  # the bound method, made once

    def _keep(self, callback: Callable[..., Any], *args: Any, context: Optional[contextvars.Context] = None) -> None:
        self.step = callback if not args else functools.partial(callback, *args)


def _eager_task_311(
    coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop, context: Optional[contextvars.Context]
) -> asyncio.Task[Any]:
    """Python 3.11: a Task whose first step (scheduled by its constructor) runs now. While the Task is
    constructed, the loop's ``call_soon`` is an instance attribute that keeps the step (`_StepCatcher`), so no
    Handle is queued; the step then runs in the Task's context, as Handle._run would run it."""
    if context is None:
        context = contextvars.copy_context()
    if not _catchable(type(loop)):  # a loop class with its own call_soon sees every step
        return _Task(coro, loop=loop, context=context)
    attributes: dict[str, Any] = loop.__dict__
    catcher: Optional[_StepCatcher] = attributes.get("_covet_step_catcher")
    if catcher is None:
        catcher = attributes["_covet_step_catcher"] = _StepCatcher()
    attributes["call_soon"] = catcher.call_soon  # shadows the class's method (a non-data descriptor)
    try:
        task = _Task(coro, loop=loop, context=context)
    finally:
        del attributes["call_soon"]
    step = catcher.step
    if step is None:  # pragma: no cover - Task.__init__ always schedules its first step through call_soon
        raise RuntimeError("asyncio.Task did not schedule its first step through loop.call_soon")
    catcher.step = None
    # The step catches everything itself (only KeyboardInterrupt and SystemExit come out, as from Handle._run).
    outer = _current_tasks.get(loop)
    if outer is None:
        context.run(step)
    else:  # started from inside a Task: step aside for the new one, as 3.12's eager start does
        _leave_task(loop, outer)
        try:
            context.run(step)
        finally:
            _enter_task(loop, outer)
    return task


def start_task(
    coro: Coroutine[Any, Any, Any],
    loop: asyncio.AbstractEventLoop,
    tasks: TaskSet,
    *,
    eager: bool,
    context: Optional[contextvars.Context] = None,
    on_done: Optional[Callable[[asyncio.Task[Any]], object]] = None,
) -> asyncio.Task[Any]:
    """Run `coro` in a Task on `loop` (in `context`, default: a copy of the current one).

    ``eager=True`` runs the Task's first step now when `loop` allows it (see the module docstring), else the
    Task starts on the loop's next turn, as with ``eager=False``. The Task is kept in `tasks` while it runs.
    The coroutine must handle its own exceptions; anything escaping is logged — unless `on_done` is given: it
    is called with the finished Task (at once when it finished in its eager step) and deals with its outcome
    (`tasks` should then not log either: a `TaskSet(log_failures=False)`).
    """
    if not eager:
        task = loop.create_task(coro, context=context) if context is not None else loop.create_task(coro)
    elif NATIVE_EAGER_TASKS:
        task = _Task(coro, loop=loop, context=context, eager_start=True)  # type: ignore[call-arg]
    else:
        task = _eager_task_311(coro, loop, context)
    if task.done():  # finished in its eager step: nothing to keep
        if on_done is not None:
            on_done(task)
        elif not task.cancelled() and task.exception() is not None:
            _log_task_failure(task)
    else:
        tasks.add(task)
        if on_done is not None:
            task.add_done_callback(on_done)
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
        item = await loop.run_in_executor(None, next, iterator, done)
        if item is done:
            return
        yield item  # type: ignore[misc]



@asynccontextmanager
async def contextmanager_in_threadpool(cm: AbstractContextManager[T]) -> AsyncGenerator[T, None]:
    """Use the blocking context manager `cm` from async code (FastAPI's helper): its ``__enter__`` and
    ``__exit__`` run in the thread pool; an exception in the ``async with`` body reaches ``__exit__``,
    which may suppress it."""
    value = await run_in_threadpool(cm.__enter__)
    try:
        yield value
    except Exception as exc:
        if not await run_in_threadpool(cm.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await run_in_threadpool(cm.__exit__, None, None, None)
