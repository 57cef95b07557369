"""The Python runtime's metrics on /_metrics of a worker serving with the metrics endpoints, over real sockets:
event-loop lag when a handler blocks the loop, the sync pool's busy/queued threads while sync handlers run,
GC pauses and collections by generation, the GIL wait while a thread runs Python; none of them without the
endpoints or with COVET_RUNTIME_METRICS=0. One `covet run --metrics` process shows they are there by default."""

from __future__ import annotations

import gc
import re
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, get, require_compiled_engine, sample

from covet import CovetPy
from covet.observability.runtime import InstrumentedThreadPool, runtime_metrics_enabled
from covet.server.serve import ThreadedWorker


@pytest.fixture(scope="module", autouse=True)
def compiled_engine_with_runtime_metrics() -> None:
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'runtime_gil_probe'), 'no runtime probe'",
                            "compiled engine with the runtime metrics (rebuild it)")


def above(text: str, name: str, bound: float, **labels: str) -> float:
    """Observations of histogram `name` above `bound` (one of its bucket bounds)."""
    count = sample(text, name + "_count", **labels)
    if count == 0:
        return 0.0  # no observation yet: no series
    for line in text.splitlines():
        m = re.match(re.escape(name) + r'_bucket\{(.*)le="([^"]+)"\} (\S+)$', line)
        if m and m.group(2) != "+Inf" and float(m.group(2)) == bound and all(
                f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return count - float(m.group(3))
    raise AssertionError(f"{name} has no bucket le={bound}:\n{text}")


def make_app() -> CovetPy:
    app = CovetPy(thread_pool_size=2)

    @app.get("/block")
    async def block(ms: int) -> dict[str, int]:
        time.sleep(ms / 1000)  # noqa: ASYNC251 - blocks the event loop on purpose
        return {"blocked": ms}

    @app.get("/sync")
    def sync(ms: int) -> dict[str, int]:  # runs in the pool
        time.sleep(ms / 1000)
        return {"slept": ms}

    @app.get("/spin")
    def spin(ms: int) -> dict[str, int]:  # holds the GIL in a pool thread
        end = time.perf_counter() + ms / 1000
        n = 0
        while time.perf_counter() < end:
            n += 1
        return {"loops": n}

    @app.get("/collect")
    async def collect() -> dict[str, int]:
        garbage: list[Any] = []
        garbage.append(garbage)  # a cycle for the collector
        del garbage
        return {"collected": gc.collect()}

    return app


@pytest.fixture()
def served() -> Iterator[int]:
    worker = ThreadedWorker(make_app(), "127.0.0.1", 0, metrics=True).start()
    try:
        yield worker.port
    finally:
        worker.stop()


def scrape(port: int) -> str:
    status, text = get(port, "/_metrics", timeout=20)
    assert status == 200
    return text


def test_event_loop_lag_shows_a_blocked_loop(served: int) -> None:
    before = scrape(served)
    assert "# TYPE covet_event_loop_lag_seconds histogram" in before
    blocked_before = above(before, "covet_event_loop_lag_seconds", 0.25)
    assert get(served, "/block?ms=400", timeout=20)[0] == 200
    time.sleep(0.3)  # a tick or two after the block
    after = scrape(served)
    assert above(after, "covet_event_loop_lag_seconds", 0.25) >= blocked_before + 1, after
    # the ticks go on: several per second
    ticks = sample(after, "covet_event_loop_lag_seconds_count") - sample(before, "covet_event_loop_lag_seconds_count")
    assert ticks >= 3


CROWD_APP = textwrap.dedent("""
    import asyncio, time
    from covet import CovetPy
    app = CovetPy()

    @app.get("/crowd")
    async def crowd(n: int, ms: int):
        # `n` callbacks that each put themselves back on the loop's ready queue until `ms` passed.
        loop = asyncio.get_running_loop()
        end = time.perf_counter() + ms / 1000

        def again():
            if time.perf_counter() < end:
                loop.call_soon(again)

        for _ in range(n):
            loop.call_soon(again)
        return {"callbacks": n}
    """)


def test_event_loop_queue_depth_counts_the_ready_callbacks(tmp_path: Path) -> None:
    # A server process of its own: in this process (ThreadedWorker) the crowd's thread holds the GIL nearly all the
    # time and the test's client thread, waiting for it at each socket call, saw scrapes take 1.5-3 s and missed
    # the crowd (two clean-clone runs).
    (tmp_path / "app.py").write_text(CROWD_APP)
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", "0", "--metrics"],
                       cwd=tmp_path) as server:
        served = server.port
        text = scrape(served)
        if "covet_event_loop_ready_callbacks" not in text:
            pytest.skip("the loop is not asyncio's (uvloop keeps its ready queue in C: the gauge is not exported)")
        assert "# TYPE covet_event_loop_ready_callbacks gauge" in text
        assert sample(text, "covet_event_loop_ready_callbacks") < 50  # an idle loop
        # The crowd lasts 4 s and is watched for 3.5 s.
        assert get(served, "/crowd?n=2000&ms=4000", timeout=20)[0] == 200
        seen = 0.0
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline and seen < 1500:
            seen = max(seen, sample(scrape(served), "covet_event_loop_ready_callbacks"))
            time.sleep(0.05)
        assert seen >= 1500, seen  # the 2000 waiting callbacks, give or take those run before the tick in its turn
        deadline = time.monotonic() + 5
        now = seen
        while time.monotonic() < deadline and now >= 50:
            time.sleep(0.1)
            now = sample(scrape(served), "covet_event_loop_ready_callbacks")
        assert now < 50, now  # back to idle once they stop
        server.stop()


def test_thread_pool_busy_and_queued_while_sync_handlers_run(served: int) -> None:
    assert sample(scrape(served), "covet_threadpool_threads") == 2
    with ThreadPoolExecutor(3) as clients:
        calls = [clients.submit(get, served, "/sync?ms=700") for _ in range(3)]
        deadline = time.monotonic() + 5
        while True:  # sampled every 0.1 s: two run, one waits for a thread
            text = scrape(served)
            busy, queued = sample(text, "covet_threadpool_busy_threads"), sample(text, "covet_threadpool_queued_tasks")
            if busy == 2 and queued == 1:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        assert [c.result()[0] for c in calls] == [200, 200, 200]
    time.sleep(0.3)
    text = scrape(served)
    assert sample(text, "covet_threadpool_busy_threads") == 0
    assert sample(text, "covet_threadpool_queued_tasks") == 0
    assert sample(text, "covet_threadpool_tasks_total") >= 3
    assert sample(text, "covet_threadpool_queue_wait_seconds_total") >= 0.5  # the third waited ~0.7 s


def test_gc_collections_and_pauses_by_generation(served: int) -> None:
    before = scrape(served)
    assert get(served, "/collect", timeout=20)[0] == 200
    after = scrape(served)
    assert sample(after, "python_gc_collections_total", generation="2") >= \
        sample(before, "python_gc_collections_total", generation="2") + 1
    assert sample(after, "python_gc_pause_seconds_count", generation="2") >= \
        sample(before, "python_gc_pause_seconds_count", generation="2") + 1
    assert sample(after, "python_gc_pause_seconds_sum", generation="2") > 0
    assert sample(after, "python_gc_objects_collected_total", generation="2") >= 1
    assert 'python_gc_collections_total{generation="0"}' in after


def test_gil_wait_while_a_thread_runs_python(served: int) -> None:
    before = scrape(served)
    assert sample(before, "covet_gil_wait_seconds_count") > 0  # the probe runs from the start
    waited_before = above(before, "covet_gil_wait_seconds", 0.001)
    assert get(served, "/spin?ms=600", timeout=20)[0] == 200
    after = scrape(served)
    # A thread running Python keeps the GIL up to the switch interval (5 ms) before the probe gets it.
    assert above(after, "covet_gil_wait_seconds", 0.001) >= waited_before + 1, after


def test_off_without_the_endpoints_or_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime_metrics_enabled(True, 0, True)
    assert runtime_metrics_enabled(False, 9000, True)
    assert not runtime_metrics_enabled(False, 0, True)
    assert not runtime_metrics_enabled(True, 0, False)  # record_metrics=False
    monkeypatch.setenv("COVET_RUNTIME_METRICS", "0")
    assert not runtime_metrics_enabled(True, 0, True)
    worker = ThreadedWorker(make_app(), "127.0.0.1", 0, metrics=True).start()
    try:
        assert not isinstance(worker.worker.executor, InstrumentedThreadPool)
        assert gc.callbacks == [cb for cb in gc.callbacks if "runtime_gc" not in repr(cb)]
    finally:
        worker.stop()
    monkeypatch.delenv("COVET_RUNTIME_METRICS")
    worker = ThreadedWorker(make_app(), "127.0.0.1", 0).start()  # no endpoints: a plain pool
    try:
        assert not isinstance(worker.worker.executor, InstrumentedThreadPool)
    finally:
        worker.stop()


def test_a_stopped_worker_leaves_no_callback_or_probe() -> None:
    worker = ThreadedWorker(make_app(), "127.0.0.1", 0, metrics=True).start()
    assert isinstance(worker.worker.executor, InstrumentedThreadPool)
    assert any("runtime_gc" in repr(cb) for cb in gc.callbacks)
    worker.stop()
    assert not any("runtime_gc" in repr(cb) for cb in gc.callbacks)
    from covet.observability.metrics import scrape as scrape_here

    probes = sample(scrape_here(), "covet_gil_wait_seconds_count")
    time.sleep(0.35)
    assert sample(scrape_here(), "covet_gil_wait_seconds_count") == probes  # the probe thread is gone


def test_covet_run_metrics_exposes_them(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        from covet import CovetPy
        app = CovetPy()

        @app.get("/")
        def index():
            return {"ok": True}
        """))
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", "0", "--metrics"],
                       cwd=tmp_path) as server:
        assert get(server.port, "/", timeout=20)[0] == 200
        time.sleep(0.3)
        text = scrape(server.port)
        for name in ("covet_event_loop_lag_seconds_count", "covet_gil_wait_seconds_count",
                     "covet_threadpool_tasks_total", "covet_threadpool_threads"):
            assert sample(text, name) > 0, name
        assert "# TYPE python_gc_pause_seconds histogram" in text
        server.stop()


def test_the_gc_callback_ignores_what_gc_would_never_send() -> None:
    import covet._native as native

    native.runtime_gc_declare()
    before = scrape_here_text()
    for phase, info in (("start", {}), ("stop", {}), ("stop", {"generation": "x"}), ("stop", {"generation": 7}),
                        ("start", {"generation": 0}), ("stop", {"generation": 0, "collected": None})):
        native.runtime_gc_callback(phase, info)  # type: ignore[arg-type]
    after = scrape_here_text()
    # no crash, no series for a generation that does not exist; the well-formed start/stop pair counted
    assert 'generation="7"' not in after and 'generation="x"' not in after
    assert sample(after, "python_gc_collections_total", generation="0") >= \
        sample(before, "python_gc_collections_total", generation="0") + 1


def scrape_here_text() -> str:
    from covet.observability.metrics import scrape as scrape_here

    return scrape_here()


def test_bad_intervals_are_refused() -> None:
    import asyncio

    import covet._native as native
    from covet.observability.runtime import RuntimeMetrics

    with pytest.raises(ValueError, match="interval must be > 0"):
        native.runtime_gil_probe(0.0)
    with pytest.raises(ValueError, match="interval must be > 0"):
        native.runtime_gil_probe(float("nan"))
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="interval must be > 0 seconds, not -1"):
            RuntimeMetrics(native, loop, interval=-1)
    finally:
        loop.close()
