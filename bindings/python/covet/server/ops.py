"""Operations endpoints and metrics options of a worker: ``/_metrics``, ``/_health`` and ``/_ready``, answered by
the engine (never by Python), on the app's port (``--metrics``) or on a separate listener (``--ops-port``), the
bearer token of ``/_metrics`` and the drain delay during which ``/_ready`` answers 503 before the listeners close.

Each option is a ``covet run`` flag, an ``app.run()`` keyword and a ``COVET_*`` environment variable (the flags set
the variables, so that the worker processes of ``--workers N`` inherit them). ``enable_metrics(app, ...)``
(covet.observability.metrics) sets them on the app object itself. Readiness checks registered with
``@app.readiness_check`` run here, on the worker's event loop, every few seconds (off the request path); their
verdict is a native flag that ``/_ready`` reads.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

log = logging.getLogger("covet.ops")

__all__ = ["OPS_KEYWORDS", "OpsOptions", "Readiness", "READINESS", "report_loop_turns", "run_readiness_checks"]

# keyword -> environment variable
OPS_KEYWORDS = {
    "metrics": "COVET_METRICS",
    "ops_port": "COVET_OPS_PORT",
    "ops_host": "COVET_OPS_HOST",
    "metrics_token": "COVET_METRICS_TOKEN",
    "metrics_path": "COVET_METRICS_PATH",
    "drain_delay": "COVET_DRAIN_DELAY",
    "record_metrics": "COVET_RECORD_METRICS",
    "health_stall": "COVET_HEALTH_STALL",
}

READINESS_INTERVAL = 5.0  # seconds between runs of the readiness checks (env COVET_READINESS_INTERVAL)


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class OpsOptions:
    endpoints: bool = False          # /_metrics, /_health, /_ready on the app's port
    port: int = 0                    # a separate listener for them (0: none)
    host: str = "127.0.0.1"
    token: str = ""                  # bearer token required on /_metrics
    path: str = "/_metrics"
    drain_delay: float = 0.0         # seconds /_ready answers 503 before the listeners close
    record: bool = True              # the engine records its metrics (cheap; on by default)
    health_stall: float = 30.0       # seconds a loop may go without turning before /_health answers 503 (0: never)
    listen_fd: int = -1              # `covet run`'s master's socket listening on host:port (keyword ops_listen_fd)

    @classmethod
    def take(cls, options: dict[str, Any], app: object = None) -> OpsOptions:
        """The options from `options` (the ops keywords are removed from it), then what `enable_metrics` set on
        `app`, then the environment."""
        env = os.environ
        found: dict[str, Any] = {}
        from_app = getattr(app, "ops_options", None)
        app_values: dict[str, Any] = dict(from_app) if isinstance(from_app, dict) else {}
        for key, var in OPS_KEYWORDS.items():
            if key in options:
                found[key] = options.pop(key)
            elif key in app_values:
                found[key] = app_values[key]
            elif var in env and env[var] != "":
                found[key] = env[var]
        opts = cls()
        inherited = options.pop("ops_listen_fd", None)  # never from the environment: an fd is this process's own
        if inherited is not None and int(inherited) >= 0:
            opts = replace(opts, listen_fd=int(inherited))
        if "metrics" in found:
            v = found["metrics"]
            opts = replace(opts, endpoints=_flag(v) if isinstance(v, str) else bool(v))
        if "ops_port" in found and found["ops_port"] is not None:
            port = int(found["ops_port"])
            if not 0 <= port <= 65535:
                raise ValueError(f"ops_port must be 0..65535, not {port}")
            opts = replace(opts, port=port)
        if found.get("ops_host"):
            opts = replace(opts, host=str(found["ops_host"]))
        if found.get("metrics_token"):
            opts = replace(opts, token=str(found["metrics_token"]))
        if found.get("metrics_path"):
            path = str(found["metrics_path"])
            if not path.startswith("/_"):
                raise ValueError(f"metrics_path must start with '/_' (the engine answers /_... paths), not {path!r}")
            opts = replace(opts, path=path)
        if found.get("drain_delay") not in (None, ""):
            delay = float(found["drain_delay"])
            if delay < 0:
                raise ValueError(f"drain_delay must be >= 0 seconds, not {delay}")
            opts = replace(opts, drain_delay=delay)
        if "record_metrics" in found:
            v = found["record_metrics"]
            opts = replace(opts, record=_flag(v) if isinstance(v, str) else bool(v))
        if found.get("health_stall") not in (None, ""):
            stall = float(found["health_stall"])
            if not (stall == 0 or stall >= 1):  # NaN too; under a second it would flap with the 250 ms sweep timer
                raise ValueError(f"health_stall must be 0 (off) or at least 1 second, not {stall}")
            opts = replace(opts, health_stall=stall)
        return opts

    def export(self) -> None:
        """Sets the environment variables, for worker processes started from here."""
        values = {"metrics": "1" if self.endpoints else "", "ops_port": str(self.port) if self.port else "",
                  "ops_host": self.host, "metrics_token": self.token, "metrics_path": self.path,
                  "drain_delay": str(self.drain_delay) if self.drain_delay else "",
                  "record_metrics": "" if self.record else "0",
                  "health_stall": "" if self.health_stall == OpsOptions.health_stall else str(self.health_stall)}
        for key, value in values.items():
            if value:
                os.environ[OPS_KEYWORDS[key]] = value

    def apply(self, server: object, native: object) -> None:
        """Configures `server` (a NativeServer, before start)."""
        configure = getattr(native, "configure_ops", None)
        if configure is None:
            if self.endpoints or self.port:
                raise RuntimeError("this engine build has no operations endpoints (rebuild covet._native)")
            return
        extra: dict[str, Any] = {}
        if self.listen_fd >= 0 and self.port and _listens_on(self.listen_fd, self.host, self.port):
            extra["listen_fd"] = self.listen_fd
        configure(server, endpoints=self.endpoints, port=self.port, host=self.host, token=self.token,
                  metrics_path=self.path, drain_delay_ms=round(self.drain_delay * 1000), record=self.record,
                  health_stall_ms=round(self.health_stall * 1000), **extra)


def _listens_on(fd: int, host: str, port: int) -> bool:
    """Whether the inherited socket `fd` listens on host:port, the operations listener this worker resolved (the app
    itself may name another one with ``enable_metrics``): only then is it adopted; otherwise the worker binds its own
    socket (SO_REUSEPORT, as every worker then does)."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    with sock:
        try:
            bound = sock.getsockname()
            wanted = socket.getaddrinfo(host or None, port, sock.family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except OSError:
            return False
    return any(address[:2] == bound[:2] for *_, address in wanted)


class Readiness:
    """This process's readiness as /_ready reports it (the readiness checks pass, the server is not draining), for
    Python code that reports it elsewhere too (covet.grpc's grpc.health.v1 service): `ready`, and `subscribe` to be
    called with the new value on each change (on the event loop's thread)."""

    def __init__(self) -> None:
        self.checks_passing = True
        self.draining = False
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def ready(self) -> bool:
        return self.checks_passing and not self.draining

    def subscribe(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """Calls `listener(ready)` on each change; returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def update(self, *, checks_passing: Optional[bool] = None, draining: Optional[bool] = None) -> None:
        before = self.ready
        if checks_passing is not None:
            self.checks_passing = checks_passing
        if draining is not None:
            self.draining = draining
        if self.ready != before:
            for listener in list(self._listeners):
                try:
                    listener(self.ready)
                except Exception:  # one listener's failure is its own
                    log.exception("a readiness listener failed")


READINESS = Readiness()


async def _run_check(check: Callable[[], Any]) -> bool:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # a failing check is "not ready", never a crash
        log.warning("readiness check %s failed: %s", getattr(check, "__name__", check), exc)
        return False
    return result is None or bool(result)


async def report_loop_turns(server: object, native: object, stall: float) -> None:
    """Tells the engine, a few times per `stall` seconds (at most once a second), that this event loop turns: the
    engine's GET /_health answers 503 once it has not heard for `stall` seconds (a handler blocking the loop). The
    engine's own worker loops report themselves. Cancelled when the worker stops."""
    turned: Optional[Callable[[object], None]] = getattr(native, "loop_turned", None)
    if turned is None or stall <= 0:
        return
    interval = min(1.0, stall / 4)
    while True:
        turned(server)
        await asyncio.sleep(interval)


async def run_readiness_checks(server: object, native: object, checks: Sequence[Callable[[], Any]],
                               interval: Optional[float] = None) -> None:
    """Runs `checks` now and then every `interval` seconds; /_ready answers 503 while one of them fails (returns
    false or raises). Cancelled when the worker stops."""
    if interval is None:
        interval = float(os.environ.get("COVET_READINESS_INTERVAL") or READINESS_INTERVAL)
    set_passing: Optional[Callable[[object, bool], None]] = getattr(native, "set_checks_passing", None)
    if set_passing is None or not checks:
        return
    previous: Optional[bool] = None
    while True:
        results = [await _run_check(check) for check in checks]
        passing = all(results)
        set_passing(server, passing)
        READINESS.update(checks_passing=passing)
        if passing != previous and previous is not None:
            log.warning("readiness checks %s", "pass again" if passing else "fail: /_ready answers 503")
        previous = passing
        await asyncio.sleep(interval)
