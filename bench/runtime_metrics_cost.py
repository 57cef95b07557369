"""CPU cost of the Python runtime metrics (covet.server.runtime_metrics), in-process, by CPU time (getrusage), so
that the machine's load matters little: a tick's work, a sync-pool task's extra work, a GC collection's callbacks,
and what an idle process pays for the wake-ups (nothing / the lag timer / the GIL probe / everything).

    .venv/bin/python bench/runtime_metrics_cost.py [IDLE_SECONDS]      (default 5)
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from typing import Any

import covet._native as native
from covet.server.runtime_metrics import InstrumentedThreadPool, RuntimeMetrics


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_call(n: int, body: Any, baseline: Any = None) -> float:
    """Microseconds of CPU per call of `body` (minus `baseline`'s)."""
    c0 = cpu()
    for _ in range(n):
        body()
    used = cpu() - c0
    if baseline is not None:
        c0 = cpu()
        for _ in range(n):
            baseline()
        used -= cpu() - c0
    return 1e6 * used / n


async def idle(variant: str, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    runtime = None
    if variant == "timer":
        runtime = RuntimeMetrics(native, loop, None, gil_probe=False, gc_pauses=False).start()
    elif variant == "gil probe":
        native.runtime_gil_probe(0.1)
    elif variant == "all":
        runtime = RuntimeMetrics(native, loop, InstrumentedThreadPool(4)).start()
    c0 = cpu()
    await asyncio.sleep(seconds)
    used = cpu() - c0
    if runtime is not None:
        runtime.stop()
    if variant == "gil probe":
        native.runtime_gil_probe_stop()
    return 1000 * used / seconds


async def tick_cost() -> float:
    runtime = RuntimeMetrics(native, asyncio.get_running_loop(), InstrumentedThreadPool(4), gil_probe=False,
                             gc_pauses=False)

    def tick() -> None:
        native.metrics_observe(runtime._lag, [], [], time.perf_counter() - runtime._due)
        runtime._sample_pool()

    return per_call(20000, tick)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    print(f"tick (lag observation + pool gauges): {asyncio.run(tick_cost()):.2f} us")
    pool = InstrumentedThreadPool(4)

    def nothing() -> None:
        return None

    task = per_call(200000, lambda: pool._run(time.perf_counter(), nothing, (), {}), nothing)
    print(f"sync-pool task, extra: {task:.3f} us")
    native.runtime_gc_declare()
    start, stop = {"generation": 0}, {"generation": 0, "collected": 0, "uncollectable": 0}
    callback = native.runtime_gc_callback
    collection = per_call(100000, lambda: (callback("start", dict(start)), callback("stop", dict(stop))))
    print(f"GC callbacks (start + stop) of one collection: {collection:.3f} us")
    for variant in ("nothing", "timer", "gil probe", "all"):
        print(f"idle, {variant}: {asyncio.run(idle(variant, seconds)):.3f} ms of CPU per second")


if __name__ == "__main__":
    main()
