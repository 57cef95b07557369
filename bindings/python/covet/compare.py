"""``covet compare module:app``: the same app under uvicorn and under CovetPy, side by side.

Each available way of serving the app runs in its own process on a free port, one after the other:

  uvicorn        ``python -m uvicorn module:app`` (when uvicorn is installed; ``--interface wsgi`` for WSGI apps)
  covet-hosted   ``covet run --interface asgi3|wsgi``: the app as it is, hosted on the native engine
  covet-compat   ``covet run --compat fastapi``: a FastAPI/Starlette app on CovetPy's own implementation
  covet          ``covet run``: a CovetPy app, natively

The GET routes without required parameters (from the app's ``/openapi.json``, or the paths listed in ``--urls``)
are requested once from each server; every status, content type and body (JSON compared parsed) must equal the
first server's, and the differences are printed. Then each route is loaded (wrk when installed, else
`covet.loadtest.LoadTester`) and a table gives req/s, p99 latency and the server's CPU time per request (utime +
stime of the server's process tree from ``/proc/PID/stat`` over the run, divided by the requests answered: the
figure that still means something on a loaded machine). Modes that cannot run here are listed as skipped with
the reason. Exit status: 0 when every server gave the same responses, 1 when some differ (or none could start).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

from .server.appspec import import_app
from .server.options import UsageError

__all__ = ["main", "app_kind", "compare", "CompareReport"]

MODES = ("uvicorn", "covet-hosted", "covet-compat", "covet")


# ---- the app ------------------------------------------------------------------------------------------

def _import(spec: str, app_dir: str) -> Any:
    try:
        return import_app(spec, app_dir)
    except UsageError as e:
        raise UsageError(f"compare: {e}") from None


def app_kind(app: Any) -> str:
    """``"covet"``, ``"fastapi"``, ``"starlette"``, ``"asgi"`` (another ASGI 3 app) or ``"wsgi"``."""
    modules = [cls.__module__ for cls in type(app).__mro__]
    if any(m == "covet" or m.startswith("covet.") for m in modules) and hasattr(app, "router"):
        return "covet"
    for framework in ("fastapi", "starlette"):
        if any(m == framework or m.startswith(framework + ".") for m in modules):
            return framework
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)
    if call is None:
        raise UsageError(f"compare: {type(app).__name__} is not an application (not callable)")
    try:
        params = [p for p in inspect.signature(call).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return "asgi"
    return "wsgi" if len(params) == 2 and not inspect.iscoroutinefunction(call) else "asgi"


# ---- the servers --------------------------------------------------------------------------------------

@dataclass
class Mode:
    name: str
    command: list[str]  # "{port}" stands for the port
    skipped: str = ""   # the reason this mode does not run here


def _covet_has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def plan_modes(spec: str, kind: str, app_dir: str, only: Sequence[str] = MODES) -> list[Mode]:
    """The ways to serve an app of `kind`, in order (the first that runs is the reference)."""
    py = sys.executable
    covet_run = [py, "-m", "covet", "run", spec, "--app-dir", app_dir, "--port", "{port}", "--log-level", "warning"]
    interface = "wsgi" if kind == "wsgi" else "asgi3"
    host_module = "covet.wsgi" if kind == "wsgi" else "covet.asgi.server"
    kind_label = "WSGI" if kind == "wsgi" else "ASGI"
    modes = [
        Mode("uvicorn", [py, "-m", "uvicorn", spec, "--app-dir", app_dir, "--port", "{port}", "--log-level",
                         "warning", "--no-access-log"] + (["--interface", "wsgi"] if kind == "wsgi" else [])),
        Mode("covet-hosted", [*covet_run, "--interface", interface]),
        Mode("covet-compat", [*covet_run, "--compat", "fastapi"]),
        Mode("covet", covet_run),
    ]
    for mode in modes:
        if mode.name not in only:
            mode.skipped = "not selected (--servers)"
        elif mode.name == "uvicorn" and not _covet_has("uvicorn"):
            mode.skipped = f"uvicorn is not installed in {py} (pip install uvicorn)"
        elif mode.name == "covet-hosted" and kind == "covet":
            mode.skipped = "a CovetPy app is served natively (see 'covet')"
        elif mode.name == "covet-hosted" and not _covet_has("covet.server.hosted"):
            mode.skipped = "this CovetPy cannot host ASGI/WSGI apps yet (no `covet run --interface`)"
        elif mode.name == "covet-hosted" and not _covet_has(host_module):
            mode.skipped = f"this CovetPy cannot host {kind_label} apps yet (no {host_module})"
        elif mode.name == "covet-compat" and kind not in ("fastapi", "starlette"):
            mode.skipped = "the compatibility shim is for FastAPI/Starlette apps"
        elif mode.name == "covet-compat" and not _covet_has("covet.compat"):
            mode.skipped = "this CovetPy has no compatibility shim yet (no `covet run --compat`)"
        elif mode.name == "covet" and kind != "covet":
            mode.skipped = "not a CovetPy app (covet-compat runs a FastAPI/Starlette app on CovetPy's own path)"
    return modes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One server process in its own session, its output in a temporary file, until `stop()`."""

    def __init__(self, mode: Mode, cwd: str, timeout: float = 30.0) -> None:
        self.mode = mode
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in mode.command]
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())
        self.proc = subprocess.Popen(self.command, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with status {self.proc.returncode} before serving: {self.output()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", "/")
                    conn.getresponse().read()
                    return
                finally:
                    conn.close()
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"did not answer on port {self.port} within {timeout:.0f} s: {self.output()}")
            time.sleep(0.1)

    def output(self, tail: int = 400) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip()
        return ("..." + text[-tail:] if len(text) > tail else text) or "(no output)"

    def cpu_seconds(self) -> float:
        """utime + stime of the server's process tree (the supervisor and its workers)."""
        ticks = 0
        for pid in _tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of the line
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def _tree(root: int) -> list[int]:
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                stack.extend(int(child) for child in task.read_text().split())
    return out


# ---- routes and responses -----------------------------------------------------------------------------

def routes_from_openapi(schema: Any) -> list[str]:
    """The OpenAPI document's GET paths that need no parameter: no ``{...}`` in the path, no required one."""
    out = []
    for path, item in (schema.get("paths") or {}).items() if isinstance(schema, dict) else ():
        get = item.get("get") if isinstance(item, dict) else None
        if not isinstance(get, dict) or "{" in path:
            continue
        params = list(get.get("parameters") or []) + list(item.get("parameters") or [])
        if any(isinstance(p, dict) and p.get("required") for p in params):
            continue
        body = get.get("requestBody")
        if isinstance(body, dict) and body.get("required"):
            continue
        out.append(path)
    return out


def read_url_list(path: str) -> list[str]:
    """One path per line (``/items?limit=2``; a full ``http://host/path`` URL counts by its path); ``#`` comments."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split("#", 1)[0].strip() for line in f]
    except OSError as e:
        raise UsageError(f"compare --urls {path}: {e.strerror}") from None
    out = []
    for line in filter(None, lines):
        if "://" in line:
            line = "/" + line.split("://", 1)[1].partition("/")[2]
        if not line.startswith("/"):
            raise UsageError(f"compare --urls {path}: {line!r} is not a path starting with '/'")
        out.append(line)
    return out


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def parsed(self) -> Any:
        if "json" in self.content_type:
            with contextlib.suppress(ValueError):
                return json.loads(self.body)
        return self.body


def fetch(port: int, path: str, timeout: float = 10.0) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "identity"})
        r = conn.getresponse()
        return Answer(r.status, r.getheader("content-type", "") or "", r.read())
    except (OSError, http.client.HTTPException) as e:
        return Answer(0, "", f"no response: {type(e).__name__}: {e}".encode())
    finally:
        conn.close()


def _norm_type(value: str) -> str:
    return ";".join(part.strip() for part in value.lower().split(";"))


def _show(value: Any, limit: int = 100) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class Difference:
    path: str
    server: str
    what: str  # "status" | "content-type" | "body"
    value: str
    reference: str


def differences(reference: str, answers: dict[str, dict[str, Answer]]) -> list[Difference]:
    """Where each server's answers differ from `reference`'s."""
    out = []
    for server, by_path in answers.items():
        if server == reference:
            continue
        for path, ans in by_path.items():
            ref = answers[reference][path]
            if ans.status != ref.status:
                out.append(Difference(path, server, "status", str(ans.status), str(ref.status)))
            if _norm_type(ans.content_type) != _norm_type(ref.content_type):
                out.append(Difference(path, server, "content-type", ans.content_type, ref.content_type))
            if ans.parsed() != ref.parsed():
                out.append(Difference(path, server, "body", _show(ans.parsed()), _show(ref.parsed())))
    return out


# ---- load ---------------------------------------------------------------------------------------------

@dataclass
class Load:
    path: str
    server: str
    tool: str
    requests: int
    seconds: float
    requests_per_second: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int


_WRK_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_WRK_BAD = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_SCALE = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_wrk(text: str) -> tuple[int, float, float, int]:
    """wrk --latency's report: (requests, seconds, p99 ms, errors)."""
    total = _WRK_TOTAL.search(text)
    p99 = _WRK_P99.search(text)
    if total is None or p99 is None:
        raise ValueError(f"unexpected wrk output: {text.strip()[-300:]}")
    bad = _WRK_BAD.search(text)
    errors = int(bad.group(1)) if bad else 0
    sock = _WRK_SOCKET.search(text)
    if sock is not None:
        errors += sum(int(n) for n in sock.groups())
    return (int(total.group(1)), float(total.group(2)) * _SCALE[total.group(3)] / 1e3,
            float(p99.group(1)) * _SCALE[p99.group(2)], errors)


def load_route(server: Server, path: str, duration: float, connections: int, tool: str) -> Load:
    url = f"http://127.0.0.1:{server.port}{path}"
    cpu_before = server.cpu_seconds()
    if tool == "wrk":
        seconds = max(1, round(duration))
        run = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                             capture_output=True, text=True, timeout=seconds + 60)
        cpu = server.cpu_seconds() - cpu_before
        requests, elapsed, p99, errors = parse_wrk(run.stdout)
    else:
        import asyncio  # deferred: only the LoadTester path needs them

        from .loadtest import LoadTester

        async def go() -> Any:
            async with LoadTester(f"http://127.0.0.1:{server.port}", paths=[path]) as tester:
                return await tester.run_test(concurrent_users=connections, duration=duration)

        result = asyncio.run(go())
        cpu = server.cpu_seconds() - cpu_before
        requests, elapsed, p99 = result.requests, result.duration, result.p99_latency
        errors = result.failures
    return Load(path, server.mode.name, tool, requests, round(elapsed, 3),
                round(requests / elapsed if elapsed else 0.0, 1), round(p99, 3),
                round(cpu * 1e6 / requests, 1) if requests else 0.0, errors)


# ---- the run ------------------------------------------------------------------------------------------

@dataclass
class CompareReport:
    app: str
    kind: str
    routes: list[str] = field(default_factory=list)
    routes_from: str = ""
    servers: dict[str, str] = field(default_factory=dict)  # name -> "ran" | "skipped: ..." | "failed: ..."
    reference: str = ""
    differences: list[Difference] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)
    load_tool: str = ""
    connections: int = 0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.reference) and not self.differences


def compare(spec: str, *, app_dir: str = ".", urls: Optional[list[str]] = None, duration: float = 3.0,
            connections: int = 32, servers: Sequence[str] = MODES, tool: str = "auto",
            log: Any = None) -> CompareReport:
    """Runs the comparison (see the module docstring) and returns what it found."""
    say = log or (lambda line: None)
    kind = app_kind(_import(spec, app_dir))
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "loadtester"
    report = CompareReport(spec, kind, load_tool=tool, connections=connections, duration=duration)
    answers: dict[str, dict[str, Answer]] = {}
    for mode in plan_modes(spec, kind, os.path.abspath(app_dir), servers):
        if mode.skipped:
            report.servers[mode.name] = f"skipped: {mode.skipped}"
            continue
        say(f"starting {mode.name}")
        try:
            server = Server(mode, os.path.abspath(app_dir))
        except RuntimeError as e:
            report.servers[mode.name] = f"failed: {e}"
            say(f"{mode.name} failed to start: {e}")
            continue
        say(f"{mode.name} serves on port {server.port}: {' '.join(server.command)}")
        try:
            report.servers[mode.name] = "ran"
            if not report.routes:
                report.routes, report.routes_from = _routes(server.port, urls)
            answers[mode.name] = {path: fetch(server.port, path) for path in report.routes}
            if not report.reference:
                report.reference = mode.name
            if duration > 0:
                for path in report.routes:
                    say(f"loading {mode.name} {path} for {duration:g} s")
                    report.loads.append(load_route(server, path, duration, connections, tool))
        finally:
            server.stop()
    if report.reference:
        report.differences = differences(report.reference, answers)
    return report


def _routes(port: int, urls: Optional[list[str]]) -> tuple[list[str], str]:
    if urls:
        return urls, "--urls"
    ans = fetch(port, "/openapi.json")
    if ans.status == 200:
        with contextlib.suppress(ValueError):
            found = routes_from_openapi(json.loads(ans.body))
            if found:
                return found, "/openapi.json"
    return ["/"], "'/' only (no /openapi.json with GET routes; list paths with --urls FILE)"


def render(report: CompareReport) -> Iterator[str]:
    yield f"covet compare {report.app} ({report.kind} app)"
    for name, state in report.servers.items():
        yield f"  {name:<13} {state}"
    if not report.reference:
        yield "no server could start: nothing compared"
        return
    yield f"routes ({len(report.routes)}, from {report.routes_from}): {' '.join(report.routes)}"
    if report.differences:
        yield f"responses: {len(report.differences)} difference(s) from {report.reference}:"
        for d in report.differences:
            yield f"  GET {d.path}  {d.what}: {d.server} {d.value!r}  vs {report.reference} {d.reference!r}"
    else:
        yield f"responses: identical under every server that ran ({report.reference} the reference)"
    if report.loads:
        yield (f"load: {report.load_tool}, {report.connections} connections, {report.duration:g} s per route "
               "(other load on this machine counts: compare within one run; CPU per request is the steadier "
               "figure)")
        yield f"  {'route':<24} {'server':<13} {'req/s':>10} {'p99 ms':>9} {'CPU µs/req':>11} {'errors':>7}"
        for load in report.loads:
            yield (f"  {load.path[:24]:<24} {load.server:<13} {load.requests_per_second:>10,.0f} "
                   f"{load.p99_ms:>9.2f} {load.cpu_us_per_request:>11.1f} {load.errors:>7}")


def main(args: argparse.Namespace) -> int:
    servers = [s.strip() for s in (args.servers or ",".join(MODES)).split(",") if s.strip()]
    unknown = sorted(set(servers) - set(MODES))
    if unknown:
        raise UsageError(f"compare --servers: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if args.connections < 1:
        raise UsageError("compare --connections must be at least 1")
    if args.load_tool == "wrk" and not shutil.which("wrk"):
        raise UsageError("compare --load-tool wrk: wrk is not installed (apt install wrk), or use loadtester")
    urls = read_url_list(args.urls) if args.urls else None
    log = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    report = compare(args.app, app_dir=args.app_dir, urls=urls, duration=args.duration,
                     connections=args.connections, servers=servers, tool=args.load_tool, log=log)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    else:
        for line in render(report):
            print(line)
    return 0 if report.ok else 1
