"""Targets, load generator and memory sampling for the fault-injection scenarios.

Targets (`TargetSpec` → `Target`):
  native   the `hello` example (COVET_HELLO_BIN, else build-release/…/hello, else build/…/hello), one process
           with --threads N and --backend uring|asio
  python   tests/fault/app.py under ``python -m covet run app:app --workers N`` (launcher "run": a supervisor
           and its workers; with N = 1 the command serves alone, in one process), or in one process through
           ``app.py --opt name=value`` (launcher "serve") when a
           scenario needs engine options the command line does not expose (timeouts, the body rate floor)

Both serve the same routes with the same bodies, so one request mix drives either.

The load generator is asyncio on raw sockets (an asyncio.Protocol per connection, no streams, one timer
sweep instead of a timer per request): keep-alive clients and new-connection clients. Every request is
counted once as sent, then as completed (the expected status and body) or failed by kind:
  refused       the connect was refused (no listener)
  reset         the connection was reset (RST, EPIPE) before the whole response arrived
  closed        the server closed the connection (FIN) before the whole response arrived
  timeout       no whole response within the request timeout
  bad_response  unparsable response, or not the expected status/body
  connect_error any other error while connecting (EADDRNOTAVAIL, EMFILE, ...)
so that sent == completed + sum(failed) once a run has drained. Counts are kept per *phase* (a label the
scenario switches, e.g. "before"/"after" a signal) as of the moment the request was written.
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import errno
import itertools
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
FAULT_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
BANNER_RE = re.compile(r"listening on \S+:(\d+) backend=(\S+) threads=(\d+)")

# Canonical option names (the Python engine's keyword arguments) → hello's command-line flags.
NATIVE_FLAGS = {
    "header_timeout_ms": "--header-timeout-ms",
    "body_timeout_ms": "--body-timeout-ms",
    "keep_alive_timeout_ms": "--idle-timeout-ms",
    "shutdown_timeout_ms": "--shutdown-timeout-ms",
    "max_connections": "--max-connections",
    "max_body_bytes": "--max-body",
    "min_body_rate": "--min-body-rate",
    "min_body_rate_grace_ms": "--min-body-rate-grace-ms",
    "body_deadline_ms": "--body-deadline-ms",
}
# The same options as `covet run` flags (times take an "ms" suffix). Those the installed covet's command line
# does not show in its --help are served by the one-process launcher (app.py) instead.
CLI_OPTIONS = {
    "header_timeout_ms": ("--timeout-header", "{}ms"),
    "body_timeout_ms": ("--timeout-body", "{}ms"),
    "keep_alive_timeout_ms": ("--timeout-keep-alive", "{}ms"),
    "shutdown_timeout_ms": ("--timeout-graceful-shutdown", "{}ms"),
    "max_connections": ("--max-connections", "{}"),
    "max_body_bytes": ("--limit-max-body", "{}"),
    "min_body_rate": ("--min-body-rate", "{}"),
    "min_body_rate_grace_ms": ("--min-body-rate-grace", "{}ms"),
    "body_deadline_ms": ("--body-deadline", "{}ms"),
}

_TMP = Path(tempfile.mkdtemp(prefix="covet-fault-"))


# ---- binaries and environment ---------------------------------------------------------------------------

def hello_binary() -> Path:
    """COVET_HELLO_BIN, else the release build (scripts/build.sh release), else the ASan build."""
    env = os.environ.get("COVET_HELLO_BIN")
    if env:
        return Path(env)
    release = REPO_ROOT / "build-release" / "examples" / "native" / "hello" / "hello"
    return release if release.is_file() else REPO_ROOT / "build" / "examples" / "native" / "hello" / "hello"


def python_executable() -> str:
    """The interpreter for the Python target: COVET_FAULT_PYTHON, else the repo's .venv, else this one."""
    env = os.environ.get("COVET_FAULT_PYTHON")
    if env:
        return env
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


_asan_cache: dict[Path, bool] = {}


def is_asan(binary: Path) -> bool:
    """Whether `binary` is built with AddressSanitizer (slower, and its RSS is mostly shadow memory)."""
    binary = Path(binary)
    if binary not in _asan_cache:
        found = False
        try:
            with open(binary, "rb") as f:
                tail = b""
                while chunk := f.read(1 << 22):
                    if b"__asan_init" in tail + chunk:
                        found = True
                        break
                    tail = chunk[-16:]
        except OSError:
            pass
        _asan_cache[binary] = found
    return _asan_cache[binary]


_help_cache: dict[Path, str] = {}


def hello_help(binary: Path) -> str:
    if binary not in _help_cache:
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
        _help_cache[binary] = out.stdout + out.stderr
    return _help_cache[binary]


_cli_help: list[str] = []


def covet_run_help() -> str:
    if not _cli_help:
        out = subprocess.run([python_executable(), "-m", "covet", "run", "--help"], capture_output=True, text=True,
                             timeout=60)
        _cli_help.append(out.stdout + out.stderr)
    return _cli_help[0]


def cli_accepts(option: str) -> bool:
    flag = CLI_OPTIONS.get(option)
    return flag is not None and re.search(rf"{re.escape(flag[0])}(?![\w-])", covet_run_help()) is not None


_py_option_cache: dict[str, bool] = {}


def python_engine_accepts(option: str) -> bool:
    """Whether covet._native.NativeServer (of the target interpreter) takes this keyword argument."""
    if option not in _py_option_cache:
        code = ("import sys, covet._native as n\n"
                "try:\n    n.NativeServer(host='127.0.0.1', port=0, threads=1, **{sys.argv[1]: 1})\n"
                "except TypeError:\n    sys.exit(3)\n")
        rc = subprocess.run([python_executable(), "-c", code, option], capture_output=True, timeout=60).returncode
        _py_option_cache[option] = rc == 0
    return _py_option_cache[option]


def raise_nofile(wanted: int) -> int:
    """Raises this process's open-file limit (inherited by servers started afterwards); returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---- processes and memory -------------------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        children[int(fields[1])].append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
            todo.extend(children.get(pid, ()))
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root: int) -> int:
    """Resident memory of a process and its descendants, summed (KiB)."""
    return sum(rss_kb(p) for p in process_tree(root))


def _child_setup() -> None:  # runs in the child before exec
    os.setpgrp()  # own process group: teardown kills the server and any workers at once
    try:  # if the test process dies, the kernel kills the server too
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---- targets --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetSpec:
    kind: str                           # "native" | "python"
    backend: Optional[str] = None       # native: "uring" | "asio" | None (auto)
    threads: Optional[int] = None       # native default 2; python default 0 (engine on the loop thread)
    workers: int = 1                    # python: worker processes under `covet run`
    options: tuple[tuple[str, int], ...] = ()   # engine options by canonical name (see NATIVE_FLAGS)
    launcher: str = "auto"              # python: "run" | "serve" | "auto" (run unless an option needs serve)

    def with_options(self, **options: int) -> "TargetSpec":
        merged = dict(self.options)
        merged.update(options)
        return TargetSpec(self.kind, self.backend, self.threads, self.workers, tuple(sorted(merged.items())),
                          self.launcher)

    def with_workers(self, workers: int) -> "TargetSpec":
        return TargetSpec(self.kind, self.backend, self.threads, workers, self.options, self.launcher)

    @property
    def python_launcher(self) -> str:
        if self.launcher != "auto":
            return self.launcher
        return "run" if all(cli_accepts(name) for name, _ in self.options) else "serve"

    def label(self) -> str:
        if self.kind == "native":
            return f"native/{self.backend or 'auto'}/t{2 if self.threads is None else self.threads}"
        threads = 0 if self.threads is None else self.threads
        how = f"w{self.workers}" if self.python_launcher == "run" else "serve"
        return f"python/{how}/t{threads}"

    def supports(self, option: str) -> bool:
        """Whether the target's build knows this engine option (features still landing are probed)."""
        if self.kind == "native":
            return NATIVE_FLAGS.get(option, "?") in hello_help(hello_binary())
        return python_engine_accepts(option)

    @property
    def asan(self) -> bool:
        return self.kind == "native" and is_asan(hello_binary())


class Target:
    """A running server started from a `TargetSpec`. `pid` is the process to signal (the hello process or
    the `covet run` master); `worker_pids()` are the processes that serve."""

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.stdout_path = self.stderr_path = Path("/dev/null")
        self.returncode: Optional[int] = None
        self.exit_seconds: Optional[float] = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self, port: int) -> list[str]:
        s = self.spec
        opts = dict(s.options)
        if s.kind == "native":
            argv = [str(hello_binary()), "--host", HOST, "--port", str(port),
                    "--threads", str(2 if s.threads is None else s.threads)]
            if s.backend:
                argv += ["--backend", s.backend]
            for name, value in opts.items():
                argv += [NATIVE_FLAGS[name], str(value)]
            return argv
        threads = str(0 if s.threads is None else s.threads)
        py = python_executable()
        if s.python_launcher == "run":
            argv = [py, "-m", "covet", "run", "app:app", "--app-dir", str(FAULT_DIR), "--host", HOST,
                    "--port", str(port), "--workers", str(s.workers), "--threads", threads, "--log-level", "warning"]
            for name, value in opts.items():
                flag, fmt = CLI_OPTIONS[name]
                argv += [flag, fmt.format(value)]
            return argv
        argv = [py, str(FAULT_DIR / "app.py"), "--host", HOST, "--port", str(port), "--threads", threads]
        for name, value in opts.items():
            argv += ["--opt", f"{name}={value}"]
        return argv

    def start(self, timeout: float = 60.0) -> "Target":
        errors = []
        for attempt in range(4):  # a port picked here may be taken before the server binds it
            port = free_port()
            tag = f"{self.spec.label().replace('/', '-')}-{port}-{attempt}"
            self.stdout_path, self.stderr_path = _TMP / f"{tag}.out", _TMP / f"{tag}.err"
            env = dict(os.environ)
            env.setdefault("PYTHONUNBUFFERED", "1")
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(self.argv(port), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             preexec_fn=_child_setup, close_fds=True, env=env, cwd=str(REPO_ROOT))
            self.port = port
            self.returncode = None
            if self._wait_ready(timeout):
                return self
            errors.append(f"argv={self.argv(port)}\n{self.stderr_tail()}")
            self.kill()
        raise AssertionError("server did not start:\n" + "\n---\n".join(errors))

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if self.spec.kind == "native":
                if BANNER_RE.search(self.stdout_path.read_text(errors="replace")):
                    return True
            elif self.wait_workers(self.spec.workers if self.spec.python_launcher == "run" else 0,
                                   timeout=max(0.1, deadline - time.monotonic())):
                return True
            time.sleep(0.05)
        return False

    def worker_pids(self) -> list[int]:
        """The serving processes: the hello process, `covet run --workers 1` (it serves alone, without a master),
        or the master's children (its workers)."""
        if self.proc is None:
            return []
        if self.spec.kind == "native" or self.spec.python_launcher == "serve" or self.spec.workers == 1:
            return [self.pid] if self.proc.poll() is None else []
        return [p for p in process_tree(self.pid) if p != self.pid]

    def wait_workers(self, count: int, timeout: float = 30.0, exclude: Iterable[int] = (),
                     spread_s: float = 3.0) -> bool:
        """Waits until `count` serving processes (none of them in `exclude`) exist and requests are answered
        (`count` 0: only the latter). It then tries for `spread_s` more to hear from each of them over new
        connections; when the workers share one listening socket the kernel may hand every connection to
        the same one, so not hearing from all of them is not a failure."""
        deadline = time.monotonic() + timeout
        excluded = set(exclude)
        seen: set[int] = set()
        spread_until: Optional[float] = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            workers = set(self.worker_pids()) - excluded
            if count > 0 and (len(workers) < count or set(self.worker_pids()) & excluded):
                time.sleep(0.05)
                continue
            try:
                status, headers, _ = simple_request(self.port, timeout=2.0)
            except OSError:
                time.sleep(0.05)
                continue
            if status != 200:
                time.sleep(0.05)
                continue
            if count <= 0:
                return True
            pid = int(headers.get("x-worker-pid", "0"))
            if pid in workers:
                seen.add(pid)
            if seen >= workers:
                return True
            if spread_until is None:
                spread_until = time.monotonic() + spread_s
            elif time.monotonic() > spread_until and seen:
                return True
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        return tree_rss_kb(self.pid) if self.alive() else 0

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM and wait; returns the exit code, or None if it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            self.kill()
            return self.returncode
        t0 = time.monotonic()
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        self.exit_seconds = time.monotonic() - t0
        self.kill()  # leftovers (workers of a master that died) and the group
        return rc

    def kill(self) -> None:
        if self.proc is None:
            return
        pids = process_tree(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.returncode is None:
            self.returncode = self.proc.returncode

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def __enter__(self) -> "Target":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill()


def simple_request(port: int, path: str = "/plaintext", timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One blocking GET on a new connection (readiness checks and 'is it still serving')."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: fault\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            parsed = parse_response(buf, eof=False)
            if parsed is not None:
                return parsed[0].status, parsed[0].headers, parsed[0].body
    parsed = parse_response(buf, eof=True)
    if parsed is None:
        raise ConnectionError(f"no whole response ({len(buf)} bytes)")
    return parsed[0].status, parsed[0].headers, parsed[0].body


# ---- HTTP/1.1 response parsing --------------------------------------------------------------------------

class BadResponse(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


_STATUS_RE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?")


def parse_response(buf: bytearray, eof: bool, head_only: bool = False) -> Optional[tuple[Response, int]]:
    """Parses one response at the start of `buf`: (response, bytes used), or None if more is needed.
    Raises BadResponse when the bytes cannot be an HTTP/1.x response (or end early at EOF)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if eof and buf:
            raise BadResponse(f"head cut short at EOF: {bytes(buf[:80])!r}")
        if len(buf) > 65536:
            raise BadResponse("response head longer than 64 KiB")
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    m = _STATUS_RE.fullmatch(lines[0])
    if not m:
        raise BadResponse(f"bad status line {lines[0][:80]!r}")
    status = int(m.group(1))
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            raise BadResponse(f"bad header line {line[:80]!r}")
        key = name.decode("latin-1").lower()
        val = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    start = end + 4
    if head_only or status < 200 or status in (204, 304):
        return Response(status, headers, b""), start
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        pos = start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                if eof:
                    raise BadResponse("chunked body cut short at EOF")
                return None
            size_text = bytes(buf[pos:line_end]).split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if buf[line_end:line_end + 4] == b"\r\n\r\n":
                    return Response(status, headers, bytes(body)), line_end + 4
                if trailer_end < 0:
                    if eof:
                        raise BadResponse("chunked trailer cut short at EOF")
                    return None
                return Response(status, headers, bytes(body)), trailer_end + 4
            data_end = line_end + 2 + size
            if len(buf) < data_end + 2:
                if eof:
                    raise BadResponse("chunk cut short at EOF")
                return None
            if buf[data_end:data_end + 2] != b"\r\n":
                raise BadResponse("chunk not followed by CRLF")
            body += buf[line_end + 2:data_end]
            pos = data_end + 2
    length_text = headers.get("content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise BadResponse(f"bad content-length {length_text!r}")
        length = int(length_text)
        if len(buf) < start + length:
            if eof:
                raise BadResponse(f"body cut short at EOF ({len(buf) - start} of {length} bytes)")
            return None
        return Response(status, headers, bytes(buf[start:start + length])), start + length
    if not eof:  # no length: the body runs to the end of the connection
        return None
    return Response(status, headers, bytes(buf[start:])), len(buf)


# ---- requests and the load generator --------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """One kind of request and what a correct answer is."""
    method: str
    path: str
    body: bytes = b""
    status: int = 200
    expect: Optional[bytes] = None   # expected body (None: the request body, for echoes)
    check_body: bool = True          # False: any body will do (error pages)

    def raw(self, close: bool = False) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: fault\r\n"
        if self.body or self.method in ("POST", "PUT"):
            head += f"Content-Type: application/octet-stream\r\nContent-Length: {len(self.body)}\r\n"
        if close:
            head += "Connection: close\r\n"
        return head.encode() + b"\r\n" + self.body

    def check(self, r: Response) -> bool:
        if r.status != self.status:
            return False
        return not self.check_body or r.body == (self.body if self.expect is None else self.expect)


PLAINTEXT = Probe("GET", "/plaintext", expect=b"Hello, World!")
BASIC_MIX = [
    PLAINTEXT,
    Probe("GET", "/json", expect=b'{"message":"Hello, World!"}'),
    Probe("GET", "/users/42", expect=b'{"id":42}'),
    Probe("POST", "/echo", body=bytes(range(64)) * 2),
    PLAINTEXT,
]
# With requests that take a while, so that some are in flight whenever a signal lands.
INFLIGHT_MIX = BASIC_MIX + [Probe("GET", "/delayed?ms=30", expect=b"delayed 30")]


def drift_mix(seed: int = 1) -> list[Probe]:
    """Routes, a 404, and echo bodies of several sizes: what a long run should not leak on."""
    rng = random.Random(seed)
    mix = list(BASIC_MIX)
    for size in (1, 100, 1000, 4000, 16000):
        mix.append(Probe("POST", "/echo", body=bytes(rng.randrange(256) for _ in range(size))))
    mix.append(Probe("GET", "/no/such/route", status=404, check_body=False))
    return mix


FAIL_KINDS = ("refused", "reset", "closed", "timeout", "bad_response", "connect_error")


@dataclass
class Stats:
    sent: int = 0
    completed: int = 0
    failed: collections.Counter = field(default_factory=collections.Counter)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def add(self, other: "Stats") -> None:
        self.sent += other.sent
        self.completed += other.completed
        self.failed.update(other.failed)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "completed": self.completed, "failed": self.failed_total,
                "failed_by_kind": dict(self.failed)}


class _Conn(asyncio.Protocol):
    """One client connection; at most one request outstanding."""

    def __init__(self, gen: "LoadGen") -> None:
        self.gen = gen
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.waiter: Optional[asyncio.Future] = None
        self.deadline = 0.0
        self.eof = False
        self.lost = False
        self.lost_kind = ""     # how it ended: "closed" (FIN) or "reset"
        self.pid = 0            # the worker that answered on this connection (x-worker-pid), 0: unknown
        self.head_only = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None:
            self._advance()

    def eof_received(self) -> bool:
        self.eof = True
        if self.waiter is not None:
            self._advance()
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.lost = True
        self.lost_kind = "closed" if exc is None else "reset"
        self.gen._active.discard(self)
        if self.waiter is not None and not self.waiter.done():
            if exc is None:
                self.eof = True
                self._advance()
            else:
                self._fail("reset")  # ECONNRESET, EPIPE, or another error that ended the connection

    def _advance(self) -> None:
        try:
            parsed = parse_response(self.buf, self.eof, self.head_only)
        except BadResponse:
            self._fail("closed" if self.eof and not self.buf.startswith(b"HTTP/") else "bad_response")
            return
        if parsed is None:
            if self.eof:
                self._fail("closed")
            return
        response, used = parsed
        del self.buf[:used]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, kind: str) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(_Failure(kind))

    def request(self, data: bytes, timeout: float) -> asyncio.Future:
        assert self.transport is not None
        self.waiter = fut = self.gen.loop.create_future()
        if self.lost or self.eof:  # closed by the server before this request was written
            self._fail(self.lost_kind or "closed")
            return fut
        self.deadline = time.monotonic() + timeout
        self.gen._active.add(self)
        self.transport.write(data)
        return fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Failure(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class FailureRecord:
    phase: str
    kind: str
    pid: int         # the worker of the connection (0: unknown: no response was read on it yet)
    new_connection: bool
    at: float


class LoadGen:
    """Closed-loop HTTP/1.1 clients: `keepalive` connections that reuse their connection, and `fresh`
    ones that open a new connection (with Connection: close) for every request."""

    def __init__(self, port: int, mix: list[Probe], keepalive: int = 8, fresh: int = 0, timeout: float = 5.0,
                 record_latency: bool = False, seed: int = 1) -> None:
        self.port = port
        self.mix = mix
        self.keepalive = keepalive
        self.fresh = fresh
        self.timeout = timeout
        self.record_latency = record_latency
        self.phase = "main"
        self.stats: dict[str, Stats] = collections.defaultdict(Stats)
        self.failures: list[FailureRecord] = []
        self.latencies: list[float] = []
        self.loop = asyncio.get_running_loop()
        self._active: set[_Conn] = set()
        self._conns: list[Optional[_Conn]] = []
        self._stop = asyncio.Event()
        self._limit: Optional[int] = None
        self._tasks: list[asyncio.Task] = []
        self._sweeper: Optional[asyncio.Task] = None
        self._seed = seed
        self.started_at = 0.0

    # -- control --
    def start(self, total: Optional[int] = None) -> "LoadGen":
        """Starts the clients; they stop after `total` requests (sent), or when stop() is called."""
        self._limit = total
        self.started_at = time.monotonic()
        self._sweeper = self.loop.create_task(self._sweep())
        n = self.keepalive + self.fresh
        self._conns = [None] * n
        for i in range(n):
            self._tasks.append(self.loop.create_task(self._client(i, fresh=i >= self.keepalive)))
        return self

    async def stop(self) -> None:
        """Stops sending and waits for the outstanding requests (each ends within the timeout)."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
        for c in self._conns:
            if c is not None:
                c.close()

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.stop()

    def total(self) -> Stats:
        out = Stats()
        for s in self.stats.values():
            out.add(s)
        return out

    def sent_total(self) -> int:
        return sum(s.sent for s in self.stats.values())

    def connections(self) -> list[_Conn]:
        return [c for c in self._conns if c is not None and not c.lost]

    def inflight(self) -> list[_Conn]:
        return [c for c in self._conns if c is not None and c.waiter is not None]

    # -- internals --
    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for c in list(self._active):
                if c.waiter is not None and now > c.deadline:
                    c._fail("timeout")
                    c.close()

    async def _connect(self) -> _Conn:
        _, conn = await self.loop.create_connection(lambda: _Conn(self), HOST, self.port)
        return conn  # type: ignore[return-value]

    async def _client(self, index: int, fresh: bool) -> None:
        rng = random.Random(self._seed * 1000 + index)
        mix = self.mix
        order = [mix[rng.randrange(len(mix))] for _ in range(997)]  # a fixed shuffled cycle per client
        probes = itertools.cycle(order)
        conn: Optional[_Conn] = None
        record = self.record_latency
        stats = self.stats
        while not self._stop.is_set():
            if self._limit is not None:
                if self._limit <= 0:
                    break
                self._limit -= 1
            probe = next(probes)
            t0 = time.monotonic()
            new = conn is None
            if conn is None:
                # A request whose connection could not be made counts as sent (and failed) in the phase
                # current when the connect failed.
                try:
                    conn = await asyncio.wait_for(self._connect(), self.timeout)
                except ConnectionRefusedError:
                    self._connect_failed("refused")
                    await asyncio.sleep(0.01)  # no listener: don't spin
                    continue
                except (asyncio.TimeoutError, TimeoutError):
                    self._connect_failed("timeout")
                    continue
                except ConnectionResetError:
                    self._connect_failed("reset")
                    continue
                except OSError as e:
                    self._connect_failed("connect_error", errno.errorcode.get(e.errno or 0, "?"))
                    await asyncio.sleep(0.01)
                    continue
                self._conns[index] = conn
            phase = self.phase  # as of the moment the request is written
            st = stats[phase]
            st.sent += 1
            try:
                response = await conn.request(probe.raw(close=fresh), self.timeout)
            except _Failure as f:
                self._record_failure(phase, f.kind, conn.pid, new)
                conn.close()
                conn = self._conns[index] = None
                continue
            if record:
                self.latencies.append(time.monotonic() - t0)
            pid = response.headers.get("x-worker-pid")
            if pid is not None:
                conn.pid = int(pid)
            if probe.check(response):
                st.completed += 1
            else:
                self._record_failure(phase, "bad_response", conn.pid, new)
            if fresh or response.closes or conn.eof or conn.lost:
                conn.close()
                conn = self._conns[index] = None

    def _connect_failed(self, kind: str, detail: str = "") -> None:
        self.stats[self.phase].sent += 1
        self._record_failure(self.phase, kind, 0, True, detail)

    def _record_failure(self, phase: str, kind: str, pid: int, new: bool, detail: str = "") -> None:
        self.stats[phase].failed[kind] += 1
        if len(self.failures) < 100_000:
            self.failures.append(FailureRecord(phase, kind if not detail else f"{kind}:{detail}", pid, new,
                                               time.monotonic()))


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(pct / 100 * (len(s) - 1))))]


class RssSampler:
    """Samples the resident memory of a target every `interval` seconds: its whole process tree (a `covet run`
    master included) and its serving processes alone."""

    def __init__(self, target: Target, interval: float = 0.5) -> None:
        self.target = target
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []   # (time, tree KiB, workers KiB)
        self._task: Optional[asyncio.Task] = None

    def sample(self) -> tuple[int, int]:
        if not self.target.alive():
            return 0, 0
        tree = self.target.rss_kb()
        workers = sum(rss_kb(p) for p in self.target.worker_pids())
        self.samples.append((time.monotonic(), tree, workers))
        return tree, workers

    def start(self) -> "RssSampler":
        async def run() -> None:
            while True:
                self.sample()
                await asyncio.sleep(self.interval)
        self._task = asyncio.get_running_loop().create_task(run())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> dict:
        values = [kb for _, kb, _ in self.samples if kb]
        if not values:
            return {}
        workers = [kb for _, _, kb in self.samples if kb]
        return {"first_kb": values[0], "last_kb": values[-1], "peak_kb": max(values), "samples": len(values),
                "workers_first_kb": workers[0] if workers else 0, "workers_last_kb": workers[-1] if workers else 0}
