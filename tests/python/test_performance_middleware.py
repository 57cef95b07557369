"""PerformanceMiddleware over real sockets (TestClient serves the app on 127.0.0.1): a slow route over its threshold
logs one structured line per interval on stderr (the engine's, natively; the Python one when the middleware
sits inside a Python middleware) and counts every violation in covet_sla_violations_total{http_route}; routes
within their threshold, or not listed without a default, never do; bad thresholds are refused naming the fix."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from serverproc import require_compiled_engine

from covet import CovetPy, Request
from covet.middleware.performance import PerformanceMiddleware, normalize_route
from covet.observability.metrics import scrape
from covet.testing import TestClient


@pytest.fixture(scope="module", autouse=True)
def compiled_engine_with_performance() -> None:
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'sla_violation'), 'no sla_violation'",
                            "compiled engine with PerformanceMiddleware (rebuild it)")


def violations(route: str) -> float:
    for line in scrape().splitlines():
        if line.startswith(f'covet_sla_violations_total{{http_route="{route}"}} '):
            return float(line.rpartition(" ")[2])
    return 0.0


def make_app(prefix: str) -> CovetPy:
    app = CovetPy()

    @app.get(prefix + "/slow/{n}")
    async def slow(n: int) -> dict[str, int]:
        await asyncio.sleep(0.06)
        return {"n": n}

    @app.get(prefix + "/fast")
    async def fast() -> dict[str, bool]:
        return {"fast": True}

    @app.get(prefix + "/unlisted")
    async def unlisted() -> dict[str, bool]:
        await asyncio.sleep(0.03)
        return {"unlisted": True}

    return app


def perf_lines(text: str, route: str) -> list[str]:
    return [line for line in text.splitlines() if "covet.performance" in line and route in line]


def test_native_slow_route_is_logged_once_per_interval_and_counted(capfd: pytest.CaptureFixture[str]) -> None:
    app = make_app("/n")
    app.add_middleware(PerformanceMiddleware, routes={"/n/slow/{n}": 20, "/n/fast": 500}, log_interval=60)
    assert app.native_middleware[0][0] == "performance"  # run by the engine
    before = violations("/n/slow/{n}")
    with TestClient(app) as client:
        for i in range(3):
            assert client.get(f"/n/slow/{i}").status_code == 200
        assert client.get("/n/fast").status_code == 200
        assert client.get("/n/unlisted").status_code == 200  # no default: not checked
    assert violations("/n/slow/{n}") == before + 3
    assert violations("/n/fast") == 0 and violations("/n/unlisted") == 0
    assert "/n/slow/1" not in scrape()  # the template, never the path
    lines = perf_lines(capfd.readouterr().err, "/n/slow/{n}")
    assert len(lines) == 1, lines
    line = lines[0]
    assert re.search(r'\[warning\] covet\.performance: SLA exceeded route="/n/slow/\{n\}" method=GET status=200 '
                     r"duration_ms=(\d+(\.\d+)?) threshold_ms=20 suppressed=0$", line), line
    assert float(re.search(r"duration_ms=(\S+)", line).group(1)) >= 50  # type: ignore[union-attr]


def test_json_lines_with_a_default_threshold(capfd: pytest.CaptureFixture[str]) -> None:
    app = make_app("/j")
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.set_name("covet-json")  # what use_json_logs installs: the middleware then writes JSON
    root.addHandler(handler)
    try:
        app.add_middleware(PerformanceMiddleware, sla_ms=10, log_interval=0)
        assert app.native_middleware[0][1]["format"] == "json"  # read when the server is made
        with TestClient(app) as client:
            for _ in range(2):
                assert client.get("/j/unlisted").status_code == 200
            assert client.get("/j/fast").status_code == 200
    finally:
        root.removeHandler(handler)
    records = [json.loads(line) for line in perf_lines(capfd.readouterr().err, "/j/")]
    assert [r["route"] for r in records] == ["/j/unlisted", "/j/unlisted"]  # log_interval=0: every one
    first = records[0]
    assert first["logger"] == "covet.performance" and first["level"] == "warning"
    assert first["method"] == "GET" and first["status"] == 200 and first["threshold_ms"] == 10
    assert first["duration_ms"] >= 25 and first["suppressed"] == 0
    assert first["msg"].startswith("SLA exceeded: GET /j/unlisted took ")


def test_inside_a_python_middleware_it_runs_in_python(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app("/p")
    app.add_middleware(PerformanceMiddleware, routes={"/p/slow/{n}": 20}, log_interval=60)

    @app.middleware("http")
    async def outer(request: Request, call_next: Any) -> Any:
        return await call_next(request)

    assert all(kind != "performance" for kind, _ in app.native_middleware)
    before = violations("/p/slow/{n}")
    with caplog.at_level(logging.WARNING, logger="covet.performance"), TestClient(app) as client:
        for i in range(2):
            assert client.get(f"/p/slow/{i}").status_code == 200
        assert client.get("/p/fast").status_code == 200
    assert violations("/p/slow/{n}") == before + 2
    records = [r for r in caplog.records if r.name == "covet.performance"]
    assert len(records) == 1
    record: Any = records[0]
    assert record.route == "/p/slow/{n}" and record.status == 200 and record.threshold_ms == 20
    assert record.duration_ms >= 50 and record.suppressed == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sla_ms": 0}, "sla_ms=0 is 0 ms; it must be > 0: give a positive number of milliseconds"),
    ({"sla_ms": -5}, "it must be > 0"),
    ({"routes": {"/x": 0}}, "the threshold of route '/x' is 0 ms; it must be > 0"),
    ({"routes": {"/x": -1.5}}, "or leave the route out to use sla_ms"),
    ({"routes": {"x": 10}}, "starting with '/'"),
    ({"routes": {"/a/{i}": 10, "/a/{i:int}": 20}}, "listed twice"),
    ({}, "nothing to check"),
    ({"sla_ms": 5, "log_interval": -1}, "log_interval must be >= 0"),
    ({"sla_ms": 0.0001}, "under the microsecond"),
])
def test_bad_options_are_refused_naming_the_fix(kwargs: dict[str, Any], message: str) -> None:
    app = CovetPy()
    with pytest.raises(ValueError) as info:
        app.add_middleware(PerformanceMiddleware, **kwargs)
    assert message in str(info.value)
    with pytest.raises(TypeError, match="number of milliseconds"):
        app.add_middleware(PerformanceMiddleware, sla_ms="fast")


def test_a_route_that_is_none_of_the_apps_is_refused_at_start() -> None:
    app = make_app("/t")
    app.add_middleware(PerformanceMiddleware, routes={"/t/slw/{n}": 20})
    with pytest.raises(ValueError, match=r"route '/t/slw/\{n\}' is not a route of the app \(its routes: .*"
                                         r"/t/slow/\{n\}"):
        _ = app.native_middleware


def test_the_engine_refuses_bad_thresholds_too() -> None:
    from covet.server.engine import native_module

    native = native_module()
    server = native.NativeServer(host="127.0.0.1", port=0)
    with pytest.raises(ValueError, match=r"threshold of route /x is -2 ms; it must be > 0 \(give a positive"):
        native.add_middleware(server, "performance", {"routes": [("/x", -2.0)]})
    with pytest.raises(ValueError, match="nothing to check"):
        native.add_middleware(server, "performance", {})
    with pytest.raises(TypeError, match="unknown option sla"):
        native.add_middleware(server, "performance", {"sla": 5.0})


def test_normalize_route() -> None:
    assert normalize_route("/items/{id:int}/files/{p:path}") == "/items/{id}/files/{p}"


@pytest.fixture(autouse=True)
def _no_leftover_handlers() -> Iterator[None]:
    yield
    assert not any(h.get_name() == "covet-json" for h in logging.getLogger().handlers)


def test_the_engine_log_level_set_at_run_time_applies_and_keeps_the_line_whole(
        capfd: pytest.CaptureFixture[str]) -> None:
    from covet.observability import set_log_level

    app = make_app("/l")
    app.add_middleware(PerformanceMiddleware, routes={"/l/slow/{n}": 20}, log_interval=0)
    before = violations("/l/slow/{n}")
    try:
        with TestClient(app) as client:
            set_log_level("error", "covet.engine")  # while it serves: the SLA lines (warnings) stop
            assert client.get("/l/slow/1").status_code == 200
            assert perf_lines(capfd.readouterr().err, "/l/slow") == []
            set_log_level("info", "covet.engine")  # the engine's pattern is set again: the line stays as written
            assert client.get("/l/slow/2").status_code == 200
    finally:
        set_log_level("info", "covet.engine")
    lines = perf_lines(capfd.readouterr().err, "/l/slow")
    assert len(lines) == 1 and lines[0].count("[warning]") == 1 and lines[0].startswith("[20"), lines
    assert violations("/l/slow/{n}") == before + 2  # counted whatever the log level
