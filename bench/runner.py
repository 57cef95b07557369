"""The run of `python -m bench`: install and check the servers and tools, plan the pairs, run the interleaved
rounds (each server started fresh once per round, gated, then measured scenario by scenario; its TLS, HTTP/3,
WebSocket and gRPC instances after its plain one), the cold starts, then write the results JSON, its Markdown, the docs
section and the chart."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import BENCH, REPO, h3load, loadgen, report
from . import tls as tls_mod
from . import wsload
from .cli import parse_args
from .measure import measure, measure_h3, measure_ws
from .scenarios import Scenario, curl_has_http2, gate, item_payload, tls_handshake
from .servers import (
    COVET_PYTHON, GRPC_PYTHON, Ctx, InstallError, Running, ServerSpec, StartError, all_specs, covet_import_error,
    ensure_fresh_covet_venv, ensure_grpc_python, ensure_venv, raise_nofile,
)
from .summary import estimate_seconds, fmt_duration, progress_line, summarize, summary_rows
from .system import cmd_output, display_path, git_revision, machine_info, package_versions

REFERENCES = ("fastapi", "nginx")
TOOLS_PY = BENCH / ".venvs" / "tools" / "bin" / "python"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def reduced_rounds(sc: Scenario) -> bool:
    """TLS and HTTP/2 scenarios run in the first --tls-runs rounds only, WebSocket ones in the first --ws-runs
    (to keep the default run short)."""
    return sc.tls or sc.tool == "h2load-h2" or sc.is_ws


def runs_of(sc: Scenario, args: argparse.Namespace) -> int:
    if sc.is_ws:
        return args.ws_runs
    return args.tls_runs if reduced_rounds(sc) else args.runs


def round_env(args: argparse.Namespace, rnd: int) -> dict[str, str]:
    """What every server of round ``rnd`` gets in its environment on top of its own. --overhead: the round's hash
    seed, the same for each configuration, so that a cost is read from pairs that differ only in the configuration.
    A process's random seed alone moved a Python request by up to ~1.3K instructions (its dicts' probe sequences;
    docs/benchmarks.md, "Observability overhead"), the size of the costs measured."""
    return {"PYTHONHASHSEED": str(rnd)} if getattr(args, "overhead", False) else {}


def unsupported_pairs(spec: ServerSpec, scen: list[Scenario], *, have_h2load: bool, have_curl_h2: bool,
                      tls_error: str | None, wsload_error: str | None = None,
                      grpc_error: str | None = None, h3load_error: str | None = None) -> dict[str, str]:
    """scenario -> why ``spec`` sits it out before anything is started: the server's own reasons
    (``unsupported``), an HTTP scenario for a gRPC peer, a cleartext one for an HTTP/3 peer, a gRPC scenario for a
    server without a gRPC service, an HTTP/3 one for a server without HTTP/3, a TLS scenario without a TLS
    configuration, missing tools, no certificate, no wsload, no ghz, no h3load."""
    out: dict[str, str] = {}
    for sc in scen:
        reason = spec.unsupported.get(sc.name)
        if reason is None and not sc.is_grpc and not spec.serves_http:
            reason = f"{spec.name} is a gRPC peer: it serves the Greeter over gRPC only"
        if reason is None and sc.is_h3 and spec.h3_command is None:
            reason = f"no HTTP/3 configuration for {spec.name} in the suite"
        if reason is None and sc.is_h3 and h3load_error:
            reason = f"no HTTP/3 load generator: {h3load_error}"
        if reason is None and sc.is_grpc and spec.grpc_command is None:
            reason = f"no gRPC service in the suite's {spec.name} peer (it serves the HTTP routes only)"
        if reason is None and spec.h3_peer and not sc.tls:
            reason = (f"{spec.name} is an HTTP/3 peer: it serves the TLS scenarios only (HTTP/3, and h2 on an "
                      "instance without it)")
        if reason is None and sc.is_grpc and grpc_error:
            reason = f"no gRPC load generator or gate: {grpc_error}"
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
    if args.covet_venv == "auto" and covet_import_error(COVET_PYTHON) is None:
        ctx.covet_python = COVET_PYTHON
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


class Matrix:
    """The state of one run: what is excluded (and why), the measured runs, cold starts, idle RSS, commands,
    and the progress counters. ``main`` drives it: setup → plan → rounds → cold starts → result."""

    def __init__(self, args: argparse.Namespace, t_start: float):
        self.args = args
        self.t_start = t_start
        self.specs = all_specs()
        self.ctx = Ctx(server_cpus=args.server_cpus, workers=args.workers, log=log,
                       native_binary=Path(args.native_binary).resolve() if args.native_binary else None)
        self.quiet = Path(args.quiet_file)
        self.excluded: dict[str, str] = {}  # server -> reason
        self.pair_excluded: dict[tuple[str, str], str] = {}
        self.versions: dict[str, Any] = {}
        self.tool_versions: dict[str, str] = {}
        self.tls_files: tls_mod.TlsFiles | None = None
        self.tls_error: str | None = None
        self.tls_dir: Path | None = None
        self.runs: list[dict[str, Any]] = []
        self.idle: dict[str, list[int]] = {}
        self.cold: dict[str, list[float]] = {}
        self.commands: dict[str, str] = {}
        self.tls_seen: dict[str, dict[str, Any]] = {}  # "server/scenario" -> the gate's TLS handshake
        self.servers: list[str] = []
        self.pairs: list[tuple[str, Scenario]] = []
        self.total_steps = 0
        self.done = 0
        self.waited = 0.0
        self.setup_seconds = 0.0
        self.t_loop = 0.0

    # ---- setup: servers, tools, certificate, wsload --------------------------------------------------

    def setup(self) -> None:
        if any(s.startswith("covet-") and s != "covet-native" for s in self.args.server_list):
            choose_covet_python(self.args, self.ctx)
        self.install_servers()
        if not self.args.no_install:
            ensure_tools_venv()  # matplotlib for the chart, installed now so that its version is recorded with the rest
        self.tool_versions = {
            "wrk": machine_info(self.nginx_exe())["wrk_version"],
            "h2load": (cmd_output(["h2load", "--version"]).splitlines() or ["missing"])[0]
            if shutil.which("h2load") else "missing",
            "matplotlib": package_versions(TOOLS_PY, ("matplotlib",)).get("matplotlib")
            if TOOLS_PY.exists() else "missing",
        }
        self.make_certificate()
        wsload_error = self.build_wsload()
        grpc_error = self.build_grpc_tools()
        h3load_error = self.build_h3load()
        self.tool_versions["openssl"] = tls_mod.openssl_version()
        self.tool_versions["curl"] = " ".join(cmd_output(["curl", "--version"]).split()[:2]) \
            if shutil.which("curl") else "missing"
        have_h2load, have_curl_h2 = bool(shutil.which("h2load")), curl_has_http2()
        for name in self.args.server_list:
            for sc_name, reason in unsupported_pairs(self.specs[name], self.args.scenario_list,
                                                     have_h2load=have_h2load, have_curl_h2=have_curl_h2,
                                                     tls_error=self.tls_error, wsload_error=wsload_error,
                                                     grpc_error=grpc_error, h3load_error=h3load_error).items():
                self.pair_excluded.setdefault((name, sc_name), reason)
        self.install_grpc_instances()

    def nginx_exe(self) -> str:
        return self.specs["nginx"].command(self.ctx, 0)[0]

    def install_servers(self) -> None:
        log(f"installing/checking {len(self.args.server_list)} servers")
        for name in self.args.server_list:
            spec = self.specs[name]
            if self.args.workers > 1 and not spec.multi_worker:
                self.excluded[name] = f"no multi-worker configuration in the suite for {name}"
                continue
            try:
                self.install_one(spec)
                self.versions[name] = spec.versions(self.ctx)
            except (InstallError, OSError, subprocess.SubprocessError) as exc:
                self.excluded[name] = f"install failed: {exc}"
                log(f"  excluded {name}: {self.excluded[name]}")

    def install_one(self, spec: ServerSpec) -> None:
        if self.args.no_install and spec.name not in ("covet-async", "covet-sync"):
            require_installed(spec.command(self.ctx, 0)[0])
            return
        if spec.name in HEAVY_BUILDS:
            wait_quiet(self.quiet)  # heavy builds respect the quiet protocol too
        spec.install(self.ctx)

    def install_grpc_instances(self) -> None:
        """What the gRPC instances of servers that also serve HTTP need (CovetPy's Greeters); when it cannot be
        had, their gRPC scenarios are excluded with the reason."""
        grpc = [s.name for s in self.args.scenario_list if s.is_grpc]
        for name in self.args.server_list:
            spec = self.specs[name]
            if name in self.excluded or spec.grpc_install is None or all((name, s) in self.pair_excluded
                                                                         for s in grpc):
                continue
            try:
                if self.args.no_install:
                    require_installed(spec.grpc_command(self.ctx, 0)[0])
                else:
                    wait_quiet(self.quiet)  # it may build (a C++ target, a venv)
                    spec.grpc_install(self.ctx)
                    self.versions[name] = spec.versions(self.ctx)  # now with what was built for gRPC
            except (InstallError, OSError, subprocess.SubprocessError) as exc:
                for s in grpc:
                    self.pair_excluded.setdefault((name, s), f"gRPC instance: {exc}")
                log(f"  excluded {name} / {','.join(grpc)}: {exc}")

    def make_certificate(self) -> None:
        if not any(s.tls for s in self.args.scenario_list):
            return
        self.tls_dir = Path(tempfile.mkdtemp(prefix="covet-matrix-tls-"))
        try:
            self.tls_files = tls_mod.generate(self.tls_dir)
            log(f"TLS: generated a throw-away CA and a {self.tls_files.key_type} server certificate in {self.tls_dir}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            self.tls_error = str(exc)
            log(f"TLS scenarios excluded: {self.tls_error}")

    def build_grpc_tools(self) -> str | None:
        """When a gRPC scenario is planned: ghz (pinned; built once, into the cache) and the gate's client (the gRPC
        venv with the generated code); the reason the gRPC scenarios are excluded when either cannot be had."""
        if not any(s.is_grpc for s in self.args.scenario_list):
            return None
        try:
            if not self.args.no_install:
                loadgen.ensure_ghz(log)
                ensure_grpc_python(self.ctx)
            elif not loadgen.ghz_binary().exists():
                raise loadgen.GoToolError(f"{loadgen.ghz_binary()} not built (--no-install)")
            else:
                require_installed(str(GRPC_PYTHON))
        except (loadgen.GoToolError, InstallError, OSError, subprocess.SubprocessError) as exc:
            log(f"gRPC scenarios excluded: {exc}")
            return str(exc)
        go = loadgen.go_binary()
        self.tool_versions["ghz"] = f"ghz {loadgen.GHZ_VERSION}" + (
            f" ({cmd_output([go, 'version']).replace('go version ', '')})" if go else "")
        return None

    def build_wsload(self) -> str | None:
        """Build wsload when a WebSocket scenario is planned; the reason they are excluded when it cannot be."""
        if not any(s.is_ws for s in self.args.scenario_list):
            return None
        try:
            if not self.args.no_install:
                wsload.build(log)
            elif not wsload.WSLOAD_BIN.exists():
                raise wsload.WsloadError(f"{wsload.WSLOAD_BIN.relative_to(REPO)} not built (--no-install)")
            self.tool_versions["wsload"] = wsload.versions()
        except (wsload.WsloadError, OSError, subprocess.SubprocessError) as exc:
            log(f"WebSocket scenarios excluded: {exc}")
            return str(exc)
        return None

    def build_h3load(self) -> str | None:
        """Build h3load (the gate) and, with --h3-load h3bench, h3bench (the load) when an HTTP/3 scenario is planned;
        the reason they are excluded when one cannot be."""
        if not any(s.is_h3 for s in self.args.scenario_list):
            return None
        load = getattr(self.args, "h3_load", "h3load")
        try:
            if not self.args.no_install:
                h3load.build(log)
                if load == "h3bench":
                    h3load.build_h3bench(log)
            for binary in dict.fromkeys([h3load.H3LOAD_BIN, h3load.load_binary(load)]):
                if not binary.exists():
                    raise h3load.H3loadError(f"{binary.relative_to(REPO)} not built (--no-install)")
            self.tool_versions["h3load"] = h3load.versions()
            if load == "h3bench":
                self.tool_versions["h3bench"] = h3load.h3bench_version()
        except (h3load.H3loadError, OSError, subprocess.SubprocessError) as exc:
            log(f"HTTP/3 scenarios excluded: {exc}")
            return str(exc)
        return None

    # ---- plan -------------------------------------------------------------------------------------------

    def plan(self) -> None:
        args = self.args
        self.servers = [n for n in args.server_list if n not in self.excluded]
        self.idle = {n: [] for n in self.servers}
        self.cold = {n: [] for n in self.servers}
        scen = args.scenario_list
        self.pairs = [(n, s) for n in self.servers for s in scen if (n, s.name) not in self.pair_excluded]
        http_servers = [n for n in self.servers if has_plain_instance(self.specs[n])]  # cold starts
        self.total_steps = sum(runs_of(s, args) for _, s in self.pairs) + len(http_servers) * args.cold_starts
        tls_servers = {n for n, s in self.pairs if s.tls and not s.is_h3}
        h3_servers = {n for n, s in self.pairs if s.is_h3}
        ws_servers = {n for n, s in self.pairs if s.is_ws}
        grpc_servers = {n for n, s in self.pairs if s.is_grpc}
        est = estimate_seconds(len(http_servers), len(self.pairs), args.runs, args.warmup, args.duration,
                               args.cold_starts, tls_servers=len(tls_servers) + len(h3_servers),
                               tls_pairs=sum(1 for _, s in self.pairs if reduced_rounds(s) and not s.is_ws),
                               tls_runs=args.tls_runs, ws_servers=len(ws_servers),
                               ws_pairs=sum(1 for _, s in self.pairs if s.is_ws), ws_runs=args.ws_runs,
                               grpc_servers=len(grpc_servers))
        self.setup_seconds = time.monotonic() - self.t_start
        log(f"installs and checks took {fmt_duration(self.setup_seconds)}")
        log(f"matrix: {len(self.servers)} servers x {len(scen)} scenarios = {len(self.pairs)} pairs, {args.runs} "
            f"round(s) of {args.warmup}+{args.duration} s (TLS/HTTP/2/HTTP/3 scenarios: {args.tls_runs} round(s), "
            f"{len(tls_servers)} servers started again with TLS, {len(h3_servers)} with HTTP/3; WebSocket scenarios: "
            f"{args.ws_runs} "
            f"round(s), {len(ws_servers)} servers started once more for them; gRPC scenarios: every round, on a "
            f"gRPC instance of {len(grpc_servers)} servers); estimated {fmt_duration(est)} "
            "(plus any quiet-protocol waits)")

    # ---- measuring --------------------------------------------------------------------------------------

    def step(self, label: str) -> None:
        self.done += 1
        log(progress_line(self.done, self.total_steps, time.monotonic() - self.t_loop - self.waited, label))

    def fail(self, name: str, sc: Scenario, rnd: int, error: str, label: str) -> None:
        """A run that produced no measurement (after round 1's exclusions): recorded with its reason."""
        self.runs.append({"server": name, "scenario": sc.name, "round": rnd, "error": error})
        self.step(f"round {rnd} {name} {sc.name}: {label}")

    def measure_all(self) -> None:
        """The rounds, then the cold starts; Ctrl-C or SIGTERM keeps what was measured."""
        body_file = Path(tempfile.mkstemp(prefix="covet-matrix-item-", suffix=".json")[1])
        body_file.write_bytes(item_payload())
        clk = os.sysconf("SC_CLK_TCK")
        self.t_loop = time.monotonic()
        try:
            for rnd in range(1, self.args.runs + 1):
                self.run_round(rnd, body_file, clk)
            self.cold_starts()
        except KeyboardInterrupt:
            log("interrupted: writing what was measured")
        finally:
            body_file.unlink(missing_ok=True)
            if self.tls_dir is not None:
                shutil.rmtree(self.tls_dir, ignore_errors=True)

    def run_round(self, rnd: int, body_file: Path, clk: int) -> None:
        """Every server once (A B C …): its plain instance, then its TLS one, its WebSocket one, its gRPC one."""
        for name in self.servers:
            if name in self.excluded:
                continue
            todo = [s for s in self.args.scenario_list
                    if (name, s.name) not in self.pair_excluded and rnd <= runs_of(s, self.args)]
            plain = [s for s in todo if not s.tls and not s.is_ws and not s.is_grpc]
            if plain:
                self.run_instance(name, rnd, plain, None, False, body_file, clk)
            secure = [s for s in todo if s.tls and not s.is_h3 and (name, s.name) not in self.pair_excluded]
            if secure and name not in self.excluded:
                self.run_instance(name, rnd, secure, self.tls_files, False, body_file, clk)
            quic = [s for s in todo if s.is_h3 and (name, s.name) not in self.pair_excluded]
            if quic and name not in self.excluded:
                self.run_instance(name, rnd, quic, self.tls_files, False, body_file, clk, h3=True)
            sockets = [s for s in todo if s.is_ws and (name, s.name) not in self.pair_excluded]
            if sockets and name not in self.excluded:
                self.run_instance(name, rnd, sockets, None, True, body_file, clk)
            calls = [s for s in todo if s.is_grpc and (name, s.name) not in self.pair_excluded]
            if calls and name not in self.excluded:
                self.run_instance(name, rnd, calls, None, False, body_file, clk, grpc=True)

    def run_instance(self, name: str, rnd: int, todo: list[Scenario], tls: tls_mod.TlsFiles | None, ws: bool,
                     body_file: Path, clk: int, grpc: bool = False, h3: bool = False) -> None:
        """Start ``name`` once (plain, with the run's certificate, with HTTP/3 too, for the WebSocket scenarios or
        for the gRPC ones), gate and measure ``todo`` on it."""
        srv = Running(self.specs[name], self.ctx, tls, ws=ws, grpc=grpc, h3=h3, round_env=round_env(self.args, rnd))
        kind = (" (HTTP/3)" if h3 else " (TLS)" if tls is not None else " (WebSocket)" if ws else " (gRPC)" if grpc
                else "")
        self.commands[name + kind] = srv.describe()
        try:
            if not self.start_instance(srv, rnd, todo):
                return
            if ((tls is None and not ws and not grpc) or (grpc and not srv.spec.serves_http)
                    or (h3 and srv.spec.h3_peer)):
                time.sleep(0.5)  # idle RSS: of the plain instance, a gRPC peer's only one, an HTTP/3 peer's h3 one
                self.idle[name].append(srv.rss_kib())
            for s in todo:
                if (name, s.name) not in self.pair_excluded:
                    self.run_pair(srv, rnd, s, body_file, clk)
        finally:
            srv.cleanup()

    def start_instance(self, srv: Running, rnd: int, todo: list[Scenario]) -> bool:
        """Start ``srv``; when it cannot start, exclude it (round 1) or record failed runs (later rounds)."""
        name, tls, what = srv.spec.name, srv.tls, srv.what
        try:
            self.waited += wait_quiet(self.quiet)
            srv.start()
            return True
        except StartError as exc:
            if tls is not None:  # the run's temp paths say nothing
                exc = StartError(str(exc).replace(str(tls.cert), "CERT.pem").replace(str(tls.key), "KEY.pem"))
            if rnd == 1 and not what:
                self.excluded[name] = f"does not start: {exc}"
                log(f"  excluded {name}: {self.excluded[name]}")
                self.total_steps -= (sum(runs_of(s, self.args) for n, s in self.pairs if n == name)
                                     + self.args.cold_starts)
            elif rnd == 1:
                for s in todo:
                    self.pair_excluded[(name, s.name)] = f"does not start{what}: {exc}"
                    self.total_steps -= runs_of(s, self.args)
                log(f"  excluded {name} / {','.join(s.name for s in todo)}: does not start{what}: {exc}")
            else:
                for s in todo:
                    self.fail(name, s, rnd, f"start{what} failed: {exc}", f"start{what} failed")
            return False

    def run_pair(self, srv: Running, rnd: int, s: Scenario, body_file: Path, clk: int) -> None:
        """Gate, then measure one scenario on the running instance (restarted first if it died)."""
        name, tls, what = srv.spec.name, srv.tls, srv.what
        if not srv.alive() and not self.restart(srv, rnd, s, f"restart{what} failed"):
            return
        ok, reason = gate(srv.port, s, tls)
        if not ok:
            if rnd == 1:
                self.pair_excluded[(name, s.name)] = f"correctness gate: {reason}"
                self.total_steps -= runs_of(s, self.args)
                log(f"  excluded {name} / {s.name}: {reason}")
            else:
                self.fail(name, s, rnd, f"correctness gate failed: {reason}", "gate failed")
            return
        if s.tls and f"{name}/{s.name}" not in self.tls_seen:
            if s.is_h3:  # the QUIC handshake: TLS 1.3 inside QUIC, ALPN h3 (h3load's view of it)
                self.tls_seen[f"{name}/{s.name}"] = h3load.handshake(srv.port, s, tls.ca)
            else:
                alpn = ["h2", "http/1.1"] if s.tool == "h2load-h2" else ["http/1.1"]
                self.tls_seen[f"{name}/{s.name}"] = tls_handshake(srv.port, tls, alpn)
        if self.quiet.exists():
            # nothing of ours runs while someone else measures, not even an idle server
            srv.stop()
            self.waited += wait_quiet(self.quiet)
            if not self.restart(srv, rnd, s, "restart after waiting failed"):
                return
        if s.is_ws:
            r = measure_ws(srv, s, self.args, clk)
        elif s.is_h3:
            r = measure_h3(srv, s, self.args, clk, tls.ca,
                           binary=h3load.load_binary(getattr(self.args, "h3_load", "h3load")))
        else:
            r = measure(srv, s, self.args, body_file, clk)
        r.update({"server": name, "scenario": s.name, "round": rnd})
        self.runs.append(r)
        rps = r.get("requests_per_sec")
        unit = "msg/s" if s.is_ws else "calls/s" if s.is_grpc else "req/s"
        self.step(f"round {rnd}/{runs_of(s, self.args)} {name} {s.name}: "
                  + (f"{rps:,.0f} {unit}" if rps and not r.get("error") else r.get("error", "?")[:80]))

    def restart(self, srv: Running, rnd: int, s: Scenario, error: str) -> bool:
        try:
            srv.start()
            return True
        except StartError as exc:
            self.fail(srv.spec.name, s, rnd, f"{error}: {exc}", "restart failed")
            return False

    def cold_starts(self) -> None:
        """Launch → first 200 OK and idle RSS of fresh processes, --cold-starts times per server (that serves
        HTTP: a gRPC peer has no 200 to time)."""
        for name in self.servers:
            if name in self.excluded or not has_plain_instance(self.specs[name]):
                continue
            for _ in range(self.args.cold_starts):
                self.waited += wait_quiet(self.quiet)
                srv = Running(self.specs[name], self.ctx)
                try:
                    self.cold[name].append(srv.start())
                    time.sleep(0.5)
                    self.idle[name].append(srv.rss_kib())
                    self.step(f"cold start {name}: {self.cold[name][-1]:.0f} ms")
                except StartError as exc:
                    self.step(f"cold start {name}: {exc}")
                finally:
                    srv.cleanup()
                time.sleep(0.2)

    # ---- the result -------------------------------------------------------------------------------------

    def result(self, argv: list[str]) -> dict[str, Any]:
        """The results JSON (its format is what report.render_markdown, chart.py and --render read)."""
        args, scen = self.args, self.args.scenario_list
        return {
            "kind": "matrix",
            "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git": git_revision(),
            "argv": ["python", "-m", "bench", *argv],
            "options": {k: getattr(args, k) for k in ("duration", "warmup", "runs", "cold_starts", "connections",
                                                      "keepalive", "rate", "server_cpus", "client_cpus", "workers",
                                                      "quick", "tls_runs", "ws_runs", "h3_load")},
            "machine": machine_info(self.nginx_exe()),
            "tools": self.tool_versions,
            "covet_python": {"interpreter": str(self.ctx.covet_python), "choice": self.ctx.covet_python_choice},
            "servers": {n: self.server_entry(n) for n in args.server_list},
            "scenarios": [scenario_entry(s, runs_of(s, args)) for s in scen],
            "tls": self.tls_entry(),
            "references": list(REFERENCES),
            "summary": summary_rows(args.server_list, [s.name for s in scen], self.runs, self.excluded,
                                    self.pair_excluded, REFERENCES),
            "per_server": {n: {"idle_rss_kib": summarize(self.idle.get(n, [])),
                               "cold_start_ms": summarize(self.cold.get(n, []))} for n in args.server_list},
            "runs": self.runs,
            "wall_seconds": round(time.monotonic() - self.t_start, 1),
            "quiet_wait_seconds": round(self.waited, 1),
            "setup_seconds": round(self.setup_seconds, 1),
        }

    def server_entry(self, n: str) -> dict[str, Any]:
        spec = self.specs[n]
        return {"label": spec.label, "config": spec.config, "command": self.commands.get(n),
                "tls_command": self.commands.get(f"{n} (TLS)"), "ws_command": self.commands.get(f"{n} (WebSocket)"),
                "grpc_command": self.commands.get(f"{n} (gRPC)"), "h3_command": self.commands.get(f"{n} (HTTP/3)"),
                "versions": self.versions.get(n), "excluded": self.excluded.get(n)}

    def tls_entry(self) -> dict[str, Any] | None:
        if self.tls_files is None and self.tls_error is None:
            return None
        return {
            **(self.tls_files.describe() if self.tls_files else {"error": self.tls_error}),
            "handshakes": self.tls_seen,  # the gate's own handshake (Python ssl, ALPN as the scenario's client)
            "h2load": {f"{r['server']}/{r['scenario']}": r["tls"] for r in self.runs if r.get("tls")},
        }


def scenario_entry(s: Scenario, runs: int) -> dict[str, Any]:
    out = {"name": s.name, "title": s.title, "path": s.path, "method": s.method, "tool": s.tool,
           "connections": s.connections, "pipeline": s.pipeline, "tls": s.tls, "streams": s.streams,
           "protocol": s.protocol, "runs": runs}
    if s.is_ws:
        out.update({"ws": s.ws, "size": s.size, "inflight": s.inflight, "subscribers": s.subscribers,
                    "window": s.window})
    if s.stagger_ms:
        out["stagger_ms"] = s.stagger_ms
    if s.is_grpc:
        out.update({"concurrency": s.concurrency, "messages": s.messages})
    if s.is_h3:
        out["body_size"] = s.body_size
    return out


def has_plain_instance(spec: ServerSpec) -> bool:
    """Does the server have a cleartext HTTP instance (the one cold starts time)? Not a gRPC or HTTP/3 peer."""
    return spec.serves_http and not spec.h3_peer


HEAVY_BUILDS = ("actix", "caddy", "covet-native", "grpc-go", "grpc-cpp")  # compilers: they wait for a quiet machine


def require_installed(exe: str) -> None:
    """--no-install: the server's executable must already be there."""
    if not Path(exe).exists() and not shutil.which(exe):
        raise InstallError(f"{exe} not installed (--no-install)")


def missing_tool(scenarios: list[Scenario]) -> str | None:
    """wrk (when a scenario uses it) and taskset must be installed."""
    for tool in ("wrk", "taskset"):
        if (tool != "wrk" or any(s.tool == "wrk" for s in scenarios)) and not shutil.which(tool):
            return tool
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        return render_saved(Path(args.render), args)
    t_start = time.monotonic()
    raise_nofile()
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    tool = missing_tool(args.scenario_list)
    if tool:
        log(f"error: {tool} is not installed (apt-get install wrk util-linux)")
        return 2
    run = Matrix(args, t_start)
    run.setup()
    run.plan()
    run.measure_all()
    result = run.result(argv)
    json_path = write_result(result, Path(args.out))
    log(f"wrote {display_path(json_path)} (wall time {fmt_duration(result['wall_seconds'])})")
    write_outputs(result, json_path, args)
    return 0


# ---- outputs: results JSON, Markdown, docs section, chart ------------------------------------------------


def write_result(result: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["date_utc"].replace("-", "").replace(":", "")
    json_path = out_dir / f"matrix-{stamp}.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    return json_path


def write_outputs(result: dict[str, Any], json_path: Path, args: argparse.Namespace, chart: bool = True) -> None:
    """The .md next to the JSON (printed too); unless --no-docs, the docs section and (``chart``) the PNG."""
    chart_ok = False
    if not args.no_docs and chart:
        chart_ok = render_chart(json_path, Path(args.chart))
    md = report.render_markdown(result, json_path=display_path(json_path),
                                chart=Path(args.chart) if chart_ok else None, docs=Path(args.docs))
    md_path = json_path.with_suffix(".md")
    md_path.write_text(md + "\n")
    print(md)
    if not args.no_docs:
        docs = Path(args.docs)
        old = docs.read_text() if docs.exists() else None
        docs.write_text(report.replace_section(old, md))
        log(f"updated {display_path(docs)} between {report.SECTION_START} / {report.SECTION_END}")


def ensure_tools_venv() -> bool:
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
    # -m from the repository root: bench/__init__.py only defines paths, so matplotlib's venv can import it
    p = subprocess.run([str(TOOLS_PY), "-m", "bench.chart", str(json_path.resolve()), str(png.resolve())],
            capture_output=True, text=True, cwd=str(REPO))
    if p.returncode != 0:
        log(f"chart failed: {p.stderr.strip()[-400:]}")
        return False
    log(f"wrote {display_path(png)}")
    return True


def render_saved(json_path: Path, args: argparse.Namespace) -> int:
    """--render: the .md (next to the JSON), docs section and chart of a saved run, measuring nothing."""
    result = json.loads(json_path.read_text())
    if result.get("kind") != "matrix":
        log(f"error: {json_path} is not a `python -m bench` result (no \"kind\": \"matrix\"): --render reads the "
            "bench/results/matrix-<UTC>.json files. native-*/python-*.json were written by the harnesses that "
            "preceded it; their reports are the .md files next to them.")
        return 2
    write_outputs(result, json_path, args)
    return 0
