"""`/openapi.json` generation for a 300-route app: CovetPy vs FastAPI, time and memory (issue 14).

The same app source (300 routes over 30 pydantic models: path, query and header parameters, JSON bodies, response
models, responses=, tags) is built under each framework in a fresh process, then ``app.openapi()`` is called
once — what the first ``GET /openapi.json`` costs. Measured per run: the wall time of that call, the growth of
the process's resident memory across it, and (in a separate run, tracemalloc slows it down) the memory the
generation allocated at its peak and what stays allocated afterwards (the cached schema). Median of --runs.

    .venv/bin/python bench/openapi_bench.py \\
        --fastapi-python build/differential-venv/bin/python     # tests/differential/run.sh creates it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

APP = textwrap.dedent('''
    import os
    from typing import Annotated, Optional
    from pydantic import BaseModel, Field
    if os.environ["BENCH_FRAMEWORK"] == "fastapi":
        from fastapi import FastAPI, Header, Path, Query
    else:
        from covet import CovetPy as FastAPI, Header, Path, Query

    ROUTES = int(os.environ.get("BENCH_ROUTES", "300"))
    app = FastAPI(title="Bench", version="1.0")
    models = []
    for m in range(30):
        Nested = type(f"Nested{m}", (BaseModel,), {"__annotations__": {"a": int, "b": Optional[str]},
                                                     "b": None})
        Model = type(f"Model{m}", (BaseModel,), {
            "__annotations__": {"name": str, "price": float, "tags": list[str], "nested": Nested,
                                "note": Optional[str]},
            "name": Field(min_length=1, max_length=50, description="the name"), "tags": [], "note": None})
        models.append(Model)

    class Error(BaseModel):
        detail: str

    def make(i):
        Model = models[i % 30]
        kind = i % 3
        if kind == 0:
            async def handler(item_id: Annotated[int, Path(ge=1)],
                              q: Annotated[Optional[str], Query(max_length=20)] = None, limit: int = 10,
                              x_token: Annotated[Optional[str], Header()] = None) -> Model:
                """Read one thing."""
                return None
            handler.__name__ = f"read_{i}"
            app.get(f"/r{i}/{{item_id}}", tags=[f"group{i % 10}"], responses={404: {"model": Error}})(handler)
        elif kind == 1:
            async def handler(item: Model, dry_run: bool = False) -> Model:
                return item
            handler.__name__ = f"create_{i}"
            app.post(f"/r{i}", tags=[f"group{i % 10}"], status_code=201)(handler)
        else:
            async def handler(item_id: int, item: Model, other: models[(i + 1) % 30]) -> dict:
                return {}
            handler.__name__ = f"update_{i}"
            app.put(f"/r{i}/{{item_id}}", tags=[f"group{i % 10}"])(handler)

    for i in range(ROUTES):
        make(i)
''')

PROBE = textwrap.dedent('''
    import gc, json, os, sys, time
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    trace = os.environ.get("BENCH_TRACE") == "1"
    ns = {}
    t0 = time.perf_counter()
    exec(compile(sys.argv[1], "bench_app", "exec"), ns)
    define = time.perf_counter() - t0
    app = ns["app"]
    gc.collect()
    if trace:
        import tracemalloc
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    before = rss()
    t0 = time.perf_counter()
    schema = app.openapi()
    elapsed = time.perf_counter() - t0
    after = rss()
    out = {"define": define, "seconds": elapsed, "rss_growth": after - before, "rss": after,
           "paths": len(schema["paths"]), "bytes": len(json.dumps(schema))}
    if trace:
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        out.update(peak=peak - base, retained=current - base)
    t0 = time.perf_counter()
    again = app.openapi()
    out["cached_seconds"] = time.perf_counter() - t0
    print(json.dumps(out))
''')


def run_once(python: str, framework: str, routes: int, trace: bool) -> dict[str, float]:
    env = {**os.environ, "BENCH_FRAMEWORK": framework, "BENCH_ROUTES": str(routes), "BENCH_TRACE": str(int(trace))}
    if framework == "covet":
        env["PYTHONPATH"] = str(ROOT / "bindings" / "python")
    result = subprocess.run([python, "-c", PROBE, APP], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{framework} run failed:\n{result.stderr}")
    sample: dict[str, float] = json.loads(result.stdout)
    return sample


def summarize(timed: list[dict[str, float]], traced: dict[str, float]) -> dict[str, float]:
    return {
        "define": statistics.median(s["define"] for s in timed),
        "seconds": statistics.median(s["seconds"] for s in timed),
        "rss_growth": statistics.median(s["rss_growth"] for s in timed),
        "cached_seconds": statistics.median(s["cached_seconds"] for s in timed),
        "rss": statistics.median(s["rss"] for s in timed),
        "peak": traced["peak"], "retained": traced["retained"], "paths": traced["paths"], "bytes": traced["bytes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--covet-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--fastapi-python", default=str(ROOT / "build" / "differential-venv" / "bin" / "python"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--routes", type=int, default=300)
    args = parser.parse_args()
    pythons = {"fastapi": args.fastapi_python, "covet": args.covet_python}
    timed: dict[str, list[dict[str, float]]] = {fw: [] for fw in pythons}
    for _ in range(args.runs):  # interleaved, so that a change in machine load hits both alike
        for fw, py in pythons.items():
            timed[fw].append(run_once(py, fw, args.routes, trace=False))
    rows = {fw: summarize(timed[fw], run_once(py, fw, args.routes, trace=True)) for fw, py in pythons.items()}
    mib = 1024 * 1024
    print(f"{args.routes} routes, median of {args.runs} fresh processes (peak/retained: one tracemalloc run)")
    print("| | import + define the app | first app.openapi() | both | cached call | RSS growth | process RSS after "
          "| peak allocated | retained | paths | JSON bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fw, r in rows.items():
        print(f"| {fw} | {r['define'] * 1000:.0f} ms | {r['seconds'] * 1000:.0f} ms | "
              f"{(r['define'] + r['seconds']) * 1000:.0f} ms | {r['cached_seconds'] * 1e6:.1f} µs | "
              f"{r['rss_growth'] / mib:.1f} MiB | {r['rss'] / mib:.0f} MiB | {r['peak'] / mib:.1f} MiB | "
              f"{r['retained'] / mib:.1f} MiB | "
              f"{r['paths']:.0f} | {r['bytes']:.0f} |")
    same = "same" if rows["fastapi"]["bytes"] == rows["covet"]["bytes"] else "DIFFERENT"
    print(f"schema size: {same}")


if __name__ == "__main__":
    main()
