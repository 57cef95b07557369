"""Pure helpers of the matrix suite (unit-tested in bench/tests/test_matrix_suite.py; no servers, no load).

Reuses the existing harnesses instead of copying them: bench/python/run.py is loaded by path, and it loads
bench/native/run.py (wrk parsing, /proc CPU and RSS of a process tree, stop_process, machine description,
pipelined-response counting, docs section replacement).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


python_run = _load("covet_bench_python_run", BENCH / "python" / "run.py")
native_run = python_run.native_run  # the copy bench/python/run.py loaded (one module object, not two)

parse_wrk_output = native_run.parse_wrk_output
summarize = native_run.summarize
ratio = native_run.ratio
replace_section = native_run.replace_section
count_pipelined_responses = native_run.count_pipelined_responses

PLAINTEXT_BODY = b"Hello, World!"
JSON_BODY = {"message": "Hello, World!"}
USERS_BODY = {"id": 123, "q": "x"}
ITEM_RESPONSE = {"name": "widget", "tag_count": 3}


def item_payload(size: int = 1024) -> bytes:
    """The POST body: a JSON object for the `Item` model, padded with `description` to exactly ``size`` bytes."""
    base = {"name": "widget", "price": 9.99, "tags": ["red", "green", "blue"], "description": ""}
    empty = len(json.dumps(base, separators=(",", ":")).encode())
    base["description"] = "x" * max(0, size - empty)
    out = json.dumps(base, separators=(",", ":")).encode()
    assert len(out) == max(size, empty)
    return out


def invalid_item_payload() -> bytes:
    """A body the model must reject (no `tags`, `price` not a number): the gate wants a 4xx for it."""
    return json.dumps({"name": "widget", "price": "cheap", "description": "x"}).encode()


def body_ok(expect: str, body: bytes) -> bool:
    """Does ``body`` equal the expected payload ``expect`` (plaintext | json | users | item)?"""
    if expect == "plaintext":
        return body == PLAINTEXT_BODY
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return parsed == {"json": JSON_BODY, "users": USERS_BODY, "item": ITEM_RESPONSE}.get(expect)


def content_type_ok(expect: str, ctype: str | None) -> bool:
    want = "text/plain" if expect == "plaintext" else "application/json"
    return (ctype or "").split(";")[0].strip().lower() == want


# --------------------------------------------------------------------------------------------------
# Load-generator output
# --------------------------------------------------------------------------------------------------

_RE_BENCH_LAT = re.compile(r"^BENCH_LATENCY_US\s+(\S+)\s+(\d+)\s*$", re.M)


def parse_wrk_matrix(text: str) -> dict[str, Any]:
    """wrk's report (via bench/native's parser) plus the ``BENCH_LATENCY_US`` lines of matrix.lua.

    ``latency_ms`` then carries "50", "90", "99", "99.9", "99.99" and "max" from the Lua histogram (µs
    resolution), overriding wrk's coarser printed figures.
    """
    out = parse_wrk_output(text)
    extra = {p: int(us) / 1e3 for p, us in _RE_BENCH_LAT.findall(text)}
    if extra:
        out["latency_ms"] = {**out.get("latency_ms", {}), **extra}
    out["errors"] = out["socket_errors"]["total"] + out["non_2xx"]
    return out


_RE_H2_REQ = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout"
)
_RE_H2_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_RE_H2_FINISHED = re.compile(r"finished in ([0-9.]+)(us|ms|s), ([0-9.]+) req/s")
_RE_H2_REQ_TIME = re.compile(
    r"^time for request:\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)", re.M)
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_RE_H2_TLS = {
    "version": re.compile(r"^TLS Protocol: (.+)$", re.M),
    "cipher": re.compile(r"^Cipher: (.+)$", re.M),
    "key_exchange": re.compile(r"^Server Temp Key: (.+)$", re.M),
    "alpn": re.compile(r"^Application protocol: (.+)$", re.M),
}


def parse_h2load_output(text: str) -> dict[str, Any]:
    """h2load's summary: req/s, request counts, status classes. Raises ValueError when it is missing."""
    m_req = _RE_H2_REQ.search(text)
    m_fin = _RE_H2_FINISHED.search(text)
    if not m_req or not m_fin:
        raise ValueError("h2load output has no 'finished in' / 'requests:' summary")
    total, started, done, ok, failed, errored, timeout = map(int, m_req.groups())
    m_st = _RE_H2_STATUS.search(text)
    s2, s3, s4, s5 = map(int, m_st.groups()) if m_st else (0, 0, 0, 0)
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m_fin.group(2)]
    tls = {k: m.group(1).strip() for k, rx in _RE_H2_TLS.items() if (m := rx.search(text))}
    m_rt = _RE_H2_REQ_TIME.search(text)
    req_time = None
    if m_rt:
        g = m_rt.groups()
        req_time = {k: round(float(g[2 * i]) * _UNIT_MS[g[2 * i + 1]], 4)
                    for i, k in enumerate(("min", "max", "mean", "sd"))}
    alpn = tls.pop("alpn", None)
    return {
        "protocol": alpn,  # h2load's "Application protocol:" (h2, h2c or http/1.1), None when it printed none
        "tls": tls or None,  # TLS version, cipher, key exchange as h2load negotiated them (TLS runs only)
        "request_time_ms": req_time,  # h2load's "time for request" min/max/mean/sd (percentiles need --log-file)
        "requests_per_sec": float(m_fin.group(3)),
        "duration_s": float(m_fin.group(1)) * unit,
        "requests": s2 + s3,
        "requests_total": total,
        "requests_done": done,
        "succeeded": ok,
        "failed": failed,
        "errored": errored,
        "timeout": timeout,
        "status": {"2xx": s2, "3xx": s3, "4xx": s4, "5xx": s5},
        "non_2xx": s3 + s4 + s5,
        # h2load's "failed" already includes the errored requests and non-2xx/3xx statuses
        "errors": max(failed, errored + s4 + s5) + timeout,
    }


def percentile(sorted_vals: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (the HdrHistogram/wrk convention), None if empty."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p * len(sorted_vals) / 100.0 - 1e-9))  # the epsilon: 99.9 * 1000 / 100 is 999.0000000000001
    return sorted_vals[min(k, len(sorted_vals)) - 1]


def parse_h2load_log(text: str, since_us: int | None = None) -> dict[str, Any]:
    """h2load ``--log-file``: one request a line, ``start_us<TAB>status<TAB>duration_us``.

    Returns latency percentiles in ms (50/90/99/99.9/max) over 2xx responses that *started* at or after
    ``since_us`` (to drop a warm-up), plus counts. Non-2xx lines (h2load writes status -1 for a failed
    request) count as errors.
    """
    lat: list[float] = []
    errors = 0
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        try:
            start, status, dur = int(parts[0]), int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if since_us is not None and start < since_us:
            continue
        if 200 <= status < 300:
            lat.append(dur / 1e3)
        else:
            errors += 1
    lat.sort()
    pct = {p: percentile(lat, float(p)) for p in ("50", "90", "99", "99.9")}
    pct["max"] = lat[-1] if lat else None
    return {"latency_ms": pct, "requests": len(lat), "errors": errors}


# --------------------------------------------------------------------------------------------------
# Summaries and ratios
# --------------------------------------------------------------------------------------------------


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


def parse_cpu_list(spec: str) -> list[int]:
    """taskset-style CPU list: ``"0"``, ``"0-7"``, ``"0,2,4-5"`` -> sorted unique ints."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
            if hi < lo:
                raise ValueError(f"bad CPU range {part!r}")
            out.update(range(lo, hi + 1))
        else:
            out.add(int(part))
    if not out:
        raise ValueError(f"empty CPU list {spec!r}")
    return sorted(out)


def estimate_seconds(
    n_servers: int, pair_count: int, runs: int, warmup: float, duration: float, cold_starts: int,
    start_s: float = 2.0, per_run_overhead_s: float = 0.3, tls_servers: int = 0, tls_pairs: int = 0,
    tls_runs: int | None = None, ws_servers: int = 0, ws_pairs: int = 0, ws_runs: int | None = None,
    ws_start_s: float = 1.0, ws_overhead_s: float = 0.3,
) -> float:
    """Rough wall time of a matrix: each round starts every server once and runs each of its gated
    scenarios (warm-up + timed run + overhead); plus the cold-start launches.

    ``pair_count`` counts every pair, TLS and WebSocket ones included; ``tls_pairs`` of them (on ``tls_servers``
    servers, each started a second time with its certificate) run only in the first ``tls_runs`` rounds, and
    ``ws_pairs`` (on ``ws_servers`` servers, each started once more for them: ``ws_start_s``, no idle-RSS pause)
    in the first ``ws_runs`` rounds, with ``ws_overhead_s`` more per run (wsload's gate, connecting, draining;
    a --quick run measured ~0.3 s per WebSocket pair over warm-up + duration, instance starts included)."""
    per_pair = warmup + duration + per_run_overhead_s
    tls_runs = runs if tls_runs is None else min(tls_runs, runs)
    ws_runs = runs if ws_runs is None else min(ws_runs, runs)
    per_round = n_servers * start_s + (pair_count - tls_pairs - ws_pairs) * per_pair
    per_tls_round = tls_servers * start_s + tls_pairs * per_pair
    per_ws_round = ws_servers * ws_start_s + ws_pairs * (per_pair + ws_overhead_s)
    return runs * per_round + tls_runs * per_tls_round + ws_runs * per_ws_round + n_servers * cold_starts * 1.5


# --------------------------------------------------------------------------------------------------
# The TLS/HTTP/2 gate: curl's per-transfer write-out
# --------------------------------------------------------------------------------------------------

CURL_MARK = "@@BENCH"
CURL_WRITE_OUT = "\n" + CURL_MARK + " %{http_code} %{http_version} %{num_connects} %{content_type}\n"


def check_curl_transfers(text: str, expect: str, want_version: str) -> tuple[bool, str]:
    """Judge ``curl -w CURL_WRITE_OUT URL URL`` output: every transfer 2xx with the expected body and content
    type over HTTP version ``want_version`` ("2" or "1.1", as curl's ``%{http_version}`` prints it), and the
    second transfer reusing the first one's connection (``num_connects`` 0). (ok, reason when not)."""
    chunks = text.split("\n" + CURL_MARK + " ")
    if len(chunks) < 2:
        return False, f"curl printed no transfer summary: {text[-120:]!r}"
    transfers = []
    body = chunks[0]
    for chunk in chunks[1:]:
        line, _, rest = chunk.partition("\n")
        fields = line.split(" ", 3)
        if len(fields) < 3:
            return False, f"unreadable curl summary {line!r}"
        transfers.append((body, fields))
        body = rest
    for i, (body, fields) in enumerate(transfers, 1):
        code, version, connects = fields[0], fields[1], fields[2]
        ctype = fields[3] if len(fields) > 3 else ""
        if version != want_version:
            name = {"2": "HTTP/2", "1.1": "HTTP/1.1"}.get(want_version, want_version)
            return False, f"request {i} went over HTTP/{version}, not {name}"
        if not code.isdigit() or not 200 <= int(code) < 300:
            return False, f"request {i} -> status {code}"
        if not body_ok(expect, body.encode()):
            return False, f"request {i}: wrong body {body[:100]!r}"
        if not content_type_ok(expect, ctype):
            return False, f"request {i}: wrong Content-Type {ctype!r}"
        if i > 1 and connects != "0":
            return False, f"request {i} opened a new connection (no keep-alive / connection reuse)"
    return True, ""


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
