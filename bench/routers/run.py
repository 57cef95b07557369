"""20 routers with a chain of dependencies: CovetPy vs FastAPI + uvicorn, one core each (wrk).

    python3 bench/routers/run.py [--runs 3] [--duration 5] [--fastapi-python PATH]

FastAPI's interpreter: bench/.venvs/fastapi (``python -m bench`` installs it; or
``python3 -m venv bench/.venvs/fastapi && bench/.venvs/fastapi/bin/pip install -r bench/peers/fastapi/requirements.txt``).
CovetPy's: the repo's .venv.

The app is bench/routers/routers_app.py (one source, both frameworks). Each server runs alone on CPU 0
(``taskset -c 0``), wrk on CPU 1 with 64 connections; 2 s warm-up, then the timed run; runs interleave
(covet, fastapi, covet ...), each on a fresh server whose answer is checked first. Reports req/s and the server's
CPU time per request (from /proc, the whole process tree) as medians (min–max) and writes the results as JSON to
bench/results/routers-<UTC>.json.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.system import tree_cpu_delta_ticks, tree_cpu_snapshot  # noqa: E402

HERE = Path(__file__).resolve().parent
PATH = "/api/r19/items4/42?limit=5"
HEADERS = {"X-Token": "secret", "X-Tenant": "acme", "X-Request-Id": "bench"}
EXPECTED = {"router": 19, "item_id": 42, "tenant": "acme", "token_len": 6, "limit": 5}
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(framework: str, port: int, fastapi_python: str) -> list[str]:
    if framework == "covet":
        return ["taskset", "-c", "0", str(ROOT / ".venv/bin/python"), "-m", "covet", "_worker", "routers_app:app",
                "--port", str(port), "--threads", "0", "--log-level", "warning", "--app-dir", str(HERE)]
    return ["taskset", "-c", "0", fastapi_python, "-m", "uvicorn", "routers_app:app", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--app-dir", str(HERE)]


def wait_ready(port: int, deadline: float) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers=HEADERS)
    while True:
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wrk(port: int, duration: int) -> dict[str, float]:
    header_args = [a for k, v in HEADERS.items() for a in ("-H", f"{k}: {v}")]
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s", "--latency", *header_args,
                          f"http://127.0.0.1:{port}{PATH}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {"rps": rps, "requests": requests, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": errors.group(0) if errors else ""}


def one_run(framework: str, duration: int, fastapi_python: str) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "BENCH_FRAMEWORK": framework}
    proc = subprocess.Popen(command(framework, port, fastapi_python), env=env, start_new_session=True)
    try:
        body = wait_ready(port, time.monotonic() + 30)
        if body != EXPECTED:
            raise SystemExit(f"{framework} answered {body!r}, expected {EXPECTED!r}")
        wrk(port, 2)  # warm-up
        before = tree_cpu_snapshot(proc.pid)
        result = wrk(port, duration)
        after = tree_cpu_snapshot(proc.pid)
        cpu_s = tree_cpu_delta_ticks(before, after) / TICK
        result["cpu_us_per_req"] = cpu_s * 1e6 / max(result["requests"], 1)
        return result
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--fastapi-python", default=str(ROOT / "bench/.venvs/fastapi/bin/python"),
                        help="a Python with bench/peers/fastapi/requirements.txt installed (fastapi, uvicorn[standard]); "
                             "default: the matrix's venv for the fastapi peer, bench/.venvs/fastapi")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"covet": [], "fastapi": []}
    for _ in range(args.runs):
        for framework in runs:
            runs[framework].append(one_run(framework, args.duration, args.fastapi_python))
            print(framework, runs[framework][-1], flush=True)
    summary = {}
    for framework, results in runs.items():
        rps = [r["rps"] for r in results]
        cpu = [r["cpu_us_per_req"] for r in results]
        summary[framework] = {"rps": (statistics.median(rps), min(rps), max(rps)),
                              "cpu_us_per_req": (statistics.median(cpu), min(cpu), max(cpu)),
                              "non2xx": sum(r["non2xx"] for r in results)}
    print()
    print("| server | req/s median (min–max) | CPU-µs/req median (min–max) | non-2xx |")
    print("|---|---|---|---|")
    for framework, s in summary.items():
        r, c = s["rps"], s["cpu_us_per_req"]
        print(f"| {framework} | {r[0]:,.0f} ({r[1]:,.0f}–{r[2]:,.0f}) | {c[0]:.1f} ({c[1]:.1f}–{c[2]:.1f}) | "
              f"{s['non2xx']} |")
    ratio = summary["covet"]["rps"][0] / summary["fastapi"]["rps"][0]
    print(f"\ncovet/fastapi req/s: {ratio:.2f}×; CPU/req: "
          f"{summary['covet']['cpu_us_per_req'][0] / summary['fastapi']['cpu_us_per_req'][0]:.2f}×")
    out = ROOT / "bench/results" / time.strftime("routers-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps({"path": PATH, "runs": runs, "summary": summary, "args": vars(args)}, indent=1))
    print(f"raw: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
