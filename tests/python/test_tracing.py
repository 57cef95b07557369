"""Request tracing end to end on the compiled engine, with real sockets: a W3C traceparent continued (same trace
id, the incoming span as parent), a malformed one ignored and never echoed, the sampling ratio honoured, and a
handler running with the request's span as its current OpenTelemetry context (its SDK spans are children; an
httpx call instrumented by opentelemetry-instrumentation-httpx sends the same trace id on).

The engine's finished spans are read from its tracer (``setup_observability(..., export=False)``); the OTLP
export to a real Jaeger is tests/python/test_tracing_jaeger.py.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from typing import Any

import pytest
from serverproc import require_compiled_engine
from tracecollector import Collector

pytest.importorskip("opentelemetry.sdk", reason="the OpenTelemetry SDK (requirements-dev.txt) is not installed")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from covet import CovetPy
from covet.observability import setup_observability
from covet.server.dispatch import Dispatcher
from covet.server.serve import ThreadedWorker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"

user_spans = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _sdk() -> None:
    require_compiled_engine()
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(user_spans))
        trace.set_tracer_provider(provider)


@pytest.fixture(scope="module")
def downstream() -> Iterator[Collector]:
    """A plain HTTP server that records the headers of what it is sent (the handler's outgoing call)."""
    with Collector() as server:
        yield server


def make_app(downstream_port: int = 0) -> CovetPy:
    app = CovetPy()
    tracer = trace.get_tracer("tests.tracing")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        ctx = trace.get_current_span().get_span_context()
        with tracer.start_as_current_span("load item") as span:
            user = span.get_span_context()
        return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}",
                "sampled": ctx.trace_flags.sampled, "user_span": f"{user.span_id:016x}", "item": item_id}

    @app.get("/call")
    async def call() -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{downstream_port}/down")
        ctx = trace.get_current_span().get_span_context()
        return {"status": r.status_code, "trace_id": f"{ctx.trace_id:032x}"}

    return app


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(body) if body else None
    finally:
        conn.close()


@pytest.fixture(params=[0, 1], ids=["loop-thread", "io-thread"])
def threads(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def serve(app: CovetPy, threads: int, **options: Any) -> tuple[ThreadedWorker, Any]:
    tracing = setup_observability(app, export=False, json_logs=False, metrics=False, access_log=False, **options)
    return ThreadedWorker(app, threads=threads).start(), tracing


def drain(tracing: Any) -> list[tuple[Any, ...]]:
    spans: list[tuple[Any, ...]] = []
    for tracer in tracing._tracers:
        spans.extend(tracer.drain())
    return spans


def test_incoming_traceparent_is_continued(threads: int) -> None:
    user_spans.clear()
    worker, tracing = serve(make_app(), threads)
    try:
        status, headers, body = get(worker.port, "/items/7", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
                                                             "tracestate": "rojo=00f067aa0ba902b7"})
    finally:
        worker.stop()
    assert status == 200
    assert body["trace_id"] == TRACE_ID  # the handler's current OpenTelemetry context
    assert body["sampled"] is True
    assert body["span_id"] != PARENT_ID
    assert headers.get("x-request-id")
    [span] = drain(tracing)
    (trace_id, span_id, parent_id, flags, parent_remote, code, start, end, method, version, scheme, route, path, peer,
     request_id) = span
    assert (trace_id, parent_id, flags, parent_remote) == (TRACE_ID, PARENT_ID, 1, True)
    assert span_id == body["span_id"]
    assert (code, method, version, scheme, route, path) == (200, "GET", "1.1", "http", "/items/{item_id}", "/items/7")
    assert peer == "127.0.0.1" and request_id == headers["x-request-id"]
    assert 0 < start <= end
    # The user's SDK span is a child of the request's span, in the same trace.
    [user] = [s for s in user_spans.get_finished_spans() if s.name == "load item"]
    assert f"{user.context.trace_id:032x}" == TRACE_ID
    assert user.parent is not None and f"{user.parent.span_id:016x}" == body["span_id"]


@pytest.mark.parametrize("bad", [
    f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",   # uppercase hex
    f"00-{TRACE_ID}-{PARENT_ID}-01-extra",     # an extra field in version 00
    f"00-{'0' * 32}-{PARENT_ID}-01",           # all-zero trace id
    f"00-{TRACE_ID}-{PARENT_ID}",              # too short
    f"ff-{TRACE_ID}-{PARENT_ID}-01",           # version ff
    "garbage<script>",
])
def test_malformed_traceparent_is_ignored_and_not_echoed(bad: str) -> None:
    worker, tracing = serve(make_app(), 0, sampler="always_on")
    try:
        status, headers, body = get(worker.port, "/items/1", {"traceparent": bad, "tracestate": "rojo=1"})
    finally:
        worker.stop()
    assert status == 200
    assert body["trace_id"] != TRACE_ID and body["trace_id"] != "0" * 32
    assert all(bad not in value and TRACE_ID not in value.lower() for value in headers.values())
    [span] = drain(tracing)
    assert span[0] == body["trace_id"] and span[2] == "" and span[4] is False  # a new root span


def test_sampling_ratio_is_honoured_and_parent_decision_followed() -> None:
    worker, tracing = serve(make_app(), 0, sampler=0.25)
    try:
        n = 400
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
        sampled_flags = 0
        for _ in range(n):
            conn.request("GET", "/items/1")
            r = conn.getresponse()
            sampled_flags += b'"sampled":true' in r.read()
        # An incoming sampled=1 parent is followed even when the ratio would drop its trace id, and 0 is too.
        for flags, expected in (("01", True), ("00", False)):
            conn.request("GET", "/items/2", headers={"traceparent": f"00-{'f' * 32}-{PARENT_ID}-{flags}"})
            r = conn.getresponse()
            assert (b'"sampled":true' in r.read()) is expected
        conn.close()
    finally:
        worker.stop()
    spans = drain(tracing)
    roots = [s for s in spans if s[2] == ""]
    assert 60 <= len(roots) <= 140, len(roots)  # 100 expected
    assert len(roots) == sampled_flags  # the handler saw the same decision the engine recorded
    assert [s[0] for s in spans if s[2]] == ["f" * 32]


def test_outgoing_httpx_call_carries_the_trace(downstream: Collector) -> None:
    pytest.importorskip("opentelemetry.instrumentation.httpx")
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument()
    try:
        downstream.calls.clear()
        worker, tracing = serve(make_app(downstream.port), 1)
        try:
            status, _, body = get(worker.port, "/call", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        finally:
            worker.stop()
    finally:
        HTTPXClientInstrumentor().uninstrument()
    assert status == 200 and body["status"] == 200
    [sent] = downstream.calls
    version, trace_id, parent_id, flags = sent["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    [server_span] = drain(tracing)
    # The outgoing request's parent is the httpx client span, itself a child of the request's span.
    client = [s for s in user_spans.get_finished_spans() if f"{s.context.span_id:016x}" == parent_id]
    assert client and client[0].parent is not None and f"{client[0].parent.span_id:016x}" == server_span[1]
    assert sent.get("tracestate") is None


def test_unsampled_requests_record_nothing_but_still_propagate_ids() -> None:
    worker, tracing = serve(make_app(), 0, sampler="always_off")
    try:
        status, _, body = get(worker.port, "/items/3", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    finally:
        worker.stop()
    assert status == 200 and body["trace_id"] == TRACE_ID and body["sampled"] is False
    assert drain(tracing) == []


def test_the_request_span_is_made_on_demand_and_code_attaching_its_own_context_returns_to_it() -> None:
    """The request's OpenTelemetry context is made when first read: a handler that attaches a context of its own
    first (an extracted remote parent) sees that one until it detaches it, then the request's span; a sync
    handler (the thread pool, a copy of the request's context) sees the request's span; outside requests the
    current span stays OpenTelemetry's invalid one."""
    from opentelemetry import context, propagate

    app = CovetPy()
    other = "a" * 32

    @app.get("/nested")
    async def nested() -> dict[str, str]:
        token = context.attach(propagate.extract({"traceparent": f"00-{other}-{'b' * 16}-01"}))
        inside = trace.get_current_span().get_span_context()
        context.detach(token)
        after = trace.get_current_span().get_span_context()
        return {"inside": f"{inside.trace_id:032x}", "after": f"{after.trace_id:032x}"}

    @app.get("/sync")
    def sync_handler() -> dict[str, str]:
        return {"trace_id": f"{trace.get_current_span().get_span_context().trace_id:032x}"}

    worker, _ = serve(app, 0)
    try:
        parent = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        _, _, nested_body = get(worker.port, "/nested", parent)
        _, _, sync_body = get(worker.port, "/sync", parent)
    finally:
        worker.stop()
    assert nested_body == {"inside": other, "after": TRACE_ID}
    assert sync_body == {"trace_id": TRACE_ID}
    assert trace.get_current_span() is trace.INVALID_SPAN  # this thread is in no request


def test_an_unsampled_request_reads_its_ids_on_demand_and_propagates_them_unsampled() -> None:
    """The dispatcher gives the request's context the engine's request, not its formatted ids: what reads them
    (covet.observability.current_ids, a log record, OpenTelemetry's propagator) gets them then, the same in a def
    handler's thread. An unsampled request (the parent's decision) sends its parent's trace id on with flags 00."""
    from opentelemetry import propagate

    from covet.observability import current_ids

    app = CovetPy()

    def ids_and_traceparent() -> dict[str, Any]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return {"ids": current_ids(), "traceparent": carrier.get("traceparent")}

    @app.get("/async")
    async def async_handler() -> dict[str, Any]:
        return ids_and_traceparent()

    @app.get("/sync")
    def sync_handler() -> dict[str, Any]:
        return ids_and_traceparent()

    worker, tracing = serve(app, 0, sampler="parentbased_always_on")
    try:
        unsampled = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}
        answers = [get(worker.port, path, unsampled) for path in ("/async", "/sync")]
        fresh = get(worker.port, "/async")
    finally:
        worker.stop()
    for status, headers, body in answers:
        assert status == 200
        trace_id, span_id, request_id = body["ids"]
        assert trace_id == TRACE_ID and len(span_id) == 16 and span_id != PARENT_ID
        assert request_id == headers["x-request-id"]
        assert body["traceparent"] == f"00-{TRACE_ID}-{span_id}-00"
    assert answers[0][2]["ids"][1] != answers[1][2]["ids"][1]  # each request its own span id
    # No traceparent: a new trace, sampled (parent-based always-on), its ids read the same way.
    status, headers, body = fresh
    trace_id, span_id, request_id = body["ids"]
    assert status == 200 and trace_id not in (TRACE_ID, "0" * 32) and request_id == headers["x-request-id"]
    assert body["traceparent"] == f"00-{trace_id}-{span_id}-01"
    [span] = drain(tracing)  # only that one: the unsampled requests recorded nothing
    assert (span[0], span[1]) == (trace_id, span_id)


def test_request_ids_values_read_as_tuples() -> None:
    """covet.logger.ids_of: a tuple as it is (what code sets itself), an object's ``trace_ids`` (what the
    dispatchers set: the engine's request), None outside a request."""
    from covet.logger import ids_of

    class Source:
        reads = 0

        @property
        def trace_ids(self) -> tuple[str, str, str, int, str]:
            Source.reads += 1
            return ("a" * 32, "b" * 16, "req-1", 1, "")

    assert ids_of(None) is None
    assert ids_of(("c" * 32, "d" * 16, "req-2")) == ("c" * 32, "d" * 16, "req-2")
    assert Source.reads == 0
    assert ids_of(Source()) == ("a" * 32, "b" * 16, "req-1", 1, "")
    assert Source.reads == 1


@pytest.mark.parametrize("native", [True, False], ids=["engine", "python"])
def test_context_with_copies_the_context_with_the_request_set(native: bool) -> None:
    """The dispatchers' per-request context (covet._native.context_with, or its Python stand-in): a copy of the
    base with the variable set; the base and the caller's context keep their values."""
    import contextvars

    from covet.server.dispatch import _context_with_py

    if native:
        require_compiled_engine("import covet._native as n; n.context_with", "compiled engine with context_with")
        import covet._native as n

        context_with = n.context_with
    else:
        context_with = _context_with_py
    var: contextvars.ContextVar[Any] = contextvars.ContextVar("covet_test_request", default="unset")
    other: contextvars.ContextVar[str] = contextvars.ContextVar("covet_test_other")
    other.set("kept")
    base = contextvars.copy_context()
    first, second = context_with(base, var, "first"), context_with(base, var, "second")
    assert (first[var], second[var]) == ("first", "second")
    assert first.run(var.get) == "first" and first[other] == "kept"
    assert var not in base and var.get() == "unset"
    if native:
        with pytest.raises(TypeError, match="a contextvars.Context, a ContextVar and a value"):
            context_with(base, "not a variable", 1)


def test_request_contexts_reuse_a_context_only_when_nothing_can_see_it() -> None:
    """covet._native.RequestContexts, the dispatcher's pool of request contexts: a context comes back for the next
    request only when nothing else can see it; a copy (a child task's, a thread-pool call's), a reference to it or
    to its value, or a variable set in it keeps it out, and whoever holds it keeps reading its own request."""
    import contextvars
    import weakref

    require_compiled_engine("import covet._native as n; n.RequestContexts", "compiled engine with RequestContexts")
    import covet._native as n

    var: contextvars.ContextVar[Any] = contextvars.ContextVar("covet_test_request", default=None)
    other: contextvars.ContextVar[int] = contextvars.ContextVar("covet_test_other")

    class Req:
        def __init__(self, i: int) -> None:
            self.i = i

    base = contextvars.Context()
    pool = n.RequestContexts(base, var, lambda r: ("t" * 32, "s" * 16, f"req-{r.i}", 0, ""))

    def request_id(context: contextvars.Context) -> str:
        return str(context[var].trace_ids[2])

    first = pool.take(Req(1))
    first_ref = weakref.ref(first)  # (a weak reference does not count: it cannot keep the context out)
    assert request_id(first) == "req-1" and first.run(var.get).request.i == 1
    del first
    assert pool.settle() and pool.free == 1 and pool.reused == 0
    second = pool.take(Req(2))
    assert first_ref() is second and request_id(second) == "req-2" and (pool.free, pool.reused) == (0, 1)
    copy = second.copy()  # what asyncio.create_task and run_in_threadpool do
    del second
    third = pool.take(Req(3))  # settles the one before first: its copy keeps it out
    assert pool.free == 0 and first_ref() is None  # released, not pooled
    assert request_id(copy) == "req-2" and request_id(third) == "req-3"
    del third
    assert pool.settle() and pool.free == 1

    def kept_out(use: Any) -> bool:
        context = pool.take(Req(4))
        held = use(context)
        del context
        kept = not pool.settle()
        del held
        return kept

    assert kept_out(lambda c: c)  # the context itself held (a Task still running in it)
    assert kept_out(lambda c: c[var])  # its value held
    assert kept_out(lambda c: c.run(other.set, 5))  # another variable set in it
    assert kept_out(lambda c: c.run(other.reset, c.run(other.set, 6)))  # set, then reset: new variables all the same
    assert kept_out(lambda c: c.run(var.set, "replaced"))  # the request's variable replaced
    assert not kept_out(lambda c: c.run(lambda: [var.set(var.get())] and None))  # the same value again: no change
    reused = pool.take(Req(7))
    assert request_id(reused) == "req-7" and var not in base
    del reused
    base.run(other.set, 8)  # the base changes: contexts made from it before are not handed out again
    fresh = pool.take(Req(9))
    assert fresh[other] == 8 and request_id(fresh) == "req-9" and pool.free == 0
    del fresh
    with pytest.raises(TypeError):
        n.RequestContexts(base, var, "not callable")


def test_request_contexts_see_a_copy_that_shares_only_a_node_of_the_variables() -> None:
    """When the request's variable shares a HAMT node with a base variable (their hashes collide at the root), a
    copy in which a variable was then set (a child task's) has variables of its own that still share that node and
    reach the request through it: the context must not be reused, or the copy would read the next request's ids."""
    import contextvars

    require_compiled_engine("import covet._native as n; n.RequestContexts", "compiled engine with RequestContexts")
    import covet._native as n

    def root_slot(v: contextvars.ContextVar[Any]) -> int:  # the HAMT's first 5 bits of the folded hash
        h = hash(v) & 0xFFFFFFFFFFFFFFFF
        return ((h & 0xFFFFFFFF) ^ (h >> 32)) & 31

    var: contextvars.ContextVar[Any] = contextvars.ContextVar("covet_test_request", default=None)
    pool_of_vars = [contextvars.ContextVar(f"covet_test_{i}") for i in range(2000)]
    twin = next(v for v in pool_of_vars if root_slot(v) == root_slot(var))  # lands in the same root slot
    elsewhere = next(v for v in pool_of_vars if root_slot(v) != root_slot(var))
    base = contextvars.Context()
    base.run(twin.set, "base value")
    pool = n.RequestContexts(base, var, lambda r: ("t" * 32, "s" * 16, f"req-{r}", 0, ""))
    context = pool.take(1)
    del context
    assert pool.settle()  # alone, it is reused
    context = pool.take(2)
    child = context.copy()
    child.run(elsewhere.set, "set in the child")  # the child's own variables, sharing the node with the request
    del context
    assert not pool.settle(), "reused while a copy still reaches its request through a shared node"
    later = pool.take(3)
    assert child[var].trace_ids[2] == "req-2" and later[var].trace_ids[2] == "req-3"


def test_reused_request_contexts_keep_each_requests_ids_in_its_tasks_and_threads() -> None:
    """With tracing on, the dispatcher reuses the context of a request that completed at once. A child task a
    handler started, still running after later requests were served in the reused context, and a thread-pool call
    read their own request's ids; every response's ids are its own (its X-Request-ID)."""
    import asyncio
    import threading

    from covet.concurrency import run_in_threadpool
    from covet.observability import current_ids

    app = CovetPy()
    late: dict[str, Any] = {}
    release = threading.Event()
    background: list[asyncio.Task[None]] = []

    @app.get("/ids")
    async def ids() -> dict[str, Any]:
        return {"ids": current_ids()}

    @app.get("/spawn")
    async def spawn() -> dict[str, Any]:
        async def later() -> None:
            while not release.is_set():
                await asyncio.sleep(0.01)
            late["ids"] = current_ids()

        background.append(asyncio.get_running_loop().create_task(later()))
        return {"ids": current_ids()}

    @app.get("/thread")
    async def in_thread() -> dict[str, Any]:
        return {"ids": await run_in_threadpool(current_ids)}

    worker, _ = serve(app, 0)
    try:
        _, spawn_headers, spawned = get(worker.port, "/spawn")
        answers = [get(worker.port, "/ids") for _ in range(20)]
        _, thread_headers, threaded = get(worker.port, "/thread")
        release.set()
        deadline = time.monotonic() + 10
        while "ids" not in late and time.monotonic() < deadline:
            time.sleep(0.01)
        dispatcher = worker.worker.dispatcher
        reused = dispatcher.request_contexts.reused if isinstance(dispatcher, Dispatcher) else None
    finally:
        worker.stop()
    assert reused is not None and reused >= 19, f"the dispatcher reused {reused} contexts for 20 requests in a row"
    assert spawned["ids"][2] == spawn_headers["x-request-id"]
    assert list(late["ids"]) == spawned["ids"], "the child task read another request's ids"
    assert threaded["ids"][2] == thread_headers["x-request-id"]
    seen = {tuple(body["ids"]) for _, _, body in answers}
    assert len(seen) == 20
    for _, headers, body in answers:
        assert body["ids"][2] == headers["x-request-id"]
