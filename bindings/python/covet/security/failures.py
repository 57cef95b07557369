"""`FailureLimiter`: counts failed authentication attempts per client and locks a client out once it has failed
too often, so that guessing credentials (API key brute force) gets **429** instead of answers.

A fixed window per client: the first failure opens a window of `window` seconds; the `max_failures`-th failure
in it locks the client out until the window ends (``Retry-After`` says how long). While locked out, attempts are
refused before any key is looked up, valid or not (a guesser learns nothing). Successes do not reset the count
(a client holding one valid key could otherwise interleave guesses with it). At most `max_clients` clients are
tracked; past that, expired windows are dropped, then the oldest.

`KeyRateLimiter` is the per-key request limit of API keys (`APIKeyRecord.rate_limit`, requests a minute).

Both are small and per process on purpose: a guard on the authentication path. Request rate limits shared by
workers and machines are the engine's rate limiter's job.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["FailureLimiter", "KeyRateLimiter"]


class FailureLimiter:
    def __init__(self, max_failures: int = 10, window: float = 60.0, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window <= 0 or max_clients < 1:
            raise ValueError("FailureLimiter needs max_failures >= 1, window > 0 and max_clients >= 1")
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._clients: dict[str, tuple[int, float]] = {}  # client -> (failures, window start)
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again (0: it may now)."""
        with self._lock:
            entry = self._clients.get(client)
            if entry is None:
                return 0
            count, start = entry
            left = start + self.window - self._clock()
            if left <= 0:
                del self._clients[client]
                return 0
            return math.ceil(left) if count >= self.max_failures else 0

    def failure(self, client: str) -> int:
        """Counts a failure of `client`; returns the seconds it is now locked out for (0: not locked out)."""
        now = self._clock()
        with self._lock:
            entry = self._clients.pop(client, None)  # re-inserted last: the dict stays ordered by activity
            if entry is None or now - entry[1] >= self.window:
                entry = (0, now)
            count, start = entry[0] + 1, entry[1]
            self._clients[client] = (count, start)
            if len(self._clients) > self.max_clients:
                self._trim(now)
            return math.ceil(start + self.window - now) if count >= self.max_failures else 0

    def _trim(self, now: float) -> None:
        for key in [k for k, (_, start) in self._clients.items() if now - start >= self.window]:
            del self._clients[key]
        while len(self._clients) > self.max_clients:
            del self._clients[next(iter(self._clients))]

    def __len__(self) -> int:
        return len(self._clients)


class KeyRateLimiter:
    """A token bucket per key (an API key's id): `rate` requests a minute on average, bursts up to `rate`.
    `acquire(key, rate)` takes one token and returns 0, or the whole seconds until one is available (the
    request is then refused with 429 and ``Retry-After``). At most `max_keys` buckets; idle ones go first."""

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def acquire(self, key: str, rate: int) -> int:
        if rate <= 0:
            return 0
        now = self._clock()
        per_second = rate / 60.0
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(rate), now))
            tokens = min(float(rate), tokens + (now - last) * per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0
            else:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / per_second))
            while len(self._buckets) > self.max_keys:
                del self._buckets[next(iter(self._buckets))]
            return wait
