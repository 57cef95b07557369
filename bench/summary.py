"""Per-pair summaries of the runs (median, min-max, errors), ratios to the reference servers, and the run's
time estimate and progress line. Pure functions (no servers, no load)."""

from __future__ import annotations

import statistics
from typing import Any, Iterable, Mapping


def summarize(values: Iterable[float | None]) -> dict[str, Any] | None:
    """Median, min and max of the non-None values (None when there are none)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def ratio(ours: float | None, ref: float | None) -> float | None:
    """ours / ref, or None when either side is missing or ref is zero."""
    if ours is None or ref is None or ref == 0:
        return None
    return ours / ref


def _median_of(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def cpu_s_per_100k(cpu_seconds: float | None, requests: int | None) -> float | None:
    """Server CPU seconds spent per 100,000 completed requests."""
    if cpu_seconds is None or not requests:
        return None
    return cpu_seconds * 1e5 / requests


def summarize_pair(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Median and min-max over the runs of one (server, scenario); errors are summed over the runs."""
    ok = [r for r in runs if not r.get("error")]
    lat = lambda key: _median_of((r.get("latency_ms") or {}).get(key) for r in ok)  # noqa: E731
    rss = [r.get("peak_rss_kib") for r in ok if r.get("peak_rss_kib")]
    return {
        "runs": len(runs),
        "runs_ok": len(ok),
        "rps": summarize(r.get("requests_per_sec") for r in ok),
        "p50_ms": lat("50"),
        "p99_ms": lat("99"),
        "p999_ms": lat("99.9"),
        "peak_rss_kib": max(rss) if rss else None,
        "cpu_s_per_100k": summarize(r.get("cpu_s_per_100k") for r in ok),
        "bytes_per_response": _median_of(r.get("bytes_per_response") for r in ok),
        "bytes_per_sec": summarize(r.get("bytes_per_sec") for r in ok),  # response body bytes/s (h3load)
        # h3load: datagrams the server's UDP sockets dropped (a full receive buffer) during the timed windows; the
        # machine's count where the server's is not known
        "udp_drops": (sum(r["udp_drops"].get("server", r["udp_drops"]["rcvbuf"]) for r in ok if r.get("udp_drops"))
                      if any(r.get("udp_drops") for r in ok) else None),
        "errors": sum(int(r.get("errors") or 0) for r in ok),
        "run_errors": [r["error"] for r in runs if r.get("error")],
    }


def add_ratios(rows: list[dict[str, Any]], references: Iterable[str]) -> None:
    """Give every row ``ratio_<ref>`` = its median req/s / the median req/s of server ``ref`` in the same
    scenario (None where either is missing or excluded). Mutates ``rows``."""
    by_key = {(r["scenario"], r["server"]): r for r in rows}
    for ref in references:
        for r in rows:
            other = by_key.get((r["scenario"], ref))
            ours = (r.get("rps") or {}).get("median")
            theirs = (other.get("rps") or {}).get("median") if other else None
            r[f"ratio_{ref}"] = ratio(ours, theirs)


def estimate_seconds(
    n_servers: int, pair_count: int, runs: int, warmup: float, duration: float, cold_starts: int,
    start_s: float = 2.0, per_run_overhead_s: float = 0.3, tls_servers: int = 0, tls_pairs: int = 0,
    tls_runs: int | None = None, ws_servers: int = 0, ws_pairs: int = 0, ws_runs: int | None = None,
    ws_start_s: float = 1.0, ws_overhead_s: float = 0.3, grpc_servers: int = 0,
) -> float:
    """Rough wall time of a matrix: each round starts every server once and runs each of its gated
    scenarios (warm-up + timed run + overhead); plus the cold-start launches.

    ``pair_count`` counts every pair, TLS and WebSocket ones included; ``tls_pairs`` of them (on ``tls_servers``
    servers, each started a second time with its certificate) run only in the first ``tls_runs`` rounds, and
    ``ws_pairs`` (on ``ws_servers`` servers, each started once more for them: ``ws_start_s``, no idle-RSS pause)
    in the first ``ws_runs`` rounds, with ``ws_overhead_s`` more per run (wsload's gate, connecting, draining;
    a --quick run measured ~0.3 s per WebSocket pair over warm-up + duration, instance starts included).
    ``grpc_servers`` start a gRPC instance of their own each round (their pairs run every round); ``n_servers``
    counts the servers with a plain (HTTP) instance, which are also the ones with cold starts."""
    per_pair = warmup + duration + per_run_overhead_s
    tls_runs = runs if tls_runs is None else min(tls_runs, runs)
    ws_runs = runs if ws_runs is None else min(ws_runs, runs)
    per_round = (n_servers + grpc_servers) * start_s + (pair_count - tls_pairs - ws_pairs) * per_pair
    per_tls_round = tls_servers * start_s + tls_pairs * per_pair
    per_ws_round = ws_servers * ws_start_s + ws_pairs * (per_pair + ws_overhead_s)
    return runs * per_round + tls_runs * per_tls_round + ws_runs * per_ws_round + n_servers * cold_starts * 1.5


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def progress_line(done: int, total: int, elapsed: float, label: str) -> str:
    """``[ 12/120  10%] 1m05s elapsed, ETA 9m40s | label`` (ETA from the mean time per finished step)."""
    eta = (elapsed / done) * (total - done) if done else None
    pct = 100 * done // total if total else 100
    width = len(str(total))
    return f"[{done:>{width}}/{total} {pct:3d}%] {fmt_duration(elapsed)} elapsed, ETA {fmt_duration(eta)} | {label}"


def summary_rows(servers: Iterable[str], scenarios: Iterable[str], runs: list[Mapping[str, Any]],
                 excluded: Mapping[str, str], pair_excluded: Mapping[tuple[str, str], str],
                 references: Iterable[str]) -> list[dict[str, Any]]:
    """One row per (server, scenario): its exclusion reason, or the summary of its runs; then the ratios."""
    rows = []
    scenarios = list(scenarios)
    for name in servers:
        for sc in scenarios:
            row: dict[str, Any] = {"server": name, "scenario": sc}
            if name in excluded:
                row["excluded"] = excluded[name]
            elif (name, sc) in pair_excluded:
                row["excluded"] = pair_excluded[(name, sc)]
            else:
                row.update(summarize_pair([r for r in runs if r["server"] == name and r["scenario"] == sc]))
            rows.append(row)
    add_ratios(rows, references)
    return rows
