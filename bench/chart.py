"""PNG chart of a `python -m bench` result (run by the runner with bench/.venvs/tools' matplotlib, from the
repository root; bench/__init__.py only defines paths, so this venv imports the package without its deps):

    bench/.venvs/tools/bin/python -m bench.chart bench/results/matrix-<UTC>.json docs/img/bench-matrix.png

One panel per scenario: median req/s of each measured server (log scale), min–max as error bars,
CovetPy in one colour, the peers in another, nginx in grey. Open-loop panels show p99 latency instead (every server
does the same req/s), gRPC panels server CPU µs per call (ghz is the ceiling of calls/s), HTTP/3 panels server CPU µs
per request (so is h3load of req/s).
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401


def main(src: str, dst: str) -> None:
    result = json.load(open(src))
    labels = {n: v["label"] for n, v in result["servers"].items()}
    scenarios = [s["name"] for s in result["scenarios"]]
    tools = {s["name"]: s["tool"] for s in result["scenarios"]}
    tool_note = {s["name"]: (f" (h2load, {s.get('streams', 1)} streams/connection)" if s["tool"] == "h2load-h2"
                             else " (wrk over TLS)" if s.get("tls")
                             else " (wsload, deliveries)" if s.get("ws") == "broadcast"
                             else " (wsload)" if s["tool"] == "wsload" else "") for s in result["scenarios"]}
    panels = []
    for sc in scenarios:
        if tools[sc] == "h2load-rate":  # fixed rate: every server does the same req/s; plot its p99 instead
            rows = [r for r in result["summary"] if r["scenario"] == sc and not r.get("excluded") and r.get("p99_ms")]
            rows.sort(key=lambda r: -r["p99_ms"])
        elif tools[sc] in ("ghz", "h3load"):  # the tool is the ceiling of calls/s, req/s: plot server CPU per call
            rows = [r for r in result["summary"] if r["scenario"] == sc and not r.get("excluded")
                    and r.get("cpu_s_per_100k")]
            rows.sort(key=lambda r: -r["cpu_s_per_100k"]["median"])
        else:
            rows = [r for r in result["summary"] if r["scenario"] == sc and not r.get("excluded") and r.get("rps")]
            rows.sort(key=lambda r: r["rps"]["median"])
        if rows:
            panels.append((sc, rows))
    if not panels:
        raise SystemExit("nothing measured")
    cols = 2
    nrows = math.ceil(len(panels) / cols)
    height = max(2.2, 0.32 * max(len(r) for _, r in panels) + 0.9)
    fig, axes = plt.subplots(nrows, cols, figsize=(13, height * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (sc, rows) in zip(axes.flat, panels):
        if tools[sc] in ("h2load-rate", "ghz", "h3load"):  # lower is better: p99 at a fixed rate, CPU µs per call
            if tools[sc] in ("ghz", "h3load"):
                values = [r["cpu_s_per_100k"]["median"] * 10 for r in rows]
                what = "call (ghz" if tools[sc] == "ghz" else "request (h3load, HTTP/3"
                title, unit = f"{sc}: server CPU µs per {what}; lower is better)", "µs"
            else:
                values = [r["p99_ms"] for r in rows]
                title, unit = f"{sc}: p99 ms at {result['options']['rate']:,} req/s (lower is better)", "ms"
            colors = ["#d62728" if r["server"].startswith("covet") else "#7f7f7f" if r["server"] == "nginx"
                      else "#1f77b4" for r in rows]
            ax.barh(range(len(rows)), values, color=colors)
            ax.set_yticks(list(range(len(rows))))
            ax.set_yticklabels([labels.get(r["server"], r["server"]) for r in rows], fontsize=8)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(title, fontsize=10)
            for i, v in enumerate(values):
                ax.text(v, i, f" {v:.1f} {unit}", va="center", fontsize=7)
            ax.grid(axis="x", which="both", alpha=0.25)
            continue
        med = [r["rps"]["median"] for r in rows]
        lo = [r["rps"]["median"] - r["rps"]["min"] for r in rows]
        hi = [r["rps"]["max"] - r["rps"]["median"] for r in rows]
        colors = ["#d62728" if r["server"].startswith("covet") else "#7f7f7f" if r["server"] == "nginx"
                  else "#1f77b4" for r in rows]
        y = range(len(rows))
        ax.barh(y, med, xerr=[lo, hi], color=colors, capsize=2, error_kw={"elinewidth": 0.8})
        ax.set_yticks(list(y))
        ax.set_yticklabels([labels.get(r["server"], r["server"]) for r in rows], fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{sc}: {'msg/s' if tools[sc] == 'wsload' else 'req/s'}{tool_note.get(sc, '')}", fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
        for i, v in enumerate(med):
            ax.text(v, i, f" {v / 1000:.1f}K", va="center", fontsize=7)
        ax.grid(axis="x", which="both", alpha=0.25)
    opts = result["options"]
    fig.suptitle("CovetPy benchmark matrix, req/s, msg/s or CPU per gRPC call / HTTP/3 request (median, min–max over "
                 f"{opts['runs']} rounds), "
                 f"server CPU {opts['server_cpus']}, wrk CPU {opts['client_cpus']} — {result['date_utc']}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(dst, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
