"""The Python runtime's metrics, in the same exposition as the engine's: event-loop lag, the sync thread pool's
busy and queued counts, GC pauses and collections by generation, and the GIL wait of a waking thread.

A worker serving with the metrics endpoints (``covet run --metrics`` or ``--ops-port``, ``app.run(metrics=True)``)
records them unless ``COVET_RUNTIME_METRICS=0``. Nothing runs on the request path:

* event-loop lag: a timer every `interval` (0.1 s) measures how late the loop ran it
  (``covet_event_loop_lag_seconds``);
* event-loop queue depth: the same timer reads how many callbacks are ready to run and waiting for their turn
  (``covet_event_loop_ready_callbacks``: asyncio's loop, ``len(loop._ready)``; uvloop keeps its ready queue in C,
  out of Python's reach, so under uvloop the gauge is not exported);
* thread pool: the worker's pool is an `InstrumentedThreadPool`; its counts are sampled at each tick
  (``covet_threadpool_*``); each task costs two clock reads and a dict lookup (no lock);
* GC: a native ``gc.callbacks`` entry times each collection (``python_gc_*``);
* GIL: a native thread wakes every `interval` and times how long it waits for the GIL
  (``covet_gil_wait_seconds``): what any thread needing the interpreter (a sync handler returning, a
  library's callback) waits while Python code runs elsewhere.

The runtime (covet.server.serve.Worker) starts them and hands this module the native module; it imports nothing
else of covet. ``covet.observability.runtime`` is its public name.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import gc
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from threading import get_ident
from time import perf_counter
from typing import Any, Optional, TypeVar

from .sync_pool import SyncPool

__all__ = ["LAG_BUCKETS", "InstrumentedThreadPool", "RuntimeMetrics", "runtime_metrics_enabled", "worker_runtime"]

T = TypeVar("T")

# Event-loop lag, 100 µs (a busy loop's ordinary delay) to 5 s (a handler blocking the loop).
LAG_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

DEFAULT_INTERVAL = 0.1  # seconds between two ticks (lag samples, pool samples, GIL probes)


def runtime_metrics_enabled(endpoints: bool, ops_port: int, record: bool) -> bool:
    """Whether a worker records them: with the metrics endpoints on (its port or an operations port) and the
    engine recording, unless ``COVET_RUNTIME_METRICS`` says 0/false/no/off."""
    flag = os.environ.get("COVET_RUNTIME_METRICS", "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    return (endpoints or ops_port > 0) and record


class InstrumentedThreadPool(SyncPool):
    """A `ThreadPoolExecutor` that knows how many of its threads run a task (`busy`), how many tasks it started
    (`tasks`) and how long they waited for a thread in total (`queue_wait`); `queued` reads its queue.

    Each thread counts in a list of its own ([started, finished, waited seconds]) that only it writes, so a task
    costs no lock (about 0.35 µs of CPU: two clock reads and a dict lookup); a reader sums the lists."""

    def __init__(self, max_workers: Optional[int] = None, thread_name_prefix: str = "", **kwargs: Any) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix, **kwargs)
        self._counts: dict[int, list[Any]] = {}  # thread ident -> [started, finished, waited]

    @property
    def max_threads(self) -> int:
        return int(self._max_workers)

    @property
    def queued(self) -> int:
        """Tasks submitted and not yet taken by a thread (cancelled ones until a thread skips them)."""
        return int(self._work_queue.qsize())

    def _totals(self) -> tuple[int, int, float]:
        started = finished = 0
        waited = 0.0
        for counts in list(self._counts.values()):  # a copy: a new thread may add its list meanwhile
            started += counts[0]
            finished += counts[1]
            waited += counts[2]
        return started, finished, waited

    @property
    def busy(self) -> int:
        started, finished, _ = self._totals()
        return max(0, started - finished)

    @property
    def tasks(self) -> int:
        return self._totals()[0]

    @property
    def queue_wait(self) -> float:
        return self._totals()[2]

    # SyncPool's methods by name, not super(): 3.11 builds its object on every pooled call
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return SyncPool.submit(self, self._run, perf_counter(), fn, args, kwargs)

    def run_soon(self, call: Callable[[], object]) -> None:
        SyncPool.run_soon(self, functools.partial(self._run, perf_counter(), call, (), {}))

    def _run(self, submitted: float, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        counts = self._counts.get(get_ident())
        if counts is None:
            counts = self._counts[get_ident()] = [0, 0, 0.0]
        counts[2] += perf_counter() - submitted
        counts[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            counts[1] += 1


# The GC callback and the GIL probe are per process: shared by the RuntimeMetrics started in it (servers on
# several threads of one process, as tests run them), installed by the first and removed by the last.
_shared_lock = threading.Lock()
_shared_users = 0


class RuntimeMetrics:
    """Records the runtime metrics of this process into `native`'s registry while started (on `loop`'s
    thread): ``RuntimeMetrics(native, loop, pool).start()`` ... ``.stop()``. `pool`: the sync pool to sample
    (an `InstrumentedThreadPool`), or None. `gil_probe`/`gc_pauses`: the two native measurements."""

    def __init__(self, native: Any, loop: asyncio.AbstractEventLoop, pool: Optional[InstrumentedThreadPool] = None,
                 *, interval: float = DEFAULT_INTERVAL, gil_probe: bool = True, gc_pauses: bool = True) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval!r}")
        self.native = native
        self.loop = loop
        self.pool = pool
        self.interval = float(interval)
        self.gil_probe = gil_probe and hasattr(native, "runtime_gil_probe")
        self.gc_pauses = gc_pauses and hasattr(native, "runtime_gc_declare")
        self._handle: Optional[asyncio.TimerHandle] = None
        self._due = 0.0
        self._sent_tasks = 0
        self._sent_wait = 0.0
        family = native.metrics_family
        self._lag = family("covet_event_loop_lag_seconds",
                           "How late the event loop ran a timer due every interval (a loop blocked by work "
                           "shows here).", "histogram", list(LAG_BUCKETS))
        # asyncio's loops (and their subclasses) hold the ready callbacks in a deque, `_ready`; uvloop's is C's.
        self._ready_queue: Optional[Any] = getattr(loop, "_ready", None)
        if self._ready_queue is not None and not hasattr(self._ready_queue, "__len__"):
            self._ready_queue = None
        if self._ready_queue is not None:
            self._depth = family("covet_event_loop_ready_callbacks",
                                 "Callbacks ready to run on the event loop and waiting for their turn (sampled "
                                 "every interval; requests' Tasks, I/O callbacks, call_soon).", "gauge", [])
        if pool is not None:
            self._threads = family("covet_threadpool_threads", "Threads the sync pool may run (its size).",
                                   "gauge", [])
            self._busy = family("covet_threadpool_busy_threads", "Sync-pool threads running a task (sampled).",
                                "gauge", [])
            self._queued = family("covet_threadpool_queued_tasks", "Tasks waiting for a sync-pool thread (sampled).",
                                  "gauge", [])
            self._tasks = family("covet_threadpool_tasks", "Tasks the sync pool started.", "counter", [])
            self._wait = family("covet_threadpool_queue_wait_seconds",
                                "Time tasks waited for a sync-pool thread, summed.", "counter", [])

    def start(self) -> RuntimeMetrics:
        if self._handle is not None:
            return self
        global _shared_users
        with _shared_lock:
            _shared_users += 1
            if _shared_users == 1:
                if self.gc_pauses:
                    self.native.runtime_gc_declare()
                    gc.callbacks.append(self.native.runtime_gc_callback)
                if self.gil_probe:
                    self.native.runtime_gil_probe(self.interval)
        atexit.register(self.stop)  # the probe thread must be gone before the interpreter finalizes
        self._schedule()
        self._sample_pool()
        if self._ready_queue is not None:
            self.native.metrics_set(self._depth, [], [], float(len(self._ready_queue)))  # listed from the start
        return self

    def stop(self) -> None:
        global _shared_users
        handle, self._handle = self._handle, None
        if handle is None:
            return
        handle.cancel()
        atexit.unregister(self.stop)
        with _shared_lock:
            _shared_users -= 1
            if _shared_users == 0:
                callback = getattr(self.native, "runtime_gc_callback", None)
                while callback is not None and callback in gc.callbacks:
                    gc.callbacks.remove(callback)
                if hasattr(self.native, "runtime_gil_probe_stop"):
                    self.native.runtime_gil_probe_stop()
        self._sample_pool()

    def _schedule(self) -> None:
        self._due = perf_counter() + self.interval
        self._handle = self.loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        lag = perf_counter() - self._due
        self.native.metrics_observe(self._lag, [], [], lag if lag > 0 else 0.0)
        if self._ready_queue is not None:  # this tick's own handle is out of the queue while it runs
            self.native.metrics_set(self._depth, [], [], float(len(self._ready_queue)))
        self._sample_pool()
        self._schedule()

    def _sample_pool(self) -> None:
        pool = self.pool
        if pool is None:
            return
        native = self.native
        tasks, finished, wait = pool._totals()
        native.metrics_set(self._threads, [], [], float(pool.max_threads))
        native.metrics_set(self._busy, [], [], float(max(0, tasks - finished)))
        native.metrics_set(self._queued, [], [], float(pool.queued))
        if tasks != self._sent_tasks:
            native.metrics_add(self._tasks, [], [], float(tasks - self._sent_tasks))
            native.metrics_add(self._wait, [], [], max(0.0, wait - self._sent_wait))
            self._sent_tasks, self._sent_wait = tasks, wait


def worker_runtime(native: Any, loop: asyncio.AbstractEventLoop, ops: Any, *, max_workers: Optional[int],
                   thread_name_prefix: str) -> tuple[SyncPool, Optional[RuntimeMetrics]]:
    """A worker's sync pool and, when `runtime_metrics_enabled` for its `ops` (covet.server.ops.OpsOptions),
    its runtime metrics, started: the runtime (covet.server.serve.Worker) stops them when it stops serving."""
    if not runtime_metrics_enabled(bool(ops.endpoints), int(ops.port), bool(ops.record)) or not hasattr(
            native, "metrics_family"):
        return SyncPool(max_workers=max_workers, thread_name_prefix=thread_name_prefix), None
    pool = InstrumentedThreadPool(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
    return pool, RuntimeMetrics(native, loop, pool).start()
