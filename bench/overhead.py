"""Observability overhead (issue 16; ``python -m bench --overhead``): the same CovetPy servers with the engine's
metrics and tracing off and on, CPU per request for plaintext and json.

Two families, four configurations each:

* native (examples/native/hello): ``--no-metrics`` (bare), the default (metrics recorded), metrics + ``--trace
  parentbased_traceidratio:0.01`` (1 %), metrics + ``--trace always_on`` (100 %);
* Python (bench/peers/covet/app_observed.py, the covet-async app): COVET_RECORD_METRICS=0 (bare), the default
  (metrics), metrics + tracing at 1 % and 100 % (COVET_BENCH_TRACE).

The cost of metrics is *metrics* against *bare*; the cost of tracing is *trace* against *metrics* (tracing is
measured on top of metrics, as deployed). `overhead_section` turns a run's results into that table; the runner's
Markdown report appends it when the run measured these servers.

Each round's servers get the same hash seed (``PYTHONHASHSEED`` = the round's number; bench/runner.py `round_env`),
and a cost is also read pair by pair: the configuration against its baseline in the same round, the median of
those differences with a 95 % confidence interval (`median_interval`). A process's own layout (its hash seed, where
its heap lands) moves a Python request's CPU by a few percent from one start to the next, which the medians of
separate rounds carry into the difference and the pairs do not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .servers import (
    PEERS,
    Ctx,
    ServerSpec,
    covet_native_versions,
    covet_python_versions,
    covet_run_command,
    install_covet_native,
    install_covet_python,
    native_binary,
)

OVERHEAD_SCENARIOS = ("plaintext", "json")
# (configuration, label, hello flags, Python environment)
CONFIGS: tuple[tuple[str, str, tuple[str, ...], dict[str, str]], ...] = (
    ("bare", "metrics off, tracing off", ("--no-metrics",), {"COVET_RECORD_METRICS": "0", "COVET_BENCH_TRACE": "off"}),
    ("metrics", "metrics on", (), {"COVET_BENCH_TRACE": "off"}),
    ("trace1", "metrics on, tracing at 1 %", ("--trace", "parentbased_traceidratio:0.01"),
     {"COVET_BENCH_TRACE": "0.01"}),
    ("trace100", "metrics on, tracing at 100 %", ("--trace", "always_on"), {"COVET_BENCH_TRACE": "1"}),
)
FAMILIES = (("native", "covet-native-obs"), ("python", "covet-async-obs"))
OVERHEAD_SERVERS = tuple(f"{prefix}-{config}" for _, prefix in FAMILIES for config, *_ in CONFIGS)
# What each cost compares: (row label, configuration, its baseline).
COSTS = (("metrics", "metrics", "bare"), ("tracing 1 %", "trace1", "metrics"), ("tracing 100 %", "trace100", "metrics"))
HTTP_ONLY = "the overhead comparison measures plaintext and json over HTTP/1.1"


def native_command(flags: tuple[str, ...]) -> Callable[[Ctx, int], list[str]]:
    def cmd(ctx: Ctx, port: int) -> list[str]:
        return [str(native_binary(ctx)), "--port", str(port), "--threads", str(ctx.workers), "--log-level", "warn",
                *flags]
    return cmd


python_command = covet_run_command("app_observed:app", PEERS / "covet")


def overhead_specs() -> list[ServerSpec]:
    unsupported = dict.fromkeys(("ws-echo", "ws-broadcast", "post-json"), HTTP_ONLY)
    specs = []
    for config, label, flags, env in CONFIGS:
        specs.append(ServerSpec(
            f"covet-native-obs-{config}", f"CovetPy native, {label}",
            f"examples/native/hello `{' '.join(('--threads 1 --log-level warn', *flags))}`",
            install_covet_native, native_command(flags), covet_native_versions, unsupported=unsupported,
        ))
        specs.append(ServerSpec(
            f"covet-async-obs-{config}", f"CovetPy Python async, {label}",
            "`python -m covet run app_observed:app --threads 0 --log-level warning`, "
            + ", ".join(f"{k}={v}" for k, v in env.items()),
            install_covet_python, python_command, covet_python_versions, env=dict(env), unsupported=unsupported,
        ))
    return specs


def _cpu_per_request_us(result: Mapping[str, Any], server: str, scenario: str) -> float | None:
    """Median server CPU per request, microseconds (from the summary's CPU s / 100K requests)."""
    for row in result.get("summary", []):
        if row["server"] == server and row["scenario"] == scenario and not row.get("excluded"):
            cpu = row.get("cpu_s_per_100k")
            return cpu["median"] * 10.0 if cpu and cpu.get("median") is not None else None
    return None


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """The median of ``values`` and a distribution-free confidence interval for it: the order statistics k and
    n+1-k, with k the largest for which the binomial tail P(Bin(n, 1/2) < k) stays within (1 - confidence) / 2.
    None for fewer than 6 values (no such k at 95 %)."""
    v = sorted(values)
    n = len(v)
    tail = (1.0 - confidence) / 2.0
    k, below = 0, 0.0  # below: P(Bin(n, 1/2) <= k - 1)
    while k < n // 2:
        nxt = below + math.comb(n, k) / 2.0 ** n
        if nxt > tail:
            break
        below, k = nxt, k + 1
    if k == 0:
        return None
    mid = n // 2
    median = v[mid] if n % 2 else (v[mid - 1] + v[mid]) / 2.0
    return median, v[k - 1], v[n - k]


def _round_cpu(result: Mapping[str, Any], server: str, scenario: str) -> dict[int, float]:
    """CPU s / 100K requests of each round that measured ``server`` on ``scenario``."""
    return {r["round"]: r["cpu_s_per_100k"] for r in result.get("runs", [])
            if r.get("server") == server and r.get("scenario") == scenario and r.get("cpu_s_per_100k")}


def paired_costs(result: Mapping[str, Any], server: str, baseline: str, scenario: str) -> list[float]:
    """The cost of ``server`` over ``baseline`` in percent, one figure per round that measured both."""
    on, off = _round_cpu(result, server, scenario), _round_cpu(result, baseline, scenario)
    return [100.0 * (on[r] - off[r]) / off[r] for r in sorted(on.keys() & off.keys())]


def overhead_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per family, scenario and cost: the baseline's and the configuration's CPU per request (µs), the
    cost in percent of the baseline (None where either was not measured), and the paired cost: the median of the
    rounds' own differences with its 95 % interval (None for fewer than 6 rounds) and how many rounds."""
    rows = []
    for family, prefix in FAMILIES:
        for scenario in OVERHEAD_SCENARIOS:
            for what, config, base in COSTS:
                on = _cpu_per_request_us(result, f"{prefix}-{config}", scenario)
                off = _cpu_per_request_us(result, f"{prefix}-{base}", scenario)
                if on is None and off is None:
                    continue
                pct = 100.0 * (on - off) / off if on is not None and off else None
                pairs = paired_costs(result, f"{prefix}-{config}", f"{prefix}-{base}", scenario)
                rows.append({"family": family, "scenario": scenario, "cost": what, "base_us": off, "on_us": on,
                             "percent": pct, "paired": median_interval(pairs), "pairs": len(pairs)})
    return rows


def overhead_section(result: Mapping[str, Any]) -> str | None:
    """The Markdown table of `overhead_rows`, or None when the run measured none of these servers."""
    if not any(n in OVERHEAD_SERVERS for n in result.get("servers", {})):
        return None
    rows = overhead_rows(result)
    out = ["### Observability overhead (`--overhead`)", "",
           ("Server CPU per request (utime+stime of the process tree over the timed run, median of the rounds); the "
           "cost of metrics is against metrics off, the cost of tracing against metrics on without tracing. *Paired*: "
           "the median of each round's own difference (every server of a round ran with the same PYTHONHASHSEED, the "
           "round's number) and its 95 % confidence interval."), "",
           "| engine | scenario | what | CPU µs/req without | with | cost | paired cost (95 % CI), rounds |",
           "|---|---|---|---:|---:|---:|---:|"]

    def us(v: float | None) -> str:
        return f"{v:.2f}" if v is not None else "—"

    for r in rows:
        pct = f"{r['percent']:+.1f} %" if r["percent"] is not None else "—"
        paired = r["paired"]
        pc = (f"{paired[0]:+.1f} % ({paired[1]:+.1f} to {paired[2]:+.1f}), {r['pairs']}" if paired is not None
              else f"—, {r['pairs']}")
        out.append(f"| {r['family']} | {r['scenario']} | {r['cost']} | {us(r['base_us'])} | {us(r['on_us'])} | "
                   f"{pct} | {pc} |")
    return "\n".join(out)


__all__ = ["OVERHEAD_SCENARIOS", "OVERHEAD_SERVERS", "median_interval", "overhead_rows", "overhead_section",
           "overhead_specs", "paired_costs"]
