"""Two configurations of one server, loaded in alternation, for a cost of a few percent (issue 16's tracing).

    python3 -m bench.alternate [--python PY] [--pairs 3] [--slices 20] [--duration 2] [--path /plaintext]
                               [--a NAME=ENV,...] [--b NAME=ENV,...]

`python -m bench --overhead` starts each configuration fresh in every round and loads them one after the other,
seconds apart. On this VM a process's CPU per request then moves by up to ±25% from one such run to the next
with the host's load (docs/benchmarks.md, "Observability overhead"), which buries a 3% cost even in rounds' pairs.
Here both configurations run at once, pinned to the server CPU, and wrk loads them in short slices in the order
A B B A A B ...: each slice's neighbour in time is the other configuration, so a slow spell of the host falls on
both. The cost is read from those adjacent pairs: the median of B's CPU per request over A's, minus one, and its
95% interval (`bench.overhead.median_interval`). ``--pairs`` starts the two processes that many times, each time
with a hash seed of its own (the same for A and B), so that one process's layout does not decide the result.

Defaults: the covet-async bench app with observability (bench/peers/covet/app_observed.py) under ``covet run``,
A = metrics on (``COVET_BENCH_TRACE=off``), B = tracing at 1% (``COVET_BENCH_TRACE=0.01``), GET /plaintext,
64 connections, the server on CPU 0 and wrk on CPU 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from . import REPO
from .loadgen import parse_wrk
from .overhead import median_interval
from .servers import PEERS, free_port, wait_for_200
from .system import tree_cpu_snapshot

CLK = os.sysconf("SC_CLK_TCK")


def _env(spec: str) -> tuple[str, dict[str, str]]:
    """``name=K=V,K=V`` → (name, {K: V})."""
    name, _, rest = spec.partition("=")
    env: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        env[key] = value
    return name, env


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree of `pid`, as the matrix counts a server's CPU (`covet run` with one
    worker serves in its own process)."""
    return sum(tree_cpu_snapshot(pid).values()) / CLK


def wrk(port: int, path: str, seconds: int, cpu: str, connections: int) -> int:
    """Responses that wrk counted in a run of ``seconds``."""
    out = subprocess.run(["taskset", "-c", cpu, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    try:
        result: dict[str, Any] | None = parse_wrk(out)
    except ValueError:  # no summary
        result = None
    if result is None or result["non_2xx"]:
        raise RuntimeError(f"wrk: no clean run on port {port}:\n{out}")
    return int(result["requests"])


def start(python: str, env: dict[str, str], seed: int, cpu: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = ["taskset", "-c", cpu, python, "-m", "covet", "run", "app_observed:app", "--port", str(port),
           "--threads", "0", "--log-level", "warning", "--app-dir", str(PEERS / "covet")]
    proc = subprocess.Popen(cmd, env={**os.environ, **env, "PYTHONHASHSEED": str(seed)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    why = wait_for_200(proc, port, time.monotonic() + 30)
    if why:
        proc.kill()
        raise RuntimeError(f"{' '.join(cmd)}: {why}")
    return proc, port


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.alternate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("--pairs", type=int, default=3, help="process pairs, each with its own hash seed")
    ap.add_argument("--slices", type=int, default=20, help="timed slices per configuration and pair")
    ap.add_argument("--duration", type=int, default=2, help="seconds per slice")
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--a", default="metrics=COVET_BENCH_TRACE=off")
    ap.add_argument("--b", default="trace1=COVET_BENCH_TRACE=0.01")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    args = ap.parse_args(argv)
    (name_a, env_a), (name_b, env_b) = _env(args.a), _env(args.b)
    costs: list[float] = []
    per_pair: list[tuple[int, float, float, float]] = []
    for pair in range(1, args.pairs + 1):
        seed = pair
        procs = []
        try:
            (pa, port_a), (pb, port_b) = (start(args.python, env_a, seed, args.server_cpu),
                                          start(args.python, env_b, seed, args.server_cpu))
            procs = [pa, pb]
            for port in (port_a, port_b):  # warm-up: caches, the allocator's arenas, the specializing interpreter
                wrk(port, args.path, 1, args.client_cpu, args.connections)
            us: dict[str, list[float]] = {name_a: [], name_b: []}
            order = [(name_a, pa, port_a), (name_b, pb, port_b)]
            for k in range(args.slices):
                for name, proc, port in order if k % 2 == 0 else order[::-1]:
                    before = cpu_seconds(proc.pid)
                    n = wrk(port, args.path, args.duration, args.client_cpu, args.connections)
                    us[name].append(1e6 * (cpu_seconds(proc.pid) - before) / n)
            pair_costs = [100.0 * (b / a - 1.0) for a, b in zip(us[name_a], us[name_b], strict=True)]
            costs += pair_costs
            mid = median_interval(pair_costs)
            per_pair.append((seed, sorted(us[name_a])[len(us[name_a]) // 2], sorted(us[name_b])[len(us[name_b]) // 2],
                             mid[0] if mid else float("nan")))
            print(f"pair {pair} (PYTHONHASHSEED={seed}): {name_a} {per_pair[-1][1]:.2f} µs, {name_b} "
                  f"{per_pair[-1][2]:.2f} µs CPU per request (medians of {args.slices}); slice pairs: "
                  + " ".join(f"{c:+.1f}" for c in pair_costs), flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
    result = median_interval(costs)
    if result is None:
        print("too few slices for an interval")
        return 1
    med, low, high = result
    print(f"{name_b} against {name_a}, {args.path}: {med:+.2f}% CPU per request (95% interval {low:+.2f} to "
          f"{high:+.2f}%), {len(costs)} adjacent slice pairs of {args.duration} s in {args.pairs} process pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
