"""The report of a run: Markdown for bench/results/matrix-<UTC>.md and the section of docs/benchmarks.md between
its markers (``replace_section``). The PNG chart is chart.py's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from . import REPO
from .overhead import overhead_section

SECTION_START = "<!-- matrix-bench:start -->"
SECTION_END = "<!-- matrix-bench:end -->"
DOCS_HEADER = "# CovetPy benchmarks"


def replace_section(doc: str | None, section_body: str, start: str = SECTION_START, end: str = SECTION_END,
                    header: str = DOCS_HEADER) -> str:
    """Put ``section_body`` between the start/end markers of ``doc``.

    * doc None (file missing): ``header`` followed by the marked section.
    * markers present: only the text between them is replaced, the rest is kept verbatim.
    * markers absent: the marked section is appended at the end.
    """
    block = f"{start}\n{section_body.strip()}\n{end}"
    if doc is None:
        return (header.rstrip() + "\n\n" if header else "") + block + "\n"
    i = doc.find(start)
    j = doc.find(end, i + len(start)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        return doc[:i] + block + doc[j + len(end) :]
    if i >= 0 or doc.find(end) >= 0:
        raise ValueError(f"the docs file has only one of the markers {start} / {end}; fix it by hand")
    sep = "" if doc.endswith("\n\n") else ("\n" if doc.endswith("\n") else "\n\n")
    return doc + sep + block + "\n"

# The design doc's comparison table (CovetPy, FastAPI, Express.js, Actix-web), reproduced from measurements.
DESIGN_ROWS = (("covet-native", "CovetPy (native C++ handlers)"), ("covet-async", "CovetPy (Python async handlers)"),
               ("fastapi", "FastAPI"), ("express", "Express.js"), ("actix", "Actix-web"))


def fmt_int(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def fmt_rps_spread(s: Mapping[str, float] | None) -> str:
    if not s:
        return "—"
    if s.get("n", 1) > 1:
        return f"{s['median']:,.0f} ({s['min']:,.0f}–{s['max']:,.0f})"
    return f"{s['median']:,.0f}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def fmt_mb(kib: float | None) -> str:
    return "—" if not kib else f"{kib / 1024:.1f}"


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def fmt_cpu(s: Mapping[str, float] | None) -> str:
    return "—" if not s else f"{s['median']:.2f}"


def _med(s: Mapping[str, Any] | None) -> float | None:
    return s.get("median") if s else None


def scenario_table(result: Mapping[str, Any], scenario: str) -> str:
    labels = {n: v["label"] for n, v in result["servers"].items()}
    per = result["per_server"]
    rows = [r for r in result["summary"] if r["scenario"] == scenario and not r.get("excluded")]
    rows.sort(key=lambda r: -(_med(r.get("rps")) or 0))
    if not rows:
        return "_no server measured_"
    sc = next((s for s in result["scenarios"] if s["name"] == scenario), {})
    if sc.get("tool") == "wsload":
        return ws_table(result, sc, rows)
    if sc.get("tool") == "ghz":
        return grpc_table(result, sc, rows)
    if sc.get("tool") == "h3load":
        return h3_table(result, sc, rows)
    out = ["| server | req/s median (min–max) | × FastAPI | × nginx | p50 ms | p99 ms | p99.9 ms | peak RSS MB | "
           "idle RSS MB | CPU s / 100K req | errors |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        idle = _med(per.get(r["server"], {}).get("idle_rss_kib"))
        out.append(
            f"| {labels.get(r['server'], r['server'])} | {fmt_rps_spread(r.get('rps'))} | "
            f"{fmt_ratio(r.get('ratio_fastapi'))} | {fmt_ratio(r.get('ratio_nginx'))} | {fmt_ms(r.get('p50_ms'))} | "
            f"{fmt_ms(r.get('p99_ms'))} | {fmt_ms(r.get('p999_ms'))} | {fmt_mb(r.get('peak_rss_kib'))} | "
            f"{fmt_mb(idle)} | {fmt_cpu(r.get('cpu_s_per_100k'))} | {errors_cell(r)} |"
        )
    return "\n".join(out)


def errors_cell(row: Mapping[str, Any]) -> str:
    """Errors summed over the rounds, plus the runs that produced no measurement: ``0 (+3 failed runs)``."""
    failed = len(row.get("run_errors") or [])
    return str(row.get("errors", 0)) + (f" (+{failed} failed run{'s' if failed > 1 else ''})" if failed else "")


def ws_table(result: Mapping[str, Any], sc: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> str:
    """A WebSocket scenario (wsload): messages/s (echoes received, or deliveries to subscribers), message latency,
    CPU per 100K messages; errors are wsload's (connect/read/write, mismatched echoes, out-of-order or missing
    broadcasts, stalls)."""
    labels = {n: v["label"] for n, v in result["servers"].items()}
    what = "delivered msg/s" if sc.get("ws") == "broadcast" else "echoes/s"
    lat = "delivery" if sc.get("ws") == "broadcast" else "round trip"
    out = [f"| server | {what} median (min–max) | × FastAPI | {lat} p50 ms | p99 ms | p99.9 ms | peak RSS MB | "
           "CPU s / 100K msg | errors | tool |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(
            f"| {labels.get(r['server'], r['server'])} | {fmt_rps_spread(r.get('rps'))} | "
            f"{fmt_ratio(r.get('ratio_fastapi'))} | {fmt_ms(r.get('p50_ms'))} | {fmt_ms(r.get('p99_ms'))} | "
            f"{fmt_ms(r.get('p999_ms'))} | {fmt_mb(r.get('peak_rss_kib'))} | {fmt_cpu(r.get('cpu_s_per_100k'))} | "
            f"{errors_cell(r)} | wsload |"
        )
    return "\n".join(out)


# gRPC: servers whose CPU per call the others are compared with (issue 20: CovetPy's Python path against grpcio,
# its C++ API against the C++ gRPC server)
GRPC_REFERENCES = (("grpcio", "grpcio"), ("grpc-cpp", "C++ gRPC"))


def cpu_us_per_call(row: Mapping[str, Any] | None) -> float | None:
    """The median server CPU per call in µs, from the matrix's CPU s per 100,000 (successful) calls."""
    per_100k = _med((row or {}).get("cpu_s_per_100k"))
    return None if per_100k is None else per_100k * 10


def grpc_table(result: Mapping[str, Any], sc: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> str:
    """A gRPC scenario (ghz), the least CPU per call first: calls/s, call latency, server CPU per call (the figure to
    compare: one ghz core is the ceiling of calls/s) and how many times less of it than grpcio and C++ gRPC use in
    the same run."""
    labels = {n: v["label"] for n, v in result["servers"].items()}
    refs = [(name, label, cpu_us_per_call(find(result, name, sc["name"]))) for name, label in GRPC_REFERENCES]
    out = ["| server | calls/s median (min–max) | p50 ms | p99 ms | peak RSS MB | CPU µs / call | "
           + "".join(f"× less CPU than {label} | " for _, label, _ in refs) + "errors | tool |",
           "|---|---:|---:|---:|---:|---:|" + "---:|" * len(refs) + "---:|---|"]
    for r in sorted(rows, key=lambda r: cpu_us_per_call(r) or float("inf")):
        ours = cpu_us_per_call(r)
        ratios = "".join(f"{fmt_ratio(ref / ours if ref and ours else None)} | " for _, _, ref in refs)
        out.append(
            f"| {labels.get(r['server'], r['server'])} | {fmt_rps_spread(r.get('rps'))} | {fmt_ms(r.get('p50_ms'))} | "
            f"{fmt_ms(r.get('p99_ms'))} | {fmt_mb(r.get('peak_rss_kib'))} | "
            f"{'—' if ours is None else f'{ours:,.1f}'} | {ratios}{errors_cell(r)} | ghz |"
        )
    return "\n".join(out)


# HTTP/3: the peers whose CPU per request ours is compared with (issue: ahead of both per core), and the HTTP/2
# scenario whose CPU per request the same server's h3-plaintext is set against (target: h3 at most 2x h2)
H3_REFERENCES = (("caddy", "Caddy"), ("hypercorn-h3", "Hypercorn"))
H3_VS_H2 = {"h3-plaintext": "h2-plaintext"}


def h3_load_tool(opts: Mapping[str, Any]) -> str:
    """The HTTP/3 scenarios' load generator (--h3-load): h3bench, or h3load (quic-go; every run before h3bench)."""
    return opts.get("h3_load") or "h3load"


H3_LOAD_HOW = {
    "h3bench": "h3bench (C++ on ngtcp2 + nghttp3, TLS 1.3 verified against the run's CA)",
    "h3load": "h3load (quic-go HTTP/3, TLS 1.3 verified against the run's CA)",
}


def h3_table(result: Mapping[str, Any], sc: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> str:
    """An HTTP/3 scenario (h3bench or h3load), the least CPU per request first: req/s (and MB/s of response bodies for
    the download), latency, server CPU per 100K requests (the figure to compare), how many times less of it than
    Caddy and Hypercorn use in the same run, and for h3-plaintext the ratio of the server's own HTTP/3 CPU per request
    to its HTTP/2 one (h2-plaintext, same run)."""
    tool = h3_load_tool(result.get("options") or {})
    labels = {n: v["label"] for n, v in result["servers"].items()}
    refs = [(name, label, _med((find(result, name, sc["name"]) or {}).get("cpu_s_per_100k")))
            for name, label in H3_REFERENCES]
    h2 = H3_VS_H2.get(sc["name"])
    download = (sc.get("body_size") or 0) > 0
    head = "| server | req/s median (min–max) | " + ("MB/s | " if download else "") + (
        "p50 ms | p99 ms | p99.9 ms | peak RSS MB | CPU s / 100K req | "
        + "".join(f"× less CPU than {label} | " for _, label, _ in refs)
        + (f"CPU ÷ own {h2} | " if h2 else "") + "UDP drops | errors | tool |")
    out = [head, "|---|---:|" + ("---:|" if download else "") + "---:|---:|---:|---:|---:|" + "---:|" * len(refs)
           + ("---:|" if h2 else "") + "---:|---:|---|"]
    for r in sorted(rows, key=lambda r: _med(r.get("cpu_s_per_100k")) or float("inf")):
        ours = _med(r.get("cpu_s_per_100k"))
        ratios = "".join(f"{fmt_ratio(ref / ours if ref and ours else None)} | " for _, _, ref in refs)
        mbps = ""
        if download:
            bps = _med(r.get("bytes_per_sec"))
            mbps = f"{'—' if bps is None else f'{bps / 1e6:,.0f}'} | "
        vs_h2 = ""
        if h2:
            theirs = _med((find(result, r["server"], h2) or {}).get("cpu_s_per_100k"))
            vs_h2 = f"{fmt_ratio(ours / theirs if ours and theirs else None)} | "
        out.append(
            f"| {labels.get(r['server'], r['server'])} | {fmt_rps_spread(r.get('rps'))} | {mbps}"
            f"{fmt_ms(r.get('p50_ms'))} | {fmt_ms(r.get('p99_ms'))} | {fmt_ms(r.get('p999_ms'))} | "
            f"{fmt_mb(r.get('peak_rss_kib'))} | {fmt_cpu(r.get('cpu_s_per_100k'))} | {ratios}{vs_h2}"
            f"{fmt_int(r.get('udp_drops'))} | {errors_cell(r)} | {tool} |"
        )
    return "\n".join(out)


def find(result: Mapping[str, Any], server: str, scenario: str) -> Mapping[str, Any] | None:
    for r in result["summary"]:
        if r["server"] == server and r["scenario"] == scenario and not r.get("excluded"):
            return r
    return None


def cpu_efficiency(row: Mapping[str, Any] | None, nginx_row: Mapping[str, Any] | None) -> float | None:
    """nginx's CPU per request / this server's, in percent (100% = as frugal as nginx `return 200`)."""
    ours = _med((row or {}).get("cpu_s_per_100k"))
    ref = _med((nginx_row or {}).get("cpu_s_per_100k"))
    if not ours or not ref:
        return None
    return 100.0 * ref / ours


def wall_time_parts(result: Mapping[str, Any]) -> str:
    """" (installs and checks 4.9 min; 12 s waiting for a quiet machine)" from what the run recorded."""
    parts = []
    if result.get("setup_seconds") is not None:
        parts.append(f"installs and checks {result['setup_seconds'] / 60:.1f} min")
    if result.get("quiet_wait_seconds"):
        parts.append(f"{result['quiet_wait_seconds']:.0f} s waiting for a quiet machine")
    return f" (of which {'; '.join(parts)})" if parts else ""


def design_table(result: Mapping[str, Any]) -> str:
    nginx = find(result, "nginx", "plaintext")
    out = ["| framework | RPS (plaintext, c64) | P99 latency (open loop) | memory (peak RSS, plaintext) | "
           "CPU efficiency (vs nginx) | design doc claimed |",
           "|---|---:|---:|---:|---:|---|"]
    claimed = {"covet-native": "1.2M / 0.8 ms / 45 MB / 92%", "covet-async": "1.2M / 0.8 ms / 45 MB / 92%",
               "fastapi": "25K / 15 ms / 380 MB / 65%", "express": "18K / 25 ms / 290 MB / 58%",
               "actix": "980K / 1.2 ms / 95 MB / 88%"}
    for name, label in DESIGN_ROWS:
        if name not in result["servers"]:
            continue
        pt = find(result, name, "plaintext")
        ol = find(result, name, "open-loop")
        eff = cpu_efficiency(pt, nginx)
        out.append(
            f"| {label} | {fmt_int(_med((pt or {}).get('rps')))} | "
            f"{fmt_ms((ol or {}).get('p99_ms'))}{' ms' if ol and ol.get('p99_ms') is not None else ''} | "
            f"{fmt_mb((pt or {}).get('peak_rss_kib'))}{' MB' if pt and pt.get('peak_rss_kib') else ''} | "
            f"{'—' if eff is None else f'{eff:.0f}%'} | {claimed[name]} |"
        )
    return "\n".join(out)


def h3_how(tool: str) -> str:
    """How the HTTP/3 scenarios were measured, for the notes under the tables."""
    if tool == "h3bench":
        load = ("measured by **h3bench** (`bench/tools/h3bench`, one C++ thread on ngtcp2 + nghttp3 + GnuTLS, on the "
                "client CPU; it keeps a fast server's core busy, as h2load does over HTTP/2)")
        ceiling = ("Compare *CPU s / 100K req*, and the ratios to Caddy and Hypercorn (how many times less CPU per "
                   "request than theirs) and to the same server's own *h2-plaintext* (HTTP/3 ÷ HTTP/2 CPU per "
                   "request, same run, both loads driving the server near its capacity).")
    else:
        load = "measured by **h3load** (`bench/tools/h3load`, Go + quic-go's http3, on the client CPU)"
        ceiling = ("One quic-go core is far slower per request than the servers under test, so req/s is mostly "
                   "h3load's ceiling: compare *CPU s / 100K req*, and the ratios to Caddy and Hypercorn (how many "
                   "times less CPU per request than theirs) and to the same server's own *h2-plaintext* (HTTP/3 ÷ "
                   "HTTP/2 CPU per request, same run; h2load drives a fast server near its capacity while h3load's "
                   "core caps HTTP/3 near 13K req/s, so a fast server's h3 run leaves it mostly idle and its "
                   "per-request figure carries more per-wakeup cost than the h2 one: the ratio is an upper bound).")
    return (f" **HTTP/3:** {load} on an instance of each server of its own, started with the run's certificate and "
            "HTTP/3 on (CovetPy: `--http3`; Caddy: `protocols h1 h2 h3`; Hypercorn: `--quic-bind`, aioquic). The load "
            "makes its QUIC connections (each on a UDP socket of its own; TLS 1.3 verified against the run's CA, ALPN "
            "h3), warms up, then times the run; server CPU and peak RSS are sampled exactly over the timed window, so "
            "handshakes are not charged. Each connection keeps its streams busy (closed loop); a response counts when "
            "it is 2xx, came over HTTP/3 and its body is exactly the expected one (*h3-download*: the 1 MiB request "
            "body echoed back byte for byte: `POST /echo`, since CovetPy's native example has no 1 MiB GET route, so "
            f"every request moves 1 MiB each way). {ceiling} *UDP drops*: datagrams the server's UDP sockets dropped "
            "over the timed windows (`drops` of its port in /proc/net/udp: a full receive buffer, the server reading "
            "too slowly or with too small a buffer; the machine's `RcvbufErrors` are in the JSON): on loopback the "
            "only losses QUIC sees, each one a retransmission and a smaller congestion window. The gate first runs "
            "`h3load -check` (quic-go, an independent implementation) on one QUIC connection: two requests one after "
            "the other, two at once, each over HTTP/3 with the exact body and content type.")


def scenario_how(s: Mapping[str, Any], opts: Mapping[str, Any]) -> str:
    """Which tool measured a scenario, and how (for its heading)."""
    c = s["connections"]
    if s["tool"] == "h3load":
        how = (f"{H3_LOAD_HOW[h3_load_tool(opts)]}, {c} QUIC connections × "
               f"{s.get('streams', 1)} concurrent streams")
        if s.get("body_size"):
            how += f", each request a {s['body_size']:,}-byte body that comes back whole"
        return how
    if s["tool"] == "ghz":
        replies = f", {s['messages']} replies per call" if s.get("messages", 1) > 1 else ""
        return f"ghz, {s.get('concurrency')} calls in flight over {c} HTTP/2 connections (h2c){replies}"
    if s["tool"] == "wsload":
        if s.get("ws") == "broadcast":
            w = s.get("window", 1)
            return (f"wsload, {s.get('subscribers')} subscribers + 1 publisher in one room, {s.get('size')}-byte text; "
                    + ("the publisher sends message k+1 only once every subscriber has message k" if w == 1 else
                       f"at most {w} messages out: message k+{w} only once every subscriber has message k"))
        return (f"wsload, {c} connections, {s.get('size')}-byte text, {s.get('inflight', 1)} message(s) in flight "
                "per connection")
    if s["tool"] == "wrk":
        how = f"wrk{' over TLS (HTTPS, HTTP/1.1)' if s.get('tls') else ''}, {c:,} connections"
        return how + (f", {s['pipeline']} requests per write" if s["pipeline"] > 1 else "")
    if s["tool"] == "h2load-rate":
        if s.get("stagger_ms"):
            return (f"h2load --h1, {c} connections started {s['stagger_ms']} ms apart, fixed {opts['rate']:,} req/s: "
                    "arrivals spread evenly")
        return f"h2load --h1, {c} connections, fixed {opts['rate']:,} req/s"
    over = "over TLS, ALPN h2" if s.get("tls") else "h2c, prior knowledge"
    return f"h2load HTTP/2 ({over}), {c} connections × {s.get('streams', 1)} concurrent streams"


def tls_section(result: Mapping[str, Any]) -> list[str]:
    """What the TLS scenarios ran with: certificate, protocol and cipher as negotiated, per server."""
    t = result.get("tls")
    if not t:
        return []
    if t.get("error"):
        return ["### TLS and HTTP/2 setup", "", f"No certificate could be made: {t['error']}", ""]
    labels = {n: v["label"] for n, v in result["servers"].items()}
    lines = ["### TLS and HTTP/2 setup", "",
             f"A throw-away CA and server certificate made once per run ({t.get('openssl', 'openssl')} CLI): "
             f"server key **{t['key_type']}**, {t.get('certificate', '')}. Every TLS server gets the same "
             "certificate; the gate verifies it against the CA (Python `ssl` and `curl --cacert`). *https-plaintext* "
             "is timed by **wrk** (HTTP/1.1 over TLS; wrk prints no cipher), *h2-plaintext* and *h2c-plaintext* by "
             "**h2load** (HTTP/2; `-m` concurrent streams per connection), the *h3-* scenarios by "
             f"**{h3_load_tool(result.get('options') or {})}** (HTTP/3: TLS 1.3 inside QUIC; the gate (h3load) "
             "and the load report the handshake's cipher and ALPN h3). Protocol and cipher as negotiated: the "
             "gate's own handshake (Python `ssl` with OpenSSL's default client cipher list, like wrk's, offering ALPN "
             "`http/1.1` for HTTPS and `h2,http/1.1` for h2) and h2load's report (the cipher its timed h2 "
             "connections used; h2load prefers AES-128-GCM).", "",
             "| server | scenario | TLS version | cipher (gate) | ALPN | cipher, key exchange (h2load / h3load) |",
             "|---|---|---|---|---|---|"]
    h2l = t.get("h2load") or {}
    for key, hs in sorted((t.get("handshakes") or {}).items()):
        server, _, scenario = key.partition("/")
        if hs.get("error"):
            lines.append(f"| {labels.get(server, server)} | {scenario} | handshake failed: "
                         f"{hs['error'].replace('|', '/')[:120]} | | | |")
            continue
        h = h2l.get(key) or {}
        h2_txt = ", ".join(v for v in (h.get("cipher"), h.get("key_exchange")) if v) or "—"
        lines.append(f"| {labels.get(server, server)} | {scenario} | {hs.get('version') or '—'} | "
                     f"{hs.get('cipher') or '—'} | {hs.get('alpn') or 'none'} | {h2_txt} |")
    return lines + [""]


def render_markdown(result: Mapping[str, Any], json_path: str, chart: Path | None, docs: Path | None) -> str:
    m, opts, tools = result["machine"], result["options"], result["tools"]
    sc_titles = {s["name"]: s for s in result["scenarios"]}
    lines = [
        "## Matrix: CovetPy vs peers, servers × scenarios (`python -m bench`)",
        "",
        f"Run {result['date_utc']} at `{result.get('git')}`, wall time {result['wall_seconds'] / 60:.1f} min"
        + wall_time_parts(result) + f"; raw data: `{json_path}`.",
        "",
        f"**Machine:** {m['nproc']} CPUs ({m['cpu_model']}), {m.get('mem_gib')} GiB, Linux {m['kernel']}; "
        f"a shared VM whose speed drifts, so compare within this run only. **Tools:** {tools['wrk']}; "
        f"{tools['h2load']}; matplotlib {tools['matplotlib']}; Python {m['python']}"
        + "".join(f"; {tools[k]}" for k in ("openssl", "curl", "wsload", "ghz", "h3load", "h3bench")
                  if tools.get(k)) + ".",
        "",
        f"**Command:** `{' '.join(result['argv'])}` — server on CPU {opts['server_cpus']}, load generator on "
        f"CPU {opts['client_cpus']} (`taskset`), {opts['workers']} worker per server; per pair a "
        f"{opts['warmup']} s warm-up then a {opts['duration']} s timed run; {opts['runs']} interleaved round(s) "
        "(every server once per round, started fresh each round); median of the rounds with min–max"
        + (f"; the TLS, HTTP/2 and HTTP/3 scenarios run in the first {opts['tls_runs']} round(s) only, TLS ones on "
           "a second instance of the server started with the run's certificate right after its plain one"
           + (" (HTTP/3 ones on a third, with HTTP/3 on)" if any(s["tool"] == "h3load" for s in result["scenarios"])
              else "")
           if opts.get("tls_runs") and any(s.get("tls") or s["tool"] == "h2load-h2" for s in result["scenarios"])
           else "")
        + (f"; the WebSocket scenarios run in the first {opts['ws_runs']} round(s) only, on an instance of their own"
           if opts.get("ws_runs") and any(s["tool"] == "wsload" for s in result["scenarios"]) else "") + ".",
        "",
        "How to read it: *req/s* is wrk's (closed loop, one wrk thread: ~70–80K req/s is wrk's own ceiling on "
        "this machine, so unpipelined figures of fast servers measure wrk); *p50/p99/p99.9* are wrk's latency "
        "histogram (not shown for pipelining, where wrk times whole batches) except in **open-loop**, where "
        f"h2load sends {opts['rate']:,} req/s in total at a fixed rate over 50 HTTP/1.1 connections "
        "(`h2load --h1 --rps`) and the percentiles come from its per-request log, so a stalled server is not "
        "hidden by the client waiting for it (coordinated omission); *CPU s / 100K req* is the server process "
        "tree's utime+stime (`/proc`) per 100,000 responses; *peak RSS* is sampled every 0.1 s during the timed "
        "run (whole process tree), *idle RSS* 0.5 s after start before any load (one server process serves all "
        "scenarios of a round in the order listed here, so the peak RSS of a later scenario includes what earlier "
        "ones, e.g. 10,000 connections, left allocated); *errors* are wrk's socket "
        "errors + non-2xx (h2load: failed + timed out), summed over the rounds. Ratios are median req/s over "
        "FastAPI's and nginx's in the same scenario and run."
        + (" **TLS / HTTP/2:** *https-plaintext* is wrk over TLS (HTTP/1.1); *h2-plaintext* (TLS, ALPN h2) and "
           "*h2c-plaintext* (cleartext, prior knowledge) are h2load with many concurrent streams per connection: req/s "
           "from its summary, p50/p99/p99.9 from its per-request log (closed loop: with that many requests in flight "
           "the latency is mostly queueing); multiplexed requests cost the client (and the server) far less per "
           "request than wrk's one-at-a-time HTTP/1.1, so compare these req/s between servers, not with the HTTP/1.1 "
           "rows. See *TLS and HTTP/2 setup* below."
           if any(s.get("tls") or s["tool"] == "h2load-h2" for s in result["scenarios"]) else "")
        + (" **WebSocket:** measured by **wsload** (`bench/tools/wsload`, Go + gorilla/websocket, on the client CPU), "
           "which connects, warms up for the warm-up time and then times the run; server CPU and peak RSS are sampled "
           "exactly over the timed window. *ws-echo*: each connection sends a text message and waits for its echo "
           "(closed loop); msg/s = echoes received, latency = round trip, every echo compared byte for byte. "
           "*ws-broadcast*: subscribers join one room, then a publisher (in the room too) sends messages carrying "
           "a sequence number and a send timestamp as fast as they are delivered, with a fixed number out at a time "
           "(see the heading); msg/s = deliveries to subscribers, latency = publish → delivery (queueing behind "
           "the messages out before it included); a missing, duplicated or out-of-order delivery counts as an "
           "error. One wsload core echoes ~100K msg/s on this machine: like wrk's ceiling, fast servers' echoes/s "
           "measure wsload there; compare CPU s / 100K msg. The gate first runs `wsload -check` (echoes of 1 B…70 KB "
           "UTF-8 text identical; 200 broadcasts reaching 3 subscribers complete and in order). Broadcast in the "
           "Python peers is a loop over the room's connections; CovetPy publishes natively."
           if any(s["tool"] == "wsload" for s in result["scenarios"]) else "")
        + (" **gRPC:** the Greeter of `examples/native/grpc_greeter/greeter.proto` on an instance of its own "
           "(CovetPy's Python servicer on `covet run`, CovetPy's C++ `examples/native/grpc_greeter`, and the gRPC "
           "peers grpcio, grpc-go and C++ gRPC, which serve nothing else), timed by **ghz** over h2c: *calls/s* is "
           "ghz's (all calls it finished, per second), *p50/p99* its latency percentiles (closed loop), *CPU µs / "
           "call* the server tree's CPU over the timed run divided by the calls that ended OK (as CPU per request "
           "for HTTP); one ghz core is the ceiling of calls/s here, so compare the CPU column. ghz cancels the calls "
           "still in flight when its time is up (at most the calls in flight, per run): they end as Canceled or "
           "Unavailable and count as errors. The gate first makes each call twice with a grpcio client "
           "(`bench/peers/grpc/check.py`): the greeting for its name, and exactly the stream's number of them."
           if any(s["tool"] == "ghz" for s in result["scenarios"]) else "")
        + (h3_how(h3_load_tool(opts))
           if any(s["tool"] == "h3load" for s in result["scenarios"]) else ""),
        "",
    ]
    if chart is not None and docs is not None:
        rel = os.path.relpath(chart, docs.parent)
        lines += [f"![req/s per scenario and server]({rel})", ""]
    for name in [s["name"] for s in result["scenarios"]]:
        s = sc_titles[name]
        how = scenario_how(s, opts)
        lines += [f"### {name}: {s['title']} — `{s['method']} {s['path']}` ({how})", "",
                  scenario_table(result, name), ""]
    lines += ["### Cold start and idle memory", "",
              "Launch (`taskset … <command>`) → first `200 OK` on GET /plaintext, polled every 2 ms; idle RSS of the "
              "process tree 0.5 s after the first 200 (before any load), over all fresh starts of the run."
              + (" A gRPC peer has no route to time: its row is the idle RSS of its gRPC instance, 0.5 s after it "
                 "answered the HTTP/2 preface." if any(s["tool"] == "ghz" for s in result["scenarios"]) else ""), "",
              "| server | cold start ms median (min–max) | idle RSS MB median |", "|---|---:|---:|"]
    labels = {n: v["label"] for n, v in result["servers"].items()}
    for n, ps in result["per_server"].items():
        cs = ps.get("cold_start_ms")
        if not cs and not ps.get("idle_rss_kib"):
            continue
        cs_txt = "—" if not cs else (f"{cs['median']:.0f} ({cs['min']:.0f}–{cs['max']:.0f})" if cs["n"] > 1
                                     else f"{cs['median']:.0f}")
        lines.append(f"| {labels[n]} | {cs_txt} | {fmt_mb(_med(ps.get('idle_rss_kib')))} |")
    lines += ["", "### The design doc's comparison table, measured", "",
              "The design doc lists claimed figures for CovetPy, FastAPI, Express.js and Actix-web; these are the "
              "measured ones from this run (one core each). RPS: plaintext median; P99: the open-loop run; memory: "
              "peak RSS during plaintext; CPU efficiency: nginx `return 200`'s CPU per request divided by the "
              "server's (100% = as frugal as nginx).", "", design_table(result), ""]
    lines += tls_section(result)
    excl = [(r["server"], r["scenario"], r["excluded"]) for r in result["summary"] if r.get("excluded")]
    server_excl = {n: v["excluded"] for n, v in result["servers"].items() if v.get("excluded")}
    if excl:
        lines += ["### Exclusions", "", "| server | scenario | reason |", "|---|---|---|"]
        for n, reason in server_excl.items():
            lines.append(f"| {labels[n]} | all | {reason.replace('|', '/')} |")
        grouped: dict[tuple[str, str], list[str]] = {}  # one row per server and reason
        for n, sc, reason in excl:
            if n not in server_excl:
                grouped.setdefault((n, reason), []).append(sc)
        for (n, reason), scs in grouped.items():
            lines.append(f"| {labels[n]} | {', '.join(scs)} | {reason.replace('|', '/')} |")
        lines.append("")
    failed = [r for r in result.get("runs", []) if r.get("error")]
    if failed:
        lines += ["### Failed runs", "", "Runs that passed the gate but produced no measurement (counted as "
                  "`+N failed runs` in the tables; the server is restarted for its next scenario).", "",
                  "| server | scenario | round | what happened |", "|---|---|---:|---|"]
        for r in failed:
            msg = " ".join(r["error"].split())[:260].replace("|", "/")
            lines.append(f"| {labels.get(r['server'], r['server'])} | {r['scenario']} | {r.get('round', '')} | {msg} |")
        lines.append("")
    lines += ["### Servers: versions and configuration", "",
              "Every server answers the same payloads with its framework's default headers; access logs are off. "
              f"CovetPy's Python interpreter: `{result['covet_python']['interpreter'].replace(str(REPO) + '/', '')}` "
              f"({result['covet_python']['choice'] or 'n/a'}).", "",
              "| server | versions | configuration | command |", "|---|---|---|---|"]
    for n, v in result["servers"].items():
        ver = ", ".join(f"{k} {val}" for k, val in (v.get("versions") or {}).items()
                        if k not in ("choice", "interpreter", "error")) or "—"
        cmd = f"`{(v.get('command') or '—').replace('|', '/')}`"
        if v.get("tls_command"):
            cmd += f"; TLS: `{v['tls_command'].replace('|', '/')}`"
        if v.get("ws_command") and v["ws_command"] != v.get("command"):
            cmd += f"; WebSocket: `{v['ws_command'].replace('|', '/')}`"
        if v.get("h3_command"):
            cmd += f"; HTTP/3: `{v['h3_command'].replace('|', '/')}`"
        if v.get("grpc_command"):
            cmd = (f"{cmd}; gRPC: " if v.get("command") else "") + f"`{v['grpc_command'].replace('|', '/')}`"
        lines.append(f"| {v['label']} | {ver.replace('|', '/')} | {v['config'].replace('|', '/')} | {cmd} |")
    section = overhead_section(result)
    if section:
        lines += ["", section]
    lines += ["", "Rerun: `make bench` (or `python3 -m bench`; `--quick` for a 5-minute pass; `--help` for servers, "
              "scenarios, durations, CPUs). Peers are installed by the suite from `bench/peers/*` with pinned "
              "versions."]
    return "\n".join(lines)
