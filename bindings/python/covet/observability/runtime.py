"""The Python runtime's metrics (event-loop lag, the sync pool, GC pauses, GIL wait): recorded by every worker
serving the metrics endpoints (see docs/operations.md, "Metrics"). Their implementation is part of the runtime
(covet.server.runtime_metrics); these are its public names, for an embedding that runs its own loop::

    pool = InstrumentedThreadPool(max_workers=8)
    loop.set_default_executor(pool)
    runtime = RuntimeMetrics(covet._native, loop, pool).start()   # ... runtime.stop()
"""

from __future__ import annotations

from covet.server.runtime_metrics import (
    LAG_BUCKETS,
    InstrumentedThreadPool,
    RuntimeMetrics,
    runtime_metrics_enabled,
    worker_runtime,
)

__all__ = ["LAG_BUCKETS", "InstrumentedThreadPool", "RuntimeMetrics", "runtime_metrics_enabled", "worker_runtime"]
