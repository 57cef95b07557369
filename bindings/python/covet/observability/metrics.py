"""Metrics: the engine's native metrics (recorded in C++ on every request) and your own, in one exposition.

``Counter``, ``Gauge`` and ``Histogram`` are backed by the same native registry as the engine's metrics, so they
appear on ``GET /_metrics`` next to ``http_server_request_duration_seconds`` and, under ``covet run --workers N``,
are merged across the worker processes by the same scrape::

    from covet.observability.metrics import Counter, Histogram

    orders = Counter("shop_orders", "Orders placed.", labels=("kind",))
    orders.labels(kind="gift").inc()

Names follow Prometheus (letters, digits, ``_``, ``:``); a counter is named without ``_total`` (the exposition
adds it). Label sets are yours to keep bounded: never put user input (paths, ids) in a label value.

``enable_metrics(app)`` turns the endpoints on for `app` (``covet run --metrics`` does the same from the command
line); ``app.metrics`` is the summary view (requests per second, p99 latency, connections, CPU, memory).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from covet.server.engine import native_module

__all__ = ["DEFAULT_BUCKETS", "Counter", "Gauge", "Histogram", "MetricsView", "enable_metrics", "scrape"]

# OpenTelemetry's advised buckets for durations in seconds (http.server.request.duration).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _native() -> Any:
    native = native_module()
    if not hasattr(native, "metrics_family"):
        raise RuntimeError("this covet._native build has no metrics (rebuild it: pip install -e .)")
    return native


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        for label in self.label_names:
            if not label.replace("_", "a").isalnum() or label[0].isdigit() or label.startswith("__"):
                raise ValueError(f"{name}: label name {label!r} is not valid (letters, digits and '_')")
        self._native = _native()
        self._family: int = self._native.metrics_family(name, help, self.kind, [float(b) for b in buckets])
        self._values: list[str] = []

    def labels(self, *values: object, **by_name: object) -> Any:
        """The child for one label set: ``m.labels("GET")`` or ``m.labels(method="GET")``."""
        if by_name:
            if values:
                raise TypeError("labels(): give the values by position or by name, not both")
            missing = [n for n in self.label_names if n not in by_name]
            extra = [n for n in by_name if n not in self.label_names]
            if missing or extra:
                raise ValueError(f"{self.name}: labels {list(self.label_names)} expected, got {sorted(by_name)}")
            values = tuple(by_name[n] for n in self.label_names)
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name}: {len(self.label_names)} label values expected, got {len(values)}")
        child = object.__new__(type(self))
        child.__dict__.update(self.__dict__)
        child._values = [str(v) for v in values]
        return child

    def _check_unlabelled(self) -> None:
        if self.label_names and not self._values:
            raise ValueError(f"{self.name} has labels {list(self.label_names)}: call .labels(...) first")


class Counter(_Metric):
    """A value that only goes up (``inc``)."""

    kind = "counter"

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up (inc({amount}))")
        self._check_unlabelled()
        self._native.metrics_add(self._family, list(self.label_names), self._values, float(amount))


class Gauge(_Metric):
    """A value that goes up and down. In a process group the scrape sums the live processes' values."""

    kind = "gauge"

    def set(self, value: float) -> None:
        self._check_unlabelled()
        self._native.metrics_set(self._family, list(self.label_names), self._values, float(value))

    def inc(self, amount: float = 1.0) -> None:
        self._check_unlabelled()
        self._native.metrics_add(self._family, list(self.label_names), self._values, float(amount))

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)


class Histogram(_Metric):
    """Observations counted in buckets (upper bounds; +Inf is implicit): ``observe(seconds)``."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        super().__init__(name, help, labels, tuple(buckets))

    def observe(self, value: float) -> None:
        self._check_unlabelled()
        self._native.metrics_observe(self._family, list(self.label_names), self._values, float(value))


def scrape(openmetrics: bool = False) -> str:
    """The exposition GET /_metrics answers (the whole process group's)."""
    return str(_native().metrics_scrape(openmetrics))


class MetricsView:
    """The summary of the native metrics (the seed's JSON view). Rates are over the time since the previous
    read of `requests_per_second` (the first read: since the process group started)."""

    def __init__(self) -> None:
        self._last: Optional[tuple[float, float]] = None
        self._last_cpu: Optional[tuple[float, float]] = None
        self._started = time.time()

    def _totals(self) -> dict[str, float]:
        return dict(_native().metrics_totals())

    @property
    def requests_per_second(self) -> float:
        now, total = time.monotonic(), float(self._totals()["requests"])
        last = self._last or (now - max(time.time() - self._started, 1e-3), 0.0)
        self._last = (now, total)
        return max(0.0, total - last[1]) / max(now - last[0], 1e-3)

    @property
    def latency_p99(self) -> float:
        """Seconds (interpolated within the request-duration histogram's buckets)."""
        return float(self._totals()["latency_p99"])

    @property
    def active_connections(self) -> int:
        return int(self._totals()["active_connections"])

    @property
    def cpu_usage(self) -> float:
        """Percent of one core used by the process group since the previous read."""
        now, cpu = time.monotonic(), float(self._totals()["cpu_seconds"])
        last = self._last_cpu or (now - max(time.time() - self._started, 1e-3), 0.0)
        self._last_cpu = (now, cpu)
        return 100.0 * max(0.0, cpu - last[1]) / max(now - last[0], 1e-3)

    @property
    def memory_usage(self) -> int:
        """Resident bytes of the process group."""
        return int(self._totals()["resident_bytes"])

    def as_dict(self) -> dict[str, float]:
        return {"requests_per_second": self.requests_per_second, "latency_p99": self.latency_p99,
                "active_connections": self.active_connections, "cpu_usage": self.cpu_usage,
                "memory_usage": self.memory_usage}


def enable_metrics(app: Any, *, path: str = "/_metrics", port: Optional[int] = None, host: Optional[str] = None,
                   token: Optional[str] = None, drain_delay: Optional[float] = None) -> None:
    """Serve GET `path` (Prometheus/OpenMetrics), /_health and /_ready for `app`, answered by the engine: on the
    app's own port, or with `port` on a separate listener (`host`, default 127.0.0.1) that never shares a port
    or accept queue with user traffic. `token`: /_metrics then requires ``Authorization: Bearer <token>``.
    `drain_delay`: seconds /_ready answers 503 on SIGTERM before the listeners close. Call before the app
    serves; ``covet run --metrics / --ops-port / --metrics-token`` do the same."""
    if not path.startswith("/_"):
        raise ValueError(f"path must start with '/_' (the engine answers /_... paths), not {path!r}")
    options = getattr(app, "ops_options", None)
    if not isinstance(options, dict):
        raise TypeError(f"enable_metrics: {app!r} is not a CovetPy app (no ops_options); for a hosted ASGI/WSGI app "
                        "use covet run --metrics")
    options["metrics"] = port is None
    options["metrics_path"] = path
    if port is not None:
        options["ops_port"] = int(port)
    if host is not None:
        options["ops_host"] = host
    if token is not None:
        options["metrics_token"] = token
    if drain_delay is not None:
        options["drain_delay"] = float(drain_delay)
