"""Command line of the fault-injection suite (what scripts/soak.sh runs).

  python tests/fault/run.py --profile long --scale 0.2 --json out.json --markdown out.md
  python tests/fault/run.py --profile short --only memory_drift,graceful_stop --targets native-uring,python

Profiles give each scenario its parameters; --scale multiplies the size ones (requests, durations, idle
connections, slow clients, restarts) and --set scenario.param=value overrides one. Exit status 1 if any
scenario failed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fault import harness, scenarios  # noqa: E402
from fault.harness import TargetSpec  # noqa: E402

TARGETS = {
    "native-uring": TargetSpec("native", backend="uring"),
    "native-asio": TargetSpec("native", backend="asio"),
    "python": TargetSpec("python"),
    "python-w2": TargetSpec("python", workers=2),
}
# scenario → (targets it runs on, parameters per profile)
PLAN: dict[str, tuple[list[str], dict[str, dict]]] = {
    "graceful_stop": (["native-uring", "native-asio", "python"],
                      {"short": {"before_s": 1.5}, "long": {"before_s": 10.0}}),
    "sigkill_worker": (["python-w2"], {"short": {"before_s": 1.5, "after_s": 2.0},
                                       "long": {"before_s": 5.0, "after_s": 10.0}}),
    "rolling_restart": (["python-w2"], {"short": {"restarts": 3}, "long": {"restarts": 10, "settle_s": 3.0}}),
    "slowloris_heads": (["native-uring", "native-asio", "python"],
                        {"short": {"slow": 200}, "long": {"slow": 2000, "header_timeout_ms": 5000}}),
    "slowloris_bodies": (["native-uring", "native-asio", "python"],
                         {"short": {"slow": 200}, "long": {"slow": 2000, "grace_ms": 5000}}),
    "idle_connections": (["native-uring", "native-asio", "python"],
                         {"short": {"idle": 2000}, "long": {"idle": 10000, "probe_s": 10.0}}),
    "memory_drift": (["native-uring", "native-asio", "python"],
                     {"short": {"requests": 60000, "warmup": 0.5}, "long": {"requests": 5_000_000, "warmup": 0.2}}),
    "mutation_fuzz": (["native-uring", "native-asio", "python"],
                      {"short": {"duration_s": 6.0}, "long": {"duration_s": 1800.0}}),
    "stray_empty_lines": (["native-uring", "python"], {"short": {}, "long": {}}),
}
SCALED = {"before_s", "after_s", "restarts", "slow", "idle", "probe_s", "requests", "duration_s", "cases"}
LIMITS = {"idle": (100, 15000), "slow": (10, 5000), "restarts": (1, 100)}


def params_for(scenario: str, profile: str, scale: float, overrides: dict[str, dict]) -> dict:
    params = dict(PLAN[scenario][1][profile])
    for key, value in list(params.items()):
        if key in SCALED and scale != 1.0:
            scaled = value * scale
            lo, hi = LIMITS.get(key, (0, float("inf")))
            scaled = min(hi, max(lo, scaled))
            params[key] = int(scaled) if isinstance(value, int) else round(scaled, 2)
    params.update(overrides.get(scenario, {}))
    return params


def environment() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=harness.REPO_ROOT).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "hello": str(harness.hello_binary()), "hello_asan": harness.is_asan(harness.hello_binary()),
            "python": harness.python_executable(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"Fault-injection run: profile `{meta['profile']}`, scale {meta['scale']}, "
             f"{meta['passed']}/{len(results)} passed, {meta['wall_s'] / 60:.1f} min "
             f"(commit {meta['env']['commit']}{' + local changes' if meta['env']['dirty'] else ''}, "
             f"{meta['env']['cpus']} CPUs, kernel {meta['env']['kernel']}, hello "
             f"{'ASan' if meta['env']['hello_asan'] else 'release'} build).", "",
             "| scenario | target | result | sent | completed | failed | RSS first → last (peak) MiB | notes |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for r in results:
        rss = r.get("rss") or {}
        mem = (f"{rss.get('first_kb', 0) / 1024:.1f} → {rss.get('last_kb', 0) / 1024:.1f} "
               f"({rss.get('peak_kb', 0) / 1024:.1f})") if rss else ""
        kinds = ", ".join(f"{k} {v}" for k, v in sorted((r.get("failed_by_kind") or {}).items()))
        notes = "; ".join(f"{k}={r[k]}" for k in r.get("headline", ()) if k in r)
        bad = "; ".join(c["name"] + (f" ({c['detail']})" if c["detail"] else "") for c in r["checks"] if not c["ok"])
        if bad:
            notes += f"; **failed:** {bad}"
        lines.append(f"| {r['scenario']} | {r['target']} | {'pass' if r['ok'] else '**FAIL**'} | {r.get('sent', 0)} | "
                     f"{r.get('completed', 0)} | {r.get('failed', 0)}{' (' + kinds + ')' if kinds else ''} | {mem} | "
                     f"{notes.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=("short", "long"), default="short")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies the size parameters of the profile")
    p.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    p.add_argument("--targets", default="", help=f"comma-separated targets among {', '.join(TARGETS)} (default: each "
                                                  "scenario's own)")
    p.add_argument("--set", action="append", default=[], metavar="SCENARIO.PARAM=VALUE")
    p.add_argument("--json", help="write every report (and the run's settings) to this file")
    p.add_argument("--markdown", help="write a results table to this file")
    args = p.parse_args(argv)
    overrides: dict[str, dict] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        scen, _, param = key.partition(".")
        if scen not in PLAN or not param or not value:
            p.error(f"--set expects SCENARIO.PARAM=VALUE with a known scenario, got {item!r}")
        overrides.setdefault(scen, {})[param] = json.loads(value) if value[0] in "0123456789-[{" else value
    only = [s for s in args.only.split(",") if s] or list(PLAN)
    unknown = [s for s in only if s not in PLAN]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {', '.join(PLAN)}")
    wanted_targets = [t for t in args.targets.split(",") if t]
    started = time.monotonic()
    results = []
    for scen in only:
        for tname in PLAN[scen][0]:
            if wanted_targets and tname not in wanted_targets:
                continue
            params = params_for(scen, args.profile, args.scale, overrides)
            try:
                report = scenarios.SCENARIOS[scen](TARGETS[tname], **params)
            except Exception as e:  # a scenario that could not run is a failed scenario, and the run goes on
                report = {"scenario": scen, "target": TARGETS[tname].label(), "ok": False, "params": params,
                          "duration_s": 0, "checks": [{"name": "scenario ran", "ok": False,
                                                       "detail": f"{type(e).__name__}: {e}"}]}
            results.append(report)
            print(scenarios.format_line(report), flush=True)
    passed = sum(1 for r in results if r["ok"])
    meta = {"profile": args.profile, "scale": args.scale, "overrides": overrides, "passed": passed,
            "wall_s": round(time.monotonic() - started, 1), "env": environment(),
            "command": " ".join([os.path.relpath(sys.argv[0], harness.REPO_ROOT), *(argv or sys.argv[1:])])}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(results, meta))
    print(f"fault suite: {passed}/{len(results)} scenarios passed in {meta['wall_s'] / 60:.1f} min")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
