"""Two configurations of one server, loaded side by side, for a cost of a few percent (issue 16's tracing).

    python3 -m bench.alternate [--mode together|alternate] [--python PY] [--pairs 6] [--slices 10] [--duration 2]
                               [--path /plaintext] [--a NAME=ENV,...] [--b NAME=ENV,...]

`python -m bench --overhead` starts each configuration fresh in every round and loads them one after the other,
seconds apart. On this VM a process's CPU per request then moves by up to ±25% from one such run to the next
with the host's load (docs/benchmarks.md, "Observability overhead"), which buries a 3% cost even in rounds' pairs.
Here both configurations run at once, pinned to the server CPU, in one of two modes:

* ``together`` (the default): two wrk processes load A and B at the same time for each slice, so the two servers
  share the server CPU and every slow or fast spell of the host falls on both alike. A slice gives B's CPU per
  request over A's; on this VM an A/A run (the same configuration twice) gives slices within about ±1% of each
  other, where one configuration alone moves by ±25%. wrk's start order alternates from slice to slice.
* ``alternate``: wrk loads them one at a time in short slices in the order A B B A A B ...: each slice's neighbour
  in time is the other configuration. Its slice pairs scatter by about ±10% here: ten times ``together``'s.

The cost is the median of the slices' B over A, minus one, and its 95% interval
(`bench.overhead.median_interval`). ``--pairs`` starts the two processes that many times, each time with a hash
seed of its own (the same for A and B) and the other one started first, so that one process's layout does not
decide the result: a process pair's own median moves by 1-3% from one pair to the next (an A/A pair here sat at
+3.4%), more than the slices of one pair scatter, so the result also gives the interval of the pairs' medians
(with 6 pairs, their range: 97%), the figure to quote. Run an A/A pair (``--b`` the same as ``--a``) first to see
the method's own bias.

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


def wrk_command(port: int, path: str, seconds: int, cpu: str, connections: int) -> list[str]:
    return ["taskset", "-c", cpu, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"]


def wrk(port: int, path: str, seconds: int, cpu: str, connections: int) -> int:
    """Responses that wrk counted in a run of ``seconds``."""
    out = subprocess.run(wrk_command(port, path, seconds, cpu, connections), capture_output=True, text=True,
                         check=True).stdout
    return responses(out, port)


def responses(out: str, port: int) -> int:
    """The responses of wrk's summary `out`; a run with errors or non-2xx answers is refused."""
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


def together(sides: list[tuple[int, subprocess.Popen[bytes], int]], args: argparse.Namespace) -> dict[int, float]:
    """One slice of ``together`` mode: a wrk for each server at the same time (started in the order of `sides`:
    (side, process, port)); each server's CPU µs per response over the slice."""
    before = {side: cpu_seconds(proc.pid) for side, proc, _ in sides}
    runs = [(side, port, subprocess.Popen(wrk_command(port, args.path, args.duration, args.client_cpu,
                                                      args.connections), stdout=subprocess.PIPE, text=True))
            for side, _, port in sides]
    counts = {}
    for side, port, run in runs:
        out, _ = run.communicate()
        if run.returncode:
            raise RuntimeError(f"wrk on port {port} failed ({run.returncode}):\n{out}")
        counts[side] = responses(out, port)
    return {side: 1e6 * (cpu_seconds(proc.pid) - before[side]) / counts[side] for side, proc, _ in sides}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.alternate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("together", "alternate"), default="together")
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("--pairs", type=int, default=6, help="process pairs, each with its own hash seed")
    ap.add_argument("--first-seed", type=int, default=1, help="the first pair's hash seed (more pairs, another run)")
    ap.add_argument("--slices", type=int, default=10, help="timed slices per configuration and pair")
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
    pair_medians: list[float] = []
    for pair in range(1, args.pairs + 1):
        seed = args.first_seed + pair - 1
        servers: list[tuple[subprocess.Popen[bytes], int]] = []
        try:
            # Which of the two starts first alternates from pair to pair: start-up order must favour neither.
            servers.extend(start(args.python, env, seed, args.server_cpu)
                           for env in ((env_a, env_b) if pair % 2 else (env_b, env_a)))
            if pair % 2 == 0:
                servers.reverse()  # servers[0] is A's, servers[1] B's
            for _, port in servers:  # warm-up: caches, the allocator's arenas, the specializing interpreter
                wrk(port, args.path, 1, args.client_cpu, args.connections)
            us: tuple[list[float], list[float]] = ([], [])
            for k in range(args.slices):
                sides = (0, 1) if k % 2 == 0 else (1, 0)  # wrk's order alternates too
                if args.mode == "together":
                    for side, value in together([(side, *servers[side]) for side in sides], args).items():
                        us[side].append(value)
                    continue
                for side in sides:
                    proc, port = servers[side]
                    before = cpu_seconds(proc.pid)
                    n = wrk(port, args.path, args.duration, args.client_cpu, args.connections)
                    us[side].append(1e6 * (cpu_seconds(proc.pid) - before) / n)
            pair_costs = [100.0 * (b / a - 1.0) for a, b in zip(us[0], us[1], strict=True)]
            costs += pair_costs
            mid = median_interval(pair_costs)
            pair_medians.append(mid[0] if mid else sorted(pair_costs)[len(pair_costs) // 2])
            print(f"pair {pair} (PYTHONHASHSEED={seed}): {name_a} {sorted(us[0])[len(us[0]) // 2]:.2f} µs, {name_b} "
                  f"{sorted(us[1])[len(us[1]) // 2]:.2f} µs CPU per request (medians of {args.slices}), "
                  f"median {pair_medians[-1]:+.2f}%; slices: " + " ".join(f"{c:+.1f}" for c in pair_costs), flush=True)
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(10)
    result = median_interval(costs)
    if result is None:
        print("too few slices for an interval")
        return 1
    med, low, high = result
    print(f"{name_b} against {name_a}, {args.path} ({args.mode}): {med:+.2f}% CPU per request (95% interval {low:+.2f} "
          f"to {high:+.2f}%), {len(costs)} slices of {args.duration} s in {args.pairs} process pairs")
    between = median_interval(pair_medians)
    if between is not None:
        print(f"the process pairs' medians: {between[0]:+.2f}% (95% interval {between[1]:+.2f} to {between[2]:+.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
