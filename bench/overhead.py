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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def overhead_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per family, scenario and cost: the baseline's and the configuration's CPU per request (µs) and the
    cost in percent of the baseline (None where either was not measured)."""
    rows = []
    for family, prefix in FAMILIES:
        for scenario in OVERHEAD_SCENARIOS:
            for what, config, base in COSTS:
                on = _cpu_per_request_us(result, f"{prefix}-{config}", scenario)
                off = _cpu_per_request_us(result, f"{prefix}-{base}", scenario)
                if on is None and off is None:
                    continue
                pct = 100.0 * (on - off) / off if on is not None and off else None
                rows.append({"family": family, "scenario": scenario, "cost": what, "base_us": off, "on_us": on,
                             "percent": pct})
    return rows


def overhead_section(result: Mapping[str, Any]) -> str | None:
    """The Markdown table of `overhead_rows`, or None when the run measured none of these servers."""
    if not any(n in OVERHEAD_SERVERS for n in result.get("servers", {})):
        return None
    rows = overhead_rows(result)
    out = ["### Observability overhead (`--overhead`)", "",
           ("Server CPU per request (utime+stime of the process tree over the timed run, median of the rounds); the "
           "cost of metrics is against metrics off, the cost of tracing against metrics on without tracing."), "",
           "| engine | scenario | what | CPU µs/req without | with | cost |", "|---|---|---|---:|---:|---:|"]

    def us(v: float | None) -> str:
        return f"{v:.2f}" if v is not None else "—"

    for r in rows:
        pct = f"{r['percent']:+.1f} %" if r["percent"] is not None else "—"
        out.append(f"| {r['family']} | {r['scenario']} | {r['cost']} | {us(r['base_us'])} | {us(r['on_us'])} | "
                   f"{pct} |")
    return "\n".join(out)


__all__ = ["OVERHEAD_SCENARIOS", "OVERHEAD_SERVERS", "overhead_rows", "overhead_section", "overhead_specs"]
