"""Multi-process serving: a master that starts N worker processes sharing one port (SO_REUSEPORT),
restarts a worker that crashes, restarts all of them when sources change (--reload), and shuts everything
down gracefully on SIGTERM/SIGINT.

Workers are fresh interpreters (``python -m covet _worker module:app ...``), not forks: a forked child of a
process that already runs native threads or an event loop is not safe, and --reload needs new code anyway.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .tls import TransportOptions

log = logging.getLogger("covet.supervisor")

RESTART_BACKOFF_MAX = 10.0  # seconds between restarts of a worker that keeps crashing
STOP_GRACE = 15.0           # seconds a worker gets to drain after SIGTERM before SIGKILL


@dataclass
class WorkerOptions:
    app: str                  # "module:attribute"
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 0
    log_level: str = "info"
    app_dir: str = "."
    max_connections: int = 10000
    transport: TransportOptions = field(default_factory=TransportOptions)  # TLS, HTTP/2


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    failures: int = 0


def resolve_workers(value: str | int) -> int:
    """'auto' → one worker per CPU the process may run on; otherwise a positive integer."""
    if value == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    n = int(value)
    if n < 1:
        raise ValueError(f"--workers must be 'auto' or a positive integer, not {value!r}")
    return n


def check_port_free(host: str, port: int) -> None:
    """Fail early, with a clear message, if someone already listens on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise SystemExit(f"covet: cannot listen on {host}:{port}: {e.strerror} "
                             "(another process is using this port: stop it or choose another --port)") from None


def worker_command(opts: WorkerOptions) -> list[str]:
    return [sys.executable, "-m", "covet", "_worker", opts.app, "--host", opts.host, "--port", str(opts.port),
            "--threads", str(opts.threads), "--max-connections", str(opts.max_connections),
            "--log-level", opts.log_level, "--app-dir", opts.app_dir, *opts.transport.cli_args()]


class Supervisor:
    def __init__(self, opts: WorkerOptions, workers: int, reload: bool = False,
                 reload_dirs: list[str] | None = None) -> None:
        self.opts = opts
        self.count = workers
        self.reload = reload
        self.reload_dirs = [Path(d).resolve() for d in (reload_dirs or [opts.app_dir])]
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self._snapshot: dict[Path, float] = {}

    # ---- lifecycle ----
    def run(self) -> int:
        check_port_free(self.opts.host, self.opts.port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        # SIGHUP: with TLS, the workers reload their certificates in place (no connection is dropped);
        # otherwise they are restarted.
        if self.opts.transport.tls:
            signal.signal(signal.SIGHUP, lambda *_: self._signal_all(signal.SIGHUP))
        else:
            signal.signal(signal.SIGHUP, lambda *_: self._restart_all("SIGHUP"))
        if self.reload:
            self._snapshot = self._scan()
        for i in range(self.count):
            self._spawn(i)
        log.info("covet master %d: %d worker(s) on %s:%d", os.getpid(), self.count, self.opts.host, self.opts.port)
        while not self.stopping:
            self._reap()
            if self.reload and self._changed():
                self._restart_all("source change")
            time.sleep(0.25)
        self._stop_all()
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("covet master: %s received, stopping workers", signal.Signals(signum).name)
        self.stopping = True

    def _spawn(self, index: int, failures: int = 0) -> None:
        proc = subprocess.Popen(worker_command(self.opts))
        self.workers[index] = _Worker(index, proc, failures=failures)

    def _reap(self) -> None:
        for index, w in list(self.workers.items()):
            rc = w.proc.poll()
            if rc is None or self.stopping:
                continue
            lived = time.monotonic() - w.started
            failures = 0 if lived > 30 else w.failures + 1
            delay = min(RESTART_BACKOFF_MAX, 0.1 * (2 ** failures)) if failures else 0.0
            log.error("covet worker %d (pid %d) exited with %s after %.1f s; restarting%s", index, w.proc.pid,
                      _describe_exit(rc), lived, f" in {delay:.1f} s" if delay else "")
            time.sleep(delay)
            if not self.stopping:
                self._spawn(index, failures)

    def _signal_all(self, sig: int) -> None:
        log.info("covet master: %s: passing it on to the workers", signal.Signals(sig).name)
        for w in self.workers.values():
            if w.proc.poll() is None:
                w.proc.send_signal(sig)

    def _restart_all(self, why: str) -> None:
        log.info("covet master: restarting workers (%s)", why)
        self._stop_all()
        for i in range(self.count):
            self._spawn(i)

    def _stop_all(self) -> None:
        for w in self.workers.values():
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for w in self.workers.values():
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("covet worker %d did not stop in %.0f s; killing it", w.index, STOP_GRACE)
                w.proc.kill()
                w.proc.wait()
        self.workers.clear()

    # ---- --reload ----
    def _scan(self) -> dict[Path, float]:
        seen: dict[Path, float] = {}
        for root in self.reload_dirs:
            for path in root.rglob("*.py"):
                if any(part.startswith(".") or part in ("__pycache__", "build") for part in path.parts):
                    continue
                try:
                    seen[path] = path.stat().st_mtime
                except OSError:
                    pass
        return seen

    def _changed(self) -> bool:
        now = self._scan()
        changed = now != self._snapshot
        self._snapshot = now
        return changed


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"code {rc}"
