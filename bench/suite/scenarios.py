"""Scenarios of the matrix, the correctness gate, and the load-generator command lines."""

from __future__ import annotations

import http.client
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .core import (
    body_ok, content_type_ok, invalid_item_payload, item_payload, native_run,
)

SUITE = Path(__file__).resolve().parent
MATRIX_LUA = SUITE / "matrix.lua"
PIPELINE_LUA = native_run.PIPELINE_LUA
PIPELINE_DEPTH = 16


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str
    expect: str  # plaintext | json | users | item
    connections: int = 64
    method: str = "GET"
    tool: str = "wrk"  # wrk | h2load-rate (HTTP/1.1, fixed rate) | h2load-h2 (HTTP/2)
    pipeline: int = 1
    quick: bool = True  # part of --quick

    @property
    def latency_valid(self) -> bool:
        # wrk times a whole pipelined batch from its first byte: its latency is wrong under pipelining
        return self.pipeline == 1


def build_scenarios(connections: int = 64, keepalive: tuple[int, ...] = (1000, 10000)) -> dict[str, Scenario]:
    sc = [
        Scenario("plaintext", "plaintext", "/plaintext", "plaintext", connections),
        Scenario("json", "JSON serialisation", "/json", "json", connections),
        Scenario("params", "path + query parameter", "/users/123?q=x", "users", connections),
        Scenario("post-json", "POST 1 KB JSON, model-validated", "/items", "item", connections, method="POST"),
        Scenario("io-sleep", "await asyncio.sleep(0.001)", "/sleep", "plaintext", connections),
        Scenario(f"pipelined{PIPELINE_DEPTH}", f"{PIPELINE_DEPTH}-deep pipelined plaintext", "/plaintext",
                 "plaintext", 256, pipeline=PIPELINE_DEPTH),
    ]
    for n in keepalive:
        sc.append(Scenario(f"keepalive-{n // 1000}k" if n % 1000 == 0 else f"keepalive-{n}",
                           f"{n:,} keep-alive connections", "/plaintext", "plaintext", n, quick=n <= 1000))
    sc.append(Scenario("open-loop", "fixed-rate latency (open loop)", "/plaintext", "plaintext", 50,
                       tool="h2load-rate"))
    sc.append(Scenario("h2-plaintext", "HTTP/2 plaintext (h2c)", "/plaintext", "plaintext", connections,
                       tool="h2load-h2", quick=False))
    return {s.name: s for s in sc}


# --------------------------------------------------------------------------------------------------
# Correctness gate
# --------------------------------------------------------------------------------------------------


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp, resp.read()


def gate(port: int, sc: Scenario) -> tuple[bool, str]:
    """Is the server right for ``sc`` before it is timed? (ok, reason when not).

    Two requests on one keep-alive connection: 2xx, the exact expected body and content type. POST also
    requires a 4xx for a body the model must reject (proof that it is validated). Pipelined scenarios
    require 16 correct responses to 16 requests in one write; HTTP/2 requires h2load to succeed over h2c.
    """
    if sc.tool == "h2load-h2":
        return gate_h2(port, sc.path)
    body = item_payload() if sc.method == "POST" else None
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for attempt in (1, 2):
            resp, data = _request(conn, sc.method, sc.path, body)
            if not 200 <= resp.status < 300:
                return False, f"{sc.method} {sc.path} -> {resp.status} {data[:80]!r}"
            if not body_ok(sc.expect, data):
                return False, f"{sc.method} {sc.path}: wrong body {data[:100]!r}"
            if not content_type_ok(sc.expect, resp.getheader("Content-Type")):
                return False, f"{sc.method} {sc.path}: wrong Content-Type {resp.getheader('Content-Type')!r}"
            if resp.will_close and attempt == 1:
                return False, f"{sc.method} {sc.path}: no keep-alive (the server closes the connection)"
        if sc.method == "POST":
            resp, data = _request(conn, "POST", sc.path, invalid_item_payload())
            if not 400 <= resp.status < 500:
                return False, f"POST {sc.path} with an invalid item -> {resp.status} (a model must reject it)"
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{sc.method} {sc.path} failed: {exc!r}"
    if sc.pipeline > 1:
        return native_run.check_pipelined(port, sc.path, sc.pipeline)
    return True, ""


def gate_h2(port: int, path: str) -> tuple[bool, str]:
    if not shutil.which("h2load"):
        return False, "h2load not installed (apt-get install nghttp2-client)"
    try:
        p = subprocess.run(["h2load", "-n4", "-c1", f"http://127.0.0.1:{port}{path}"],
                           capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False, "h2load -n4 over h2c timed out"
    if "4 succeeded" not in p.stdout or "4 2xx" not in p.stdout:
        return False, "does not speak HTTP/2 over cleartext (h2c prior knowledge): h2load got no 2xx"
    return True, ""


# --------------------------------------------------------------------------------------------------
# Load-generator commands
# --------------------------------------------------------------------------------------------------


def wrk_command(sc: Scenario, port: int, duration: int, client_cpus: str, threads: int, timed: bool) -> list[str]:
    threads = max(1, min(threads, sc.connections))
    cmd = ["taskset", "-c", client_cpus, "wrk", f"-t{threads}", f"-c{sc.connections}", f"-d{duration}s"]
    if sc.pipeline > 1:
        cmd += ["-s", str(PIPELINE_LUA)]
    else:
        cmd += ["-s", str(MATRIX_LUA)]
        if timed:
            cmd.append("--latency")
    cmd.append(f"http://127.0.0.1:{port}{sc.path}")
    if sc.pipeline > 1:
        cmd += ["--", str(sc.pipeline)]
    return cmd


def wrk_env(sc: Scenario, body_file: Path) -> dict[str, str]:
    if sc.method == "POST":
        return {"BENCH_METHOD": "POST", "BENCH_BODY_FILE": str(body_file), "BENCH_CONTENT_TYPE": "application/json"}
    return {"BENCH_METHOD": "", "BENCH_BODY_FILE": ""}


def h2load_rate_command(sc: Scenario, port: int, duration: int, rate: int, client_cpus: str, threads: int,
                        log_file: Path) -> list[str]:
    """Open loop at ``rate`` req/s in total: ``sc.connections`` HTTP/1.1 clients at rate/connections each."""
    per_client = max(1, round(rate / sc.connections))
    threads = max(1, min(threads, sc.connections))
    return ["taskset", "-c", client_cpus, "h2load", "--h1", f"-t{threads}", f"-c{sc.connections}",
            f"--rps={per_client}", f"-D{duration}", f"--log-file={log_file}", f"http://127.0.0.1:{port}{sc.path}"]


def h2load_h2_command(sc: Scenario, port: int, duration: int, client_cpus: str, threads: int) -> list[str]:
    threads = max(1, min(threads, sc.connections))
    return ["taskset", "-c", client_cpus, "h2load", f"-t{threads}", f"-c{sc.connections}", "-m1",
            f"-D{duration}", f"http://127.0.0.1:{port}{sc.path}"]
