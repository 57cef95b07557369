"""`LoadTester`: real HTTP/1.1 load over real sockets, for tests and ``covet compare``.

::

    from covet.testing import LoadTester

    async with LoadTester(app, paths=["/", "/items"]) as tester:
        result = await tester.run_test(concurrent_users=100, duration=5, target_rps=2000)
    assert result.error_rate == 0 and result.p99_latency < 50      # milliseconds

`app` is a CovetPy app or an ASGI 3 / WSGI application this CovetPy can host (served in this process by a
`ThreadedWorker` on a free port, lifespan included), or the URL of a running server (``"http://127.0.0.1:8000"``).
Each simulated user holds one keep-alive connection and sends one request at a time, cycling through `paths`.
Without `target_rps` the load is closed-loop (each user sends its next request as soon as the previous answer
arrived: the most the server and this generator manage together). With `target_rps` it is open-loop: user *k* of *n*
has its own schedule at ``target_rps / n`` requests per second, and a request's latency counts from the moment it
was due, not from when it could be sent, so a server that falls behind shows it in the latency (no coordinated
omission) and in `requests_per_second` below `target_rps`.

Limits, honestly: this is a Python load generator, one asyncio event loop on one thread, with a minimal
HTTP/1.1 response parser. It spends about 60-90 µs of CPU per request (measured on a busy 2-core VM with plain
asyncio: `time.process_time()` over a closed-loop run against `covet run`), so one core drives at most ~10,000-15,000
requests/s (more with uvloop), and an app served in-process shares the interpreter (and the GIL) with it, so both
figures drop further. It is meant
for correctness under load, latency at moderate rates, regression tests and comparisons *within one run*; for
a server's peak throughput use wrk, wrk2 or h2load from another machine (``covet compare`` uses wrk when it is
installed). Compare `requests_per_second` with `target_rps`: when the first is well below the second, the
generator (or the server) could not keep up, and the latencies say which.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import urlsplit

from .server.serve import ThreadedWorker

if TYPE_CHECKING:
    from .server.interface import ServedApp

__all__ = ["LoadTester", "LoadTestResult", "ResponseError"]

HeaderItems = Union[Mapping[str, str], Sequence[tuple[str, str]], None]

_MAX_HEAD = 64 * 1024


class ResponseError(Exception):
    """The server's answer was not a well-formed HTTP/1.1 response (the message says what was wrong)."""


@dataclass
class LoadTestResult:
    """What one `LoadTester.run_test` measured. Latencies are in milliseconds; `errors` counts failures by
    kind (``"status 503"``, ``"ConnectionResetError"``, ``"timeout"``, ...): a request fails when no complete
    response arrived in time or its status is 400 or more (as locust counts failures)."""

    requests: int  # requests answered (any status) within the run
    failures: int  # requests that failed (see above); `error_rate` = failures / (requests + transport failures)
    duration: float  # seconds, from the first request to the last answer
    concurrent_users: int
    target_rps: Optional[float]
    status_counts: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0
    missed: int = 0  # open loop: requests that were due but not sent by the end (the server or generator lagged)
    latencies: array[float] = field(default_factory=lambda: array("d"), repr=False)

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def error_rate(self) -> float:
        """Failed requests / requests attempted (0.0 to 1.0)."""
        transport = self.failures - sum(n for status, n in self.status_counts.items() if status >= 400)
        attempted = self.requests + transport
        return self.failures / attempted if attempted else 0.0

    @property
    def avg_latency(self) -> float:
        return sum(self.latencies) / len(self.latencies) if self.latencies else 0.0

    def percentile(self, q: float) -> float:
        """The `q`-th percentile (0-100) of the answered requests' latencies, nearest rank, in ms."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    @property
    def p50_latency(self) -> float:
        return self.percentile(50)

    @property
    def p90_latency(self) -> float:
        return self.percentile(90)

    @property
    def p99_latency(self) -> float:
        return self.percentile(99)

    @property
    def max_latency(self) -> float:
        return max(self.latencies) if self.latencies else 0.0

    def summary(self) -> str:
        target = f" (target {self.target_rps:,.0f}, {self.missed:,} due but not sent)" if self.target_rps else ""
        return (f"{self.requests:,} requests in {self.duration:.2f} s from {self.concurrent_users} users: "
                f"{self.requests_per_second:,.0f} req/s{target}; latency avg {self.avg_latency:.2f} ms, "
                f"p50 {self.p50_latency:.2f}, p99 {self.p99_latency:.2f}, max {self.max_latency:.2f}; "
                f"errors {self.error_rate:.2%} {dict(self.errors) if self.errors else ''}".rstrip())


@dataclass
class _Tally:
    requests: int = 0
    failures: int = 0
    missed: int = 0
    bytes_received: int = 0
    status: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))


async def read_response(reader: asyncio.StreamReader, head_request: bool = False) -> tuple[int, bool, int]:
    """Reads one response: ``(status, keep_alive, body bytes)``. Interim (1xx) responses are skipped; the body
    is framed by Content-Length, chunked transfer coding, or the connection's end."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ResponseError("response head longer than 64 KiB") from None
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                raise ConnectionResetError("the server closed the connection") from None
            raise ResponseError("connection closed inside a response head") from None
        line_end = head.find(b"\r\n")
        parts = head[:line_end].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ResponseError(f"not an HTTP/1.x status line: {head[:line_end][:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            continue
        keep_alive = parts[0] == b"HTTP/1.1"
        length = -1
        chunked = False
        for raw in head[line_end + 2:-4].split(b"\r\n"):
            name, _, value = raw.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                v = value.strip().lower()
                keep_alive = v == b"keep-alive" if not keep_alive else v != b"close"
        if head_request or status in (204, 304):
            return status, keep_alive, 0
        if chunked:
            total = 0
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields
                        pass
                    return status, keep_alive, total
                await reader.readexactly(size + 2)
                total += size
        if length >= 0:
            if length:
                await reader.readexactly(length)
            return status, keep_alive, length
        body = await reader.read()  # framed by the connection's end
        return status, False, len(body)


class LoadTester:
    """Load for `app` (a CovetPy, ASGI or WSGI app served in-process on a free port, or a running server's URL).

    `method`, `paths` (cycled through, each user starting at a different one), `headers` and `body` describe the
    requests; `run_test` may override them per run. `timeout` bounds each response (seconds). `threads`:
    the in-process server's native I/O threads. See the module docstring for what rate it can drive.
    """

    def __init__(self, app: Union[str, ServedApp, Any], *, method: str = "GET", paths: Sequence[str] = ("/",),
                 headers: HeaderItems = None, body: Union[bytes, str, None] = None, timeout: float = 10.0,
                 threads: int = 0, **server_options: Any) -> None:
        self.app = app
        self.method = method
        self.paths = tuple(paths)
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.threads = threads
        self.server_options = server_options
        self._worker: Optional[ThreadedWorker] = None
        self.host = ""
        self.port = 0
        self.base_path = ""
        if isinstance(app, str):
            self._set_url(app)

    def _set_url(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"LoadTester: expected an http:// URL such as 'http://127.0.0.1:8000', got {url!r} "
                             "(HTTPS is not supported: measure behind a TLS terminator or over plain HTTP)")
        self.host, self.port = parts.hostname, parts.port or 80
        self.base_path = parts.path.rstrip("/")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.base_path}"

    async def __aenter__(self) -> LoadTester:
        if not isinstance(self.app, str) and self._worker is None:
            worker = ThreadedWorker(self.app, "127.0.0.1", 0, self.threads, **self.server_options)
            self._worker = await asyncio.to_thread(worker.start)
            self.host, self.port = "127.0.0.1", worker.port
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.stop)

    def _requests(self, method: str, paths: Sequence[str], headers: HeaderItems,
                  body: Union[bytes, str, None]) -> list[bytes]:
        if not paths:
            raise ValueError("LoadTester: paths is empty: give at least one path such as '/'")
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        names = {k.lower() for k, _ in items}
        payload = body.encode() if isinstance(body, str) else (body or b"")
        fixed = []
        if "host" not in names:
            fixed.append(("Host", f"{self.host}:{self.port}"))
        if payload and "content-length" not in names:
            fixed.append(("Content-Length", str(len(payload))))
        head_lines = "".join(f"{k}: {v}\r\n" for k, v in fixed + items)
        out = []
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"LoadTester: path {path!r} must start with '/'")
            out.append(f"{method} {self.base_path}{path} HTTP/1.1\r\n{head_lines}\r\n".encode("latin-1") + payload)
        return out

    async def run_test(self, concurrent_users: int = 10, duration: float = 10.0,
                       target_rps: Optional[float] = None, *, method: Optional[str] = None,
                       paths: Optional[Sequence[str]] = None, headers: HeaderItems = None,
                       body: Union[bytes, str, None] = None, warmup: float = 0.0) -> LoadTestResult:
        """Runs `concurrent_users` users for `duration` seconds (after `warmup` seconds that are not counted)
        and returns what was measured. Requests still unanswered at the end are waited for up to `timeout`."""
        if concurrent_users < 1:
            raise ValueError(f"concurrent_users must be at least 1, not {concurrent_users}")
        if duration <= 0:
            raise ValueError(f"duration must be positive, not {duration}")
        if target_rps is not None and target_rps <= 0:
            raise ValueError(f"target_rps must be positive (or None for closed-loop load), not {target_rps}")
        if not self.port:
            raise RuntimeError("LoadTester: use it as `async with LoadTester(app) as tester:` so the app is served")
        method = (method or self.method).upper()
        requests = self._requests(method, paths or self.paths, headers if headers is not None else self.headers,
                                  body if body is not None else self.body)
        if warmup > 0:
            await self._run(concurrent_users, warmup, target_rps, requests, method == "HEAD", _Tally())
        tally = _Tally()
        start = time.perf_counter()
        await self._run(concurrent_users, duration, target_rps, requests, method == "HEAD", tally)
        elapsed = time.perf_counter() - start
        return LoadTestResult(requests=tally.requests, failures=tally.failures, duration=elapsed,
                              concurrent_users=concurrent_users, target_rps=target_rps,
                              status_counts=dict(sorted(tally.status.items())), errors=dict(tally.errors),
                              bytes_received=tally.bytes_received, missed=tally.missed,
                              latencies=tally.latencies)

    async def _run(self, users: int, duration: float, target_rps: Optional[float], requests: list[bytes],
                   head: bool, tally: _Tally) -> None:
        start = time.perf_counter()
        deadline = start + duration
        interval = users / target_rps if target_rps else 0.0
        await asyncio.gather(*(self._user(k, users, start, deadline, interval, requests, head, tally)
                               for k in range(users)))

    async def _user(self, k: int, users: int, start: float, deadline: float, interval: float,
                    requests: list[bytes], head: bool, tally: _Tally) -> None:
        conn: Optional[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = None
        index = k % len(requests)
        offset = start + interval * k / users  # open loop: staggered schedules, one per user
        # The user's due times before the deadline, counted once in integers: comparing each float due time with
        # the deadline let 0.025 * 40 land a hair under 1.0 and schedule (or count as missed) a 41st request.
        slots = max(0, math.ceil(round((deadline - offset) / interval, 9))) if interval else 0
        sent = 0
        perf = time.perf_counter
        try:
            while True:
                if interval:
                    if sent >= slots:
                        return
                    due = offset + interval * sent
                    now = perf()
                    if now >= deadline:  # behind schedule: what was due but not sent is counted, not sent
                        tally.missed += slots - sent
                        return
                    if due > now:
                        await asyncio.sleep(due - now)
                    sent_at = due
                    sent += 1
                else:
                    sent_at = perf()
                    if sent_at >= deadline:
                        return
                try:
                    async with asyncio.timeout(self.timeout):  # no Task per request, unlike wait_for
                        if conn is None:
                            conn = await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD)
                        conn[1].write(requests[index])
                        status, keep_alive, size = await read_response(conn[0], head)
                except (TimeoutError, OSError, EOFError, ResponseError, ValueError) as e:
                    tally.failures += 1
                    tally.errors["timeout" if isinstance(e, TimeoutError) else type(e).__name__] += 1
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    if not interval:
                        await asyncio.sleep(0.01)  # a refused or reset connection: not a busy loop
                    continue
                tally.latencies.append((perf() - sent_at) * 1000.0)
                tally.requests += 1
                tally.bytes_received += size
                tally.status[status] += 1
                if status >= 400:
                    tally.failures += 1
                    tally.errors[f"status {status}"] += 1
                index = (index + 1) % len(requests)
                if not keep_alive:
                    conn[1].close()
                    conn = None
        finally:
            if conn is not None:
                conn[1].close()
