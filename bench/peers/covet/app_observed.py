"""The covet-async peer's app (app_async.py) with the observability `python -m bench --overhead` measures.

COVET_BENCH_TRACE: ``off`` (default) or a sampling ratio (``0.01``, ``1``): native tracing with the parent-based
ratio sampler, each handler run in its span's OpenTelemetry context (covet.observability.tracing). The finished
spans are drained every 0.2 s and discarded, as `hello --trace` does: the request path's cost is measured, not
an OTLP exporter's (which runs off the request path, on a background thread). Metrics are recorded unless
COVET_RECORD_METRICS=0 (the engine's default: on).
"""
import os
import threading
import time

from app_async import app

from covet.observability import Tracing

_trace = os.environ.get("COVET_BENCH_TRACE", "off")
if _trace != "off":
    tracing = Tracing(sampler=float(_trace), export=False)
    app._covet_tracing = tracing  # what setup_observability sets; the runtime installs it on its servers

    def _drain() -> None:
        while True:
            time.sleep(0.2)
            for tracer in list(tracing._tracers):
                tracer.drain()

    # COVET_BENCH_DRAIN=0: no drain thread (callgrind: a thread woken every 0.2 s costs in proportion to the run's
    # length, which valgrind stretches; at 1% a short run's spans fit in the engine's queue, 2048 per worker)
    if os.environ.get("COVET_BENCH_DRAIN", "1") != "0":
        threading.Thread(target=_drain, name="bench-span-drain", daemon=True).start()
