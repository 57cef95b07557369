"""A real Jaeger (all-in-one v2, in-memory storage, OTLP/HTTP receiver) for tests/python/test_tracing_jaeger.py
and scripts/screenshot-trace.py: the binary scripts/build-jaeger.sh builds, started on free ports with its
query API (and, when given, the built UI) and stopped again.

    with running_jaeger(jaeger_binary(), workdir) as ports:
        ... otlp_endpoint=f"http://127.0.0.1:{ports['otlp_http']}" ...
        http_get(ports["query_http"], f"/api/traces/{trace_id}")
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from serverproc import free_port

__all__ = ["JAEGER_VERSION", "http_get", "jaeger_binary", "running_jaeger"]

JAEGER_VERSION = "v1.75.0"  # scripts/build-jaeger.sh's and scripts/jaeger-ui.sh's

CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    enable_tracing: false  # else Jaeger traces itself to localhost:4317 and waits 10 s on exit to flush
    storage:
      traces: memstore{ui}
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def jaeger_binary() -> Path:
    """COVET_JAEGER_BIN, else where scripts/build-jaeger.sh puts it (the user's cache)."""
    given = os.environ.get("COVET_JAEGER_BIN")
    if given:
        return Path(given)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    main_go = Path(__file__).resolve().parents[2] / "scripts" / "jaeger" / "main.go"
    digest = hashlib.sha256(main_go.read_bytes()).hexdigest()[:12]
    return cache / "covetpy" / "bin" / f"jaeger-covet-{JAEGER_VERSION}-{digest}"


def http_get(port: int, path: str, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@contextlib.contextmanager
def running_jaeger(binary: Path, workdir: Path, ui: Optional[Path] = None,
                   timeout: float = 60) -> Iterator[dict[str, int]]:
    """Jaeger started from `binary` (config and log in `workdir`, the UI served from `ui` when given); yields its
    ports (query_http, query_grpc, otlp_http) once the query API answers. Raises RuntimeError with the end of its
    log when it exits or does not answer within `timeout` seconds. Stopped on exit: SIGTERM to its session,
    SIGKILL after 10 s."""
    ports = {"query_http": free_port(), "query_grpc": free_port(), "otlp_http": free_port()}
    config = workdir / "jaeger.yaml"
    ui_line = f"\n    ui:\n      assets_path: {ui}" if ui is not None else ""
    config.write_text(CONFIG.format(ui=ui_line, **ports))
    log_path = workdir / "jaeger.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(binary), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                with contextlib.suppress(OSError):
                    if http_get(ports["query_http"], "/api/services")[0] == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"Jaeger did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield ports
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process's session, SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
