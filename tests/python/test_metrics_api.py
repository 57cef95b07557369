"""The Python metrics API in one process: enable_metrics(app, ...) serves the endpoints (token), Gauge and Histogram
land in the same exposition as the engine's metrics, bad names and labels are refused with the reason."""

from __future__ import annotations

import http.client
import os

import pytest

from covet import CovetPy
from covet.observability.metrics import Counter, Gauge, Histogram, enable_metrics, scrape
from covet.server.serve import ThreadedWorker

pytestmark = pytest.mark.skipif(os.environ.get("COVET_NATIVE", "").strip() == "fake",
                                reason="the metrics live in the compiled engine")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_enable_metrics_and_user_metrics_in_one_exposition() -> None:
    app = CovetPy()
    depth = Gauge("api_test_queue_depth", "Jobs waiting.", labels=("queue",))
    took = Histogram("api_test_job_seconds", "Job time.", buckets=(0.1, 1.0))

    @app.get("/job/{n}")
    async def job(n: int) -> dict[str, int]:
        depth.labels(queue="mail").set(n)
        took.observe(0.5)
        return {"n": n}

    enable_metrics(app, token="t0k")
    worker = ThreadedWorker(app, port=0).start()
    try:
        assert get(worker.port, "/job/7")[0] == 200
        assert get(worker.port, "/_metrics")[0] == 401
        status, text = get(worker.port, "/_metrics", {"Authorization": "Bearer t0k"})
        assert status == 200
        assert 'api_test_queue_depth{queue="mail"} 7' in text
        assert 'api_test_job_seconds_bucket{le="1"} ' in text
        assert 'http_route="/job/{n}"' in text
        assert get(worker.port, "/_ready") == (200, "ready\n")
        assert app.metrics.memory_usage > 0
    finally:
        worker.stop()
    assert "api_test_queue_depth" in scrape()


def test_bad_declarations_name_the_problem() -> None:
    with pytest.raises(ValueError, match="not valid"):
        Counter("bad-name", "x")
    Counter("api_test_twice", "x")
    with pytest.raises(ValueError, match="another type"):
        Gauge("api_test_twice", "x")
    c = Counter("api_test_labelled", "x", labels=("a",))
    with pytest.raises(ValueError, match="labels"):
        c.inc()
    with pytest.raises(ValueError, match="only goes up"):
        c.labels("v").inc(-1)
    with pytest.raises(ValueError, match="must start with '/_'"):
        enable_metrics(CovetPy(), path="/metrics")
