"""The load generators: wrk (HTTP/1.1, HTTPS), h2load (open loop over HTTP/1.1, HTTP/2) and ghz (gRPC): their
command lines, running them (exit status, output, the tool's own CPU time), parsing what they print, and building
ghz (a pinned Go module, ``go install`` into a cache once).

The wrk scripts live in bench/tools/wrk: ``matrix.lua`` (method/body from the environment, p99.9 printed as
``BENCH_LATENCY_US`` lines) and ``pipeline.lua`` (N requests per write). The WebSocket generator is wsload.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import BENCH, REPO

if TYPE_CHECKING:
    from .scenarios import Scenario

WRK_SCRIPTS = BENCH / "tools" / "wrk"
MATRIX_LUA = WRK_SCRIPTS / "matrix.lua"
PIPELINE_LUA = WRK_SCRIPTS / "pipeline.lua"


# --------------------------------------------------------------------------------------------------
# Command lines
# --------------------------------------------------------------------------------------------------


def wrk_command(sc: Scenario, port: int, duration: int, client_cpus: str, threads: int, timed: bool) -> list[str]:
    """wrk pinned to ``client_cpus``; pipelined scenarios through pipeline.lua (no latency: wrk times whole
    batches), the others through matrix.lua, with ``--latency`` on the timed run."""
    threads = max(1, min(threads, sc.connections))
    cmd = ["taskset", "-c", client_cpus, "wrk", f"-t{threads}", f"-c{sc.connections}", f"-d{duration}s"]
    if sc.pipeline > 1:
        cmd += ["-s", str(PIPELINE_LUA)]
    else:
        cmd += ["-s", str(MATRIX_LUA)]
        if timed:
            cmd.append("--latency")
    cmd.append(f"{sc.scheme}://127.0.0.1:{port}{sc.path}")
    if sc.pipeline > 1:
        cmd += ["--", str(sc.pipeline)]
    return cmd


def wrk_env(sc: Scenario, body_file: Path) -> dict[str, str]:
    """matrix.lua's environment: the method and the request body file of a POST scenario."""
    if sc.method == "POST":
        return {"BENCH_METHOD": "POST", "BENCH_BODY_FILE": str(body_file), "BENCH_CONTENT_TYPE": "application/json"}
    return {"BENCH_METHOD": "", "BENCH_BODY_FILE": ""}


def h2load_rate_command(sc: Scenario, port: int, duration: int, rate: int, client_cpus: str, threads: int,
                        log_file: Path) -> list[str]:
    """Open loop at ``rate`` req/s in total: ``sc.connections`` HTTP/1.1 clients at rate/connections each. With
    ``sc.stagger_ms`` the clients start that far apart (h2load's -r; it excludes -D, so the run is a request count:
    rate x duration)."""
    per_client = max(1, round(rate / sc.connections))
    # Staggered: one client thread (h2load starts -r connections per period in each thread, and splits -n among
    # the threads unevenly).
    threads = 1 if sc.stagger_ms else max(1, min(threads, sc.connections))
    length = (["-r1", f"--rate-period={sc.stagger_ms}ms", f"-n{per_client * sc.connections * duration}"]
              if sc.stagger_ms else [f"-D{duration}"])
    return ["taskset", "-c", client_cpus, "h2load", "--h1", f"-t{threads}", f"-c{sc.connections}",
            f"--rps={per_client}", *length, f"--log-file={log_file}", f"http://127.0.0.1:{port}{sc.path}"]


def h2load_h2_command(sc: Scenario, port: int, duration: int, client_cpus: str, threads: int,
                      log_file: Path | None = None) -> list[str]:
    """HTTP/2: over TLS h2load negotiates h2 by ALPN; over http:// it speaks h2c by prior knowledge."""
    threads = max(1, min(threads, sc.connections))
    cmd = ["taskset", "-c", client_cpus, "h2load", f"-t{threads}", f"-c{sc.connections}", f"-m{sc.streams}",
           f"-D{duration}"]
    if log_file is not None:
        cmd.append(f"--log-file={log_file}")
    return cmd + [f"{sc.scheme}://127.0.0.1:{port}{sc.path}"]


def load_command(sc: Scenario, port: int, seconds: int, rate: int, client_cpus: str, threads: int, timed: bool,
                 log_file: Path) -> list[str]:
    """The command of a warm-up (``timed`` False) or timed run of an HTTP or gRPC scenario, whatever its tool
    (ghz writes its JSON report to ``log_file``)."""
    if sc.tool == "ghz":
        return ghz_command(sc, port, seconds, client_cpus, log_file)
    if sc.tool == "wrk":
        return wrk_command(sc, port, seconds, client_cpus, threads, timed=timed)
    if sc.tool == "h2load-rate":
        return h2load_rate_command(sc, port, seconds, rate, client_cpus, threads, log_file)
    return h2load_h2_command(sc, port, seconds, client_cpus, threads, log_file if timed else None)


def run_tool(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run a load generator to its end (killed after ``timeout`` s): (exit status, stdout+stderr, its CPU s)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env} if env else None)
        killer = threading.Timer(timeout, lambda: proc.poll() is None and proc.kill())
        killer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return proc.returncode, text, ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------------------------------
# wrk's report
# --------------------------------------------------------------------------------------------------

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
_RE_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+)([KMGTP]?B) read\s*$", re.M)
_RE_PCT = re.compile(r"^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.M)
_RE_LAT_STATS = re.compile(
    r"^\s*Latency\s+([0-9.]+)(us|ms|s|m|h)\s+([0-9.]+)(us|ms|s|m|h)\s+([0-9.]+)(us|ms|s|m|h)", re.M)
_RE_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_RE_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_RE_BENCH_LAT = re.compile(r"^BENCH_LATENCY_US\s+(\S+)\s+(\d+)\s*$", re.M)


def parse_wrk(text: str) -> dict[str, Any]:
    """Parse wrk 4.x's report, plus the ``BENCH_LATENCY_US`` lines matrix.lua prints.

    Returns requests_per_sec, requests, duration_s, bytes_read, latency_ms (percentile -> ms: wrk's
    ``--latency`` distribution, overridden and extended by matrix.lua's µs-resolution "50", "90", "99",
    "99.9", "99.99" and "max"), latency_avg_ms / latency_max_ms, socket_errors (dict plus ``total``), non_2xx
    and errors (socket errors + non-2xx). Raises ValueError when the summary lines are missing (wrk failed).
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
    pct.update({p: int(us) / 1e3 for p, us in _RE_BENCH_LAT.findall(text)})
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
    out["errors"] = errs["total"] + out["non_2xx"]
    return out


# --------------------------------------------------------------------------------------------------
# h2load's report and per-request log
# --------------------------------------------------------------------------------------------------

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
# ghz (gRPC): the pinned build, its command line and its JSON report
# --------------------------------------------------------------------------------------------------

GHZ_PACKAGE = "github.com/bojand/ghz/cmd/ghz"
GHZ_VERSION = "v0.93.0"
GO_BIN_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "covetpy" / "bin"
GREETER_PROTO = REPO / "examples" / "native" / "grpc_greeter" / "greeter.proto"  # the service every gRPC peer serves
GREETER_NAME = "world"  # the request's name (the gate sends another one)


class GoToolError(RuntimeError):
    """A Go command could not be built here; the message is the exclusion reason."""


def go_binary() -> str | None:
    """The Go toolchain: on PATH, else /usr/local/go/bin/go (scripts/setup.sh installs it there)."""
    found = shutil.which("go")
    if found is None and Path("/usr/local/go/bin/go").exists():
        found = "/usr/local/go/bin/go"
    return found


def go_install(package: str, version: str, name: str, log: Callable[[str], None] = print) -> Path:
    """A Go command at an exact module version, ``go install``-ed once into the cache as ``<name>-<version>``."""
    target = GO_BIN_CACHE / f"{name}-{version}"
    if target.exists():
        return target
    go = go_binary()
    if go is None:
        raise GoToolError(f"no Go toolchain to build {name} {version} (scripts/setup.sh installs one)")
    log(f"building {name}: go install {package}@{version}")
    with tempfile.TemporaryDirectory() as gobin:
        p = subprocess.run([go, "install", f"{package}@{version}"], env={**os.environ, "GOBIN": gobin},
                           capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            tail = " / ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
            raise GoToolError(f"`go install {package}@{version}` exited {p.returncode}: {tail}")
        GO_BIN_CACHE.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(gobin) / name), target)
    return target


def ghz_binary() -> Path:
    """Where the pinned ghz is (or will be) built."""
    return GO_BIN_CACHE / f"ghz-{GHZ_VERSION}"


def ensure_ghz(log: Callable[[str], None] = print) -> Path:
    return go_install(GHZ_PACKAGE, GHZ_VERSION, "ghz", log)


def ghz_call(sc: Scenario) -> str:
    """ghz's ``--call`` (``package.Service.Method``) from the scenario's path ``/package.Service/Method``."""
    return sc.path.strip("/").replace("/", ".")


def ghz_data(sc: Scenario) -> str:
    """The request as ghz's JSON: the name, and for a server stream the number of replies wanted."""
    return json.dumps({"name": GREETER_NAME, **({"count": sc.messages} if sc.messages > 1 else {})},
                      separators=(",", ":"))


def ghz_command(sc: Scenario, port: int, seconds: int, client_cpus: str, output: Path,
                ghz: Path | None = None) -> list[str]:
    """ghz pinned to ``client_cpus``: ``sc.concurrency`` concurrent calls over ``sc.connections`` h2c connections
    for ``seconds``, the JSON report written to ``output``."""
    return ["taskset", "-c", client_cpus, str(ghz or ghz_binary()), "--insecure", "--proto", str(GREETER_PROTO),
            "--call", ghz_call(sc), "-d", ghz_data(sc), "-c", str(sc.concurrency), "--connections",
            str(sc.connections), "-z", f"{seconds}s", "-O", "json", "-o", str(output), f"127.0.0.1:{port}"]


def parse_ghz(text: str) -> dict[str, Any]:
    """ghz's JSON report (``-O json``).

    Returns requests_per_sec (ghz's ``rps``: every call it finished, per second), requests (calls with status OK:
    what CPU per call is divided by), calls, duration_s, status (status name -> calls), errors (calls not OK),
    error_counts (ghz's error messages -> calls), latency_ms (ghz's 50/90/99th percentiles; it gives no 99.9)
    and latency_avg_ms. Raises ValueError when the text is no ghz report."""
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"ghz wrote no JSON report: {exc}") from None
    if not isinstance(report, dict) or "count" not in report or "statusCodeDistribution" not in report:
        raise ValueError("not a ghz report (no count / statusCodeDistribution)")
    status = {k: int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()}
    calls = int(report["count"])
    ok = status.get("OK", 0)
    pct = {str(e["percentage"]): e["latency"] / 1e6 for e in report.get("latencyDistribution") or ()
           if e.get("percentage") in (50, 90, 99)}  # ghz's durations are nanoseconds
    return {
        "requests_per_sec": float(report.get("rps") or 0.0),
        "requests": ok,
        "calls": calls,
        "duration_s": int(report.get("total") or 0) / 1e9,
        "status": status,
        "errors": calls - ok,
        "error_counts": {k: int(v) for k, v in (report.get("errorDistribution") or {}).items()},
        "latency_ms": pct,
        "latency_avg_ms": int(report.get("average") or 0) / 1e6,
    }


def parse_marked_result(text: str, tool: str, prefix: str, marks: tuple[str, str], a_tool: str) -> dict[str, Any]:
    """The last ``<prefix>{json}`` line a Go load tool (wsload, h3load) printed, plus ``marks``: how many of its
    timed-window marks it printed. `a_tool` names it with its article ("a wsload"). Raises ValueError when there
    is none (the tool crashed or was killed) or it is another tool's."""
    found = None
    for line in text.splitlines():
        if line.startswith(prefix):
            found = line[len(prefix):]
    if found is None:
        raise ValueError(f"{tool} printed no result line: {text.strip()[-200:]!r}")
    try:
        out = json.loads(found)
    except ValueError as exc:
        raise ValueError(f"unreadable {tool} result: {exc}") from None
    if out.get("tool") != tool:
        raise ValueError(f"not {a_tool} result")
    out["marks"] = sum(1 for line in text.splitlines() if line.strip() in marks)
    return out
