"""``covet log-level``: the log levels of a running ``covet run`` group, changed without a restart.

The command writes the wanted levels (logger name -> level; ``""`` is the root logger, ``covet.engine`` the native
engine's) into ``log-levels-PID.json`` in the group's metrics directory (``COVET_METRICS_DIR``, which every worker
inherits; PID is the master's), merged with what earlier calls wrote and replaced atomically. Every process of the
group (the master and each worker) looks at the file's stamp once a second and applies it when it changed, and a
worker applies it as it starts, so workers restarted later (a crash, a reload, ``--limit-max-requests``) keep the
levels. Nothing travels over a socket and no signal is needed.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from typing import Optional

from covet.logger import parse_level

from .engine import native_module

__all__ = ["LevelsFollower", "describe", "follow_log_levels", "levels_path", "remove_levels", "validate_level",
           "write_levels"]

log = logging.getLogger("covet")


def levels_path(directory: str, master_pid: int) -> str:
    return os.path.join(directory, f"log-levels-{master_pid}.json")


def describe(levels: dict[str, str]) -> str:
    """``root=info, myapp.db=debug``."""
    return ", ".join(f"{name or 'root'}={level}" for name, level in sorted(levels.items()))


def validate_level(level: str, logger: str) -> str:
    """The level's canonical name; ValueError naming the accepted ones."""
    name = level.strip().lower()
    accepted = ("trace", "debug", "info", "warning", "warn", "error", "critical")
    if name not in accepted or (name == "trace" and logger != "covet.engine"):
        raise ValueError(f"unknown log level {level!r} for {logger or 'the root logger'}: use debug, info, warning, "
                         "error or critical" + (" (or trace)" if logger == "covet.engine" else ""))
    return "warning" if name == "warn" else name


def write_levels(path: str, changes: dict[str, str]) -> dict[str, str]:
    """Merges `changes` into the file at `path` (atomically replaced: a reader sees the old or the new whole) and
    returns every level it now holds. Two commands at once take turns (a lock file beside it), so neither change
    is lost."""
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        levels = _read(path) or {}
        levels.update(changes)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as f:
            json.dump({"levels": levels}, f)
        os.replace(temporary, path)
    return levels


def remove_levels(path: str) -> None:
    """The group's levels file and its lock (a master starting, or stopping: none outlives its group)."""
    for name in (path, path + ".lock"):
        with contextlib.suppress(OSError):
            os.unlink(name)


def _read(path: str) -> Optional[dict[str, str]]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    levels = data.get("levels") if isinstance(data, dict) else None
    if not isinstance(levels, dict):
        return None
    return {str(k): str(v) for k, v in levels.items()}


class LevelsFollower:
    """Applies the levels file at `path` whenever its stamp (modification time, size, inode) changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: Optional[tuple[int, int, int]] = None

    def reapply(self) -> Optional[dict[str, str]]:
        """Applies the file again even if it did not change (after the app's start-up, which may have configured
        logging itself)."""
        self._stamp = None
        return self.poll()

    def poll(self) -> Optional[dict[str, str]]:
        """The levels applied now, or None when the file did not change (or is missing or unreadable)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        levels = _read(self.path)
        if levels is None:
            return None
        for name, level in levels.items():
            try:
                apply_level(level, name)
            except ValueError as e:  # written by hand, not by `covet log-level`: skip that one, say why
                log.warning("log level %r for %s in %s: %s", level, name or "the root logger", self.path, e)
        return levels


def apply_level(level: str, name: str) -> None:
    """One logger's level in this process (covet.observability.set_log_level's work, which this layer may not
    import): ``covet.engine`` is the native engine's, in the format its lines have now."""
    if name != "covet.engine":
        logging.getLogger(name or None).setLevel(parse_level(level))
        return
    native_level = {"warning": "warn"}.get(level.lower(), level.lower())
    json_logs = any(h.get_name() == "covet-json" for h in logging.getLogger().handlers)
    native_module().configure_logging(native_level, "json" if json_logs else "text")


async def follow_log_levels(follower: LevelsFollower, stop: asyncio.Event, interval: float = 1.0) -> None:
    """Polls `follower` every `interval` seconds on the running loop until `stop` is set (the worker stops)."""
    while True:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
            return
        with contextlib.suppress(Exception):  # never let a bad file stop the worker
            applied = follower.poll()
            if applied is not None:
                log.info("log levels set by covet log-level: %s", describe(applied))
