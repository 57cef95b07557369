"""One timed run of a scenario against a running server: the load generator's figures, the server's CPU time
(/proc, its whole process tree) over exactly the timed window, and its peak RSS sampled during it. HTTP and gRPC
(ghz) runs go through ``measure``, WebSocket ones through ``measure_ws``."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import REPO, wsload
from .loadgen import load_command, parse_ghz, parse_h2load_log, parse_h2load_output, parse_wrk, run_tool, wrk_env
from .scenarios import Scenario
from .servers import Running
from .summary import cpu_s_per_100k
from .system import tree_cpu_delta_ticks


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


class _WsWindow:
    """The server's CPU ticks and peak RSS between wsload's ``WSLOAD_MARK start``/``end`` lines."""

    def __init__(self, srv: Running):
        self.srv = srv
        self.before: dict[int, int] | None = None
        self.after: dict[int, int] | None = None
        self.peak_rss_kib: int | None = None
        self._sampler: RssSampler | None = None

    def see(self, line: str) -> None:
        mark = line.strip()
        if mark == wsload.MARK_START and self.before is None:
            self.before = self.srv.cpu_ticks()
            self._sampler = RssSampler(self.srv)
            self._sampler.start()
        elif mark == wsload.MARK_END and self.before is not None and self.after is None:
            self.after = self.srv.cpu_ticks()
            self.peak_rss_kib = self.close()

    def close(self) -> int | None:
        sampler, self._sampler = self._sampler, None
        return sampler.finish() if sampler is not None else None


def _run_wsload(cmd: list[str], window: _WsWindow, timeout: float) -> tuple[int, str, float]:
    """Run wsload, feeding its stdout lines to ``window`` as they come: (exit status, output, its CPU s)."""
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
    window = _WsWindow(srv)
    try:
        code, text, client_cpu = _run_wsload(cmd, window, args.warmup + args.duration + 90)
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
