"""Rate limiting checked natively, before Python runs (see docs/security.md, "Rate limiting").

``app.add_middleware(RateLimitMiddleware, limits=[Limit("100/minute")])`` installs the engine's GCRA limiter
(covet/ratelimit/middleware.hpp): a request over a limit is answered 429 with ``Retry-After`` and the IETF
draft's ``RateLimit`` / ``RateLimit-Policy`` fields by the engine, and never reaches Python. Its state is shared
by every worker process of one ``covet run --workers N`` (a table in the group's /dev/shm directory).

Per route: ``@rate_limit("5/minute")`` under the route decorator, or ``dependencies=[Depends(Limit("5/minute"))]``:
the middleware (added for you when a route declares one and none was added) enforces it natively on that route's
template. Across machines, `RedisRateLimit` is a dependency that keeps the same GCRA state in Redis with one
atomic Lua script; it runs in Python, on the event loop (the reactor never waits on Redis), so a request it
refuses has entered Python: put a native limit in front of it for floods.

Keys: ``"ip"`` (the client address; ``ipv4_prefix``/``ipv6_prefix`` aggregate networks), ``"header:NAME"`` (a
header's value, e.g. a tenant or an API key; a request without it is keyed by its address), ``"api_key"``
(``header:X-API-Key``), ``"route"`` (one budget per route template) and ``"global"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union

from .middleware.native import NativeMiddleware
from .requests import Request

if TYPE_CHECKING:
    from covet.server.interface import Middleware

__all__ = ["Limit", "RateLimitMiddleware", "RedisRateLimit", "parse_rate", "rate_limit"]

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_ROUTE_LIMITS = "__covet_rate_limits__"


def parse_rate(rate: str) -> tuple[int, float]:
    """``"100/minute"``, ``"10 per second"``, ``"1000/5minutes"`` -> (limit, period in seconds)."""
    m = _RATE.match(rate)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"rate {rate!r}: expected 'N/unit' or 'N/Kunits' with unit second, minute, hour or day "
                         "(e.g. '100/minute', '10/second', '1000/5minutes') and N > 0")
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else 1) * _UNITS[m.group(3).lower()]


class Limit:
    """One limit: `rate` (or `limit` per `period` seconds), `burst` at once (default: the limit), per `key`.

    Used in ``RateLimitMiddleware(limits=[...])`` (every request, or the route templates in `routes`), and as a
    route dependency, ``dependencies=[Depends(Limit("5/minute"))]``, which the engine enforces on that route.
    """

    def __init__(self, rate: Optional[str] = None, *, limit: Optional[int] = None, period: float = 60.0,
                 burst: int = 0, key: str = "ip", name: Optional[str] = None, routes: Sequence[str] = (),
                 ipv4_prefix: int = 32, ipv6_prefix: int = 64) -> None:
        if rate is not None:
            limit, period = parse_rate(rate)
        if limit is None or limit <= 0 or period <= 0:
            raise ValueError("Limit: give a rate ('100/minute') or limit > 0 and period > 0 (seconds)")
        if burst < 0:
            raise ValueError("Limit: burst must be >= 0 (0: the limit)")
        if name is not None and not (0 < len(name) <= 64 and name.isprintable() and name.isascii()
                                     and '"' not in name and "\\" not in name):
            raise ValueError(f"Limit: name {name!r} must be 1 to 64 printable ASCII characters, no quotes or "
                             "backslashes")
        self.limit = int(limit)
        self.period = float(period)
        self.burst = int(burst)
        self.key, self.header = _parse_key(key)
        self.name = name or f"{self.limit}-per-{self.period:g}s"
        self.routes = list(routes)
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix

    def native_rule(self, routes: Optional[Sequence[str]] = None) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit, "period": self.period, "burst": self.burst,
                "key": self.key, "header": self.header, "ipv4_prefix": self.ipv4_prefix,
                "ipv6_prefix": self.ipv6_prefix, "routes": list(self.routes if routes is None else routes)}

    async def __call__(self) -> None:
        """As a route dependency: nothing to do here, the engine checked it before the handler was called."""

    def __repr__(self) -> str:
        return f"Limit({self.limit}/{self.period:g}s, key={self.key!r}, name={self.name!r})"


def _parse_key(key: str) -> tuple[str, str]:
    if key in ("ip", "route", "global"):
        return key, ""
    if key == "api_key":
        return "header", "X-API-Key"
    if key.startswith("header:") and key[7:].strip():
        return "header", key[7:].strip()
    raise ValueError(f"rate limit key {key!r}: expected 'ip', 'header:NAME', 'api_key', 'route' or 'global'")


def rate_limit(rate: Optional[str] = None, **options: Any) -> Callable[[F], F]:
    """``@rate_limit("5/minute", key="ip")`` under ``@app.get(...)``: a `Limit` on that route alone."""
    limit = Limit(rate, **options)

    def decorator(func: F) -> F:
        limits = getattr(func, _ROUTE_LIMITS, None)
        if limits is None:
            limits = []
            setattr(func, _ROUTE_LIMITS, limits)
        limits.append(limit)
        return func

    return decorator


def route_limits(app: Any) -> list[dict[str, Any]]:
    """The native rules of the app's per-route limits (decorators and ``Depends(Limit(...))``), one per route."""
    rules: list[dict[str, Any]] = []
    for route in getattr(getattr(app, "router", None), "routes", ()):
        endpoint = getattr(route, "endpoint", None)
        found: list[Limit] = list(getattr(endpoint, _ROUTE_LIMITS, ()))
        for dependency in getattr(route, "dependencies", ()):
            target = getattr(dependency, "dependency", None)
            if isinstance(target, Limit):
                found.append(target)
        for limit in found:
            rule = limit.native_rule(routes=[route.native_pattern])
            rule["name"] = (limit.name if not limit.name[0].isdigit() else f"{limit.name}-{route.path}")[:64]
            rules.append(rule)
    return rules


class RateLimitMiddleware(NativeMiddleware):
    """``app.add_middleware(RateLimitMiddleware, limits=[Limit("100/minute"), ...])``: enforced by the engine.

    `headers`: also send ``RateLimit``/``RateLimit-Policy`` on the answers that pass (the 429s always carry
    them; off by default, as writing them costs more than the check). `table` names the shared table (apps
    served together keep theirs apart), `capacity` its keys (16 bytes each; when full the keys nearest to a
    full budget are forgotten first). Add it after every Python middleware (outermost), as the engine runs it
    before them all.
    """

    native_kind = "rate_limit"

    def __init__(self, app: Any, limits: Sequence[Union[Limit, str]] = (), *, headers: bool = False,
                 table: str = "default", capacity: int = 65536) -> None:
        super().__init__(app)
        self.limits = [limit if isinstance(limit, Limit) else Limit(limit) for limit in limits]
        if capacity < 16:
            raise ValueError("RateLimitMiddleware: capacity must be at least 16 keys")
        self.headers = bool(headers)
        self.table = table
        self.capacity = int(capacity)
        self.include_routes = True  # the app's per-route limits ride along (one middleware holds them all)

    def native_options(self) -> dict[str, Any]:
        rules = [limit.native_rule() for limit in self.limits]
        if self.include_routes:
            rules += route_limits(self.app)
        return {"rules": rules, "table": self.table, "capacity": self.capacity, "headers": self.headers}

    def python_middleware(self) -> Middleware:
        raise TypeError("RateLimitMiddleware runs in the engine, before any Python middleware: add it after them "
                        "(app.add_middleware is outermost last), so a refused request never enters Python")


def route_limit_middleware(app: Any, installed: Sequence[Any]) -> Optional[RateLimitMiddleware]:
    """The app's per-route limits ride on the first RateLimitMiddleware of `installed` (the engine's, outermost
    first); without one, the middleware to add for them (None when the app declares none)."""
    carried = False
    for middleware in installed:
        if isinstance(middleware, RateLimitMiddleware):
            middleware.include_routes = not carried
            carried = True
    if carried or not route_limits(app):
        return None
    return RateLimitMiddleware(app, table="routes")


# ---- Redis: one budget across machines ------------------------------------------------------------------------

# GCRA on one key, atomically: KEYS[1] the key; ARGV emission (ms), tolerance (ms = burst * emission), cost.
# The clock is Redis's (TIME), so servers with skewed clocks agree. Returns {allowed, remaining, retry_ms, reset_ms}.
_GCRA_LUA = """
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = math.max(tat, now)
local new_tat = base + emission * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, allow_at - now, base - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {1, math.floor((now - allow_at) / emission), 0, new_tat - now}
"""


class RedisRateLimit:
    """A route dependency, ``dependencies=[Depends(RedisRateLimit("100/minute", url=...))]``: one GCRA budget per
    key kept in Redis (atomic Lua script, Redis's clock), shared by every server using that Redis. A refusal is
    ``HTTPException(429)`` with ``Retry-After`` and the ``RateLimit`` fields. Runs on the app's event loop with
    redis-py's asyncio client (``pip install redis``): the reactor never waits on Redis, but the request has
    entered Python, and each check costs one Redis round trip. `fail_open`: when Redis cannot be reached, let the
    request through (True) or answer 503 (False)."""

    def __init__(self, rate: Optional[str] = None, *, url: str = "redis://127.0.0.1:6379/0", prefix: str = "covet:rl:",
                 fail_open: bool = True, **options: Any) -> None:
        self.limit = Limit(rate, **options)
        if self.limit.key == "route":
            raise ValueError("RedisRateLimit: key 'route' is the route it is on: use key='global' there")
        self.url = url
        self.prefix = prefix
        self.fail_open = fail_open
        self._client: Any = None
        self._script: Any = None

    def _key(self, request: Request) -> str:
        kind, header = self.limit.key, self.limit.header
        if kind == "global":
            return f"{self.prefix}{self.limit.name}"
        value = request.headers.get(header) if kind == "header" else None
        if value is None:
            value = request.client.host if request.client else ""
        return f"{self.prefix}{self.limit.name}:{kind}:{value}"

    async def __call__(self, request: Request) -> None:
        from .exceptions import HTTPException

        if self._script is None:
            try:
                import redis.asyncio as aioredis
            except ImportError as e:  # pragma: no cover - redis-py is in requirements-dev
                raise RuntimeError("RedisRateLimit needs redis-py: pip install redis") from e
            self._client = aioredis.from_url(self.url)
            self._script = self._client.register_script(_GCRA_LUA)
        emission_ms = max(1, round(self.limit.period * 1000 / self.limit.limit))
        burst = self.limit.burst or self.limit.limit
        try:
            allowed, _remaining, retry_ms, reset_ms = await self._script(
                keys=[self._key(request)], args=[emission_ms, emission_ms * burst, 1])
        except Exception as e:  # any Redis failure (down, timeout, script error): fail open or 503, as configured
            if self.fail_open:
                return
            raise HTTPException(503, "rate limiter unavailable") from e
        if not allowed:
            policy = f'"{self.limit.name}";q={self.limit.limit};w={max(1, round(self.limit.period))}'
            raise HTTPException(429, "Too Many Requests", headers={
                "Retry-After": str(max(1, -(-int(retry_ms) // 1000))),
                "RateLimit-Policy": policy,
                "RateLimit": f'"{self.limit.name}";r=0;t={max(1, -(-int(reset_ms) // 1000))}'})

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = self._script = None

