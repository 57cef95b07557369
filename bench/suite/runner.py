"""The matrix run: install peers, gate, interleave rounds, measure, write results/docs/chart."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import report
from .core import (
    BENCH, REPO, add_ratios, cpu_s_per_100k, estimate_seconds, fmt_duration, native_run, parse_cpu_list,
    parse_h2load_log, parse_h2load_output, parse_wrk_matrix, progress_line, python_run, summarize,
    summarize_pair, item_payload,
)
from . import tls as tls_mod
from . import wsload
from .scenarios import (
    Scenario, build_scenarios, curl_has_http2, gate, h2load_h2_command, h2load_rate_command, tls_handshake,
    wrk_command, wrk_env,
)
from .servers import (
    Ctx, InstallError, Running, ServerSpec, StartError, all_specs, covet_import_error, ensure_fresh_covet_venv,
    _raise_nofile,
)

DEFAULT_OUT = BENCH / "results"
DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"
DEFAULT_CHART = REPO / "docs" / "img" / "bench-matrix.png"
QUIET_FILE = Path("/tmp/covet-bench-quiet")
REFERENCES = ("fastapi", "nginx")
TOOLS_PY = BENCH / ".venvs" / "tools" / "bin" / "python"

# A 2 s timed run (after a 1 s warm-up) keeps the whole default matrix, peers installed from scratch included,
# under 30 minutes on a 2-core machine; three interleaved rounds give the spread.
DEFAULTS = {"duration": 2, "warmup": 1, "runs": 3, "cold_starts": 3, "tls_runs": 2, "ws_runs": 1}
QUICK = {"duration": 1, "warmup": 1, "runs": 1, "cold_starts": 1, "tls_runs": 1, "ws_runs": 1}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    specs = all_specs()
    sc_names = list(build_scenarios())
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="CovetPy benchmark matrix: servers x scenarios, pinned CPUs, interleaved rounds.",
    )
    ap.add_argument("--servers", default=",".join(specs), help=f"comma list (default all): {','.join(specs)}")
    ap.add_argument("--skip-servers", default="", help="comma list of servers to leave out")
    ap.add_argument("--scenarios", default=None, help=f"comma list (default all; --quick: a subset): {','.join(sc_names)}")
    ap.add_argument("--duration", type=int, default=None, help="timed run, whole seconds (default 2, --quick 1)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up before each timed run, s (default 1)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (repetitions) per pair (default 3, --quick 1)")
    ap.add_argument("--cold-starts", type=int, default=None, help="launches per server for cold start (default 3)")
    ap.add_argument("--tls-runs", type=int, default=None,
                    help="rounds of the TLS and HTTP/2 scenarios (https-plaintext, h2-plaintext, h2c-plaintext; "
                         "default 2, at most --runs): they run in the first N rounds only")
    ap.add_argument("--ws-runs", type=int, default=None,
                    help="rounds of the WebSocket scenarios (ws-echo, ws-broadcast; default 1, at most --runs; not in "
                         "--quick unless named): they run in the first N rounds only, on an instance of their own")
    ap.add_argument("--ws-window", type=int, default=None,
                    help="ws-broadcast: messages the publisher may have out before every subscriber has the oldest "
                         "(default 16; 1 = lockstep: message k+1 only once every subscriber has message k)")
    ap.add_argument("--connections", type=int, default=64, help="connections of the basic scenarios (default 64)")
    ap.add_argument("--keepalive", default="1000,10000", help="connection counts of the keep-alive scenarios")
    ap.add_argument("--rate", type=int, default=2000, help="open-loop request rate, req/s in total (default 2000)")
    ap.add_argument("--server-cpus", default="0", help="taskset list for servers (default 0)")
    ap.add_argument("--client-cpus", default="1", help="taskset list for wrk/h2load (default 1); one thread per CPU")
    ap.add_argument("--workers", type=int, default=1, help="worker processes/threads per server (default 1)")
    ap.add_argument("--quick", action="store_true", help="1 round of 1 s, fewer scenarios: under 5 minutes")
    ap.add_argument("--no-install", action="store_true", help="do not install/build peers; exclude missing ones")
    ap.add_argument("--covet-venv", choices=("auto", "fresh"), default="auto",
                    help="auto: reuse .venv when it has a complete covet (else fresh); fresh: pip install the repo "
                         "into bench/.venv-covet")
    ap.add_argument("--native-binary", default=None, help="CovetPy native hello binary")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--docs", default=str(DEFAULT_DOCS))
    ap.add_argument("--chart", default=str(DEFAULT_CHART))
    ap.add_argument("--no-docs", action="store_true", help="write bench/results only")
    ap.add_argument("--quiet-file", default=str(QUIET_FILE),
                    help="while this file exists, wait before any load run (another measurement is going on)")
    ap.add_argument("--render", metavar="JSON", help="re-render .md/docs/chart from a saved result, measuring nothing")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.tls_runs = max(1, min(args.tls_runs, args.runs))
    args.ws_runs = max(1, min(args.ws_runs, args.runs))
    if args.ws_window is not None and not 1 <= args.ws_window < 65536:
        ap.error("--ws-window must be in 1..65535")
    all_sc = build_scenarios(args.connections, tuple(int(x) for x in args.keepalive.split(",") if x),
                             **({"ws_window": args.ws_window} if args.ws_window else {}))
    if args.scenarios:
        names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [n for n in names if n not in all_sc]
        if unknown:
            ap.error(f"unknown scenarios {unknown}; known: {list(all_sc)}")
    else:
        names = [n for n, s in all_sc.items() if s.quick or not args.quick]
    args.scenario_list = [all_sc[n] for n in names]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip_servers.split(",") if s.strip()}
    unknown = [s for s in servers + list(skip) if s not in specs]
    if unknown:
        ap.error(f"unknown servers {unknown}; known: {list(specs)}")
    args.server_list = [s for s in servers if s not in skip]
    args.client_threads = len(parse_cpu_list(args.client_cpus))
    parse_cpu_list(args.server_cpus)
    return args


def wait_quiet(path: Path) -> float:
    """Poll every 20 s while ``path`` exists; returns the seconds waited."""
    t0 = time.monotonic()
    announced = False
    while path.exists():
        if not announced:
            log(f"  {path} exists: another measurement is running, waiting (polling every 20 s)")
            announced = True
        time.sleep(20)
    return time.monotonic() - t0


class RssSampler(threading.Thread):
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


def _run_tool(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return native_run.run_wrk(cmd, timeout)  # generic: exit status, output, the tool's CPU seconds
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_h2load_protocol(sc: Scenario, parsed: dict[str, Any]) -> str | None:
    """h2load must have spoken what the scenario is about (h2 by ALPN over TLS, h2c in cleartext)."""
    want = "h2" if sc.tls else "h2c"
    got = parsed.get("protocol")
    if got != want:
        return f"h2load negotiated {got or 'no application protocol'}, not {want}"
    return None


def measure(srv: Running, sc: Scenario, args: argparse.Namespace, body_file: Path, clk: int) -> dict[str, Any]:
    """Warm-up, then one timed run of ``sc`` against the running server."""
    port, cpus, thr = srv.port, args.client_cpus, args.client_threads
    env = wrk_env(sc, body_file)
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="covet-matrix-load-"))
    try:
        if args.warmup > 0:
            if sc.tool == "wrk":
                warm = wrk_command(sc, port, args.warmup, cpus, thr, timed=False)
            elif sc.tool == "h2load-rate":
                warm = h2load_rate_command(sc, port, args.warmup, args.rate, cpus, thr, tmp / "warm.log")
            else:
                warm = h2load_h2_command(sc, port, args.warmup, cpus, thr)
            _run_tool(warm, args.warmup + 30, env)
        if sc.tool == "wrk":
            cmd = wrk_command(sc, port, args.duration, cpus, thr, timed=True)
        elif sc.tool == "h2load-rate":
            cmd = h2load_rate_command(sc, port, args.duration, args.rate, cpus, thr, tmp / "run.log")
        else:
            cmd = h2load_h2_command(sc, port, args.duration, cpus, thr, tmp / "run.log")
        out["command"] = shlex.join(cmd).replace(str(REPO) + "/", "")
        before = srv.cpu_ticks()
        sampler = RssSampler(srv)
        sampler.start()
        code, text, client_cpu = _run_tool(cmd, args.duration + 60, env)
        after = srv.cpu_ticks()
        out["peak_rss_kib"] = sampler.finish()
        out["client_cpu_s"] = round(client_cpu, 3)
        out["raw_tail"] = text[-1500:]
        if code != 0:
            out["error"] = f"{cmd[3]} exited {code}: {text.strip()[-300:]}"
            if not srv.alive():
                out["error"] = f"server died under load ({out['error']}); its log: {srv.log_tail()}"
            return out
        if sc.tool == "wrk":
            parsed = parse_wrk_matrix(text)
            if not sc.latency_valid:
                parsed["latency_ms"] = {}
        else:
            parsed = parse_h2load_output(text)
            if sc.tool == "h2load-rate":
                lat = parse_h2load_log((tmp / "run.log").read_text(errors="replace"))
                parsed["latency_ms"] = lat["latency_ms"]
                parsed["target_rate"] = args.rate
            else:  # HTTP/2: percentiles from h2load's per-request log as well
                lat = parse_h2load_log((tmp / "run.log").read_text(errors="replace"))
                parsed["latency_ms"] = lat["latency_ms"]
                wrong = check_h2load_protocol(sc, parsed)
                if wrong:
                    out["error"] = wrong
                    return out
        out.update({k: v for k, v in parsed.items() if k != "raw"})
        cpu_s = native_run.tree_cpu_delta_ticks(before, after) / clk
        out["cpu_s"] = round(cpu_s, 4)
        out["cpu_s_per_100k"] = cpu_s_per_100k(cpu_s, parsed.get("requests"))
        if parsed.get("bytes_read") and parsed.get("requests"):
            out["bytes_per_response"] = parsed["bytes_read"] / parsed["requests"]
        if not srv.alive():
            out["error"] = f"server died during the run: {srv.log_tail()}"
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def measure_ws(srv: Running, sc: Scenario, args: argparse.Namespace, clk: int,
               binary: Path = wsload.WSLOAD_BIN) -> dict[str, Any]:
    """One wsload run (it connects, warms up for --warmup, then times --duration): server CPU (/proc) and peak
    RSS are sampled exactly between its ``WSLOAD_MARK start``/``end`` lines, so connecting and warming up are
    not charged to the messages."""
    cmd = wsload.command(sc, srv.port, args.warmup, args.duration, args.client_cpus, binary)
    out: dict[str, Any] = {"command": shlex.join(cmd).replace(str(REPO) + "/", "")}
    before = after = None
    sampler: RssSampler | None = None
    lines: list[str] = []
    status = 0
    ru = None
    try:
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                                    bufsize=1, errors="replace")
            killer = threading.Timer(args.warmup + args.duration + 90, lambda: proc.poll() is None and proc.kill())
            killer.start()
            try:
                for line in proc.stdout:
                    lines.append(line)
                    mark = line.strip()
                    if mark == wsload.MARK_START and before is None:
                        before = srv.cpu_ticks()
                        sampler = RssSampler(srv)
                        sampler.start()
                    elif mark == wsload.MARK_END and before is not None and after is None:
                        after = srv.cpu_ticks()
                        out["peak_rss_kib"] = sampler.finish()
                        sampler = None
                proc.stdout.close()
                _, status, ru = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            finally:
                killer.cancel()
                if sampler is not None:
                    sampler.finish()
            err.seek(0)
            text = "".join(lines) + err.read().decode("utf-8", "replace")
        out["client_cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)  # the whole wsload process (connect + warm-up too)
        out["raw_tail"] = text[-1500:]
        parsed = wsload.parse_output(text)
        if proc.returncode != 0:
            out["error"] = f"wsload exited {proc.returncode}: {parsed.get('reason') or parsed.get('first_error')}"
        elif before is None or after is None:
            out["error"] = "wsload printed no timed window (WSLOAD_MARK start/end)"
        if out.get("error"):
            if not srv.alive():
                out["error"] = f"server died under load ({out['error']}); its log: {srv.log_tail()}"
            return out
        out.update(wsload.to_run(parsed))
        cpu_s = native_run.tree_cpu_delta_ticks(before, after) / clk
        out["cpu_s"] = round(cpu_s, 4)
        out["cpu_s_per_100k"] = cpu_s_per_100k(cpu_s, out.get("requests"))
        if not srv.alive():
            out["error"] = f"server died during the run: {srv.log_tail()}"
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def reduced_rounds(sc: Scenario) -> bool:
    """TLS and HTTP/2 scenarios run in the first --tls-runs rounds only, WebSocket ones in the first --ws-runs
    (to keep the default run short)."""
    return sc.tls or sc.tool == "h2load-h2" or sc.is_ws


def runs_of(sc: Scenario, args: argparse.Namespace) -> int:
    if sc.is_ws:
        return args.ws_runs
    return args.tls_runs if reduced_rounds(sc) else args.runs


def unsupported_pairs(spec: ServerSpec, scen: list[Scenario], *, have_h2load: bool, have_curl_h2: bool,
                      tls_error: str | None, wsload_error: str | None = None) -> dict[str, str]:
    """scenario -> why ``spec`` sits it out before anything is started: the server's own reasons
    (``unsupported``), a TLS scenario without a TLS configuration, missing tools, no certificate, no wsload."""
    out: dict[str, str] = {}
    for sc in scen:
        reason = spec.unsupported.get(sc.name)
        if reason is None and sc.is_ws and wsload_error:
            reason = f"no WebSocket load generator: {wsload_error}"
        if reason is None and sc.tls and spec.tls_command is None:
            reason = f"no TLS configuration for {spec.name} in the suite"
        if reason is None and sc.tool.startswith("h2load") and not have_h2load:
            reason = "h2load not installed (apt-get install nghttp2-client)"
        if reason is None and sc.tool == "h2load-h2" and not have_curl_h2:
            reason = "curl with HTTP/2 not installed (the HTTP/2 correctness gate uses it)"
        if reason is None and sc.tls and tls_error:
            reason = f"no certificate for the run: {tls_error}"
        if reason is not None:
            out[sc.name] = reason
    return out


def choose_covet_python(args: argparse.Namespace, ctx: Ctx) -> None:
    # A fresh clone has no .venv: then (or when its covet doesn't import) the checkout goes into bench/.venv-covet.
    if args.covet_venv == "auto" and covet_import_error(python_run.COVET_PYTHON) is None:
        ctx.covet_python = python_run.COVET_PYTHON
        ctx.covet_python_choice = ("reused the repo's .venv (its covet imports with the native module); "
                                   "`--covet-venv fresh` pip-installs the checkout into bench/.venv-covet")
        return
    if args.no_install:
        ctx.covet_python_choice = "no complete covet in .venv and --no-install given"
        return
    try:
        wait_quiet(Path(args.quiet_file))
        ctx.covet_python = ensure_fresh_covet_venv(ctx)
        ctx.covet_python_choice = "pip-installed this checkout into bench/.venv-covet (build dir bench/.build-covet)"
    except InstallError as exc:
        ctx.covet_python_choice = f"fresh install failed: {exc}"


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    """`kill` (or a CI timeout) ends the run like Ctrl-C: servers under test are stopped, what was measured is kept."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        return render_saved(Path(args.render), args)
    t_start = time.monotonic()
    _raise_nofile()
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            log(f"error: {tool} is not installed (apt-get install wrk util-linux)")
            return 2
    specs = all_specs()
    ctx = Ctx(server_cpus=args.server_cpus, workers=args.workers, log=log,
              native_binary=Path(args.native_binary).resolve() if args.native_binary else None)
    quiet = Path(args.quiet_file)
    excluded: dict[str, str] = {}  # server -> reason
    pair_excluded: dict[tuple[str, str], str] = {}
    versions: dict[str, Any] = {}
    if any(s.startswith("covet-") and s != "covet-native" for s in args.server_list):
        choose_covet_python(args, ctx)

    # ---- install ------------------------------------------------------------------------------
    log(f"installing/checking {len(args.server_list)} servers")
    for name in args.server_list:
        spec = specs[name]
        if args.workers > 1 and not spec.multi_worker:
            excluded[name] = f"no multi-worker configuration in the suite for {name}"
            continue
        try:
            if args.no_install and name not in ("covet-async", "covet-sync"):
                probe = Running(spec, ctx)
                exe = spec.command(ctx, 0)[0]
                probe.cleanup()
                if not Path(exe).exists() and not shutil.which(exe):
                    raise InstallError(f"{exe} not installed (--no-install)")
            else:
                if name in ("actix", "covet-native"):
                    wait_quiet(quiet)  # heavy builds respect the quiet protocol too
                spec.install(ctx)
            versions[name] = spec.versions(ctx)
        except (InstallError, OSError, subprocess.SubprocessError) as exc:
            excluded[name] = f"install failed: {exc}"
            log(f"  excluded {name}: {excluded[name]}")
    if not args.no_install:
        ensure_tools_venv()  # matplotlib for the chart, installed now so that its version is recorded with the rest
    tool_versions = {
        "wrk": native_run.machine_info(specs["nginx"].command(ctx, 0)[0])["wrk_version"],
        "h2load": (native_run._cmd_output(["h2load", "--version"]).splitlines() or ["missing"])[0]
        if shutil.which("h2load") else "missing",
        "matplotlib": python_run.package_versions(TOOLS_PY, ("matplotlib",)).get("matplotlib")
        if TOOLS_PY.exists() else "missing",
    }
    have_h2load = bool(shutil.which("h2load"))
    tls_files: tls_mod.TlsFiles | None = None
    tls_error: str | None = None
    tls_dir: Path | None = None
    if any(s.tls for s in args.scenario_list):
        tls_dir = Path(tempfile.mkdtemp(prefix="covet-matrix-tls-"))
        try:
            tls_files = tls_mod.generate(tls_dir)
            log(f"TLS: generated a throw-away CA and a {tls_files.key_type} server certificate in {tls_dir}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            tls_error = str(exc)
            log(f"TLS scenarios excluded: {tls_error}")
    have_curl_h2 = curl_has_http2()
    wsload_error: str | None = None
    if any(s.is_ws for s in args.scenario_list):
        try:
            if not args.no_install:
                wsload.build(log)
            elif not wsload.WSLOAD_BIN.exists():
                raise wsload.WsloadError(f"{wsload.WSLOAD_BIN.relative_to(REPO)} not built (--no-install)")
            tool_versions["wsload"] = wsload.versions()
        except (wsload.WsloadError, OSError, subprocess.SubprocessError) as exc:
            wsload_error = str(exc)
            log(f"WebSocket scenarios excluded: {wsload_error}")
    tool_versions["openssl"] = tls_mod.openssl_version()
    tool_versions["curl"] = " ".join(native_run._cmd_output(["curl", "--version"]).split()[:2]) \
        if shutil.which("curl") else "missing"
    for name in args.server_list:
        for sc_name, reason in unsupported_pairs(specs[name], args.scenario_list, have_h2load=have_h2load,
                                                 have_curl_h2=have_curl_h2, tls_error=tls_error,
                                                 wsload_error=wsload_error).items():
            pair_excluded.setdefault((name, sc_name), reason)

    servers = [n for n in args.server_list if n not in excluded]
    scen = args.scenario_list
    pairs = [(n, s) for n in servers for s in scen if (n, s.name) not in pair_excluded]
    total_steps = sum(runs_of(s, args) for _, s in pairs) + len(servers) * args.cold_starts
    tls_servers = {n for n, s in pairs if s.tls}
    ws_servers = {n for n, s in pairs if s.is_ws}
    est = estimate_seconds(len(servers), len(pairs), args.runs, args.warmup, args.duration, args.cold_starts,
                           tls_servers=len(tls_servers),
                           tls_pairs=sum(1 for _, s in pairs if reduced_rounds(s) and not s.is_ws),
                           tls_runs=args.tls_runs, ws_servers=len(ws_servers),
                           ws_pairs=sum(1 for _, s in pairs if s.is_ws), ws_runs=args.ws_runs)
    setup_seconds = time.monotonic() - t_start
    log(f"installs and checks took {fmt_duration(setup_seconds)}")
    log(f"matrix: {len(servers)} servers x {len(scen)} scenarios = {len(pairs)} pairs, {args.runs} round(s) of "
        f"{args.warmup}+{args.duration} s (TLS/HTTP/2 scenarios: {args.tls_runs} round(s), {len(tls_servers)} "
        f"servers started a second time with TLS; WebSocket scenarios: {args.ws_runs} round(s), {len(ws_servers)} "
        f"servers started once more for them); estimated {fmt_duration(est)} (plus any quiet-protocol waits)")

    body_file = Path(tempfile.mkstemp(prefix="covet-matrix-item-", suffix=".json")[1])
    body_file.write_bytes(item_payload())
    clk = os.sysconf("SC_CLK_TCK")
    runs: list[dict[str, Any]] = []
    idle: dict[str, list[int]] = {n: [] for n in servers}
    cold: dict[str, list[float]] = {n: [] for n in servers}
    commands: dict[str, str] = {}
    tls_seen: dict[str, dict[str, Any]] = {}  # "server/scenario" -> the gate's TLS handshake
    done = 0
    waited = 0.0
    t_loop = time.monotonic()

    def step(label: str) -> None:
        nonlocal done
        done += 1
        log(progress_line(done, total_steps, time.monotonic() - t_loop - waited, label))

    def run_instance(name: str, rnd: int, todo: list[Scenario], tls: tls_mod.TlsFiles | None,
                     ws: bool = False) -> None:
        """Start ``name`` once (plain, with the run's certificate, or for the WebSocket scenarios), gate and
        measure ``todo`` on it."""
        nonlocal total_steps, waited
        srv = Running(specs[name], ctx, tls, ws=ws)
        commands[f"{name} (TLS)" if tls is not None else f"{name} (WebSocket)" if ws else name] = srv.describe()
        what = " with TLS" if tls is not None else " for WebSocket" if ws else ""
        try:
            try:
                waited += wait_quiet(quiet)
                srv.start()
            except StartError as exc:
                if tls is not None:  # the run's temp paths say nothing
                    exc = StartError(str(exc).replace(str(tls.cert), "CERT.pem").replace(str(tls.key), "KEY.pem"))
                if rnd == 1 and tls is None and not ws:
                    excluded[name] = f"does not start: {exc}"
                    log(f"  excluded {name}: {excluded[name]}")
                    total_steps -= sum(runs_of(s, args) for n, s in pairs if n == name) + args.cold_starts
                elif rnd == 1:
                    for s in todo:
                        pair_excluded[(name, s.name)] = f"does not start{what}: {exc}"
                        total_steps -= runs_of(s, args)
                    log(f"  excluded {name} / {','.join(s.name for s in todo)}: does not start{what}: {exc}")
                else:
                    for s in todo:
                        runs.append({"server": name, "scenario": s.name, "round": rnd,
                                     "error": f"start{what} failed: {exc}"})
                        step(f"round {rnd} {name} {s.name}: start{what} failed")
                return
            if tls is None and not ws:
                time.sleep(0.5)
                idle[name].append(srv.rss_kib())
            for s in todo:
                if (name, s.name) in pair_excluded:
                    continue
                if not srv.alive():
                    try:
                        srv.start()
                    except StartError as exc:
                        runs.append({"server": name, "scenario": s.name, "round": rnd,
                                     "error": f"restart{what} failed: {exc}"})
                        step(f"round {rnd} {name} {s.name}: restart failed")
                        continue
                ok, reason = gate(srv.port, s, tls)
                if not ok:
                    if rnd == 1:
                        pair_excluded[(name, s.name)] = f"correctness gate: {reason}"
                        total_steps -= runs_of(s, args)
                        log(f"  excluded {name} / {s.name}: {reason}")
                    else:
                        runs.append({"server": name, "scenario": s.name, "round": rnd,
                                     "error": f"correctness gate failed: {reason}"})
                        step(f"round {rnd} {name} {s.name}: gate failed")
                    continue
                if s.tls and f"{name}/{s.name}" not in tls_seen:
                    alpn = ["h2", "http/1.1"] if s.tool == "h2load-h2" else ["http/1.1"]
                    tls_seen[f"{name}/{s.name}"] = tls_handshake(srv.port, tls, alpn)
                if quiet.exists():
                    # nothing of ours runs while someone else measures, not even an idle server
                    srv.stop()
                    waited += wait_quiet(quiet)
                    try:
                        srv.start()
                    except StartError as exc:
                        runs.append({"server": name, "scenario": s.name, "round": rnd,
                                     "error": f"restart after waiting failed: {exc}"})
                        step(f"round {rnd} {name} {s.name}: restart failed")
                        continue
                r = measure_ws(srv, s, args, clk) if s.is_ws else measure(srv, s, args, body_file, clk)
                r.update({"server": name, "scenario": s.name, "round": rnd})
                runs.append(r)
                rps = r.get("requests_per_sec")
                unit = "msg/s" if s.is_ws else "req/s"
                step(f"round {rnd}/{runs_of(s, args)} {name} {s.name}: "
                     + (f"{rps:,.0f} {unit}" if rps and not r.get("error") else r.get("error", "?")[:80]))
        finally:
            srv.cleanup()

    try:
        for rnd in range(1, args.runs + 1):
            for name in servers:
                if name in excluded:
                    continue
                todo = [s for s in scen if (name, s.name) not in pair_excluded and rnd <= runs_of(s, args)]
                plain = [s for s in todo if not s.tls and not s.is_ws]
                if plain:
                    run_instance(name, rnd, plain, None)
                secure = [s for s in todo if s.tls and (name, s.name) not in pair_excluded]
                if secure and name not in excluded:
                    run_instance(name, rnd, secure, tls_files)
                sockets = [s for s in todo if s.is_ws and (name, s.name) not in pair_excluded]
                if sockets and name not in excluded:
                    run_instance(name, rnd, sockets, None, ws=True)
        # ---- cold start (launch -> first 200 OK) and idle RSS of fresh processes ------------------
        for name in servers:
            if name in excluded:
                continue
            for _ in range(args.cold_starts):
                waited += wait_quiet(quiet)
                srv = Running(specs[name], ctx)
                try:
                    cold[name].append(srv.start())
                    time.sleep(0.5)
                    idle[name].append(srv.rss_kib())
                    step(f"cold start {name}: {cold[name][-1]:.0f} ms")
                except StartError as exc:
                    step(f"cold start {name}: {exc}")
                finally:
                    srv.cleanup()
                time.sleep(0.2)
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
    finally:
        body_file.unlink(missing_ok=True)
        if tls_dir is not None:
            shutil.rmtree(tls_dir, ignore_errors=True)

    # ---- summary ------------------------------------------------------------------------------
    rows = []
    for name in args.server_list:
        for s in scen:
            key = (name, s.name)
            row: dict[str, Any] = {"server": name, "scenario": s.name}
            if name in excluded:
                row["excluded"] = excluded[name]
            elif key in pair_excluded:
                row["excluded"] = pair_excluded[key]
            else:
                row.update(summarize_pair([r for r in runs if r["server"] == name and r["scenario"] == s.name]))
            rows.append(row)
    add_ratios(rows, REFERENCES)
    per_server = {
        n: {"idle_rss_kib": summarize(idle.get(n, [])), "cold_start_ms": summarize(cold.get(n, []))}
        for n in args.server_list
    }
    wall = time.monotonic() - t_start
    result = {
        "kind": "matrix",
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": native_run.git_revision(),
        "argv": ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)],
        "options": {k: getattr(args, k) for k in ("duration", "warmup", "runs", "cold_starts", "connections",
                                                  "keepalive", "rate", "server_cpus", "client_cpus", "workers",
                                                  "quick", "tls_runs", "ws_runs")},
        "machine": native_run.machine_info(specs["nginx"].command(ctx, 0)[0]),
        "tools": tool_versions,
        "covet_python": {"interpreter": str(ctx.covet_python), "choice": ctx.covet_python_choice},
        "servers": {n: {"label": specs[n].label, "config": specs[n].config, "command": commands.get(n),
                        "tls_command": commands.get(f"{n} (TLS)"),
                        "ws_command": commands.get(f"{n} (WebSocket)"),
                        "versions": versions.get(n), "excluded": excluded.get(n)} for n in args.server_list},
        "scenarios": [{"name": s.name, "title": s.title, "path": s.path, "method": s.method, "tool": s.tool,
                       "connections": s.connections, "pipeline": s.pipeline, "tls": s.tls, "streams": s.streams,
                       "protocol": s.protocol, "runs": runs_of(s, args),
                       **({"ws": s.ws, "size": s.size, "inflight": s.inflight, "subscribers": s.subscribers,
                           "window": s.window} if s.is_ws else {})} for s in scen],
        "tls": None if tls_files is None and tls_error is None else {
            **(tls_files.describe() if tls_files else {"error": tls_error}),
            "handshakes": tls_seen,  # the gate's own handshake (Python ssl, ALPN as the scenario's client)
            "h2load": {f"{r['server']}/{r['scenario']}": r["tls"] for r in runs if r.get("tls")},
        },
        "references": list(REFERENCES),
        "summary": rows,
        "per_server": per_server,
        "runs": runs,
        "wall_seconds": round(wall, 1),
        "quiet_wait_seconds": round(waited, 1),
        "setup_seconds": round(setup_seconds, 1),
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["date_utc"].replace("-", "").replace(":", "")
    json_path = out_dir / f"matrix-{stamp}.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {native_run.display_path(json_path)} (wall time {fmt_duration(wall)})")
    write_outputs(result, json_path, args)
    return 0


def write_outputs(result: dict[str, Any], json_path: Path, args: argparse.Namespace) -> None:
    chart = Path(args.chart)
    chart_ok = False
    if not args.no_docs:
        chart_ok = render_chart(json_path, chart)
    md = report.render_markdown(result, json_path=native_run.display_path(json_path),
                                chart=chart if chart_ok else None, docs=Path(args.docs))
    md_path = json_path.with_suffix(".md")
    md_path.write_text(md + "\n")
    print(md)
    if not args.no_docs:
        docs = Path(args.docs)
        old = docs.read_text() if docs.exists() else None
        docs.write_text(native_run.replace_section(old, md, report.SECTION_START, report.SECTION_END,
                                                   header="# CovetPy benchmarks"))
        log(f"updated {native_run.display_path(docs)} between {report.SECTION_START} / {report.SECTION_END}")


def ensure_tools_venv() -> bool:
    from .servers import ensure_venv
    try:
        ensure_venv("tools", Ctx(log=log))
        return True
    except InstallError as exc:
        log(f"chart skipped: {exc}")
        return False


def render_chart(json_path: Path, png: Path) -> bool:
    if not ensure_tools_venv():
        return False
    png.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([str(TOOLS_PY), str(Path(__file__).resolve().parent / "chart.py"), str(json_path), str(png)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        log(f"chart failed: {p.stderr.strip()[-400:]}")
        return False
    log(f"wrote {native_run.display_path(png)}")
    return True


def render_saved(json_path: Path, args: argparse.Namespace) -> int:
    result = json.loads(json_path.read_text())
    write_outputs(result, json_path, args)
    return 0
