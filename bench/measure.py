"""One timed run of a scenario against a running server: the load generator's figures, the server's CPU time
(/proc, its whole process tree) over exactly the timed window, and its peak RSS sampled during it. HTTP and gRPC
(ghz) runs go through ``measure``, WebSocket ones through ``measure_ws``, HTTP/3 ones through ``measure_h3`` (the
last two tools print marks around their timed window, where the server's CPU is sampled)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from . import REPO, h3load, wsload
from .loadgen import load_command, parse_ghz, parse_h2load_log, parse_h2load_output, parse_wrk, run_tool, wrk_env
from .scenarios import Scenario
from .servers import Running
from .summary import cpu_s_per_100k
from .system import tree_cpu_delta_ticks, udp_counters, udp_socket_drops


class RssSampler(threading.Thread):
    """Samples the server tree's RSS every ``every`` s until ``finish()``, which returns the peak (KiB)."""

    def __init__(self, srv: Running, every: float = 0.1):
        super().__init__(daemon=True)
        self.srv, self.every, self.peak = srv, every, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.peak = max(self.peak, self.srv.rss_kib())
            except Exception:  # a process of the tree exiting mid-read
                pass
            self._halt.wait(self.every)

    def finish(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def check_h2load_protocol(sc: Scenario, parsed: dict[str, Any]) -> str | None:
    """h2load must have spoken what the scenario is about (h2 by ALPN over TLS, h2c in cleartext)."""
    want = "h2" if sc.tls else "h2c"
    got = parsed.get("protocol")
    if got != want:
        return f"h2load negotiated {got or 'no application protocol'}, not {want}"
    return None


def _parse_http(sc: Scenario, text: str, log_file: Path, rate: int) -> tuple[dict[str, Any], str | None]:
    """The timed run's figures from the tool's output (h2load's per-request log, ghz's JSON report); an error for
    an h2 run that negotiated the wrong protocol."""
    if sc.is_grpc:
        return parse_ghz(log_file.read_text(errors="replace")), None
    if sc.tool == "wrk":
        parsed = parse_wrk(text)
        if not sc.latency_valid:
            parsed["latency_ms"] = {}
        return parsed, None
    parsed = parse_h2load_output(text)
    parsed["latency_ms"] = parse_h2load_log(log_file.read_text(errors="replace"))["latency_ms"]
    if sc.tool == "h2load-rate":
        parsed["target_rate"] = rate
        return parsed, None
    return parsed, check_h2load_protocol(sc, parsed)  # HTTP/2: percentiles from h2load's per-request log too


def measure(srv: Running, sc: Scenario, args: argparse.Namespace, body_file: Path, clk: int) -> dict[str, Any]:
    """Warm-up, then one timed run of an HTTP (wrk or h2load) or gRPC (ghz) scenario against the running server.
    CPU per request is the server's CPU over the timed run / the responses (gRPC: the calls that ended OK)."""
    port, cpus, thr = srv.port, args.client_cpus, args.client_threads
    env = wrk_env(sc, body_file)
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="covet-matrix-load-"))
    try:
        if args.warmup > 0:
            warm = load_command(sc, port, args.warmup, args.rate, cpus, thr, False, tmp / "warm.log")
            run_tool(warm, args.warmup + 60, env)
        cmd = load_command(sc, port, args.duration, args.rate, cpus, thr, True, tmp / "run.log")
        out["command"] = shlex.join(cmd).replace(str(REPO) + "/", "")
        before = srv.cpu_ticks()
        sampler = RssSampler(srv)
        sampler.start()
        code, text, client_cpu = run_tool(cmd, args.duration + 90, env)
        after = srv.cpu_ticks()
        out["peak_rss_kib"] = sampler.finish()
        out["client_cpu_s"] = round(client_cpu, 3)
        out["raw_tail"] = text[-1500:]
        if code != 0:
            out["error"] = f"{Path(cmd[3]).name} exited {code}: {text.strip()[-300:]}"
            if not srv.alive():
                out["error"] = f"server died under load ({out['error']}); its log: {srv.log_tail()}"
            return out
        parsed, wrong = _parse_http(sc, text, tmp / "run.log", args.rate)
        if wrong:
            out["error"] = wrong
            return out
        out.update({k: v for k, v in parsed.items() if k != "raw"})
        _add_cpu(out, before, after, clk, parsed.get("requests"))
        if sc.is_grpc and out["cpu_s_per_100k"] is not None:
            out["cpu_us_per_call"] = out["cpu_s_per_100k"] * 10  # CPU s per 100,000 calls -> CPU µs per call
        if parsed.get("bytes_read") and parsed.get("requests"):
            out["bytes_per_response"] = parsed["bytes_read"] / parsed["requests"]
        if not srv.alive():
            out["error"] = f"server died during the run: {srv.log_tail()}"
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _add_cpu(out: dict[str, Any], before: dict[int, int], after: dict[int, int], clk: int,
             requests: int | None) -> None:
    cpu_s = tree_cpu_delta_ticks(before, after) / clk
    out["cpu_s"] = round(cpu_s, 4)
    out["cpu_s_per_100k"] = cpu_s_per_100k(cpu_s, requests)


class _MarkWindow:
    """The server's CPU ticks and peak RSS between a tool's start/end mark lines (wsload's ``WSLOAD_MARK start``/
    ``end``, h3load's ``H3LOAD_MARK start``/``end``)."""

    def __init__(self, srv: Running, start: str = wsload.MARK_START, end: str = wsload.MARK_END,
                 counters: Callable[[], dict[str, int]] | None = None):
        self.srv = srv
        self.start, self.end = start, end
        self.counters = counters  # also read at the two marks (h3load: UDP drops, the server's and the machine's)
        self.counters_before: dict[str, int] | None = None
        self.counters_after: dict[str, int] | None = None
        self.before: dict[int, int] | None = None
        self.after: dict[int, int] | None = None
        self.peak_rss_kib: int | None = None
        self._sampler: RssSampler | None = None

    def see(self, line: str) -> None:
        mark = line.strip()
        if mark == self.start and self.before is None:
            self.before = self.srv.cpu_ticks()
            if self.counters is not None:
                self.counters_before = self.counters()
            self._sampler = RssSampler(self.srv)
            self._sampler.start()
        elif mark == self.end and self.before is not None and self.after is None:
            self.after = self.srv.cpu_ticks()
            if self.counters is not None:
                self.counters_after = self.counters()
            self.peak_rss_kib = self.close()

    def close(self) -> int | None:
        sampler, self._sampler = self._sampler, None
        return sampler.finish() if sampler is not None else None


def _run_marked(cmd: list[str], window: _MarkWindow, timeout: float) -> tuple[int, str, float]:
    """Run wsload or h3load, feeding its stdout lines to ``window`` as they come: (exit status, output, its CPU s)."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                                bufsize=1, errors="replace")
        killer = threading.Timer(timeout, lambda: proc.poll() is None and proc.kill())
        killer.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                window.see(line)
            proc.stdout.close()
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            killer.cancel()
            window.close()
        err.seek(0)
        text = "".join(lines) + err.read().decode("utf-8", "replace")
    return proc.returncode, text, ru.ru_utime + ru.ru_stime


def measure_ws(srv: Running, sc: Scenario, args: argparse.Namespace, clk: int,
               binary: Path = wsload.WSLOAD_BIN) -> dict[str, Any]:
    """One wsload run (it connects, warms up for --warmup, then times --duration): server CPU (/proc) and peak
    RSS are sampled exactly between its ``WSLOAD_MARK start``/``end`` lines, so connecting and warming up are
    not charged to the messages."""
    cmd = wsload.command(sc, srv.port, args.warmup, args.duration, args.client_cpus, binary)
    out: dict[str, Any] = {"command": shlex.join(cmd).replace(str(REPO) + "/", "")}
    window = _MarkWindow(srv)
    try:
        code, text, client_cpu = _run_marked(cmd, window, args.warmup + args.duration + 90)
        if window.peak_rss_kib is not None:
            out["peak_rss_kib"] = window.peak_rss_kib
        out["client_cpu_s"] = round(client_cpu, 3)  # the whole wsload process (connect + warm-up too)
        out["raw_tail"] = text[-1500:]
        parsed = wsload.parse_output(text)
        if code != 0:
            out["error"] = f"wsload exited {code}: {parsed.get('reason') or parsed.get('first_error')}"
        elif window.before is None or window.after is None:
            out["error"] = "wsload printed no timed window (WSLOAD_MARK start/end)"
        if out.get("error"):
            if not srv.alive():
                out["error"] = f"server died under load ({out['error']}); its log: {srv.log_tail()}"
            return out
        out.update(wsload.to_run(parsed))
        _add_cpu(out, window.before, window.after, clk, out.get("requests"))
        if not srv.alive():
            out["error"] = f"server died during the run: {srv.log_tail()}"
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def udp_drops(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int] | None:
    """How many datagrams UDP sockets dropped between two reads of the counters: ``server`` (the server's sockets,
    /proc/net/udp's drops of its port), and the machine's (/proc/net/snmp) ``rcvbuf`` (a receive buffer was full:
    the reader did not keep up), ``in_errors`` (every receive error) and ``in_datagrams`` (all received)."""
    if not before or not after or "RcvbufErrors" not in before or "RcvbufErrors" not in after:
        return None
    out = {"rcvbuf": after["RcvbufErrors"] - before["RcvbufErrors"],
           "in_errors": after.get("InErrors", 0) - before.get("InErrors", 0),
           "in_datagrams": after.get("InDatagrams", 0) - before.get("InDatagrams", 0)}
    if "ServerDrops" in before and "ServerDrops" in after:
        out["server"] = after["ServerDrops"] - before["ServerDrops"]
    return out


def h3_counters(srv: Running) -> dict[str, int]:
    """The machine's UDP counters and the drops of the server's UDP sockets (its port), read at h3load's marks."""
    return {**udp_counters(), "ServerDrops": udp_socket_drops(srv.port)}


def measure_h3(srv: Running, sc: Scenario, args: argparse.Namespace, clk: int, ca: Path,
               binary: Path = h3load.H3BENCH_BIN,
               counters: Callable[[], dict[str, int]] | None = None) -> dict[str, Any]:
    """One run of the HTTP/3 load generator ``binary`` (h3bench or h3load; it makes its QUIC connections, warms up
    for --warmup, then times --duration): server CPU (/proc) and peak RSS are sampled exactly between its
    ``H3LOAD_MARK start``/``end`` lines, so the handshakes and the warm-up are not charged to the requests; CPU per
    request is that CPU / the correct responses in the window. UDP drops over the same window are recorded
    (``udp_drops``: the server's sockets, and the machine's): QUIC over loopback loses packets only where a socket's
    receive buffer overflows, and every loss costs a retransmission and a congestion-window cut."""
    tool = "h3bench" if Path(binary).name == "h3bench" else "h3load"
    cmd = h3load.command(sc, srv.port, ca, args.warmup, args.duration, args.client_cpus, binary)
    out: dict[str, Any] = {"command": shlex.join(cmd).replace(str(REPO) + "/", "").replace(str(ca), "CA.pem")}
    window = _MarkWindow(srv, h3load.MARK_START, h3load.MARK_END, counters or (lambda: h3_counters(srv)))
    try:
        code, text, client_cpu = _run_marked(cmd, window, args.warmup + args.duration + 90)
        if window.peak_rss_kib is not None:
            out["peak_rss_kib"] = window.peak_rss_kib
        out["client_cpu_s"] = round(client_cpu, 3)  # the whole load process (handshakes + warm-up too)
        out["raw_tail"] = text[-1500:]
        parsed = h3load.parse_output(text, tool)
        if code != 0:
            out["error"] = f"{tool} exited {code}: {parsed.get('reason') or parsed.get('first_error')}"
        elif window.before is None or window.after is None:
            out["error"] = f"{tool} printed no timed window (H3LOAD_MARK start/end)"
        elif parsed.get("protocol") not in (None, "HTTP/3.0"):
            out["error"] = f"{tool}'s responses came over {parsed.get('protocol')}, not HTTP/3"
        elif not parsed.get("requests") and not parsed.get("errors_total"):
            out["error"] = (f"no response completed in the {parsed.get('duration_s', 0):.1f} s window "
                            f"({sc.connections * sc.streams} requests in flight); a longer --duration would show one")
        if out.get("error"):
            if not srv.alive():
                out["error"] = f"server died under load ({out['error']}); its log: {srv.log_tail()}"
            return out
        out.update(h3load.to_run(parsed))
        out["udp_drops"] = udp_drops(window.counters_before, window.counters_after)
        _add_cpu(out, window.before, window.after, clk, out.get("requests"))
        if out.get("bytes_read") and out.get("requests"):
            out["bytes_per_response"] = out["bytes_read"] / out["requests"]
        if not srv.alive():
            out["error"] = f"server died during the run: {srv.log_tail()}"
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out
