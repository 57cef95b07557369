#!/usr/bin/env python3
"""Native benchmark harness: CovetPy's native example server against nginx.

Follows the pinned protocol in PERFORMANCE.md (see bench/README.md):

* the server runs on CPU 0 (``taskset -c 0``), wrk runs on CPU 1 (``taskset -c 1 wrk -t1``);
* every (scenario, server) pair gets a warm-up, then a timed run; runs are interleaved
  (A B C A B C ...) so that drift on this noisy VM hits all servers alike;
* besides wrk's req/s and latency percentiles, the harness records the server's CPU time
  per request (utime+stime of the whole server process tree from /proc/PID/stat), because
  one wrk thread saturates its core near 70-80K req/s and unpipelined req/s of any fast
  server then measures wrk rather than the server.

Python 3.11 standard library only.  Run ``python3 bench/native/run.py --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_BINARIES = (
    REPO / "build-release" / "examples" / "native" / "hello" / "hello",
    REPO / "build" / "examples" / "native" / "hello" / "hello",
)
DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"
DEFAULT_OUT = REPO / "bench" / "results"
PIPELINE_LUA = HERE / "pipeline.lua"
NGINX_TEMPLATE = HERE / "nginx.conf.template"

SECTION_START = "<!-- native-bench:start -->"
SECTION_END = "<!-- native-bench:end -->"

SERVER_CPU = 0
WRK_CPU = 1
PIPELINE_DEPTH = 16

PLAINTEXT_BODY = b"Hello, World!"
JSON_BODY: dict[str, Any] = {"message": "Hello, World!"}

ALL_SERVERS = ("covet-uring", "covet-asio", "nginx")
SERVER_ALIASES = {
    "uring": "covet-uring",
    "asio": "covet-asio",
    "covet-uring": "covet-uring",
    "covet-asio": "covet-asio",
    "nginx": "nginx",
}
REFERENCE_SERVER = "nginx"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    connections: int
    pipeline: bool = False

    @property
    def latency(self) -> bool:
        # wrk times a whole pipelined batch, so its percentiles are wrong there.
        return not self.pipeline

    @property
    def kind(self) -> str:
        return "json" if self.path == "/json" else "plaintext"


SCENARIOS = (
    Scenario("plaintext-c64", "/plaintext", 64),
    Scenario("plaintext-c256", "/plaintext", 256),
    Scenario(f"pipelined{PIPELINE_DEPTH}-c256", "/plaintext", 256, pipeline=True),
    Scenario("json-c64", "/json", 64),
)


# --------------------------------------------------------------------------------------
# Pure helpers (unit-tested in bench/tests/test_native_bench.py)
# --------------------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def time_to_ms(value: str, unit: str) -> float:
    """Convert one of wrk's formatted durations (e.g. ``"377.00", "us"``) to milliseconds."""
    try:
        return float(value) * _TIME_UNITS_MS[unit]
    except KeyError as exc:
        raise ValueError(f"unknown wrk time unit {unit!r}") from exc


def size_to_bytes(value: str, unit: str) -> float:
    """Convert wrk's binary-prefixed sizes (``"25.65", "MB"``) to bytes."""
    prefix = unit[:-1] if unit.endswith("B") else unit
    try:
        return float(value) * _SIZE_UNITS[prefix]
    except KeyError as exc:
        raise ValueError(f"unknown wrk size unit {unit!r}") from exc


_RE_RPS = re.compile(r"^\s*Requests/sec:\s*([0-9.]+)\s*$", re.M)
_RE_TOTAL = re.compile(
    r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+)([KMGTP]?B) read\s*$", re.M
)
_RE_PCT = re.compile(r"^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.M)
_RE_LAT_STATS = re.compile(
    r"^\s*Latency\s+([0-9.]+)(us|ms|s|m|h)\s+([0-9.]+)(us|ms|s|m|h)\s+([0-9.]+)(us|ms|s|m|h)",
    re.M,
)
_RE_SOCKERR = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_RE_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk_output(text: str) -> dict[str, Any]:
    """Parse wrk 4.x's text report.

    Returns requests_per_sec, requests, duration_s, bytes_read, latency_ms (dict of
    percentile -> ms, present only with ``--latency``), latency_avg_ms / latency_max_ms,
    socket_errors (dict plus ``total``) and non_2xx.  Raises ValueError when the summary
    lines are missing (wrk failed).
    """
    m_rps = _RE_RPS.search(text)
    m_total = _RE_TOTAL.search(text)
    if not m_rps or not m_total:
        raise ValueError("wrk output has no 'Requests/sec' / 'requests in' summary")
    out: dict[str, Any] = {
        "requests_per_sec": float(m_rps.group(1)),
        "requests": int(m_total.group(1)),
        "duration_s": time_to_ms(m_total.group(2), m_total.group(3)) / 1e3,
        "bytes_read": size_to_bytes(m_total.group(4), m_total.group(5)),
    }
    pct: dict[str, float] = {}
    dist_at = text.find("Latency Distribution")
    if dist_at >= 0:
        for m in _RE_PCT.finditer(text, dist_at):
            pct[m.group(1)] = time_to_ms(m.group(2), m.group(3))
    out["latency_ms"] = pct
    m_lat = _RE_LAT_STATS.search(text)
    if m_lat:
        out["latency_avg_ms"] = time_to_ms(m_lat.group(1), m_lat.group(2))
        out["latency_max_ms"] = time_to_ms(m_lat.group(5), m_lat.group(6))
    errs = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m_err = _RE_SOCKERR.search(text)
    if m_err:
        errs = dict(zip(("connect", "read", "write", "timeout"), map(int, m_err.groups())))
    errs["total"] = sum(errs.values())
    out["socket_errors"] = errs
    m_non = _RE_NON2XX.search(text)
    out["non_2xx"] = int(m_non.group(1)) if m_non else 0
    return out


def parse_proc_stat(text: str) -> dict[str, Any]:
    """Parse the contents of /proc/PID/stat.

    The command name (field 2) is in parentheses and may itself contain spaces and
    parentheses, so the fields are split after the *last* ``)``.  utime and stime are
    fields 14 and 15 (1-based), in clock ticks.
    """
    lparen = text.index("(")
    rparen = text.rindex(")")
    pid = int(text[:lparen].strip())
    comm = text[lparen + 1 : rparen]
    rest = text[rparen + 1 :].split()
    # rest[0] is field 3 (state), so field N is rest[N - 3].
    return {
        "pid": pid,
        "comm": comm,
        "state": rest[0],
        "ppid": int(rest[4 - 3]),
        "utime": int(rest[14 - 3]),
        "stime": int(rest[15 - 3]),
    }


def parse_cpu_stat(text: str) -> dict[str, dict[str, int]]:
    """Per-CPU tick counters from /proc/stat: {"cpu0": {"busy", "idle", "steal"}, ...}.

    busy = user + nice + system + irq + softirq (guest time is already inside user);
    idle = idle + iowait; steal is time the hypervisor gave to someone else.
    """
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        parts = line.split()
        v = [int(x) for x in parts[1:]] + [0] * 10
        user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
        out[parts[0]] = {
            "busy": user + nice + system + irq + softirq,
            "idle": idle + iowait,
            "steal": steal,
        }
    return out


def cpu_stat_delta(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]], cpus: Iterable[str]
) -> dict[str, int]:
    """Summed busy/idle/steal ticks over ``cpus`` between two parse_cpu_stat snapshots."""
    tot = {"busy": 0, "idle": 0, "steal": 0}
    for cpu in cpus:
        for k in tot:
            tot[k] += after[cpu][k] - before[cpu][k]
    return tot


def process_tree(root: int, ppid_of: Mapping[int, int]) -> set[int]:
    """All pids in the tree rooted at ``root`` (inclusive), from a pid -> ppid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in ppid_of.items():
        children.setdefault(ppid, []).append(pid)
    seen = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def tree_cpu_delta_ticks(before: Mapping[int, int], after: Mapping[int, int]) -> int:
    """CPU ticks spent by a process tree between two snapshots (pid -> utime+stime).

    Processes that appeared in between count in full; processes that exited in between
    are lost (their time is not visible any more), which the harness avoids by never
    restarting a server inside a timed window.
    """
    total = 0
    for pid, ticks in after.items():
        total += ticks - before.get(pid, 0)
    return total


def cpu_us_per_request(cpu_seconds: float, requests: int) -> float | None:
    return cpu_seconds * 1e6 / requests if requests > 0 else None


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


def replace_section(
    doc: str | None,
    section_body: str,
    start: str = SECTION_START,
    end: str = SECTION_END,
    header: str = "",
) -> str:
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
        raise ValueError("docs file has only one of the native-bench markers; fix it by hand")
    sep = "" if doc.endswith("\n\n") else ("\n" if doc.endswith("\n") else "\n\n")
    return doc + sep + block + "\n"


def render_nginx_conf(template: str, port: int, tmpdir: str, user: str | None) -> str:
    """Fill the nginx template.  ``user`` is emitted only when the master runs as root."""
    conf = (
        template.replace("@PORT@", str(port))
        .replace("@TMPDIR@", tmpdir)
        .replace("@USER_DIRECTIVE@", f"user {user};" if user else "")
    )
    left = re.findall(r"@[A-Z_]+@", conf)
    if left:
        raise ValueError(f"unfilled placeholders in nginx template: {sorted(set(left))}")
    return conf


def count_pipelined_responses(data: bytes, body: bytes) -> int:
    """How many complete ``200`` responses carrying ``body`` are in ``data``.

    A deliberately simple HTTP/1.1 response splitter (Content-Length framing only), used
    to check that a server answers a 16-deep pipelined batch before timing it.
    """
    n = 0
    pos = 0
    while True:
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return n
        head = data[pos:head_end].decode("latin-1")
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            return n
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            return n
        start = head_end + 4
        if len(data) < start + length:
            return n
        if data[start : start + length] != body:
            return n
        n += 1
        pos = start + length


def fmt_rps(s: Mapping[str, float] | None) -> str:
    if not s:
        return "—"
    if s["n"] == 1:
        return f"{s['median'] / 1e3:.1f}K"
    return f"{s['median'] / 1e3:.1f}K ({s['min'] / 1e3:.1f}–{s['max'] / 1e3:.1f})"


def fmt_spread(s: Mapping[str, float] | None, digits: int = 2) -> str:
    if not s:
        return "—"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v * 1e3:.0f} µs" if v < 1 else f"{v:.2f} ms"


def summarize_results(
    runs: list[dict[str, Any]],
    scenarios: Iterable[Scenario],
    servers: Iterable[str],
    reference: str = REFERENCE_SERVER,
) -> list[dict[str, Any]]:
    """Aggregate per-run records into one row per (scenario, server) with ratios to nginx."""
    rows: list[dict[str, Any]] = []
    for sc in scenarios:
        by_server: dict[str, dict[str, Any]] = {}
        for srv in servers:
            ok = [r for r in runs if r["scenario"] == sc.name and r["server"] == srv and r.get("ok")]
            failed = [r for r in runs if r["scenario"] == sc.name and r["server"] == srv and not r.get("ok")]
            if not ok and not failed:
                continue
            row: dict[str, Any] = {
                "scenario": sc.name,
                "server": srv,
                "runs_ok": len(ok),
                "runs_failed": len(failed),
                "rps": summarize(r["requests_per_sec"] for r in ok),
                "cpu_us_per_req": summarize(r["cpu_us_per_req"] for r in ok),
                "server_core_pct": summarize(r["server_core_pct"] for r in ok),
                "wrk_core_pct": summarize(r.get("wrk_core_pct") for r in ok),
                "bytes_per_response": summarize(r.get("bytes_per_response") for r in ok),
                "other_core_pct": summarize(r.get("other_core_pct") for r in ok),
                "steal_core_pct": summarize(r.get("steal_core_pct") for r in ok),
                "socket_errors": sum(r["socket_errors"]["total"] for r in ok),
                "non_2xx": sum(r["non_2xx"] for r in ok),
                "p50_ms": None,
                "p99_ms": None,
            }
            if sc.latency:
                row["p50_ms"] = summarize(r["latency_ms"].get("50") for r in ok)
                row["p99_ms"] = summarize(r["latency_ms"].get("99") for r in ok)
            by_server[srv] = row
        ref = by_server.get(reference)
        for srv, row in by_server.items():
            ref_rps = ref["rps"]["median"] if ref and ref["rps"] else None
            ref_cpu = ref["cpu_us_per_req"]["median"] if ref and ref["cpu_us_per_req"] else None
            row["rps_vs_nginx"] = ratio(row["rps"]["median"] if row["rps"] else None, ref_rps)
            row["cpu_vs_nginx"] = ratio(
                row["cpu_us_per_req"]["median"] if row["cpu_us_per_req"] else None, ref_cpu
            )
            rows.append(row)
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | server | req/s median (min–max) | req/s vs nginx | p50 | p99 "
        "| server CPU-µs/req median (min–max) | CPU/req vs nginx | server core busy "
        "| wrk core busy | other CPU² median (max) | bytes/resp | errors / non-2xx |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        p50 = fmt_ms(r["p50_ms"]["median"]) if r["p50_ms"] else "—"
        p99 = fmt_ms(r["p99_ms"]["median"]) if r["p99_ms"] else "—"
        if r["scenario"].startswith("pipelined"):
            p50 = p99 = "n/a¹"
        core = f"{r['server_core_pct']['median']:.0f}%" if r["server_core_pct"] else "—"
        wrk = f"{r['wrk_core_pct']['median']:.0f}%" if r["wrk_core_pct"] else "—"
        bpr = f"{r['bytes_per_response']['median']:.0f}" if r["bytes_per_response"] else "—"
        oth = r.get("other_core_pct")
        other = f"{oth['median']:.0f}% ({oth['max']:.0f}%)" if oth else "—"
        failed = f" ({r['runs_failed']} run(s) failed)" if r["runs_failed"] else ""
        lines.append(
            f"| {r['scenario']} | {r['server']} | {fmt_rps(r['rps'])} | {fmt_ratio(r['rps_vs_nginx'])} "
            f"| {p50} | {p99} | {fmt_spread(r['cpu_us_per_req'])} | {fmt_ratio(r['cpu_vs_nginx'])} "
            f"| {core} | {wrk} | {other} | {bpr} | {r['socket_errors']} / {r['non_2xx']}{failed} |"
        )
    return "\n".join(lines)


def render_markdown(result: Mapping[str, Any]) -> str:
    """The docs section (without markers) for one harness result."""
    m = result["machine"]
    s = result["settings"]
    lines = [
        "## Native server vs nginx (wrk, one core each)",
        "",
        f"Measured {result['timestamp_utc']} with:",
        "",
        "```sh",
        result["command"],
        "```",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
        f"{m['mem_gib']} GiB; {m['wrk_version']}; {m['nginx_version']}; Python {m['python']}.",
        f"- Protocol: server `taskset -c {SERVER_CPU}`, `taskset -c {WRK_CPU} wrk -t1`; "
        f"{s['warmup_s']:g} s warm-up then a {s['duration_s']:g} s timed run, {s['runs']} run(s) per "
        f"server and scenario, interleaved ({' '.join(s['servers'])} …); each server is started "
        "fresh for every run. Figures are the median (min–max) over runs.",
        f"- Servers: " + "; ".join(
            f"`{sv['name']}` = `{sv['command']}`" for sv in result["servers"]
        ) + ".",
    ]
    other = summarize(r.get("other_core_pct") for r in result.get("runs", []) if r.get("ok"))
    steal = summarize(r.get("steal_core_pct") for r in result.get("runs", []) if r.get("ok"))
    if other:
        lines.append(
            f"- Background: loadavg {result.get('loadavg_start', '?').split(' ')[0]} at start, "
            f"{m.get('loadavg', '?').split(' ')[0]} at end; CPU used on CPUs {SERVER_CPU}-{WRK_CPU} "
            f"by anything but the server and wrk during timed runs: median {other['median']:.0f}% "
            f"(max {other['max']:.0f}%) of a core"
            + (f"; hypervisor steal median {steal['median']:.1f}% (max {steal['max']:.1f}%)" if steal else "")
            + "."
        )
    if s.get("quick"):
        lines.append("- **Quick run** (short, single run): a smoke test, not a figure to cite.")
    lines += [
        "",
        render_table(result["summary"]),
        "",
        "¹ Pipelined runs (16 requests per write, `bench/native/pipeline.lua`) report "
        "throughput only: wrk times a whole batch, so its latency percentiles are wrong there.",
        "",
        f"² CPU time used on CPUs {SERVER_CPU} and {WRK_CPU} by anything other than the server and "
        "wrk during the timed run (other tenants' jobs, unattributed softirq, this harness), in % "
        "of one core: a run with a high figure was disturbed, and its req/s is low for that "
        "reason. CPU-µs/request is much less affected than req/s.",
        "",
        "Read this table by CPU-µs/request (server CPU time, utime+stime of the whole server "
        "process tree from `/proc/PID/stat`, divided by requests) and by the pipelined "
        "throughput: one wrk thread saturates its core near 70–80K req/s here, so unpipelined "
        "req/s of a fast server measures wrk (see *wrk core busy*). p50/p99 come from wrk's "
        "closed-loop `--latency` and hide stalls (coordinated omission); they are not p99 claims. "
        "This VM is noisy (up to 2× between minutes); compare ratios within one run.",
    ]
    excl = result.get("exclusions") or []
    if excl:
        lines += ["", "Excluded:"]
        for e in excl:
            lines.append(f"- `{e['server']}` {e['scenario']}: {e['reason']}")
    failed = [r for r in result.get("runs", []) if not r.get("ok")]
    if failed:
        lines += ["", "Failed runs:"]
        for r in failed:
            err = " ".join(str(r.get("error", "?")).split())[:200]
            lines.append(f"- `{r['server']}` {r['scenario']} run {r['run']}: {err}")
    lines += ["", f"Raw data: `{result['json_path']}`."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# /proc access
# --------------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, "r", encoding="latin-1") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _ppid_map() -> dict[int, int]:
    ppid_of: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        text = _read(f"/proc/{name}/stat")
        if text:
            try:
                ppid_of[int(name)] = parse_proc_stat(text)["ppid"]
            except (ValueError, IndexError):
                pass
    return ppid_of


def tree_pids(root: int) -> set[int]:
    """pids in the process tree of ``root``.

    Uses /proc/PID/task/TID/children when the kernel has it (CONFIG_PROC_CHILDREN),
    otherwise scans /proc for parent pids.
    """
    if os.path.exists(f"/proc/{root}/task/{root}/children"):
        seen = {root}
        stack = [root]
        while stack:
            pid = stack.pop()
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except FileNotFoundError:
                continue
            for tid in tids:
                text = _read(f"/proc/{pid}/task/{tid}/children") or ""
                for child in map(int, text.split()):
                    if child not in seen:
                        seen.add(child)
                        stack.append(child)
        return seen
    return process_tree(root, _ppid_map())


def tree_cpu_snapshot(root: int) -> dict[int, int]:
    """pid -> utime+stime (clock ticks) for every process in the tree of ``root``."""
    snap: dict[int, int] = {}
    for pid in tree_pids(root):
        text = _read(f"/proc/{pid}/stat")
        if text:
            st = parse_proc_stat(text)
            snap[pid] = st["utime"] + st["stime"]
    return snap


def tree_rss_kib(root: int) -> int:
    total = 0
    for pid in tree_pids(root):
        text = _read(f"/proc/{pid}/status") or ""
        m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        if m:
            total += int(m.group(1))
    return total


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_for_200(proc: subprocess.Popen[bytes], port: int, deadline: float, path: str = "/plaintext") -> str:
    """Polls ``GET path`` until the server answers 200 OK: "" then, else why not (the process exited first,
    or `deadline` (time.monotonic) passed). Used to time launch -> first 200 OK."""
    while True:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before answering"
        if time.monotonic() > deadline:
            return f"no 200 OK on GET {path} in time"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return ""
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.002)


def _tail(path: Path, n: int = 800) -> str:
    try:
        data = path.read_bytes()[-n:]
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", "replace").strip()


class ServerError(RuntimeError):
    pass


def stop_process(proc: subprocess.Popen[bytes] | None, graceful: int, grace: float) -> None:
    """Stops a server started with start_new_session=True: `graceful` signal, SIGKILL after `grace` s,
    then whatever is left of its session (e.g. an nginx worker), by process group id."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(graceful)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Server:
    """One benchmarked server; started fresh for every run, always on CPU ``SERVER_CPU``."""

    name: str
    binary: str  # covet binary or nginx executable
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="covet-bench-")))
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    command: list[str] = field(default_factory=list)

    @property
    def is_nginx(self) -> bool:
        return self.name == "nginx"

    def describe_command(self) -> str:
        if self.is_nginx:
            return (
                f"taskset -c {SERVER_CPU} {self.binary} -p TMP -e TMP/error.log "
                f"-c TMP/nginx.conf -g 'daemon off;'"
            )
        backend = self.name.split("-", 1)[1]
        return f"taskset -c {SERVER_CPU} {self.binary} --port N --threads 1 --backend {backend}"

    def start(self, timeout: float = 15.0) -> None:
        self.stop()
        self.port = free_port()
        stdout_path = self.tmp / "stdout.log"
        stderr_path = self.tmp / "stderr.log"
        if self.is_nginx:
            template = NGINX_TEMPLATE.read_text()
            user = None
            if os.geteuid() == 0:
                import pwd

                user = pwd.getpwuid(os.geteuid()).pw_name
            conf = self.tmp / "nginx.conf"
            conf.write_text(render_nginx_conf(template, self.port, str(self.tmp), user))
            self.command = [
                "taskset", "-c", str(SERVER_CPU), self.binary,
                "-p", str(self.tmp), "-e", str(self.tmp / "error.log"),
                "-c", str(conf), "-g", "daemon off;",
            ]
        else:
            backend = self.name.split("-", 1)[1]
            self.command = [
                "taskset", "-c", str(SERVER_CPU), self.binary,
                "--port", str(self.port), "--threads", "1", "--backend", backend,
            ]
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            # taskset execs the server, so proc.pid is the server (nginx: its master).
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        if not self.is_nginx:
            pat = re.compile(rb"listening on [0-9.]+:(\d+)")
            while True:
                m = pat.search(stdout_path.read_bytes())
                if m:
                    self.port = int(m.group(1))
                    break
                if self.proc.poll() is not None:
                    raise ServerError(
                        f"exited with status {self.proc.returncode} before 'listening on': "
                        f"{_tail(stderr_path) or _tail(stdout_path)}"
                    )
                if time.monotonic() > deadline:
                    raise ServerError(f"no 'listening on' line within {timeout:.0f} s")
                time.sleep(0.02)
        if not wait_for_port(self.port, deadline):
            status = self.proc.poll()
            log = _tail(self.tmp / "error.log") or _tail(stderr_path)
            raise ServerError(f"port {self.port} not accepting (exit status {status}): {log}")
        if self.is_nginx:
            # wait for the worker process to exist so that its CPU is in the tree
            while len(tree_pids(self.proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        # nginx: SIGQUIT is a graceful stop of master+workers; ours: SIGTERM
        stop_process(proc, signal.SIGQUIT if self.is_nginx else signal.SIGTERM, grace=5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def expected_body(kind: str, body: bytes) -> bool:
    """Does ``body`` match what a ``kind`` route must answer? (JSON compared parsed.)"""
    if kind != "json":
        return body == PLAINTEXT_BODY
    try:
        return json.loads(body) == JSON_BODY
    except ValueError:
        return False


# The body check check_http uses; other harnesses (bench/python) install theirs here.
body_check = expected_body


def check_http(port: int, path: str, kind: str) -> tuple[bool, str, dict[str, Any]]:
    """GET ``path`` twice on one keep-alive connection; require 200 and the expected body."""
    info: dict[str, Any] = {}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for attempt in (1, 2):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            info = {
                "status": resp.status,
                "content_type": resp.getheader("Content-Type"),
                "body": body[:200].decode("utf-8", "replace"),
            }
            if resp.status != 200:
                return False, f"GET {path} -> {resp.status} (expected 200)", info
            if not body_check(kind, body):
                return False, f"GET {path}: unexpected body {body[:80]!r} for a {kind} route", info
            if resp.will_close and attempt == 1:
                return False, f"GET {path}: server closes the connection (no keep-alive)", info
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {path} failed: {exc!r}", info
    return True, "", info


def check_pipelined(port: int, path: str, depth: int = PIPELINE_DEPTH) -> tuple[bool, str]:
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(req * depth)
            deadline = time.monotonic() + 5
            while count_pipelined_responses(data, PLAINTEXT_BODY) < depth:
                if time.monotonic() > deadline:
                    break
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return False, f"pipelined check failed: {exc!r}"
    got = count_pipelined_responses(data, PLAINTEXT_BODY)
    if got < depth:
        return False, f"{depth} pipelined GETs in one write: only {got} correct responses"
    return True, ""


# --------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------


def wrk_command(sc: Scenario, port: int, duration: float, timed: bool) -> list[str]:
    cmd = [
        "taskset", "-c", str(WRK_CPU), "wrk", "-t1", f"-c{sc.connections}", f"-d{duration:g}s",
    ]
    if timed and sc.latency:
        cmd.append("--latency")
    if sc.pipeline:
        cmd += ["-s", str(PIPELINE_LUA)]
    cmd.append(f"http://127.0.0.1:{port}{sc.path}")
    if sc.pipeline:
        cmd += ["--", str(PIPELINE_DEPTH)]
    return cmd


def run_wrk(cmd: list[str], duration: float) -> tuple[int, str, float]:
    """Run wrk; return (exit status, stdout+stderr, wrk's own CPU seconds)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        killer = threading.Timer(duration + 30, lambda: proc.poll() is None and proc.kill())
        killer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return proc.returncode, text, ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------


def _cmd_output(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (p.stdout + p.stderr).strip()


def machine_info(nginx: str) -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = _read("/proc/meminfo") or ""
    mm = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    wrk_v = _cmd_output(["wrk", "-v"]).splitlines()
    wrk_line = wrk_v[0] if wrk_v else "wrk: unknown"
    wrk_line = re.sub(r"\s*Copyright.*$", "", wrk_line)
    return {
        "nproc": os.cpu_count(),
        "nproc_usable": len(os.sched_getaffinity(0)),
        "cpu_model": m.group(1).strip() if m else "unknown",
        "mem_gib": round(int(mm.group(1)) / 1024**2, 1) if mm else None,
        "kernel": platform.release(),
        "wrk_version": wrk_line,
        "nginx_version": _cmd_output([nginx, "-v"]).replace("nginx version: ", ""),
        "python": platform.python_version(),
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "loadavg": (_read("/proc/loadavg") or "").strip(),
    }


def file_sha256(path: str) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def git_revision() -> str | None:
    out = _cmd_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return out if re.fullmatch(r"[0-9a-f]{4,40}", out) else None


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark CovetPy's native hello server (uring/asio) against nginx with wrk.",
    )
    ap.add_argument(
        "binary", nargs="?",
        help="CovetPy native hello binary (default: build-release/…/hello, else build/…/hello)",
    )
    # wrk takes whole seconds only
    ap.add_argument("--duration", type=int, default=None, help="timed run length in whole s (default 10)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up length in whole s before every run (default 3)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per server and scenario (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 s runs, 1 run, 1 s warm-up")
    ap.add_argument(
        "--servers", default=",".join(ALL_SERVERS),
        help="comma-separated subset of covet-uring,covet-asio,nginx (aliases: uring, asio)",
    )
    ap.add_argument(
        "--scenarios", default=",".join(s.name for s in SCENARIOS),
        help="comma-separated subset of " + ",".join(s.name for s in SCENARIOS),
    )
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="directory for native-<UTC>.json/.md")
    ap.add_argument("--docs", default=str(DEFAULT_DOCS), help="markdown file whose native-bench section is replaced")
    ap.add_argument("--no-docs", action="store_true", help="do not touch the docs file")
    ap.add_argument("--nginx", default="nginx", help="nginx executable")
    ap.add_argument(
        "--render", metavar="JSON",
        help="measure nothing: re-render the .md and docs section from a saved native-*.json",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = 2 if args.duration is None else args.duration
        args.runs = 1 if args.runs is None else args.runs
        args.warmup = 1 if args.warmup is None else args.warmup
    args.duration = 10 if args.duration is None else args.duration
    args.runs = 3 if args.runs is None else args.runs
    args.warmup = 3 if args.warmup is None else args.warmup
    servers = []
    for name in filter(None, (x.strip() for x in args.servers.split(","))):
        if name not in SERVER_ALIASES:
            ap.error(f"unknown server {name!r}; choose from {', '.join(SERVER_ALIASES)}")
        if SERVER_ALIASES[name] not in servers:
            servers.append(SERVER_ALIASES[name])
    args.servers = servers
    known = {s.name: s for s in SCENARIOS}
    scen = []
    for name in filter(None, (x.strip() for x in args.scenarios.split(","))):
        if name not in known:
            ap.error(f"unknown scenario {name!r}; choose from {', '.join(known)}")
        scen.append(known[name])
    args.scenarios = scen
    if args.runs < 1 or args.duration <= 0 or args.warmup < 0:
        ap.error("need --runs >= 1, --duration > 0, --warmup >= 0")
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pick_binary(arg: str | None) -> str:
    if arg:
        return arg
    for cand in DEFAULT_BINARIES:
        if cand.exists():
            return str(cand)
    return str(DEFAULT_BINARIES[0])


def display_path(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        return render_saved(args.render, None if args.no_docs else Path(args.docs))
    for tool in ("taskset", "wrk"):
        if not shutil.which(tool):
            log(f"error: {tool} not found")
            return 2
    if len(os.sched_getaffinity(0)) < 2 or not {SERVER_CPU, WRK_CPU} <= os.sched_getaffinity(0):
        log(f"error: need CPUs {SERVER_CPU} and {WRK_CPU} available")
        return 2

    binary = pick_binary(args.binary)
    stamp = dt.datetime.now(dt.timezone.utc)
    ts = stamp.strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"native-{ts}.json"
    md_path = out_dir / f"native-{ts}.md"
    command = "python3 bench/native/run.py" + (" " + shlex.join(argv) if argv else "")
    clk = os.sysconf("SC_CLK_TCK")
    loadavg_start = (_read("/proc/loadavg") or "").strip()
    if loadavg_start and float(loadavg_start.split()[0]) > 0.5:
        log(f"warning: the machine is busy (loadavg {loadavg_start}); figures will be noisy")

    exclusions: list[dict[str, str]] = []
    servers: list[Server] = []
    server_meta: list[dict[str, Any]] = []
    for name in args.servers:
        exe = args.nginx if name == "nginx" else binary
        srv = Server(name=name, binary=exe)
        meta: dict[str, Any] = {"name": name, "command": srv.describe_command(), "binary": exe}
        if name != "nginx":
            meta["binary_sha256"] = file_sha256(exe)
        server_meta.append(meta)
        if name != "nginx" and not os.access(exe, os.X_OK):
            exclusions.append({"server": name, "scenario": "all", "reason": f"binary {exe} not found/executable"})
            continue
        if name == "nginx" and not shutil.which(exe):
            exclusions.append({"server": name, "scenario": "all", "reason": f"{exe} not found"})
            continue
        servers.append(srv)

    # Correctness before any timing: start each server once, check every scenario's URL.
    usable: dict[str, set[str]] = {}
    try:
        for srv in servers:
            try:
                srv.start()
            except (ServerError, OSError) as exc:
                log(f"{srv.name}: cannot start: {exc}")
                exclusions.append({"server": srv.name, "scenario": "all", "reason": f"does not start: {exc}"})
                srv.cleanup()
                continue
            meta = next(m for m in server_meta if m["name"] == srv.name)
            time.sleep(0.2)
            meta["idle_rss_kib"] = tree_rss_kib(srv.proc.pid)
            meta["affinity"] = sorted(
                {cpu for pid in tree_pids(srv.proc.pid) for cpu in os.sched_getaffinity(pid)}
            )
            meta["checks"] = {}
            ok_scen = set()
            for sc in args.scenarios:
                ok, reason, info = check_http(srv.port, sc.path, sc.kind)
                if ok and sc.pipeline:
                    ok, reason = check_pipelined(srv.port, sc.path)
                meta["checks"][sc.name] = {"ok": ok, "reason": reason, **info}
                if ok:
                    ok_scen.add(sc.name)
                else:
                    log(f"{srv.name}: excluded from {sc.name}: {reason}")
                    exclusions.append({"server": srv.name, "scenario": sc.name, "reason": reason})
            usable[srv.name] = ok_scen
            srv.stop()
            log(f"{srv.name}: checks passed for {sorted(ok_scen) or 'nothing'} "
                f"(idle RSS {meta['idle_rss_kib'] / 1024:.1f} MiB, CPUs {meta['affinity']})")

        planned = sum(
            1 for sc in args.scenarios for _ in range(args.runs) for s in servers
            if sc.name in usable.get(s.name, ())
        )
        eta = planned * (args.warmup + args.duration + 1.0)
        log(f"{planned} timed runs, about {eta / 60:.1f} min")

        runs: list[dict[str, Any]] = []
        for sc in args.scenarios:
            for run_no in range(1, args.runs + 1):
                for srv in servers:  # interleaved: A B C A B C ...
                    if sc.name not in usable.get(srv.name, ()):
                        continue
                    rec = run_one(srv, sc, run_no, args, clk)
                    runs.append(rec)
                    if rec.get("ok"):
                        lat = rec["latency_ms"]
                        log(
                            f"{sc.name} run {run_no} {srv.name}: {rec['requests_per_sec']:,.0f} req/s, "
                            f"{rec['cpu_us_per_req']:.2f} CPU-µs/req, server core {rec['server_core_pct']:.0f}%, "
                            f"wrk core {rec['wrk_core_pct']:.0f}%"
                            + (f", p50 {lat['50']:.3f} ms p99 {lat['99']:.3f} ms" if sc.latency and lat else "")
                        )
                    else:
                        log(f"{sc.name} run {run_no} {srv.name}: FAILED: {rec.get('error')}")
    finally:
        for srv in servers:
            srv.cleanup()

    summary = summarize_results(runs, args.scenarios, args.servers)
    result = {
        "timestamp_utc": stamp.strftime("%Y-%m-%d %H:%M:%SZ"),
        "command": command,
        "git_revision": git_revision(),
        "machine": machine_info(args.nginx),
        "loadavg_start": loadavg_start,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "runs": args.runs,
            "quick": args.quick,
            "servers": args.servers,
            "scenarios": [s.name for s in args.scenarios],
            "server_cpu": SERVER_CPU,
            "wrk_cpu": WRK_CPU,
            "pipeline_depth": PIPELINE_DEPTH,
        },
        "servers": server_meta,
        "exclusions": exclusions,
        "runs": runs,
        "summary": summary,
        "json_path": display_path(json_path),
    }
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_reports(result, md_path, None if args.no_docs else Path(args.docs))
    log(f"wrote {json_path} and {md_path}")
    return 0 if any(r.get("ok") for r in runs) else 1


DOCS_HEADER = (
    "# CovetPy benchmarks\n\n"
    "Figures produced by the harnesses under `bench/` (see `bench/README.md`); each section "
    "is regenerated by its harness, between its markers. Absolute numbers from this shared "
    "VM are only comparable within one run: compare ratios and medians."
)


def write_reports(result: dict[str, Any], md_path: Path, docs: Path | None) -> None:
    """Write the .md next to the JSON, print it, and replace the docs section."""
    section = render_markdown(result)
    md_path.write_text(section + "\n")
    print(section)
    if docs is not None:
        old = docs.read_text() if docs.exists() else None
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text(replace_section(old, section, header=DOCS_HEADER))
        log(f"updated {docs}")


def render_saved(json_file: str, docs: Path | None) -> int:
    """--render: rebuild the summary, .md and docs section from a saved result JSON."""
    path = Path(json_file)
    result = json.loads(path.read_text())
    known = {sc.name: sc for sc in SCENARIOS}
    scenarios = [known[n] for n in result["settings"]["scenarios"] if n in known]
    result["summary"] = summarize_results(result["runs"], scenarios, result["settings"]["servers"])
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_reports(result, path.with_suffix(".md"), docs)
    return 0


def run_one(srv: Server, sc: Scenario, run_no: int, args: argparse.Namespace, clk: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"scenario": sc.name, "server": srv.name, "run": run_no, "ok": False}
    try:
        srv.start()
        ok, reason, _ = check_http(srv.port, sc.path, sc.kind)
        if not ok:
            rec["error"] = f"pre-run check: {reason}"
            return rec
        if args.warmup > 0:
            code, text, _ = run_wrk(wrk_command(sc, srv.port, args.warmup, timed=False), args.warmup)
            if code != 0:
                rec["error"] = f"warm-up wrk exited {code}: {text[-300:]}"
                return rec
        cmd = wrk_command(sc, srv.port, args.duration, timed=True)
        rec["wrk_command"] = shlex.join(cmd)
        pid = srv.proc.pid
        before = tree_cpu_snapshot(pid)
        sys_before = parse_cpu_stat(_read("/proc/stat") or "")
        t0 = time.monotonic()
        code, text, wrk_cpu = run_wrk(cmd, args.duration)
        elapsed = time.monotonic() - t0
        sys_after = parse_cpu_stat(_read("/proc/stat") or "")
        after = tree_cpu_snapshot(pid)
        rec["wrk_output"] = text
        rec["server_alive_after"] = srv.alive()
        rec["server_rss_kib_after"] = tree_rss_kib(pid)
        if code != 0:
            rec["error"] = f"wrk exited {code}: {text[-300:]}"
            return rec
        parsed = parse_wrk_output(text)
        rec.update(parsed)
        ticks = tree_cpu_delta_ticks(before, after)
        cpu_s = ticks / clk
        rec["server_processes"] = sorted(after)
        rec["server_cpu_s"] = cpu_s
        rec["elapsed_s"] = elapsed
        rec["server_core_pct"] = 100.0 * cpu_s / elapsed
        rec["wrk_cpu_s"] = wrk_cpu
        rec["wrk_core_pct"] = 100.0 * wrk_cpu / elapsed
        rec["cpu_us_per_req"] = cpu_us_per_request(cpu_s, parsed["requests"])
        # Noise indicators for this shared VM: CPU used on the two benchmark CPUs by anything
        # other than the server tree and wrk (includes softirq not charged to either, and
        # this harness), and hypervisor steal, both in % of one core.
        cpus = [f"cpu{SERVER_CPU}", f"cpu{WRK_CPU}"]
        if all(c in sys_before and c in sys_after for c in cpus):
            d = cpu_stat_delta(sys_before, sys_after, cpus)
            rec["other_core_pct"] = 100.0 * (d["busy"] / clk - cpu_s - wrk_cpu) / elapsed
            rec["steal_core_pct"] = 100.0 * d["steal"] / clk / elapsed
        rec["bytes_per_response"] = (
            parsed["bytes_read"] / parsed["requests"] if parsed["requests"] else None
        )
        if not rec["server_alive_after"]:
            rec["error"] = "server died during the run"
            return rec
        if parsed["requests"] == 0:
            rec["error"] = "no requests completed"
            return rec
        rec["ok"] = True
        return rec
    except (ServerError, OSError, ValueError) as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        return rec
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main())
