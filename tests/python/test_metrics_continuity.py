"""Issue 16, must-show 3: during a rolling restart (`covet reload`) and a worker SIGKILL under load, the metrics of
`covet run --workers 2` stay continuous, and a draining worker's /_ready answers 503 before its listeners close.

A client keeps sending requests the whole time; /_metrics is scraped every few tens of milliseconds (and by a real
Prometheus, Debian's `prometheus`, when installed). Every counter series (and every histogram bucket, count and
sum) must never go backwards between two scrapes, nor show a reset in Prometheus' view; the restarts must be
visible as labelled events (`covet_worker_restarts_total{cause="reload"|"signal"}`, `covet_generation` 1 -> 2,
`covet_reloads_total{result="ready"}`). A keep-alive connection held to an old worker's operations listener sees
/_ready turn 503 ("draining") while that worker still has its listening socket open and keeps answering.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest
from serverproc import (
    ServerProcess,
    children,
    free_port,
    get,
    listening_inodes,
    require_compiled_engine,
    sample,
    socket_inodes,
)

APP = textwrap.dedent("""
    import os
    from covet import CovetPy

    app = CovetPy()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"pid": os.getpid(), "item": item_id}
    """)

DRAIN_DELAY = 0.8  # seconds a draining worker answers /_ready 503 before its listeners close


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'configure_ops')",
                            "compiled engine with metrics (rebuild it)")


def monotonic_series(text: str) -> dict[str, float]:
    """Every sample of a counter or histogram family in a Prometheus text exposition: series -> value."""
    kinds: dict[str, str] = {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            kinds[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        family = re.sub(r"_(bucket|count|sum)$", "", name)
        if kinds.get(name) == "counter" or kinds.get(family) == "histogram":
            out[series] = float(value)
    return out


def peer_process(conn: http.client.HTTPConnection, candidates: list[int]) -> int:
    """The process (of `candidates`) that holds the server end of `conn`."""
    assert conn.sock is not None
    local_port = conn.sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for row in f.readlines()[1:]:
            fields = row.split()
            if fields[2].endswith(f":{local_port:04X}") and fields[3] == "01":  # established, to our port
                inode = fields[9]
    assert inode is not None, "the server end of the connection is not in /proc/net/tcp"
    owners = [pid for pid in candidates if inode in socket_inodes(pid)]
    assert len(owners) == 1, (owners, candidates)
    return owners[0]


class Scraper:
    """Scrapes /_metrics every `interval` seconds and checks each monotonic series against the previous scrape."""

    def __init__(self, port: int, interval: float = 0.04) -> None:
        self.port, self.interval = port, interval
        self.scrapes = 0
        self.backwards: list[str] = []
        self.last: dict[str, float] = {}
        self.text = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, text = get(self.port, "/_metrics", timeout=5)
            except (OSError, http.client.HTTPException):
                continue  # accepted by the worker just killed, or one closing its listener
            assert status == 200
            now = monotonic_series(text)
            for series, value in now.items():
                before = self.last.get(series)
                if before is not None and value < before:
                    self.backwards.append(f"{series}: {before} -> {value}")
            self.last.update(now)
            self.text = text
            self.scrapes += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


class Load:
    """A client that keeps sending (keep-alive, reconnecting when a worker goes away)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn: Optional[http.client.HTTPConnection] = None
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", f"/items/{i}")
                r = conn.getresponse()
                r.read()
                self.ok += r.status == 200
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None  # the worker went away (drained or killed): reconnect, as clients do
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def progresses(self, timeout: float = 10) -> None:
        start = self.ok
        deadline = time.monotonic() + timeout
        while self.ok < start + 20:
            assert time.monotonic() < deadline, f"the load stalled at {self.ok} requests"
            time.sleep(0.02)


def start_prometheus(tmp_path: Path, target_port: int) -> tuple[Optional[subprocess.Popen[bytes]], int]:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("COVET_REQUIRE_SERVICES"):
            pytest.fail("no `prometheus` binary (Debian package prometheus; scripts/setup.sh installs it)")
        return None, 0
    api = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""
        global:
          scrape_interval: 200ms
          scrape_timeout: 200ms
        scrape_configs:
          - job_name: covet
            metrics_path: /_metrics
            static_configs:
              - targets: ["127.0.0.1:{target_port}"]
        """))
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{api}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, api


def promql(api: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{api}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for_prometheus_samples(api: int, query: str, minimum: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = promql(api, query)
            if result and float(result[0]["value"][1]) >= minimum:
                return
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"Prometheus has no {query} >= {minimum}"
        time.sleep(0.1)


def test_metrics_stay_continuous_through_a_reload_and_a_sigkill(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port, ops = free_port(), free_port()
    pid_file = tmp_path / "covet.pid"
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                            "--ops-port", str(ops), "--drain-delay", str(DRAIN_DELAY), "--pid-file", str(pid_file)],
                           cwd=tmp_path, ready=r"2 worker\(s\) serving on")
    prom, api = start_prometheus(tmp_path, ops)
    try:
        with server:
            with Load(port) as load, Scraper(ops) as scraper:
                load.progresses()
                if prom is not None:  # a few scrapes of generation 1 in Prometheus' database first
                    wait_for_prometheus_samples(api, 'count_over_time(covet_generation{job="covet"}[10m])', 3)
                first = scraper.text or get(ops, "/_metrics", timeout=5)[1]
                assert sample(first, "covet_generation") == 1
                old_workers = children(server.proc.pid)
                assert len(old_workers) == 2

                # A keep-alive connection to one old worker's operations listener.
                probe = http.client.HTTPConnection("127.0.0.1", ops, timeout=5)
                probe.request("GET", "/_ready")
                assert probe.getresponse().read() == b"ready\n"
                old = peer_process(probe, old_workers)
                old_listeners = socket_inodes(old) & listening_inodes(ops)
                assert old_listeners, "the old worker has no listening socket on the operations port"

                # The rolling restart, asked for as an operator would.
                reload = subprocess.Popen([sys.executable, "-m", "covet", "reload", "--pid-file", str(pid_file)],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                statuses = []
                draining_while_listening = False
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        probe.request("GET", "/_ready")
                        r = probe.getresponse()
                        body = r.read()
                    except (OSError, http.client.HTTPException):
                        break  # the old worker closed its connections: the drain delay is over
                    statuses.append(r.status)
                    if r.status == 503:
                        assert body == b"draining\n", body
                        # Still listening: it holds the operations port's socket (the master's, shared), in LISTEN.
                        if socket_inodes(old) & listening_inodes(ops) == old_listeners:
                            draining_while_listening = True
                    if r.will_close:  # the old worker's last answer on it (http.client would reconnect elsewhere)
                        break
                    time.sleep(0.02)
                probe.close()
                out, _ = reload.communicate(timeout=60)
                assert reload.returncode == 0, out
                assert "generation 2 ready" in out, out
                assert 200 in statuses and 503 in statuses, statuses
                assert statuses.index(503) > statuses.index(200)
                assert draining_while_listening, "no 503 from the old worker while its listener was still open"
                load.progresses()

                # A worker of the new generation killed outright.
                new_workers = wait_for_children(server.proc.pid, exclude=old_workers)
                os.kill(new_workers[0], signal.SIGKILL)
                server.wait_for(r"exited with signal SIGKILL")
                deadline = time.monotonic() + 20
                # Until its replacement serves, every scrape is answered: the operations listener is the master's
                # one socket, so the killed worker took no queued connection down with it (test_ops_listener.py).
                while sample(get(ops, "/_metrics", timeout=5)[1], "covet_workers_ready") != 2:
                    assert time.monotonic() < deadline, "the killed worker was not replaced"
                    time.sleep(0.05)
                load.progresses()
                # The exited workers' regions were folded into the retired one and their files deleted: the
                # directory holds the master's, the two live workers' and the retired region.
                metrics_dir = metrics_directory(server.proc.pid)
                deadline = time.monotonic() + 10
                while len(list(metrics_dir.glob("*.metrics"))) > 4:
                    assert time.monotonic() < deadline, sorted(p.name for p in metrics_dir.iterdir())
                    time.sleep(0.05)
                assert (metrics_dir / "retired.metrics").exists()
                time.sleep(0.5)  # scrapes after the replacement serves
                if prom is not None:
                    time.sleep(0.5)  # Prometheus' last scrapes
            # After the load stopped: the final scrape counts every request the client saw answered.
            final = get(ops, "/_metrics", timeout=5)[1]
            server.stop(timeout=30)
        assert scraper.scrapes >= 20, scraper.scrapes
        assert not scraper.backwards, scraper.backwards[:10]
        ends = monotonic_series(final)
        assert not [k for k, v in scraper.last.items() if k in ends and ends[k] < v]
        # process_cpu_seconds_total is one of them: the exited workers' CPU time stays in it.
        assert "process_cpu_seconds_total" in ends
        assert sample(final, "covet_generation") == 2
        assert sample(final, "covet_reloads_total", result="ready") == 1
        assert sample(final, "covet_worker_restarts_total", cause="reload") == 2
        assert sample(final, "covet_worker_restarts_total", cause="signal") == 1
        assert sample(final, "http_server_request_duration_seconds_count", http_route="/items/{item_id}") >= load.ok

        if prom is not None:
            assert prom.poll() is None, prom.stderr.read().decode() if prom.stderr else "prometheus exited"
            # resets() drops the name, so one query per counter (and histogram part) of the exposition.
            names = sorted({k.split("{")[0] for k in ends})
            assert len(names) >= 10, names
            for name in names:
                resets = promql(api, f'resets({name}{{job="covet"}}[10m]) > 0')
                assert not resets, (name, resets)
            assert promql(api, 'max_over_time(covet_generation{job="covet"}[10m])')[0]["value"][1] == "2"
            assert promql(api, 'min_over_time(covet_generation{job="covet"}[10m])')[0]["value"][1] == "1"
            restarts = {r["metric"].get("cause", ""): float(r["value"][1])
                        for r in promql(api, 'max_over_time(covet_worker_restarts_total{job="covet"}[10m])')}
            assert restarts.get("reload") == 2 and restarts.get("signal") == 1, restarts
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()


def metrics_directory(master: int) -> Path:
    """The master's COVET_METRICS_DIR (its workers inherit it)."""
    environ = Path(f"/proc/{master}/environ").read_bytes().split(b"\0")
    for entry in environ:
        if entry.startswith(b"COVET_METRICS_DIR="):
            return Path(entry.split(b"=", 1)[1].decode())
    # Set by the master after it started (os.environ, not in /proc's copy): a worker's environment has it.
    for child in children(master):
        for entry in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
            if entry.startswith(b"COVET_METRICS_DIR="):
                return Path(entry.split(b"=", 1)[1].decode())
    raise AssertionError("no COVET_METRICS_DIR in the master's or its workers' environment")


def wait_for_children(pid: int, exclude: list[int], count: int = 2, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        fresh = [c for c in children(pid) if c not in exclude]
        if len(fresh) >= count:
            return fresh
        assert time.monotonic() < deadline, (fresh, exclude)
        time.sleep(0.05)
