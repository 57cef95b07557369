"""``python3 -m bench.response_model``: a response_model route with filtering, CovetPy vs FastAPI + uvicorn.

Each server gets one CPU (taskset), wrk another; rounds alternate the servers (the VM drifts). Before timing, the
two servers' bodies must be the same JSON. Prints a Markdown table: median req/s over the rounds (min–max) and
the server's CPU time per request (utime+stime over the timed run / requests; steadier than req/s on a shared
VM), with the ratios. Options: --covet-python (default .venv/bin/python), --fastapi-python (a venv with bench/peers/fastapi's
pins, default build/bench-fastapi-venv/bin/python), --rounds 3, --duration 5, --connections 64,
--server-cpu 0, --client-cpu 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = Path(__file__).resolve().parent
PATHS = ("/item", "/items", "/dict")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(framework: str, python: str, port: int) -> list[str]:
    if framework == "fastapi":
        return [python, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                "--http", "httptools", "--no-access-log", "--log-level", "warning", "--app-dir", str(APP_DIR)]
    return [python, "-m", "covet", "_worker", "app:app", "--port", str(port), "--threads", "0", "--log-level",
            "warning", "--app-dir", str(APP_DIR)]


def _start(framework: str, python: str, cpu: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = dict(os.environ, BENCH_FRAMEWORK=framework)
    proc = subprocess.Popen(["taskset", "-c", cpu, *_command(framework, python, port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/dict", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{framework} did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


def _get(port: int, path: str) -> object:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the server process (taskset execs it, so the pid is the server's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _wrk(pid: int, port: int, path: str, cpu: str, duration: int, connections: int) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) of one timed wrk run."""
    before = _cpu_seconds(pid)
    out = subprocess.run(["taskset", "-c", cpu, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    cpu_used = _cpu_seconds(pid) - before
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses on {path}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rate and total, out
    return float(rate.group(1)), cpu_used / int(total.group(1)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.response_model", description=__doc__)
    parser.add_argument("--covet-python", default=str(ROOT / ".venv/bin/python"))
    parser.add_argument("--fastapi-python", default=str(ROOT / "build/bench-fastapi-venv/bin/python"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    args = parser.parse_args()
    pythons = {"covet": args.covet_python, "fastapi": args.fastapi_python}
    servers = {name: _start(name, python, args.server_cpu) for name, python in pythons.items()}
    try:
        for path in PATHS:
            bodies = {name: _get(port, path) for name, (_, port) in servers.items()}
            if bodies["covet"] != bodies["fastapi"]:
                raise SystemExit(f"{path}: the bodies differ:\ncovet   {bodies['covet']}\nfastapi {bodies['fastapi']}")
        rates: dict[tuple[str, str], list[float]] = {}
        costs: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for path in PATHS:
                for name, (proc, port) in servers.items():
                    _wrk(proc.pid, port, path, args.client_cpu, 1, args.connections)  # warm-up
                    rate, cost = _wrk(proc.pid, port, path, args.client_cpu, args.duration, args.connections)
                    rates.setdefault((name, path), []).append(rate)
                    costs.setdefault((name, path), []).append(cost)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, server on CPU {args.server_cpu}, "
          f"wrk on CPU {args.client_cpu}; {sys.platform}")
    print()
    print("| route | CovetPy req/s (min–max) | FastAPI req/s (min–max) | req/s ratio | CovetPy server CPU µs/req | "
          "FastAPI server CPU µs/req | CPU ratio |")
    print("|---|---|---|---|---|---|---|")
    for path in PATHS:
        covet, fastapi = rates["covet", path], rates["fastapi", path]
        ratio = statistics.median(covet) / statistics.median(fastapi)
        covet_cpu, fastapi_cpu = statistics.median(costs["covet", path]), statistics.median(costs["fastapi", path])
        print(f"| `GET {path}` | {statistics.median(covet):,.0f} ({min(covet):,.0f}–{max(covet):,.0f}) | "
              f"{statistics.median(fastapi):,.0f} ({min(fastapi):,.0f}–{max(fastapi):,.0f}) | {ratio:.1f}× | "
              f"{covet_cpu:,.0f} | {fastapi_cpu:,.0f} | {fastapi_cpu / covet_cpu:.1f}× |")


if __name__ == "__main__":
    main()
