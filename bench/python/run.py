#!/usr/bin/env python3
"""Python-level benchmark: CovetPy (native engine, Python handlers) against FastAPI + uvicorn.

Same protocol as bench/native/run.py (PERFORMANCE.md): server on CPU 0, ``taskset -c 1 wrk -t1``
on CPU 1, warm-up then timed runs, runs interleaved covet/fastapi, server CPU-µs per request from
/proc.  The wrk/proc/markdown machinery is imported from bench/native/run.py, not duplicated.

Extra measurements: idle RSS, cold start (spawn -> first 200 OK, median of 3), and covet's RSS
after 10K vs after ~1M plaintext requests.

Python 3.11 standard library only.  ``python3 bench/python/run.py --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import importlib.util
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
APPS = HERE / "apps"
NATIVE_RUN = REPO / "bench" / "native" / "run.py"


def _load_native():
    # Loaded by path under its own name: `import run` would find this file.
    spec = importlib.util.spec_from_file_location("covet_bench_native_run", NATIVE_RUN)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


native_run = _load_native()

COVET_PYTHON = REPO / ".venv" / "bin" / "python"
PEERS_VENV = REPO / "bench" / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
# Pinned current releases (PyPI, 2026-11); uvicorn[standard] brings uvloop + httptools.
PEER_REQUIREMENTS = ("fastapi==0.165.0", "uvicorn[standard]==0.54.0")
PEER_VERSION_PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "pydantic_core")
COVET_VERSION_PACKAGES = ("covetpy", "pydantic", "pydantic_core")

DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"
DEFAULT_OUT = REPO / "bench" / "results"
SECTION_START = "<!-- python-bench:start -->"
SECTION_END = "<!-- python-bench:end -->"

SERVER_CPU = native_run.SERVER_CPU
WRK_CPU = native_run.WRK_CPU
PIPELINE_DEPTH = native_run.PIPELINE_DEPTH
ALL_SERVERS = ("covet", "fastapi")
REFERENCE = "fastapi"
NGINX_CPU_US_FALLBACK = 9.28  # docs/benchmarks.md native section, nginx plaintext-c64 median

PLAINTEXT_BODY = b"Hello, World!"
JSON_BODY = {"message": "Hello, World!"}
USERS_BODY = {"id": 123, "q": "x"}


@dataclass(frozen=True)
class Scenario:
    """Duck-typed like bench/native's Scenario (name, path, connections, pipeline, latency)."""

    name: str
    path: str
    connections: int
    kind: str  # plaintext | json | users
    servers: tuple[str, ...] = ALL_SERVERS
    pipeline: bool = False

    @property
    def latency(self) -> bool:
        return not self.pipeline


def build_scenarios() -> tuple[Scenario, ...]:
    out = []
    for mode, prefix, servers in (
        ("async", "", ALL_SERVERS),
        ("sync", "/sync", ALL_SERVERS),
        ("inline", "/inline", ("covet",)),  # FastAPI has no inline sync handlers
    ):
        out.append(Scenario(f"{mode}-plaintext-c64", f"{prefix}/plaintext", 64, "plaintext", servers))
        out.append(Scenario(f"{mode}-json-c64", f"{prefix}/json", 64, "json", servers))
        out.append(Scenario(f"{mode}-users-c64", f"{prefix}/users/123?q=x", 64, "users", servers))
    out.append(Scenario(f"pipelined{PIPELINE_DEPTH}-c256", "/plaintext", 256, "plaintext", ALL_SERVERS, True))
    return tuple(out)


SCENARIOS = build_scenarios()


# --------------------------------------------------------------------------------------
# Pure helpers (unit-tested in bench/tests/test_python_bench.py)
# --------------------------------------------------------------------------------------


def body_matches(kind: str, body: bytes) -> bool:
    """Does ``body`` equal the expected response of a ``kind`` route?"""
    if kind == "plaintext":
        return body == PLAINTEXT_BODY
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return parsed == (JSON_BODY if kind == "json" else USERS_BODY)


def duration_for_requests(target: int, rps: float | None, lo: int = 1, hi: int = 120) -> int:
    """Whole seconds of wrk needed to serve ``target`` requests at ``rps`` (clamped to [lo, hi])."""
    if not rps or rps <= 0:
        return hi
    return max(lo, min(hi, math.ceil(target / rps)))


def server_command(name: str, port: int) -> list[str]:
    """The pinned command line of one benchmarked server."""
    pin = ["taskset", "-c", str(SERVER_CPU)]
    if name == "covet":
        return pin + [
            str(COVET_PYTHON), "-m", "covet", "_worker", "covet_app:app", "--port", str(port),
            "--threads", "0", "--log-level", "warning", "--app-dir", str(APPS),
        ]
    if name == "fastapi":
        return pin + [
            str(PEERS_PYTHON), "-m", "uvicorn", "fastapi_app:app", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--app-dir", str(APPS),
        ]
    raise ValueError(f"unknown server {name!r}")


def summarize_python(runs: list[dict[str, Any]], scenarios, servers) -> list[dict[str, Any]]:
    """native_run.summarize_results with FastAPI as the reference (ratio keys renamed)."""
    rows = native_run.summarize_results(runs, scenarios, servers, reference=REFERENCE)
    for row in rows:
        row["rps_vs_fastapi"] = row.pop("rps_vs_nginx", None)
        row["cpu_vs_fastapi"] = row.pop("cpu_vs_nginx", None)
    return rows


def find_row(rows, scenario: str, server: str) -> dict[str, Any] | None:
    for r in rows:
        if r["scenario"] == scenario and r["server"] == server:
            return r
    return None


def _med(s: Mapping[str, Any] | None) -> float | None:
    return s["median"] if s else None


def target_verdicts(
    rows: list[dict[str, Any]], extras: Mapping[str, Any], nginx_cpu_us: float
) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and met / not met / unknown."""
    out: list[dict[str, Any]] = []

    def add(name, value, limit, ok, detail):
        out.append({"target": name, "value": value, "limit": limit,
                    "met": None if value is None else ok, "detail": detail})

    cpu = _med((find_row(rows, "async-plaintext-c64", "covet") or {}).get("cpu_us_per_req"))
    lim = 1.5 * nginx_cpu_us
    add("CPU per request ≤ 1.5× nginx", cpu, lim, cpu is not None and cpu <= lim,
        f"covet async plaintext c64: {cpu:.2f} CPU-µs/req vs limit {lim:.1f} (nginx {nginx_cpu_us:.2f})"
        if cpu is not None else "no covet async-plaintext-c64 figure")
    pipe = find_row(rows, f"pipelined{PIPELINE_DEPTH}-c256", "covet")
    r = pipe.get("rps_vs_fastapi") if pipe else None
    add("≥ 10× FastAPI pipelined", r, 10.0, r is not None and r >= 10.0,
        f"covet/fastapi pipelined req/s = {r:.2f}×" if r is not None else "no pipelined ratio")
    p99s = {
        row["scenario"]: _med(row.get("p99_ms")) for row in rows
        if row["server"] == "covet" and row["scenario"].endswith("-c64") and row.get("p99_ms")
    }
    # The verdict is on the async handlers (the target's case); thread-pool and inline are listed too.
    async_p99 = [v for k, v in p99s.items() if k.startswith("async-") and v is not None]
    worst = max(async_p99) if async_p99 else None
    add("p99 < 1 ms @ 64 connections (async handlers)", worst, 1.0, worst is not None and worst < 1.0,
        "covet p99 (median of runs): "
        + ", ".join(f"{k} {native_run.fmt_ms(v)}" for k, v in p99s.items()) if p99s else "no figures")
    rss = extras.get("idle_rss_mib", {}).get("covet")
    rss_mb = None if rss is None else mib_to_mb(rss)
    add("idle RSS < 25 MB", rss_mb, 25.0, rss_mb is not None and rss_mb < 25.0,
        f"covet idle RSS {rss:.1f} MiB = {rss_mb:.1f} MB (10⁶ bytes), median of 3 fresh starts"
        if rss is not None else "not measured")
    cold = extras.get("cold_start_ms", {}).get("covet")
    add("cold start < 100 ms", cold, 100.0, cold is not None and cold < 100.0,
        f"covet spawn → first 200 OK, median of 3: {cold:.0f} ms" if cold is not None else "not measured")
    return out


def mib_to_mb(mib: float) -> float:
    return mib * 1024 * 1024 / 1e6


def verdict_word(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "unknown"}[met]


def render_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | server | req/s median (min–max) | req/s covet/fastapi | p50 | p99 "
        "| server CPU-µs/req median (min–max) | CPU/req covet/fastapi | server core busy "
        "| wrk core busy | bytes/resp | errors / non-2xx |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        p50 = native_run.fmt_ms(_med(r["p50_ms"]))
        p99 = native_run.fmt_ms(_med(r["p99_ms"]))
        if r["scenario"].startswith("pipelined"):
            p50 = p99 = "n/a¹"
        core = f"{r['server_core_pct']['median']:.0f}%" if r["server_core_pct"] else "—"
        wrk = f"{r['wrk_core_pct']['median']:.0f}%" if r["wrk_core_pct"] else "—"
        bpr = f"{r['bytes_per_response']['median']:.0f}" if r["bytes_per_response"] else "—"
        failed = f" ({r['runs_failed']} run(s) failed)" if r["runs_failed"] else ""
        is_ref = r["server"] == REFERENCE
        rr = "" if is_ref else native_run.fmt_ratio(r["rps_vs_fastapi"])
        cr = "" if is_ref else native_run.fmt_ratio(r["cpu_vs_fastapi"])
        lines.append(
            f"| {r['scenario']} | {r['server']} | {native_run.fmt_rps(r['rps'])} | {rr} | {p50} | {p99} "
            f"| {native_run.fmt_spread(r['cpu_us_per_req'])} | {cr} | {core} | {wrk} | {bpr} "
            f"| {r['socket_errors']} / {r['non_2xx']}{failed} |"
        )
    return "\n".join(lines)


def render_markdown(result: Mapping[str, Any]) -> str:
    m = result["machine"]
    s = result["settings"]
    ex = result["extras"]
    vers = result["versions"]
    cv = ", ".join(f"{k} {v}" for k, v in vers.get("covet", {}).items())
    fv = ", ".join(f"{k} {v}" for k, v in vers.get("fastapi", {}).items())
    lines = [
        "## Python handlers: CovetPy vs FastAPI + uvicorn (wrk, one core each)",
        "",
        f"Measured {result['timestamp_utc']} (git {result.get('git_revision') or '?'}) with:",
        "",
        "```sh",
        result["command"],
        "```",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, {m['mem_gib']} GiB; "
        f"{m['wrk_version']}; Python {vers.get('python', m['python'])}.",
        f"- Versions: covet venv: {cv}; peers venv (`bench/.venv-peers`): {fv}.",
        f"- Protocol: server `taskset -c {SERVER_CPU}` (one process), `taskset -c {WRK_CPU} wrk -t1`; "
        f"{s['warmup_s']:g} s warm-up then a {s['duration_s']:g} s timed run, {s['runs']} run(s) per "
        "server and scenario, interleaved (covet fastapi covet fastapi …); each server is started fresh "
        "for every run and its responses are checked (status 200, exact body) first. Median (min–max) "
        "over runs.",
        "- Servers: " + "; ".join(f"`{sv['name']}` = `{sv['command']}`" for sv in result["servers"]) + ".",
        "- Routes (`bench/python/apps/`): `async-*` = `async def` handlers; `sync-*` = plain `def` "
        "(covet: thread pool, the default; FastAPI: its thread pool); `inline-*` = covet `def` handlers "
        "with `inline=True` (run on the event-loop thread; FastAPI has no equivalent). `users` = "
        "`GET …/users/123?q=x` → `{\"id\":123,\"q\":\"x\"}` (`user_id: int, q: Optional[str]`).",
    ]
    if s.get("quick"):
        lines.append("- **Quick run** (short, single run): a smoke test, not a figure to cite.")
    lines += ["", render_table(result["summary"]), ""]
    lines.append(
        "¹ Pipelined runs (16 requests per write, `bench/native/pipeline.lua`) report throughput only."
    )
    lines += ["", "Startup and memory (one process each):", "",
              "| server | idle RSS | cold start (spawn → first 200 OK), median of 3 (all) |", "|---|---|---|"]
    for name in s["servers"]:
        rss = ex.get("idle_rss_mib", {}).get(name)
        cold = ex.get("cold_start_ms", {}).get(name)
        all_ms = ex.get("cold_start_all_ms", {}).get(name) or []
        lines.append(
            f"| {name} | {'—' if rss is None else f'{rss:.1f} MiB'} | "
            f"{'—' if cold is None else f'{cold:.0f} ms'} ({', '.join(f'{v:.0f}' for v in all_ms)}) |"
        )
    growth = ex.get("rss_growth")
    if growth:
        if growth.get("error"):
            lines += ["", f"covet RSS growth test failed: {growth['error']}"]
        else:
            lines += [
                "",
                f"covet RSS under plaintext load (one fresh process): {growth['rss_after_small_kib'] / 1024:.1f} MiB "
                f"after {growth['small_requests']:,} requests, {growth['rss_after_large_kib'] / 1024:.1f} MiB after "
                f"{growth['total_requests']:,} requests (growth {growth['growth_kib'] / 1024:+.1f} MiB)"
                + (f"; {growth['note']}" if growth.get("note") else "") + ".",
            ]
    lines += ["", f"Targets (issue), CPU figure compared with nginx `return 200` at "
                  f"{result['nginx_cpu_us']:.2f} CPU-µs/req ({result['nginx_cpu_source']}):", ""]
    for v in result["targets"]:
        lines.append(f"- {v['target']}: {verdict_word(v['met'])}. {v['detail']}.")
    lines += [
        "",
        "Read by CPU-µs/request and by the ratios: absolute req/s on this shared VM varies up to 2× "
        "between minutes. p50/p99 are wrk's closed-loop figures (coordinated omission), not open-loop "
        "p99 claims.",
    ]
    excl = result.get("exclusions") or []
    if excl:
        lines += ["", "Excluded:"]
        lines += [f"- `{e['server']}` {e['scenario']}: {e['reason']}" for e in excl]
    failed = [r for r in result.get("runs", []) if not r.get("ok")]
    if failed:
        lines += ["", "Failed runs:"]
        for r in failed:
            err = " ".join(str(r.get("error", "?")).split())[:200]
            lines.append(f"- `{r['server']}` {r['scenario']} run {r['run']}: {err}")
    lines += ["", f"Raw data: `{result['json_path']}`."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------

log = native_run.log


def ensure_peers_venv() -> None:
    if PEERS_PYTHON.exists():
        probe = subprocess.run([str(PEERS_PYTHON), "-c", "import fastapi, uvicorn, uvloop, httptools"],
                               capture_output=True)
        if probe.returncode == 0:
            return
    log(f"creating {PEERS_VENV} and installing {' '.join(PEER_REQUIREMENTS)}")
    if not PEERS_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([str(PEERS_PYTHON), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)


def ensure_covet() -> None:
    probe = subprocess.run([str(COVET_PYTHON), "-c", "import covet._native, covet.cli"],
                           capture_output=True, cwd="/")
    if probe.returncode != 0:
        log(f"covet not importable in {COVET_PYTHON}; pip installing {REPO}")
        subprocess.run([str(COVET_PYTHON), "-m", "pip", "install", "-q", str(REPO)], check=True)


def package_versions(python: Path, packages) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys, platform\n"
        "out = {}\n"
        f"for p in {list(packages)!r}:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = 'missing'\n"
        "out['python'] = platform.python_version()\n"
        "print(json.dumps(out))\n"
    )
    p = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/")
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"error": p.stderr.strip()[-200:]}


def nginx_reference() -> tuple[float, str]:
    """nginx plaintext-c64 CPU-µs/req from the newest native result, else the documented figure."""
    for path in sorted(DEFAULT_OUT.glob("native-*.json"), reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        row = next((r for r in data.get("summary", [])
                    if r["server"] == "nginx" and r["scenario"] == "plaintext-c64"), None)
        if row and row.get("cpu_us_per_req"):
            return row["cpu_us_per_req"]["median"], f"nginx plaintext-c64 median in `{native_run.display_path(path)}`"
    return NGINX_CPU_US_FALLBACK, "docs/benchmarks.md native section"


# --------------------------------------------------------------------------------------
# Servers and checks
# --------------------------------------------------------------------------------------


class ServerError(native_run.ServerError):
    pass


@dataclass
class PyServer:
    """Interface-compatible with native_run.Server for native_run.run_one."""

    name: str
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="covet-pybench-")))
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    startup_ms: float | None = None

    def describe_command(self) -> str:
        return shlex.join(server_command(self.name, 0)).replace("--port 0", "--port N").replace(str(REPO) + "/", "")

    def start(self, timeout: float = 30.0) -> None:
        self.stop()
        self.port = native_run.free_port()
        err = open(self.tmp / "stderr.log", "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            server_command(self.name, self.port), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True, cwd=str(APPS),
        )
        err.close()
        failure = native_run.wait_for_200(self.proc, self.port, t0 + timeout)
        if failure:
            raise ServerError(f"{failure} (limit {timeout:.0f} s): {native_run._tail(self.tmp / 'stderr.log')}")
        self.startup_ms = (time.monotonic() - t0) * 1e3

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        native_run.stop_process(proc, signal.SIGTERM, grace=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# native_run.check_http checks bodies through its module's body_check; ours also knows the `users` kind.
native_run.body_check = body_matches
check_http = native_run.check_http


def measure_startup(name: str, n: int = 3) -> tuple[list[float], list[int]]:
    """n fresh starts: (spawn -> first 200 OK in ms, idle RSS KiB 0.3 s after that)."""
    times, rss = [], []
    for _ in range(n):
        srv = PyServer(name)
        try:
            srv.start()
            times.append(srv.startup_ms)
            time.sleep(0.3)
            rss.append(native_run.tree_rss_kib(srv.proc.pid))
        finally:
            srv.cleanup()
        time.sleep(0.3)
    return times, rss


def rss_growth(rps_hint: float | None, large: int, max_s: int) -> dict[str, Any]:
    """covet plaintext: RSS after `small` requests (http.client loop) and after ~`large` (wrk)."""
    small = 10_000
    srv = PyServer("covet")
    out: dict[str, Any] = {"small_requests": small}
    try:
        srv.start()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for _ in range(small):
            conn.request("GET", "/plaintext")
            conn.getresponse().read()
        conn.close()
        time.sleep(0.3)
        out["rss_after_small_kib"] = native_run.tree_rss_kib(srv.proc.pid)
        d = duration_for_requests(large - small, rps_hint, hi=max_s)
        sc = Scenario("rss", "/plaintext", 64, "plaintext")
        cmd = native_run.wrk_command(sc, srv.port, d, timed=False)
        code, text, _ = native_run.run_wrk(cmd, d)
        if code != 0:
            raise ServerError(f"wrk exited {code}: {text[-200:]}")
        parsed = native_run.parse_wrk_output(text)
        time.sleep(0.3)
        out["rss_after_large_kib"] = native_run.tree_rss_kib(srv.proc.pid)
        out["wrk_duration_s"] = d
        out["total_requests"] = small + parsed["requests"] + 2  # + the start-up probe
        out["growth_kib"] = out["rss_after_large_kib"] - out["rss_after_small_kib"]
        if out["total_requests"] < 0.9 * large:
            out["note"] = f"target was {large:,}; wrk was capped at {max_s} s"
    except (ServerError, OSError, ValueError, http.client.HTTPException) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        srv.cleanup()
    return out


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Benchmark CovetPy's Python layer against FastAPI + uvicorn with wrk.")
    ap.add_argument("--duration", type=int, default=None, help="timed run length in whole s (default 5)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up in whole s (default 2)")
    ap.add_argument("--runs", type=int, default=None, help="runs per server and scenario (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 s runs, 1 run, 1 s warm-up")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS))
    ap.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS))
    ap.add_argument("--rss-requests", type=int, default=1_000_000, help="requests for the RSS growth test")
    ap.add_argument("--rss-max-seconds", type=int, default=60, help="cap on the RSS-growth wrk run")
    ap.add_argument("--no-rss-growth", action="store_true")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--docs", default=str(DEFAULT_DOCS))
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = 2 if args.duration is None else args.duration
        args.runs = 1 if args.runs is None else args.runs
        args.warmup = 1 if args.warmup is None else args.warmup
    args.duration = 5 if args.duration is None else args.duration
    args.runs = 3 if args.runs is None else args.runs
    args.warmup = 2 if args.warmup is None else args.warmup
    args.servers = [x for x in (y.strip() for y in args.servers.split(",")) if x]
    for sname in args.servers:
        if sname not in ALL_SERVERS:
            ap.error(f"unknown server {sname!r}")
    known = {s.name: s for s in SCENARIOS}
    try:
        args.scenarios = [known[x.strip()] for x in args.scenarios.split(",") if x.strip()]
    except KeyError as exc:
        ap.error(f"unknown scenario {exc}; choose from {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for tool in ("taskset", "wrk"):
        if not shutil.which(tool):
            log(f"error: {tool} not found")
            return 2
    if "fastapi" in args.servers:
        ensure_peers_venv()
    if "covet" in args.servers:
        ensure_covet()
    versions = {
        "covet": package_versions(COVET_PYTHON, COVET_VERSION_PACKAGES),
        "fastapi": package_versions(PEERS_PYTHON, PEER_VERSION_PACKAGES) if PEERS_PYTHON.exists() else {},
    }
    versions["python"] = versions["covet"].pop("python", None)
    versions["fastapi"].pop("python", None)
    stamp = dt.datetime.now(dt.timezone.utc)
    ts = stamp.strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"python-{ts}.json"
    md_path = out_dir / f"python-{ts}.md"
    command = "python3 bench/python/run.py" + (" " + shlex.join(argv) if argv else "")
    clk = os.sysconf("SC_CLK_TCK")
    loadavg_start = (native_run._read("/proc/loadavg") or "").strip()

    exclusions: list[dict[str, str]] = []
    servers = [PyServer(n) for n in args.servers]
    server_meta = [{"name": s.name, "command": s.describe_command()} for s in servers]
    usable: dict[str, set[str]] = {}
    extras: dict[str, Any] = {"idle_rss_mib": {}, "cold_start_ms": {}, "cold_start_all_ms": {}}
    runs: list[dict[str, Any]] = []
    try:
        for srv, meta in zip(servers, server_meta):
            try:
                srv.start()
            except (ServerError, OSError) as exc:
                log(f"{srv.name}: cannot start: {exc}")
                exclusions.append({"server": srv.name, "scenario": "all", "reason": f"does not start: {exc}"})
                continue
            meta["checks"] = {}
            ok_scen = set()
            for sc in args.scenarios:
                if srv.name not in sc.servers:
                    continue
                ok, reason, info = check_http(srv.port, sc.path, sc.kind)
                if ok and sc.pipeline:
                    ok, reason = native_run.check_pipelined(srv.port, sc.path)
                meta["checks"][sc.name] = {"ok": ok, "reason": reason, **info}
                if ok:
                    ok_scen.add(sc.name)
                else:
                    log(f"{srv.name}: excluded from {sc.name}: {reason}")
                    exclusions.append({"server": srv.name, "scenario": sc.name, "reason": reason})
            usable[srv.name] = ok_scen
            srv.stop()
            times, rss = measure_startup(srv.name)
            extras["cold_start_all_ms"][srv.name] = times
            extras["cold_start_ms"][srv.name] = statistics.median(times)
            extras["idle_rss_mib"][srv.name] = statistics.median(rss) / 1024
            meta["idle_rss_kib_all"] = rss
            log(f"{srv.name}: checks ok for {len(ok_scen)} scenarios; cold start {statistics.median(times):.0f} ms, "
                f"idle RSS {statistics.median(rss) / 1024:.1f} MiB")

        planned = sum(1 for sc in args.scenarios for _ in range(args.runs) for s in servers
                      if sc.name in usable.get(s.name, ()))
        log(f"{planned} timed runs, about {planned * (args.warmup + args.duration + 1.5) / 60:.1f} min")
        for sc in args.scenarios:
            for run_no in range(1, args.runs + 1):
                for srv in servers:  # interleaved: covet fastapi covet fastapi ...
                    if sc.name not in usable.get(srv.name, ()):
                        continue
                    rec = native_run.run_one(srv, sc, run_no, args, clk)
                    runs.append(rec)
                    if rec.get("ok"):
                        lat = rec["latency_ms"]
                        log(f"{sc.name} run {run_no} {srv.name}: {rec['requests_per_sec']:,.0f} req/s, "
                            f"{rec['cpu_us_per_req']:.2f} CPU-µs/req, core {rec['server_core_pct']:.0f}%"
                            + (f", p99 {lat['99']:.3f} ms" if sc.latency and lat else ""))
                    else:
                        log(f"{sc.name} run {run_no} {srv.name}: FAILED: {rec.get('error')}")
    finally:
        for srv in servers:
            srv.cleanup()

    summary = summarize_python(runs, args.scenarios, args.servers)
    if "covet" in args.servers and not args.no_rss_growth:
        hint = _med((find_row(summary, "async-plaintext-c64", "covet") or {}).get("rps"))
        log(f"RSS growth: covet plaintext, ~{args.rss_requests:,} requests")
        extras["rss_growth"] = rss_growth(hint, args.rss_requests, args.rss_max_seconds)
        log(f"RSS growth: {extras['rss_growth']}")
    nginx_cpu, nginx_src = nginx_reference()
    result = {
        "timestamp_utc": stamp.strftime("%Y-%m-%d %H:%M:%SZ"),
        "command": command,
        "git_revision": native_run.git_revision(),
        "machine": native_run.machine_info("nginx"),
        "loadavg_start": loadavg_start,
        "versions": versions,
        "settings": {
            "duration_s": args.duration, "warmup_s": args.warmup, "runs": args.runs, "quick": args.quick,
            "servers": args.servers, "scenarios": [s.name for s in args.scenarios],
            "server_cpu": SERVER_CPU, "wrk_cpu": WRK_CPU, "pipeline_depth": PIPELINE_DEPTH,
        },
        "servers": server_meta,
        "exclusions": exclusions,
        "runs": runs,
        "summary": summary,
        "extras": extras,
        "nginx_cpu_us": nginx_cpu,
        "nginx_cpu_source": nginx_src,
        "json_path": native_run.display_path(json_path),
    }
    result["targets"] = target_verdicts(summary, extras, nginx_cpu)
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    section = render_markdown(result)
    md_path.write_text(section + "\n")
    print(section)
    if not args.no_docs:
        docs = Path(args.docs)
        old = docs.read_text() if docs.exists() else None
        docs.write_text(native_run.replace_section(old, section, SECTION_START, SECTION_END,
                                                   header=native_run.DOCS_HEADER))
        log(f"updated {docs}")
    log(f"wrote {json_path} and {md_path}")
    return 0 if any(r.get("ok") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
