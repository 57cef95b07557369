"""The worker's pool for sync handlers: a `ThreadPoolExecutor` that can also run a call with no Future.

A sync route served the plain way costs a Task, a coroutine, `run_in_executor`'s two futures and a wake-up of the
event loop to resume the Task once the pool thread has the result — most of a sync request's CPU. `run_soon`
queues a call on the pool's own queue with none of that: the call (covet.server.dispatch's sync lane) renders and
sends the response from the pool thread itself, and only its rare cases (an exception, a streamed body, background
tasks) go back to the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["SyncPool"]


class _Call:
    """A work item of ThreadPoolExecutor's queue without a Future: its threads call ``item.run()`` (Python 3.14:
    ``item.run(ctx)``, hence the ignored arguments)."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], object]) -> None:
        self.call = call

    def run(self, *_: Any) -> None:
        self.call()


class SyncPool(ThreadPoolExecutor):
    """`ThreadPoolExecutor` plus `run_soon`. Submitted work (``run_in_executor``, ``run_in_threadpool``) and calls
    queued with `run_soon` share the same threads and queue, so the pool's size is the user's one setting."""

    def run_soon(self, call: Callable[[], object]) -> None:
        """Runs ``call()`` on a pool thread; nothing is returned or recorded: `call` handles its own exceptions.
        Raises RuntimeError once the pool is shut down, as `submit` does."""
        with self._shutdown_lock:
            if self._broken or self._shutdown:
                raise RuntimeError("cannot run a call on a thread pool that is shut down")
            self._work_queue.put(_Call(call))  # type: ignore[arg-type]  # duck-typed: only run() is called
            # At full size an idle thread, if any, takes it: no thread to add (and no idle count to take, which
            # only decides whether to add one).
            if len(self._threads) < self._max_workers:
                self._adjust_thread_count()
