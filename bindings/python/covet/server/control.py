"""Talking to a running ``covet run`` master from outside: its pid file, its state file, and ``covet reload``.

The master (covet.server.supervisor) keeps a small JSON state file, ``master-PID.json``, in its metrics directory
(``COVET_METRICS_DIR``, which every worker inherits): the serving generation, its workers, and three counters
that let a client follow one restart it asked for. A signal carries no payload, so ``covet reload`` reads the
state, sends SIGUSR2, waits until the master has *seen* one more request (``requests``) and then until a new
generation that includes it is serving (``ready_covers``) or has failed (``failed_covers``). Several reloads at
once coalesce into one generation, and each of them sees it.

The state file is found from the master's pid: the environment of one of its workers names the directory
(``/proc/PID/environ``: readable by the same user, who may signal the master anyway), else the default place
``/dev/shm/covet-metrics-PID-*``.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Optional

from .log_levels import levels_path, remove_levels

__all__ = ["GROUP_LOCK", "MasterState", "ReloadError", "find_state_file", "group_alive", "lone_process_files",
           "process_exists", "read_pid_file", "reload_master", "remove_pid_file", "state_file_name", "write_pid_file"]



def state_file_name(pid: int) -> str:
    """The state file's name in the metrics directory (one per master: a directory may be shared)."""
    return f"master-{pid}.json"

SEEN_TIMEOUT = 5.0  # seconds for the master to take the signal in (its loop turns every 0.25 s)


class ReloadError(Exception):
    """`covet reload` could not do what it was asked: the message says why and what to do."""


@dataclass
class MasterState:
    pid: int = 0
    generation: int = 0                 # the generation serving: 1 at start, +1 per rolling restart completed
    workers: list[int] = field(default_factory=list)  # pids of the current workers
    requests: int = 0                   # restart requests the master has taken (SIGHUP, SIGUSR2, --reload)
    ready_covers: int = 0               # the serving generation was started after this many requests
    failed_covers: int = 0              # the newest failed generation was started after this many requests
    failure: str = ""                   # why it failed
    restarting: bool = False            # a new generation is starting
    alone: bool = False                 # `covet run --workers 1` serving in this one process: no master, no restarts

    def write(self, path: str) -> None:
        """Atomically (a reader never sees half a file)."""
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str) -> MasterState:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# ---- the pid file ---------------------------------------------------------------------------------------

def write_pid_file(path: str) -> None:
    """The master's pid, one line (what systemd's PIDFile= and `kill $(cat FILE)` expect), written atomically."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise SystemExit(f"covet: --pid-file {path}: {e.strerror} (choose a writable path)") from None


def remove_pid_file(path: str) -> None:
    """Removes `path` if it still names this process (a newer master may have taken it over)."""
    with contextlib.suppress(OSError, ValueError):
        if read_pid_file(path) == os.getpid():
            os.unlink(path)


def read_pid_file(path: str) -> int:
    with open(path, encoding="ascii") as f:
        text = f.read().strip()
    if not text.isdigit():
        raise ValueError(f"{path} does not hold a process id: {text[:40]!r}")
    return int(text)


@contextlib.contextmanager
def lone_process_files(pid_file: Optional[str]) -> Iterator[None]:
    """While `covet run --workers 1` serves in its own process: the pid file, and a state file marked `alone` in
    the metrics directory, so that `covet log-level` finds this process and `covet reload` explains why it
    cannot restart it; both removed at exit."""
    directory = os.environ.get("COVET_METRICS_DIR")
    state_path = os.path.join(directory, state_file_name(os.getpid())) if directory else None
    levels = levels_path(directory, os.getpid()) if directory else None
    if levels is not None:
        remove_levels(levels)  # a crashed process's, whose pid this one got again (containers: pid 1)
    if state_path is not None:
        try:
            MasterState(pid=os.getpid(), generation=1, workers=[os.getpid()], alone=True).write(state_path)
        except OSError:  # `covet log-level` cannot find this process then; serving goes on
            state_path = None
    try:
        if pid_file:
            write_pid_file(pid_file)
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # stopping already: a second signal must not cut this short
            signal.signal(sig, signal.SIG_IGN)
        if pid_file:
            remove_pid_file(pid_file)
        if state_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(state_path)
        if levels is not None:
            remove_levels(levels)


# ---- finding the master's state -------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc/*/stat)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _environ_value(pid: int, name: str) -> Optional[str]:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as f:
        for item in f.read().split(b"\0"):
            key, _, value = item.partition(b"=")
            if key == name.encode():
                return value.decode(errors="replace")
    return None


GROUP_LOCK = ".covet-group.lock"  # in a group's metrics directory, held (flock) by its first process for its life


def group_alive(directory: str) -> Optional[bool]:
    """Whether a live process holds the group lock of the metrics directory: True, False (nobody: the group is
    gone, whatever pid its files name), or None (no lock file: an older covet's directory, or not one)."""
    import fcntl  # deferred: only these lookups and the supervisor need it

    try:
        fd = os.open(os.path.join(directory, GROUP_LOCK), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return True  # not ours to judge (another user's): leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if it was taken
    return False


def find_state_file(pid: int) -> Optional[str]:
    """The state file of the master `pid`, or None. Only this user's directories count, and not one whose group
    is gone (a master killed with SIGKILL leaves its state behind, and its pid may name another program since)."""
    candidates: list[str] = []
    for child in _children(pid):
        directory = _environ_value(child, "COVET_METRICS_DIR")
        if directory:
            candidates.append(os.path.join(directory, state_file_name(pid)))
    # Its own environment: COVET_METRICS_DIR given to it (e.g. a Kubernetes emptyDir; a process serving alone
    # has no worker to read it from).
    candidates += [os.path.join(directory, state_file_name(pid))
                   for directory in (_environ_value(pid, "COVET_METRICS_DIR"), os.environ.get("COVET_METRICS_DIR"))
                   if directory]
    import tempfile  # deferred: only `covet reload` and `covet log-level` look here

    for base in ("/dev/shm", tempfile.gettempdir()):
        candidates += sorted(glob.glob(f"{base}/covet-metrics-{pid}-*/{state_file_name(pid)}"))
    for path in candidates:
        with contextlib.suppress(OSError, ValueError, TypeError):
            directory = os.path.dirname(path)
            if os.stat(directory).st_uid != os.getuid() or group_alive(directory) is False:
                continue
            if MasterState.read(path).pid == pid:
                return path
    return None


# ---- covet reload ---------------------------------------------------------------------------------------

def process_exists(pid: int) -> bool:
    """Whether `pid` names a process (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runs_covet(pid: int) -> bool:
    """Whether `pid`'s command line is `covet run` (the `covet` script, or ``python -m covet``, then ``run``; a
    worker, ``covet _worker``, is not a master); True when it cannot be read (another user's process: the
    signal's own permission check answers then)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return True
    for i, arg in enumerate(args[:3]):  # the script: argv[0] or [1] (python SCRIPT), [2] (python -I SCRIPT)
        if os.path.basename(arg) == b"covet":
            return args[i + 1:i + 2] == [b"run"]
    return any(a == b"-m" and b == b"covet" and c == b"run" for a, b, c in zip(args, args[1:], args[2:],
                                                                                strict=False))


def reload_master(pid: int, timeout: float, say: Callable[[str], None] = print) -> int:
    """Asks the master `pid` for a rolling restart (SIGUSR2) and follows it: 0 once a new generation that includes
    this request serves, 1 if it failed (the old generation keeps serving). Raises ReloadError when it cannot."""
    if not process_exists(pid):
        raise ReloadError(f"no process {pid} (is `covet run` running? is the pid file stale?)")
    state_path = find_state_file(pid)
    before = MasterState.read(state_path) if state_path else None
    if before is not None and before.alone:
        raise ReloadError(f"process {pid} serves alone (`covet run --workers 1`, no master): nothing can replace it "
                          "while it serves. Restart it, or start it with --supervise (or --workers 2 or more) for "
                          "rolling restarts")
    if before is None and not _runs_covet(pid):  # SIGUSR2's default action ends a process: never guess
        raise ReloadError(f"process {pid} is not a `covet run` master (no state file of one, and its command line is "
                          "not covet's): check the pid or the pid file")
    try:
        os.kill(pid, signal.SIGUSR2)
    except PermissionError:
        raise ReloadError(f"not allowed to signal process {pid} (run as the user who runs `covet run`)") from None
    except ProcessLookupError:
        raise ReloadError(f"process {pid} exited") from None
    if state_path is None or before is None:
        say(f"covet reload: sent SIGUSR2 to {pid}; cannot follow the restart (no state file of a covet master "
            "found: is it a `covet run` master?)")
        return 0
    say(f"covet reload: master {pid}: rolling restart requested (generation {before.generation} serving)")
    mine = before.requests + 1  # the master counts requests in order: ours is this one or a later one
    start = time.monotonic()
    seen = False
    while True:
        time.sleep(0.05)
        elapsed = time.monotonic() - start
        try:
            state = MasterState.read(state_path)
        except (OSError, ValueError, TypeError):
            state = None
        if state is None or not process_exists(pid):
            if not process_exists(pid):
                raise ReloadError(f"master {pid} exited during the restart")
            continue  # replaced between our stat and open: read again
        if not seen:
            if state.requests >= mine:
                seen = True
            elif elapsed > SEEN_TIMEOUT:
                raise ReloadError(f"master {pid} did not take the request within {SEEN_TIMEOUT:.0f} s "
                                  "(is it stopping, or not a covet master?)")
            continue
        if state.ready_covers >= mine:
            say(f"covet reload: master {pid}: generation {state.generation} ready in {elapsed:.1f} s "
                f"(workers {', '.join(map(str, state.workers))})")
            return 0
        if state.failed_covers >= mine:
            say(f"covet reload: master {pid}: the new generation failed: {state.failure}; generation "
                f"{state.generation} keeps serving")
            return 1
        if elapsed > timeout:
            raise ReloadError(f"master {pid}: no new generation serving after {timeout:.0f} s (still starting; "
                              "see the master's log)")
