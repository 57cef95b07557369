"""`PerformanceMiddleware`: response-time objectives per route (the design doc's ``performance`` middleware), run
natively by the engine::

    app.add_middleware(PerformanceMiddleware, sla_ms=100, routes={"/reports/{year}": 2000})

Each answer's duration (from the end of its request head to its response head; a streamed answer: its first
bytes) is compared with its route's threshold: `routes` maps route templates, as declared, to milliseconds;
every other route (and unmatched requests) has `sla_ms` (None: only the listed routes are checked). An answer
over its threshold counts in ``covet_sla_violations_total{http_route}`` on ``/_metrics`` and logs one warning
line on stderr (logger ``covet.performance``: route, method, status, duration_ms, threshold_ms, trace_id when
traced, suppressed), JSON with ``use_json_logs``/``setup_observability``, at most one per route per
`log_interval` seconds (0: every one); the count of lines held back comes with the next one. Alert on the counter
(``rate(covet_sla_violations_total[5m]) > 0``) rather than on the lines.

Added before a Python middleware (so inside it, in FastAPI's order) it runs in Python at that position, timing
from where it sits: the same thresholds, counter and log line (through the ``covet.performance`` logger)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from .native import NativeMiddleware

if TYPE_CHECKING:
    from covet.requests import Request
    from covet.responses import Response
    from covet.server.interface import CallNext, Middleware

__all__ = ["PerformanceMiddleware", "normalize_route"]

logger = logging.getLogger("covet.performance")

_FIX = "give a positive number of milliseconds (e.g. sla_ms=250)"


def normalize_route(route: str) -> str:
    """A route template as labels name it: parameter converters dropped (``/items/{id:int}`` -> ``/items/{id}``)."""
    out: list[str] = []
    in_param = in_converter = False
    for c in route:
        if c == "{":
            in_param = True
        if c == ":" and in_param:
            in_converter = True
        if c == "}":
            in_param = in_converter = False
        if not in_converter:
            out.append(c)
    return "".join(out)


def _milliseconds(value: object, what: str, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"PerformanceMiddleware: {what} must be a number of milliseconds, not {value!r}")
    if value <= 0:
        raise ValueError(f"PerformanceMiddleware: {what} is {value!r} ms; it must be > 0: {_FIX}{fix}")
    if value < 0.001:
        raise ValueError(f"PerformanceMiddleware: {what} is {value!r} ms, under the microsecond the engine "
                         f"measures: {_FIX}")
    return float(value)


class PerformanceMiddleware(NativeMiddleware):
    native_kind = "performance"

    def __init__(self, app: Any, sla_ms: Optional[float] = None, routes: Optional[Mapping[str, float]] = None,
                 log_interval: float = 1.0) -> None:
        super().__init__(app)
        self.sla_ms = None if sla_ms is None else _milliseconds(
            sla_ms, f"sla_ms={sla_ms!r}", ", or None to check only the routes given")
        if routes is not None and not isinstance(routes, Mapping):
            raise TypeError("PerformanceMiddleware: routes must map route templates to milliseconds, e.g. "
                            "routes={\"/reports/{year}\": 2000}")
        self.routes: dict[str, float] = {}
        for route, ms in (routes or {}).items():
            if not isinstance(route, str) or not route.startswith("/"):
                raise ValueError(f"PerformanceMiddleware: route {route!r} is not a route template: give the path "
                                 "as the route declares it, starting with '/' (e.g. \"/items/{item_id}\")")
            key = normalize_route(route)
            if key in self.routes:
                raise ValueError(f"PerformanceMiddleware: route {route!r} is listed twice (with or without a "
                                 "converter); give it once")
            self.routes[key] = _milliseconds(ms, f"the threshold of route {route!r}",
                                             ", or leave the route out to use sla_ms")
        if self.sla_ms is None and not self.routes:
            raise ValueError("PerformanceMiddleware: nothing to check: give sla_ms=... (every route) or "
                             "routes={\"/path\": ms} (those routes)")
        if isinstance(log_interval, bool) or not isinstance(log_interval, (int, float)) or not log_interval >= 0:
            raise ValueError(f"PerformanceMiddleware: log_interval must be >= 0 seconds (0 logs every violation), "
                             f"not {log_interval!r}")
        self.log_interval = float(log_interval)

    def check_routes(self) -> None:
        """Refuses a listed route that is none of the app's (a typo would never be checked): ValueError naming
        the app's route templates. Apps whose routes cannot be listed are not checked."""
        router = getattr(self.app, "router", None)
        table = getattr(router, "table", None)
        entries = list(getattr(table, "routes", ()))
        if any("Mount" in type(r).__name__ for r in entries):
            return  # a mounted app's routes are its own: not listed here
        declared = [getattr(r, "path", None) for r in entries]
        known = {normalize_route(p) for p in declared if isinstance(p, str)}
        root = getattr(self.app, "root_path", "") or ""
        known |= {root + p for p in known} if root else set()
        if not known:
            return
        for route in self.routes:
            if route not in known:
                listed = ", ".join(sorted(known)[:20])
                raise ValueError(f"PerformanceMiddleware: route {route!r} is not a route of the app (its routes: "
                                 f"{listed}); give the template as the route declares it")

    def native_options(self) -> dict[str, Any]:
        self.check_routes()
        json_logs = any(h.get_name() == "covet-json" for h in logging.getLogger().handlers)
        return {"sla_ms": self.sla_ms or 0.0, "routes": list(self.routes.items()),
                "log_interval_ms": self.log_interval * 1000.0, "format": "json" if json_logs else "text"}

    def python_middleware(self) -> Middleware:
        self.check_routes()
        return PythonPerformance(self)


class PythonPerformance:
    """``async (request, call_next) -> Response`` with a `PerformanceMiddleware`'s options: times `call_next`."""

    passes_response_whole = True  # not a BaseHTTPMiddleware: what it passes on is not turned into a stream

    def __init__(self, options: PerformanceMiddleware) -> None:
        self.default = options.sla_ms
        self.routes = options.routes
        self.log_interval = options.log_interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        from covet.server.engine import native_module  # deferred: only apps with it inside a Python middleware

        self._count = getattr(native_module(), "sla_violation", None)

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        path = getattr(getattr(request, "_route", None), "path", None)
        route = normalize_route(path) if isinstance(path, str) else ""
        threshold = self.routes.get(route, self.default)
        if threshold is not None and elapsed_ms > threshold:
            self._violated(request, route, response.status_code, elapsed_ms, threshold)
        return response

    def _violated(self, request: Request, route: str, status: int, elapsed_ms: float, threshold: float) -> None:
        if self._count is not None:
            self._count(route)
        now = time.monotonic()
        last = self._last.get(route)
        if self.log_interval and last is not None and now - last < self.log_interval:
            self._held[route] = self._held.get(route, 0) + 1
            return
        self._last[route] = now
        suppressed = self._held.pop(route, 0)
        logger.warning("SLA exceeded route=%s method=%s status=%d duration_ms=%.3f threshold_ms=%g suppressed=%d",
                       route, request.method, status, elapsed_ms, threshold, suppressed,
                       extra={"route": route, "method": request.method, "status": status,
                              "duration_ms": round(elapsed_ms, 3), "threshold_ms": threshold,
                              "suppressed": suppressed})
