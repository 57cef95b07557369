"""Multi-process serving: a master (this supervisor) that owns the listening socket and runs N worker
processes on it, with zero-downtime restarts.

The master binds the socket once and hands it to every worker (``pass_fds``; the engine adopts it with
``listen_fd=``). It keeps its own copy open for its whole life, so connections waiting in the accept queue
survive any restart: nothing is refused while workers come and go.

Restarts are rolling. A whole generation (SIGHUP without TLS, SIGUSR2, ``covet reload``, --reload on a source
change): the master starts a new worker per slot, waits until every new worker reports ``ready`` on its pipe,
then sends the old generation SIGTERM (the engine stops accepting and finishes the requests in flight; the new
workers accept what is queued). One worker (--limit-max-requests, --max-rss, --max-lifetime): the same for its
slot alone; the master replaces one such worker at a time, so that they never restart together. A new worker
that fails to start (an import error during --reload) is stopped and the old one keeps serving. A worker that
crashes is restarted with a growing delay. SIGTERM/SIGINT stop everything gracefully. With TLS, SIGHUP reloads
the certificate files in every worker instead (no restart); SIGUSR2 is a rolling restart in both cases.

The serving generation (1 at start, +1 per completed whole restart) and each restart's outcome are logged, in
the metrics (``covet_generation``, ``covet_reloads_total{result}``, ``covet_worker_restarts_total{cause}``) and
in a state file that ``covet reload`` follows (covet.server.control).

Workers are fresh interpreters (``python -m covet _worker module:app ...``), not forks: a forked child of a
process that already runs native threads or an event loop is not safe, and --reload needs new code anyway.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Optional

from covet.tls import TransportOptions

from .control import (
    GROUP_LOCK,
    MasterState,
    group_alive,
    process_exists,
    remove_pid_file,
    state_file_name,
    write_pid_file,
)
from .engine import EngineModule, native_module
from .hosted import STARTUP_FAILURE_EXIT
from .log_levels import LevelsFollower, describe, levels_path, remove_levels
from .options import engine_default, engine_has, engine_option
from .quic_group import QuicGroup

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("covet.supervisor")

RESTART_BACKOFF_MAX = 10.0  # seconds between restarts of a worker that keeps crashing
STOP_MARGIN = 5.0           # seconds past the engine's drain deadline before a worker is killed
START_TIMEOUT = 60.0        # seconds a new worker may take to serve before its generation is given up
RSS_CHECK_INTERVAL = 1.0    # seconds between two reads of the workers' resident memory (--max-rss)
LIFETIME_JITTER = 0.1       # --max-lifetime's default jitter, a fraction of it
RECYCLE_CAUSES = ("max_requests", "max_rss", "lifetime")  # one worker replaced on its own, by this cause


@dataclass
class WorkerOptions:
    app: str                  # "module:attribute"
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 0
    log_level: Optional[str] = "info"
    app_dir: str = "."
    max_connections: Optional[int] = None  # None: the engine's default
    transport: TransportOptions = field(default_factory=TransportOptions)  # TLS, HTTP/2
    # NativeServer limits/timeouts (covet.server.options.ENGINE_OPTIONS); unset ones keep the engine's defaults
    engine: dict[str, int] = field(default_factory=dict)
    loop: str = "auto"
    log_config: Optional[str] = None
    factory: bool = False
    limit_concurrency: Optional[int] = None
    limit_max_requests: Optional[int] = None
    root_path: str = ""  # the ASGI root_path behind a prefix-stripping proxy (--root-path)
    compat: Optional[str] = None  # --compat: the covet.compat shim the worker installs before importing the app
    interface: str = "auto"  # how the app is served: auto (detected), asgi3, wsgi, covet (covet.server.hosted)
    wsgi_threads: Optional[int] = None  # a hosted WSGI app's thread pool (None: the host's default)

    @property
    def stop_grace(self) -> float:
        """Seconds a worker gets after SIGTERM: the engine's drain deadline plus time for the lifespan shutdown."""
        shutdown_ms = self.engine.get("shutdown_timeout_ms")
        if shutdown_ms is None:
            shutdown_ms = engine_default("shutdown_timeout_ms")
        return shutdown_ms / 1000 + STOP_MARGIN


@dataclass
class Recycling:
    """When the master replaces a worker that is doing fine (rolling, one at a time): ``--max-rss MB`` (resident
    memory, read from /proc by the master) and ``--max-lifetime S`` of serving plus a random ``0 .. jitter``
    seconds per worker (default: a tenth of it), so that workers started together do not all restart together."""

    max_rss: Optional[int] = None         # bytes
    max_lifetime: Optional[float] = None  # seconds
    lifetime_jitter: Optional[float] = None  # seconds; None: LIFETIME_JITTER * max_lifetime

    def lifetime(self) -> Optional[float]:
        """One worker's lifetime: max_lifetime plus its jitter."""
        if self.max_lifetime is None:
            return None
        jitter = self.lifetime_jitter if self.lifetime_jitter is not None else self.max_lifetime * LIFETIME_JITTER
        return self.max_lifetime + random.uniform(0.0, max(0.0, jitter))


@dataclass(eq=False)
class _Proc:
    slot: int
    proc: subprocess.Popen[bytes]
    pipe: int                 # read end of the worker's readiness pipe (-1: closed)
    generation: int = 1
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    ready_at: float = 0.0
    failures: int = 0
    stop_deadline: Optional[float] = None
    expires: Optional[float] = None  # --max-lifetime: replaced once this is past
    recycle_after: float = 0.0       # no --max-rss/--max-lifetime replacement before (after a failed one)
    buffer: bytes = b""
    bank: int = -1                   # its HTTP/3 sockets' bank in the master's QuicGroup (-1: none)


@dataclass(eq=False)
class _Batch:
    """New workers that replace the current ones of their slots together, once all of them serve: a whole new
    generation (`whole`), or one worker replaced for one of RECYCLE_CAUSES."""

    reason: str               # for the log: "SIGUSR2", "source change", "--max-rss" ...
    procs: dict[int, _Proc]
    cause: str = "reload"     # covet_worker_restarts_total's label once they serve
    whole: bool = False
    covers: int = 0           # a whole generation: the restart requests it includes (MasterState.requests)
    started: float = field(default_factory=time.monotonic)


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


def _listen_hint(err: int) -> str:
    return {errno.EADDRINUSE: " (another process is using this port: stop it or choose another --port)",
            errno.EACCES: " (ports below 1024 need privileges: choose a port >= 1024)",
            errno.EADDRNOTAVAIL: " (this machine has no such address: use 0.0.0.0 or 127.0.0.1)"}.get(err, "")


def open_listener(host: str, port: int, backlog: Optional[int] = None) -> socket.socket:
    """The shared listening socket: bound once by the master, inherited by every worker. Like the engine's
    own listener (SO_REUSEADDR, TCP_NODELAY for the accepted sockets) but without SO_REUSEPORT: nobody else
    can join the port. `backlog`: None is the engine's default (``--backlog``)."""
    if backlog is None:
        backlog = engine_default("listen_backlog")
    try:
        infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise SystemExit(f"covet: cannot listen on {host}:{port}: {e.strerror} (check the host name)") from None
    error: Optional[OSError] = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind(address)
            sock.listen(backlog)
        except OSError as e:
            error = e
            sock.close()
            continue
        sock.setblocking(False)
        sock.set_inheritable(True)
        return sock
    assert error is not None
    raise SystemExit(f"covet: cannot listen on {host}:{port}: {error.strerror}{_listen_hint(error.errno or 0)}")


def check_port_free(host: str, port: int) -> None:
    """Fail early, with a clear message, if someone already listens on host:port."""
    open_listener(host, port).close()


_metrics_dir_made: Optional[str] = None  # the directory ensure_metrics_dir made (removed when the master exits)


def ensure_metrics_dir() -> str:
    """The directory where every process of this group keeps its metrics region (COVET_METRICS_DIR, inherited by
    the workers): one scrape of any worker merges them all, and a dead worker's file stays, so counters never go
    backwards. Made under /dev/shm unless the variable is already set (e.g. a Kubernetes emptyDir). Call before
    the native metrics are first used in this process (the app's import may declare metrics)."""
    global _metrics_dir_made
    current = os.environ.get("COVET_METRICS_DIR")
    if current:
        return current
    import tempfile  # deferred: only a supervisor needs it

    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    _remove_stale_metrics_dirs(base)
    _metrics_dir_made = _make_held_metrics_dir(base)
    os.environ["COVET_METRICS_DIR"] = _metrics_dir_made
    import atexit

    atexit.register(_remove_metrics_dir)  # also when the command fails before the supervisor runs
    return _metrics_dir_made


STALE_UNLOCKED_AGE = 60.0  # seconds: a directory without the lock file (made by an older covet) counts as stale
_metrics_dir_lock: Optional[int] = None


def _make_held_metrics_dir(base: str) -> str:
    """``BASE/covet-metrics-PID-XXXX``, its group lock (control.GROUP_LOCK) held by this process for its life. It is
    made under a name the sweep does not look at and renamed once the lock is held, so that no other group's sweep
    sees it unlocked; the lock file is removed if the lock cannot be had (the pid-and-age rule applies then)."""
    global _metrics_dir_lock
    import fcntl
    import tempfile

    staging = tempfile.mkdtemp(prefix=".covet-metrics-new-", dir=base)
    lock = os.path.join(staging, GROUP_LOCK)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        os.unlink(lock)
    else:
        _metrics_dir_lock = fd
    final = os.path.join(base, f"covet-metrics-{os.getpid()}-{os.path.basename(staging).rsplit('-', 1)[-1]}")
    os.rename(staging, final)
    return final


def _remove_stale_metrics_dirs(base: str) -> None:
    """Removes this user's ``covet-metrics-PID-*`` directories that no live group holds: one whose master was
    killed (SIGKILL, OOM) could not remove its own, and /dev/shm is memory (6 MB a worker). A group holds its
    directory's lock file (flock) as long as it runs, which also holds across pid namespaces sharing /dev/shm
    (containers of one pod), where the pid in the name means nothing; a directory without one (an older covet's)
    is stale once its pid is gone here and it is a minute old."""
    import shutil

    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            pid = entry.name.removeprefix("covet-metrics-").partition("-")[0]
            if not (entry.name.startswith("covet-metrics-") and pid.isdigit()):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if not entry.is_dir(follow_symlinks=False) or st.st_uid != os.getuid():
                    continue
                alive = group_alive(entry.path)
                if alive is False or (alive is None and not process_exists(int(pid))
                                      and time.time() - st.st_mtime > STALE_UNLOCKED_AGE):
                    shutil.rmtree(entry.path, ignore_errors=True)


def _remove_metrics_dir() -> None:
    global _metrics_dir_made, _metrics_dir_lock
    if _metrics_dir_made is not None:
        import shutil

        shutil.rmtree(_metrics_dir_made, ignore_errors=True)
        if os.environ.get("COVET_METRICS_DIR") == _metrics_dir_made:
            del os.environ["COVET_METRICS_DIR"]
        _metrics_dir_made = None
    if _metrics_dir_lock is not None:
        os.close(_metrics_dir_lock)
        _metrics_dir_lock = None


def _count_restart(cause: str) -> None:
    """covet_worker_restarts_total{cause}: crash, signal, reload, max_requests, max_rss, lifetime."""
    record = getattr(native_module(), "metrics_worker_restart", None)
    if record is not None:
        record(cause)


def _retire_dead_metrics() -> None:
    """Folds the metrics regions of the workers just reaped into the group's retired region and deletes their files,
    so that restarts do not pile files up in the metrics directory between scrapes."""
    retire = getattr(native_module(), "metrics_retire_dead", None)
    if retire is not None:
        retire()


class _GenerationMetrics:
    """The master's own series, declared through the native registry (they land in the group's one scrape):
    ``covet_generation`` (gauge) and ``covet_reloads_total{result}`` (counter: ready, failed)."""

    def __init__(self) -> None:
        native = native_module()
        self._set = getattr(native, "metrics_set", None)
        self._add = getattr(native, "metrics_add", None)
        family = getattr(native, "metrics_family", None)
        self._generation = self._reloads = -1
        if family is None or self._set is None or self._add is None:
            return  # an engine without metrics: nothing to publish
        try:
            self._generation = family("covet_generation", "The worker generation serving: 1 at start, one more "
                                      "per completed rolling restart of the whole group.", "gauge", [])
            self._reloads = family("covet_reloads", "Rolling restarts of the whole group (SIGHUP, SIGUSR2, covet "
                                   "reload, --reload), by result: ready (the new generation serves) or failed (the "
                                   "old one keeps serving).", "counter", [])
        except ValueError as e:  # declared otherwise by the app (same name): keep serving, say so
            log.warning("covet master: generation metrics not published: %s", e)

    def generation(self, n: int) -> None:
        if self._generation >= 0 and self._set is not None:
            self._set(self._generation, [], [], float(n))

    def reload(self, result: str) -> None:
        if self._reloads >= 0 and self._add is not None:
            self._add(self._reloads, ["result"], [result], 1.0)


def _rss_bytes(pid: int) -> Optional[int]:
    """Resident memory of `pid` (/proc/PID/statm), None if unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def engine_adopts_sockets(native: EngineModule) -> bool:
    """Whether this engine build takes ``listen_fd=`` (adopt the master's socket): its config has the field
    the keyword sets, ``ServerConfig.inherited_listener``."""
    return engine_has(native, "inherited_listener")


def engine_adopts_ops_sockets(native: EngineModule) -> bool:
    """Whether this engine build's ``configure_ops`` takes ``listen_fd=`` (adopt the master's operations socket)."""
    return "listen_fd" in (getattr(getattr(native, "configure_ops", None), "__doc__", None) or "")


def open_ops_listener(native: EngineModule) -> Optional[socket.socket]:
    """The operations listener (``--ops-port``) bound once by the master, like the app's: every worker accepts from
    its one queue, so that a worker that dies (SIGKILL, a crash) or restarts loses no connection waiting there (with
    a SO_REUSEPORT socket per worker the kernel resets the ones queued on the dead worker's). None without an
    operations port in the options the workers inherit (an app's own ``enable_metrics(ops_port=...)`` is its
    workers' business: each binds its own socket then)."""
    from .ops import OpsOptions  # deferred: the same resolution as a worker's, from the exported environment

    ops = OpsOptions.take({})
    if not ops.port or not engine_adopts_ops_sockets(native):
        return None
    try:
        return open_listener(ops.host, ops.port)
    except SystemExit as e:  # the same message, naming the flag to change
        raise SystemExit(str(e).replace("choose another --port", "choose another --ops-port")) from None


def worker_command(opts: WorkerOptions, listen_fd: int = -1, ready_fd: int = -1, ops_listen_fd: int = -1,
                   quic: Optional[tuple[list[int], int, int]] = None) -> list[str]:
    """`quic`: the worker's HTTP/3 sockets from the master's QuicGroup, their group index and the ID tag."""
    command = [sys.executable, "-m", "covet", "_worker", opts.app, "--host", opts.host, "--port", str(opts.port),
               "--threads", str(opts.threads), "--app-dir", opts.app_dir, "--loop", opts.loop,
               *opts.transport.cli_args()]
    if opts.max_connections is not None:
        command += ["--max-connections", str(opts.max_connections)]
    if opts.log_level:
        command += ["--log-level", opts.log_level]
    if opts.log_config:
        command += ["--log-config", opts.log_config]
    if opts.factory:
        command.append("--factory")
    if opts.compat:
        command += ["--compat", opts.compat]
    for kwarg, value in opts.engine.items():
        if kwarg != "listen_backlog" or listen_fd < 0:  # the master's socket already has its backlog
            option = engine_option(kwarg)
            command += [option.flag, option.render(value)]
    if opts.limit_concurrency is not None:
        command += ["--limit-concurrency", str(opts.limit_concurrency)]
    if opts.limit_max_requests is not None:
        command += ["--limit-max-requests", str(opts.limit_max_requests)]
    if opts.root_path:
        command += ["--root-path", opts.root_path]
    if opts.interface != "auto":
        command += ["--interface", opts.interface]
    if opts.wsgi_threads is not None:
        command += ["--wsgi-threads", str(opts.wsgi_threads)]
    if listen_fd >= 0:
        command += ["--listen-fd", str(listen_fd)]
    if ready_fd >= 0:
        command += ["--ready-fd", str(ready_fd)]
    if ops_listen_fd >= 0:
        command += ["--ops-listen-fd", str(ops_listen_fd)]
    if quic is not None:
        fds, cid_base, tag = quic
        command += ["--http3-fds", ",".join(map(str, fds)), "--http3-cid-base", str(cid_base),
                    "--http3-cid-tag", str(tag)]
    return command


class Supervisor:
    def __init__(self, opts: WorkerOptions, workers: int, reload: bool = False,
                 reload_dirs: list[str] | None = None, recycling: Optional[Recycling] = None,
                 pid_file: Optional[str] = None) -> None:
        self.opts = opts
        self.count = workers
        self.reload = reload
        self.recycling = recycling or Recycling()
        self.pid_file = pid_file
        from pathlib import Path  # deferred: only a supervisor needs it (the start-up cost of `import covet`)

        self.reload_dirs = [Path(d).resolve() for d in (reload_dirs or [opts.app_dir])]
        self.current: dict[int, _Proc] = {}
        self.batches: list[_Batch] = []
        self.draining: list[_Proc] = []
        self.respawn: dict[int, tuple[float, int]] = {}  # slot → (when, failures) after a crash
        self.stopping = False
        self.listener: Optional[socket.socket] = None
        self.ops_listener: Optional[socket.socket] = None  # --ops-port's socket, shared like `listener`
        self.quic: Optional[QuicGroup] = None  # --http3's UDP sockets, routed by connection ID
        self._quic_routed: dict[int, int] = {}  # slot → the bank its new HTTP/3 connections go to
        self.generation = 1
        self.requests = 0                     # restart requests taken (the state file's, for `covet reload`)
        self._restart_requested: Optional[str] = None
        self._again: Optional[str] = None     # a restart asked for while one was starting
        self._hup = False
        self._snapshot: dict[Path, float] = {}
        self._next_scan = 0.0
        self._next_rss_check = 0.0
        self._selector = selectors.DefaultSelector()
        self._announced = False
        self._ready_published = -1
        self._state = MasterState(pid=os.getpid(), generation=1)
        self._state_path: Optional[str] = None
        self._state_written: Optional[dict[str, object]] = None
        self._metrics: Optional[_GenerationMetrics] = None
        self._levels: Optional[LevelsFollower] = None  # `covet log-level`'s file, followed by the master too
        self._next_levels = 0.0
        self.exit_code = 0

    # ---- lifecycle ----
    def run(self) -> int:
        directory = ensure_metrics_dir()
        self._state_path = os.path.join(directory, state_file_name(os.getpid()))
        self._levels = LevelsFollower(levels_path(directory, os.getpid()))
        remove_levels(self._levels.path)  # a crashed group's, whose pid this one got again (containers: pid 1)
        if self.pid_file:
            write_pid_file(self.pid_file)
        try:
            return self._run()
        finally:
            if self.pid_file:
                remove_pid_file(self.pid_file)
            if self._state_path:
                with contextlib.suppress(OSError):
                    os.unlink(self._state_path)
            if self._levels:
                remove_levels(self._levels.path)
            _remove_metrics_dir()

    def _publish_ready(self) -> None:
        """covet_workers_ready: the current workers that serve."""
        ready = sum(1 for p in self.current.values() if p.ready and p.proc.poll() is None)
        if ready != self._ready_published:
            self._ready_published = ready
            publish = getattr(native_module(), "metrics_set_workers_ready", None)
            if publish is not None:
                publish(ready)

    def _write_state(self) -> None:
        """The state file, when it changed (covet.server.control.MasterState)."""
        st = self._state
        st.generation = self.generation
        st.workers = [p.proc.pid for _, p in sorted(self.current.items())]
        st.requests = self.requests
        st.restarting = self._whole_batch() is not None
        if self._state_path is None or asdict(st) == self._state_written:
            return
        try:
            st.write(self._state_path)
            self._state_written = asdict(st)
        except OSError as e:  # `covet reload` cannot follow restarts then; serving goes on
            log.warning("covet master: cannot write %s: %s", self._state_path, e.strerror)
            self._state_path = None

    def _open_listeners(self) -> None:
        """The app's TCP listener and HTTP/3's UDP sockets on the same port. For port 0 the kernel picks the TCP
        port alone, and that number may be held on UDP (a client's socket, another server's): pick again."""
        native = native_module()
        adopts = engine_adopts_sockets(native)
        if not adopts:  # each worker binds its own SO_REUSEPORT socket (restarts may drop)
            log.warning("this engine build cannot adopt a listening socket: workers bind their own "
                        "(restarts are not zero-downtime; rebuild covet._native)")
            check_port_free(self.opts.host, self.opts.port)
        picked = self.opts.port == 0
        for attempt in range(1, 33):
            if adopts:
                self.listener = open_listener(self.opts.host, 0 if picked else self.opts.port,
                                              self.opts.engine.get("listen_backlog"))
                self.opts.port = self.listener.getsockname()[1]  # port 0: the one the kernel chose
            if not self.opts.transport.http3:
                return
            try:
                self.quic = QuicGroup.open(native, self.opts.host, self.opts.port, self.count,
                                           max(1, self.opts.threads))
                return
            except OSError as e:
                if not (picked and self.listener is not None and e.errno == errno.EADDRINUSE) or attempt == 32:
                    raise
                self.listener.close()

    def _run(self) -> int:
        self._open_listeners()
        self.ops_listener = open_ops_listener(native_module())
        if self.recycling.max_rss is not None and not os.path.exists(f"/proc/{os.getpid()}/statm"):
            log.warning("--max-rss needs /proc (Linux): workers will not be replaced for their memory")
        self._metrics = _GenerationMetrics()
        self._metrics.generation(self.generation)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self._selector.register(wake_r, selectors.EVENT_READ, None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGUSR2, lambda *_: self._request_restart("SIGUSR2"))
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop when a worker exits
        try:
            if self.reload:
                self._snapshot = self._scan()
            for i in range(self.count):
                self.current[i] = self._spawn(i)
            log.info("covet master %d: starting %d worker(s) on %s:%d", os.getpid(), self.count, self.opts.host,
                     self.opts.port)
            self._write_state()
            while not self.stopping:
                self._step()
            self._stop_all()
        finally:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            self._selector.close()
            os.close(wake_r)
            os.close(wake_w)
            for sock in (self.listener, self.ops_listener):
                if sock is not None:
                    sock.close()
            if self.quic is not None:
                self.quic.close()
        return self.exit_code

    def _step(self) -> None:
        for key, _ in self._selector.select(timeout=0.25):
            if key.data is None:  # the signal wake-up pipe
                with contextlib.suppress(OSError):
                    while os.read(key.fd, 512):
                        pass
            else:
                self._read_pipe(key.data)
        if self._hup:
            self._hup = False
            if self.opts.transport.tls:
                self._signal_all(signal.SIGHUP)
            else:
                self._request_restart("SIGHUP")
        if self.stopping:
            return
        self._reap()
        self._respawn_due()
        self._check_batches()
        if self.reload and time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + 0.25
            if self._changed():
                self._request_restart("source change")
        if self._restart_requested is not None:
            reason, self._restart_requested = self._restart_requested, None
            self._start_generation(reason)
        self._recycle()
        self._kill_overdue()
        self._route_quic()
        self._publish_ready()
        self._write_state()
        if self._levels is not None and time.monotonic() >= self._next_levels:
            self._next_levels = time.monotonic() + 1.0
            with contextlib.suppress(Exception):  # a bad levels file never stops the master
                if (applied := self._levels.poll()) is not None:
                    log.info("covet master %d: log levels set by covet log-level: %s", os.getpid(), describe(applied))
        if not self._announced and self.current and all(p.ready for p in self.current.values()):
            self._announced = True
            log.info("covet master %d: %d worker(s) serving on %s:%d", os.getpid(), len(self.current),
                     self.opts.host, self.opts.port)

    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("covet master: %s received, stopping workers", signal.Signals(signum).name)
        self.stopping = True

    def _on_hup(self, _signum: int, _frame: object) -> None:
        self._hup = True

    def _request_restart(self, reason: str) -> None:
        self.requests += 1
        self._restart_requested = reason

    # ---- workers ----
    def _spawn(self, slot: int, failures: int = 0, generation: Optional[int] = None) -> _Proc:
        ready_r, ready_w = os.pipe()
        fds = [ready_w]
        listen_fd = -1
        if self.listener is not None:
            listen_fd = self.listener.fileno()
            fds.append(listen_fd)
        ops_listen_fd = -1
        if self.ops_listener is not None:
            ops_listen_fd = self.ops_listener.fileno()
            fds.append(ops_listen_fd)
        bank, quic = -1, None
        if self.quic is not None:
            busy = {p.bank for p in self._all() if p.slot == slot and p.proc.poll() is None}
            bank = self.quic.bank_for(slot, busy, self._quic_routed.get(slot))
            quic = (self.quic.fds(bank, slot), self.quic.cid_base(bank, slot), self.quic.tag)
            fds += quic[0]
        try:
            proc = subprocess.Popen(worker_command(self.opts, listen_fd=listen_fd, ready_fd=ready_w,
                                                   ops_listen_fd=ops_listen_fd, quic=quic), pass_fds=fds)
        finally:
            os.close(ready_w)  # the worker's copy is the only one: EOF when it exits
        os.set_blocking(ready_r, False)
        p = _Proc(slot, proc, ready_r, generation=self.generation if generation is None else generation,
                  failures=failures, bank=bank)
        self._selector.register(ready_r, selectors.EVENT_READ, p)
        return p

    def _close_pipe(self, p: _Proc) -> None:
        if p.pipe >= 0:
            self._selector.unregister(p.pipe)
            os.close(p.pipe)
            p.pipe = -1

    def _read_pipe(self, p: _Proc) -> None:
        try:
            data = os.read(p.pipe, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker exited (or closed the pipe): _reap sees why
            self._close_pipe(p)
            return
        p.buffer += data
        *lines, p.buffer = p.buffer.split(b"\n")
        for line in lines:
            if line == b"ready":
                p.ready = True
                p.ready_at = time.monotonic()
                lifetime = self.recycling.lifetime()
                if lifetime is not None:  # counted from here: a slow start does not shorten it
                    p.expires = p.ready_at + lifetime
            elif line == b"retire" and self.current.get(p.slot) is p and p.stop_deadline is None:
                self._replace(p, "max_requests", "--limit-max-requests", "reached --limit-max-requests")

    def _all(self) -> list[_Proc]:
        return [*self.current.values(), *(p for b in self.batches for p in b.procs.values()), *self.draining]

    def _whole_batch(self) -> Optional[_Batch]:
        """The new generation starting, if one is."""
        return next((b for b in self.batches if b.whole), None)

    def _replacing(self, slot: int) -> bool:
        return any(slot in b.procs for b in self.batches)

    def _replace(self, p: _Proc, cause: str, reason: str, why: str) -> None:
        """Replaces the current worker `p` alone, rolling: its successor starts now and takes over once it serves."""
        if self._replacing(p.slot):
            return  # a successor is already on its way (maybe a whole generation)
        log.info("covet worker %d (pid %d, generation %d) %s; replacing it", p.slot, p.proc.pid, p.generation, why)
        self.batches.append(_Batch(reason, {p.slot: self._spawn(p.slot)}, cause=cause))

    def _recycle(self) -> None:
        """--max-rss and --max-lifetime: at most one such replacement at a time, none while a generation starts."""
        r = self.recycling
        if r.max_rss is None and r.max_lifetime is None:
            return
        if any(b.whole or b.cause in ("max_rss", "lifetime") for b in self.batches):
            return
        now = time.monotonic()
        check_rss = r.max_rss is not None and now >= self._next_rss_check
        if check_rss:
            self._next_rss_check = now + RSS_CHECK_INTERVAL
        candidates = [p for _, p in sorted(self.current.items())
                      if p.ready and p.stop_deadline is None and now >= p.recycle_after and not self._replacing(p.slot)
                      and p.proc.poll() is None]
        if check_rss and r.max_rss is not None:  # memory first: it is the urgent one
            for p in candidates:
                rss = _rss_bytes(p.proc.pid)
                if rss is not None and rss > r.max_rss:
                    self._replace(p, "max_rss", "--max-rss", f"uses {rss / 2**20:.0f} MB, over --max-rss "
                                  f"{r.max_rss / 2**20:.0f} MB")
                    return
        for p in candidates:
            if p.expires is not None and now >= p.expires:
                self._replace(p, "lifetime", "--max-lifetime", f"has served {now - p.ready_at:.1f} s "
                              f"(--max-lifetime {r.max_lifetime:g} s plus its jitter)")
                return

    def _reap(self) -> None:
        reaped = False
        for slot, p in list(self.current.items()):
            rc = p.proc.poll()
            if rc is None:
                continue
            reaped = True
            self._close_pipe(p)
            del self.current[slot]
            if rc == STARTUP_FAILURE_EXIT and not p.ready and not self._announced:
                # The app's lifespan startup failed before the workers ever served: restarting would fail the
                # same way (uvicorn exits too). Its message is in the worker's output above.
                log.error("covet worker %d (pid %d): the application's startup failed; stopping", slot, p.proc.pid)
                self.exit_code = STARTUP_FAILURE_EXIT
                self.stopping = True
                return
            lived = time.monotonic() - p.started
            failures = 0 if lived > 30 else p.failures + 1
            delay = min(RESTART_BACKOFF_MAX, 0.1 * (2 ** failures)) if failures else 0.0
            _count_restart("signal" if rc < 0 else "crash")
            log.error("covet worker %d (pid %d) exited with %s after %.1f s; restarting%s", slot, p.proc.pid,
                      _describe_exit(rc), lived, f" in {delay:.1f} s" if delay else "")
            if not self._replacing(slot):  # a replacement already on its way will do
                self.respawn[slot] = (time.monotonic() + delay, failures)
        for p in list(self.draining):
            if p.proc.poll() is not None:
                self._close_pipe(p)
                self.draining.remove(p)
                log.debug("covet worker %d (pid %d) drained and exited", p.slot, p.proc.pid)
                reaped = True
        if reaped:
            _retire_dead_metrics()

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for slot, (when, failures) in list(self.respawn.items()):
            if now >= when:
                del self.respawn[slot]
                self.current[slot] = self._spawn(slot, failures)

    def _start_generation(self, reason: str) -> None:
        if self._whole_batch() is not None:
            self._again = reason  # one is starting: start another once it serves (it may have older code)
            return
        # Single replacements still starting would bring back workers of this generation afterwards: the new
        # generation replaces those slots anyway.
        for batch in [b for b in self.batches if not b.whole]:
            self.batches.remove(batch)
            for p in batch.procs.values():
                self._terminate(p)
        nxt = self.generation + 1
        log.info("covet master: rolling restart (%s): starting generation %d, %d new worker(s)", reason, nxt,
                 self.count)
        self.batches.append(_Batch(reason, {i: self._spawn(i, generation=nxt) for i in range(self.count)},
                                   cause="reload", whole=True, covers=self.requests))

    def _check_batches(self) -> None:
        now = time.monotonic()
        for batch in list(self.batches):
            failed = next(((p, rc) for p in batch.procs.values() if (rc := p.proc.poll()) is not None), None)
            if failed is not None or now - batch.started > START_TIMEOUT:
                why = (f"worker {failed[0].slot} (pid {failed[0].proc.pid}) exited with {_describe_exit(failed[1])} "
                       "before serving (see its output above)" if failed else
                       f"not serving after {START_TIMEOUT:.0f} s")
                if batch.whole:
                    log.error("covet master: generation %d (%s) did not start: %s; generation %d keeps serving",
                              self.generation + 1, batch.reason, why, self.generation)
                    self._state.failed_covers = batch.covers
                    self._state.failure = why
                    if self._metrics is not None:
                        self._metrics.reload("failed")
                else:
                    log.error("covet master: the new worker(s) for the %s did not start: %s; the running ones keep "
                              "serving", batch.reason, why)
                self.batches.remove(batch)
                for p in batch.procs.values():
                    self._terminate(p)
                    old = self.current.get(p.slot)
                    if old is not None:
                        old.recycle_after = now + RESTART_BACKOFF_MAX  # --max-rss/--max-lifetime: not at once
                    elif p.slot not in self.respawn:  # its worker crashed meanwhile
                        self.respawn[p.slot] = (now + RESTART_BACKOFF_MAX, 1)
                self._after_batch()
                continue
            if not all(p.ready for p in batch.procs.values()):
                continue
            self.batches.remove(batch)
            olds = []
            for slot, p in batch.procs.items():
                old = self.current.get(slot)
                if old is not None:
                    olds.append(old)
                self.respawn.pop(slot, None)
                self.current[slot] = p
            self._route_quic()  # new HTTP/3 connections to the new workers before the old ones stop taking them
            for old in olds:
                self._terminate(old)
                _count_restart(batch.cause)
            pids = ", ".join(str(p.proc.pid) for p in batch.procs.values())
            if batch.whole:
                self.generation = max(self.generation, *(p.generation for p in batch.procs.values()))
                self._state.ready_covers = batch.covers
                if self._metrics is not None:
                    self._metrics.generation(self.generation)
                    self._metrics.reload("ready")
                log.info("covet master: generation %d ready: new worker(s) serving (pids %s); old ones draining (%s)",
                         self.generation, pids, batch.reason)
            else:
                log.info("covet master: new worker(s) serving (pids %s); old ones draining (%s)", pids, batch.reason)
            self._after_batch()

    def _route_quic(self) -> None:
        """A client's first HTTP/3 packet to the current worker of each slot (its bank of the QuicGroup)."""
        if self.quic is None:
            return
        self._quic_routed.update({slot: p.bank for slot, p in self.current.items() if p.bank >= 0})
        try:
            self.quic.route(self._quic_routed)
        except OSError as e:  # attached at start, so the kernel can: keep serving with the previous routing
            log.error("covet master: cannot route new HTTP/3 connections: %s", e)

    def _after_batch(self) -> None:
        if self._again is not None and self._whole_batch() is None:
            reason, self._again = self._again, None
            self._start_generation(reason)

    def _terminate(self, p: _Proc) -> None:
        """SIGTERM: the engine stops accepting, finishes what is in flight, the lifespan shutdown runs."""
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
        p.stop_deadline = time.monotonic() + self.opts.stop_grace
        self.draining.append(p)

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for p in self.draining:
            if p.stop_deadline is not None and now > p.stop_deadline and p.proc.poll() is None:
                log.warning("covet worker %d (pid %d) did not stop in %.0f s; killing it", p.slot, p.proc.pid,
                            self.opts.stop_grace)
                p.proc.kill()

    def _signal_all(self, sig: int) -> None:
        log.info("covet master: %s: passing it on to the workers", signal.Signals(sig).name)
        for p in self._all():
            if p.proc.poll() is None and p.stop_deadline is None:
                p.proc.send_signal(sig)

    def _stop_all(self) -> None:
        procs = self._all()
        for p in procs:
            if p.proc.poll() is None and p.stop_deadline is None:
                p.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.opts.stop_grace
        for p in procs:
            try:
                p.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("covet worker %d did not stop in %.0f s; killing it", p.slot, self.opts.stop_grace)
                p.proc.kill()
                p.proc.wait()
            self._close_pipe(p)
        self.current.clear()
        self.batches.clear()
        self.draining.clear()

    # ---- --reload ----
    def _scan(self) -> dict[Path, float]:
        seen: dict[Path, float] = {}
        for root in self.reload_dirs:
            for path in root.rglob("*.py"):
                if any(part.startswith(".") or part in ("__pycache__", "build") for part in path.parts):
                    continue
                with contextlib.suppress(OSError):
                    seen[path] = path.stat().st_mtime
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
