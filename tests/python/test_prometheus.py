"""A real Prometheus server (Debian's `prometheus`) scrapes `covet run --workers 2 --metrics` every second and
answers PromQL over its HTTP API: the request rate and the p99 latency by route, from the one merged scrape of
the process group. Skipped only when the binary is missing and COVET_REQUIRE_SERVICES is unset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine

APP = textwrap.dedent("""
    from covet import CovetPy

    app = CovetPy()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"item": item_id}

    @app.get("/health-of-db")
    async def db():
        return "ok"
    """)


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        reason = "no `prometheus` binary (Debian package prometheus; scripts/setup.sh installs it)"
        if os.environ.get("COVET_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'configure_ops')",
                            "compiled engine with metrics (rebuild it)")
    return found


def query(api_port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{api_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_the_process_group(tmp_path: Path, prometheus_binary: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    port, api = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: covet
            metrics_path: /_metrics
            static_configs:
              - targets: ["127.0.0.1:{port}"]
        """))
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                            "--metrics"], cwd=tmp_path, ready=r"2 worker\(s\) serving on")
    prom = subprocess.Popen([prometheus_binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{api}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/{i}", timeout=5) as r:
                    r.read()
            except OSError:
                pass
            time.sleep(0.002)

    loader = threading.Thread(target=load, daemon=True)
    try:
        with server:
            loader.start()
            rate_q = 'sum by (http_route) (rate(http_server_request_duration_seconds_count[5s]))'
            p99_q = ('histogram_quantile(0.99, sum by (le, http_route) '
                     '(rate(http_server_request_duration_seconds_bucket[5s])))')
            deadline = time.monotonic() + 25
            rates: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                assert prom.poll() is None, prom.stderr.read().decode() if prom.stderr else "prometheus exited"
                try:
                    rates = [r for r in query(api, rate_q) if r["metric"].get("http_route") == "/items/{item_id}"]
                except OSError:
                    rates = []  # not listening yet
                if rates and float(rates[0]["value"][1]) > 0:
                    break
                time.sleep(0.5)
            assert rates and float(rates[0]["value"][1]) > 0, f"no request rate by route from Prometheus: {rates}"
            p99 = [r for r in query(api, p99_q) if r["metric"].get("http_route") == "/items/{item_id}"]
            assert p99, "no p99 by route"
            assert 0 < float(p99[0]["value"][1]) <= 10
            up = query(api, 'up{job="covet"}')
            assert up and up[0]["value"][1] == "1"
            # One target, both processes: the workers' requests are one series per label set.
            assert len(query(api, 'http_server_request_duration_seconds_count{http_route="/items/{item_id}"}')) == 1
            stop.set()
            loader.join()
            server.stop(expect=None)  # gracefully: the master removes its metrics directory
    finally:
        stop.set()
        prom.terminate()
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()


def test_promtool_finds_the_exposition_valid(prometheus_binary: str) -> None:
    """`promtool check metrics` (Prometheus' own linter: names, types, HELP, histogram shape) on a scrape."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool next to prometheus")
    code = ("from covet.observability.metrics import Counter, Histogram, scrape\n"
            "Counter('lint_jobs', 'Jobs.', labels=('q',)).labels('a\"b').inc()\n"
            "Histogram('lint_seconds', 'Time.').observe(0.2)\n"
            "print(scrape(), end='')\n")
    text = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "lint_jobs_total" in text and "http_server_request_duration_seconds" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
