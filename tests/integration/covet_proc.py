"""Start, watch and stop the `hello` example server for the black-box integration tests.

The server is driven only through its command line, its stdout banner, signals and sockets.
"""
from __future__ import annotations

import atexit
import collections
import ctypes
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO_ROOT / "build" / "examples" / "native" / "hello" / "hello"

# The one line the server prints (and flushes) once every listener is bound.
BANNER_RE = re.compile(r"^listening on 127\.0\.0\.1:(\d+) backend=(\S+) threads=(\d+)$")

START_TIMEOUT = 10.0   # seconds to wait for the banner
STOP_TIMEOUT = 15.0    # seconds from SIGTERM to exit (graceful shutdown is under test)
START_ATTEMPTS = 5     # a port picked by us may be taken before the server binds it

_TMPDIR = Path(tempfile.mkdtemp(prefix="covet-integration-"))
_ALL: list["ServerProcess"] = []


def hello_binary() -> Path:
    return Path(os.environ.get("COVET_HELLO_BIN") or DEFAULT_BINARY)


def free_port() -> int:
    """A port that was free a moment ago. The server cannot use --port 0 (several SO_REUSEPORT
    listeners would each get a different port), so we pick one and retry if it was taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest dies, the kernel kills the server too.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _signal_name(rc: int) -> str:
    if rc >= 0:
        return f"exit code {rc}"
    try:
        return f"killed by {signal.Signals(-rc).name}"
    except ValueError:
        return f"killed by signal {-rc}"


class ServerProcess:
    """One `hello` process. start() waits for the banner; stop() sends SIGTERM and insists on a
    clean exit (code 0) within STOP_TIMEOUT."""

    def __init__(self, binary: Path, backend: str | None, args=(), threads: int | None = 2):
        self.binary = Path(binary)
        self.backend = backend
        self.args = [str(a) for a in args]
        self.threads = threads
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.banner: str | None = None
        self.reported_backend: str | None = None
        self.reported_threads: int | None = None
        self.stdout_lines: collections.deque[str] = collections.deque(maxlen=500)
        self.stderr_path: Path | None = None
        self.started_at: float | None = None
        self.term_sent_at: float | None = None
        self.stopped_at: float | None = None
        self.returncode: int | None = None
        self._banner_event = threading.Event()
        self._pump: threading.Thread | None = None
        self.failed_starts: list[str] = []
        _ALL.append(self)

    # ---- lifecycle -------------------------------------------------------------------------

    def argv(self, port: int) -> list[str]:
        argv = [str(self.binary), "--port", str(port)]
        if self.threads is not None:           # None: leave the default (one per core)
            argv += ["--threads", str(self.threads)]
        if self.backend is not None:           # None: leave the default (auto)
            argv += ["--backend", self.backend]
        return argv + ["--host", "127.0.0.1", *self.args]

    def start(self) -> "ServerProcess":
        for attempt in range(START_ATTEMPTS):
            if self._start_once(free_port(), attempt):
                return self
        raise AssertionError(
            f"server never started after {START_ATTEMPTS} attempts; last argv={self.argv(self.port)}\n"
            + "\n---\n".join(self.failed_starts))

    def _start_once(self, port: int, attempt: int) -> bool:
        self.port = port
        self.banner = None
        self._banner_event = threading.Event()
        self.stdout_lines.clear()
        self.stderr_path = _TMPDIR / f"hello-{os.getpid()}-{id(self):x}-{attempt}.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(port), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                preexec_fn=_die_with_parent, close_fds=True)
        self.started_at = time.monotonic()
        # Drain stdout for the whole life of the process: if access logs go to stdout and nobody
        # reads the pipe, the server would block on a full pipe and look hung.
        self._pump = threading.Thread(target=self._pump_stdout, args=(self.proc,), daemon=True)
        self._pump.start()

        got_line = self._banner_event.wait(START_TIMEOUT)
        if self.banner is None:
            rc = self.proc.poll()
            if rc is None:
                self._kill()
                raise AssertionError(
                    f"no 'listening on ...' line on stdout within {START_TIMEOUT} s "
                    f"(argv={self.argv(port)}); stderr:\n{self.stderr_tail()}")
            # Exited before listening: probably the port was taken meanwhile; try another one.
            self.proc.wait()
            self.failed_starts.append(
                f"attempt {attempt} argv={self.argv(port)} {_signal_name(rc)} (line seen: {got_line}); "
                f"stderr:\n{self.stderr_tail()}")
            return False

        m = BANNER_RE.match(self.banner)
        if not m:
            self._kill()
            raise AssertionError(
                f"first stdout line {self.banner!r} does not match "
                f"'listening on 127.0.0.1:PORT backend=NAME threads=N'")
        self.reported_backend = m.group(2)
        self.reported_threads = int(m.group(3))
        if int(m.group(1)) != port:
            self._kill()
            raise AssertionError(f"banner {self.banner!r} names port {m.group(1)}, asked for --port {port}")
        if self.backend in ("uring", "asio") and self.reported_backend != self.backend:
            self._kill()
            raise AssertionError(
                f"asked for --backend {self.backend} but the banner says {self.banner!r}")
        return True

    def _pump_stdout(self, proc: subprocess.Popen) -> None:
        first = True
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if first:
                self.banner = line
                first = False
                self._banner_event.set()
            else:
                self.stdout_lines.append(line)
        self._banner_event.set()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.returncode = self.proc.returncode if self.proc else None
        self.stopped_at = time.monotonic()

    # ---- signals and exit --------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            rc = self.proc.poll() if self.proc else None
            raise AssertionError(
                f"server process is gone ({_signal_name(rc) if rc is not None else 'never started'}); "
                f"stderr:\n{self.stderr_tail()}")

    def send_sigterm(self) -> None:
        self.assert_alive()
        self.term_sent_at = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to exit; returns the code, or raises (after killing it) on timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(
                f"server did not exit within {timeout} s of SIGTERM ({self.describe()}); "
                f"stderr:\n{self.stderr_tail()}")
        self.returncode = rc
        self.stopped_at = time.monotonic()
        if self._pump:
            self._pump.join(2)
        return rc

    def stop(self, timeout: float = STOP_TIMEOUT) -> float:
        """SIGTERM, then require exit code 0 within `timeout`. Returns the seconds it took."""
        if self.stopped:
            return 0.0
        if not self.alive():
            rc = self.proc.poll()
            self.returncode = rc
            self.stopped_at = time.monotonic()
            raise AssertionError(
                f"server died before teardown ({_signal_name(rc)}; {self.describe()}); "
                f"stderr:\n{self.stderr_tail()}")
        self.send_sigterm()
        rc = self.wait_exit(timeout)
        took = self.stopped_at - self.term_sent_at
        if rc != 0:
            raise AssertionError(
                f"server exited with {_signal_name(rc)} after SIGTERM, expected exit code 0 "
                f"({self.describe()}); stderr:\n{self.stderr_tail()}")
        return took

    # ---- diagnostics -------------------------------------------------------------------------

    def describe(self) -> str:
        return (f"hello backend={self.backend} threads={self.threads} port={self.port} "
                f"pid={self.proc.pid if self.proc else None} extra_args={self.args}")

    def stderr_tail(self, limit: int = 6000) -> str:
        if not self.stderr_path or not self.stderr_path.exists():
            return "(no stderr captured)"
        data = self.stderr_path.read_bytes()
        text = data[-limit:].decode("utf-8", "replace")
        if len(data) > limit:
            text = f"... ({len(data) - limit} earlier bytes cut)\n" + text
        return text or "(stderr empty)"


def servers_active_since(t: float) -> list[ServerProcess]:
    return [s for s in _ALL if s.proc is not None and (s.stopped_at is None or s.stopped_at >= t)]


@atexit.register
def _kill_leftovers() -> None:
    for s in _ALL:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
