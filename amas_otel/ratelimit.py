"""Token-bucket rate limiting: in memory, in Redis, and as ASGI middleware.

Both stores implement the token bucket as GCRA (the generic cell rate
algorithm): each key keeps a single number, its *theoretical arrival time*
(TAT).  A request is allowed when, after adding one emission interval
(``60 / requests_per_minute`` s), the TAT is at most ``burst_size`` intervals
ahead of now.  This is exactly a bucket of ``burst_size`` tokens refilled at
``requests_per_minute``, with one float per key instead of two, and a key
whose TAT lies in the past is a full bucket: forgetting it changes nothing.

* :class:`RateLimiter` — in process, thread- and asyncio-safe (decisions never
  await and take one short lock), memory bounded by ``max_keys``.
* :class:`RedisRateLimiter` — one atomic Lua script per decision (one round
  trip, Redis's clock), so several replicas share one limit; a short socket
  timeout and a circuit breaker of its own, deciding in memory while Redis
  cannot answer.
* :class:`RateLimitMiddleware` — pure ASGI; 429 with ``Retry-After`` and
  ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` headers; exempt paths;
  client address from the connection, ``Forwarded`` / ``X-Forwarded-For`` only from trusted
  proxies (:mod:`amas_otel.http_origin`, which gives the request span the same client).
  Standalone: :func:`amas_otel.fastapi.instrument_app` applies the same limit
  (the same code, :class:`RateLimitGate`) from within its telemetry layer instead.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, MutableMapping
from typing import Any, NamedTuple

from amas_otel.breaker import CircuitBreaker, CircuitBreakerConfig, get_circuit_breaker_service
from amas_otel.errors import send_error
from amas_otel._asgi import with_headers
from amas_otel.http_origin import client_address as http_client_address
from amas_otel.http_origin import proxy_networks
from amas_otel.semconv import RATELIMIT_BACKEND, RATELIMIT_REDIS_BREAKER, RATELIMIT_REJECTIONS
from amas_otel.scope import amas_meter

__all__ = [
    "RateLimitDecision",
    "RateLimitExceeded",
    "RateLimiter",
    "RedisRateLimiter",
    "RateLimitMiddleware",
    "client_address",
    "RateLimitGate",
    "EXEMPT_PATHS",
]

_log = logging.getLogger("amas_otel.ratelimit")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RateLimitDecision(NamedTuple):
    """The outcome of one request against a limit (immutable).

    ``limit`` is the burst size, ``remaining`` the requests still allowed right
    now, ``retry_after`` the seconds until the next request would be allowed
    (0 when this one was), ``reset`` the seconds until the bucket is full again.
    """

    # A named tuple, not a frozen dataclass: one is built per request, and a
    # tuple is built in a fraction of the time.
    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset: float


# The named tuple's own __new__ is a Python function: one frame more per decision.
_new_decision = functools.partial(tuple.__new__, RateLimitDecision)


class RateLimitExceeded(Exception):
    """Raised by code that enforces a limit itself; :mod:`amas_otel.fastapi` answers 429."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: float, message: str = "Too many requests") -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def _check_limits(requests_per_minute: Any, burst_size: Any) -> tuple[float, float]:
    """Validate the arguments; return (emission interval, burst window) in seconds."""
    if isinstance(requests_per_minute, bool) or not isinstance(requests_per_minute, (int, float)) or not (
        requests_per_minute > 0 and math.isfinite(requests_per_minute)
    ):
        raise ValueError(f"requests_per_minute must be a positive number, got {requests_per_minute!r}")
    if isinstance(burst_size, bool) or not isinstance(burst_size, int) or burst_size < 1:
        raise ValueError(f"burst_size must be a positive integer, got {burst_size!r}")
    interval = 60.0 / requests_per_minute
    return interval, burst_size * interval


class _Limiter:
    """Shared parts: limits, the rejection counter, decisions from a TAT."""

    backend = ""

    def __init__(self, requests_per_minute: float, burst_size: int, meter_provider: Any) -> None:
        self._interval, self._tau = _check_limits(requests_per_minute, burst_size)
        self.requests_per_minute = float(requests_per_minute)
        self.burst_size = burst_size
        meter = amas_meter(meter_provider)
        name, unit = RATELIMIT_REJECTIONS
        self._rejections = meter.create_counter(name, unit=unit, description="Requests refused by a rate limiter")
        self._rejection_attrs = {RATELIMIT_BACKEND: self.backend}

    def _decision(self, allowed: bool, ahead: float) -> RateLimitDecision:
        """Build the decision from ``ahead``: how far the TAT is ahead of now after this request."""
        if allowed:
            remaining = int((self._tau - ahead) / self._interval + 1e-9)
            return _new_decision((True, self.burst_size, remaining, 0.0, ahead if ahead > 0.0 else 0.0))
        self._rejections.add(1, self._rejection_attrs)
        return _new_decision((False, self.burst_size, 0, ahead - self._tau, ahead - self._interval))


class RateLimiter(_Limiter):
    """In-process token bucket per key: ``burst_size`` tokens, refilled at ``requests_per_minute``.

    ``allow_request(key)`` answers yes or no; :meth:`check` also returns the
    numbers for ``RateLimit-*`` headers.  At most ``max_keys`` keys are kept:
    beyond that the least recently allowed keys are forgotten (in batches of
    1/8 of ``max_keys``), which at worst hands such a key a full bucket again;
    ``evictions`` counts them.
    """

    backend = "memory"

    def __init__(
        self,
        requests_per_minute: float = 60,
        burst_size: int = 10,
        *,
        max_keys: int = 100_000,
        meter_provider: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(requests_per_minute, burst_size, meter_provider)
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be a positive integer, got {max_keys!r}")
        self.max_keys = max_keys
        self.evictions = 0
        self._low_water = max_keys - max(max_keys // 8, 1)
        self._clock = clock
        # key -> TAT; insertion order is kept as "least recently allowed first".
        self._tats: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tats)

    def _take(self, key: Hashable) -> tuple[bool, float]:
        """Take one token for ``key``: (allowed, how far the TAT is ahead of now)."""
        now = self._clock()
        tats = self._tats
        with self._lock:
            # pop + store keeps the dict ordered least recently used first.
            tat = tats.pop(key, now)
            if tat < now:
                tat = now
            ahead = tat + self._interval - now
            allowed = ahead <= self._tau
            tats[key] = tat + self._interval if allowed else tat
            if len(tats) > self.max_keys:
                self._evict()
        return allowed, ahead

    def check(self, key: Hashable) -> RateLimitDecision:
        """Take one token for ``key`` and say how much is left (see :class:`RateLimitDecision`)."""
        return self._decision(*self._take(key))

    def allow_request(self, key: Hashable) -> bool:
        """Take one token for ``key``; True if the request may proceed."""
        # Without building a decision nobody reads: this is the hot call of in-process limiting.
        allowed, _ = self._take(key)
        if not allowed:
            self._rejections.add(1, self._rejection_attrs)
        return allowed

    async def acheck(self, key: Hashable) -> RateLimitDecision:
        """:meth:`check` for async callers (it never blocks on I/O)."""
        return self.check(key)

    def reset(self, key: Hashable | None = None) -> None:
        """Forget ``key`` (full bucket again), or every key."""
        with self._lock:
            if key is None:
                self._tats.clear()
            else:
                self._tats.pop(key, None)

    def _evict(self) -> None:
        # Called with the lock held.  Entries are ordered least recently
        # allowed first, so the front holds idle keys (full buckets: dropping
        # them is exact) before busy ones.
        tats = self._tats
        excess = len(tats) - self._low_water
        for key in list(itertools.islice(tats, excess)):
            del tats[key]
        self.evictions += excess


_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > tau then
  return {0, ahead}
end
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX', math.ceil(ahead / 1000) + 1)
return {1, ahead}
"""


# The breaker around Redis, unless the limiter is given another: OPEN after a few
# failed or timed-out calls, one trial call after a few seconds.
_REDIS_BREAKER_FAILURES = 3
_REDIS_BREAKER_RECOVERY_SECONDS = 5.0


class RedisRateLimiter(_Limiter):
    """The same token bucket kept in Redis, shared by every process using the same ``prefix``.

    One ``EVALSHA`` per decision: the script reads the key's TAT, decides with
    Redis's own clock (replicas' clocks need not agree) and writes the new TAT
    with an expiry of when the bucket is full again — atomically.  Give a
    ``url`` or a client: a ``redis.Redis`` for :meth:`allow_request` /
    :meth:`check`, a ``redis.asyncio.Redis`` for :meth:`acheck` (with ``url``
    both are created on first use, with ``socket_timeout`` seconds to connect
    and to answer — ``RATE_LIMIT_REDIS_TIMEOUT_SECONDS``, 0.05 s — and no
    client retries; a given client keeps its own settings).

    Every call goes through a circuit breaker: ``breaker``, by default
    ``amas.ratelimit.redis`` of :func:`amas_otel.breaker.get_circuit_breaker_service`
    (shared by the limiters that take the default; its state is in the
    ``amas.breaker.*`` metrics like any other breaker's): after 3 failed or
    timed-out calls it opens, and for 5 s calls do not wait on Redis at all,
    then one trial call tests it again.  When Redis
    fails or the breaker is open, ``fail_open`` (default) decides the request
    with an in-memory :class:`RateLimiter` of the same limits (per process:
    still a limit, never an error) and logs a warning at most once a minute.
    With ``fail_open=False`` the error (or
    :class:`~amas_otel.breaker.CircuitBreakerOpenException`) propagates.
    """

    backend = "redis"

    def __init__(
        self,
        url: str | None = None,
        requests_per_minute: float = 60,
        burst_size: int = 10,
        *,
        client: Any = None,
        prefix: str = "amas:ratelimit:",
        fail_open: bool = True,
        meter_provider: Any = None,
        socket_timeout: float = 0.05,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(requests_per_minute, burst_size, meter_provider)
        if (url is None) == (client is None):
            raise ValueError("RedisRateLimiter needs exactly one of url= or client=")
        if isinstance(socket_timeout, bool) or not isinstance(socket_timeout, (int, float)) or not (
            0 < socket_timeout < math.inf
        ):
            raise ValueError(f"socket_timeout must be a positive number of seconds, got {socket_timeout!r}")
        self.socket_timeout = float(socket_timeout)
        # The breaker's own per-call timeout stays off: the socket timeout bounds each call.
        self.breaker: CircuitBreaker = breaker or get_circuit_breaker_service().create_breaker(
            RATELIMIT_REDIS_BREAKER,
            CircuitBreakerConfig(
                failure_threshold=_REDIS_BREAKER_FAILURES,
                recovery_timeout=_REDIS_BREAKER_RECOVERY_SECONDS,
                success_threshold=1,
                timeout=None,
            ),
        )
        self._fallback = RateLimiter(requests_per_minute, burst_size, meter_provider=meter_provider)
        self._url = url
        self._client = client
        self._aclient = client
        self.prefix = prefix
        self.fail_open = fail_open
        self._args = (round(self._interval * 1e6), round(self._tau * 1e6))
        self._script: Any = None
        self._ascript: Any = None
        self._last_warning = -math.inf

    def _sync_script(self) -> Any:
        if self._script is None:
            if self._url is not None and self._client is None:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                self._client = redis.Redis.from_url(self._url, retry=Retry(NoBackoff(), 0), **self._timeouts())
            self._script = self._client.register_script(_GCRA_LUA)
        return self._script

    def _async_script(self) -> Any:
        if self._ascript is None:
            if self._url is not None:
                import redis.asyncio
                from redis.asyncio.retry import Retry
                from redis.backoff import NoBackoff

                self._aclient = redis.asyncio.Redis.from_url(self._url, retry=Retry(NoBackoff(), 0), **self._timeouts())
            self._ascript = self._aclient.register_script(_GCRA_LUA)
        return self._ascript

    def _timeouts(self) -> dict[str, float]:
        # redis-py's own defaults wait seconds (and retry) on a Redis that accepts and never answers.
        return {"socket_timeout": self.socket_timeout, "socket_connect_timeout": self.socket_timeout}

    def _from_reply(self, reply: Any) -> RateLimitDecision:
        return self._decision(bool(int(reply[0])), int(reply[1]) / 1e6)

    def _failed(self, exc: Exception, key: Hashable) -> RateLimitDecision:
        if not self.fail_open:
            raise exc
        now = time.monotonic()
        if now - self._last_warning >= 60.0:
            self._last_warning = now
            _log.warning("amas_otel: Redis rate limiter unavailable (%s); limiting in this process meanwhile", exc)
        return self._fallback.check(key)

    def check(self, key: Hashable) -> RateLimitDecision:
        """Take one token for ``key`` (blocking call to Redis)."""
        try:
            script = self._sync_script()
            with self.breaker.guard():
                reply = script(keys=[f"{self.prefix}{key}"], args=self._args)
            return self._from_reply(reply)
        except Exception as exc:  # noqa: BLE001 - any client error means "Redis unavailable"
            return self._failed(exc, key)

    async def acheck(self, key: Hashable) -> RateLimitDecision:
        """Take one token for ``key`` through the asyncio client."""
        try:
            script = self._async_script()
            async with self.breaker.guard():
                reply = await script(keys=[f"{self.prefix}{key}"], args=self._args)
            return self._from_reply(reply)
        except Exception as exc:  # noqa: BLE001
            return self._failed(exc, key)

    def allow_request(self, key: Hashable) -> bool:
        """Take one token for ``key``; True if the request may proceed."""
        return self.check(key).allowed

    def close(self) -> None:
        """Close a client this limiter created from ``url`` (the sync one; see :meth:`aclose`)."""
        if self._url is not None and self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the asyncio client this limiter created from ``url``."""
        if self._url is not None and self._aclient is not None:
            await self._aclient.aclose()


# --- ASGI middleware ----------------------------------------------------------


def _peer(scope: Scope) -> str:
    """The connection's peer address ("unknown" when the server gives none)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def client_address(scope: Scope, trusted_proxies: tuple[Any, ...] = ()) -> str:
    """The client's address for ``scope``.

    The connection's peer address, unless that peer is one of ``trusted_proxies``
    (networks from :func:`amas_otel.http_origin.proxy_networks`): then
    ``Forwarded`` or else ``X-Forwarded-For`` is read from the right, skipping
    trusted hops, and the first untrusted address is the client
    (:func:`amas_otel.http_origin.request_origin`, the same answer as the
    request span's ``client.address``).  A header from an untrusted peer is
    ignored — anyone can send one.
    """
    if not trusted_proxies:
        return _peer(scope)
    return http_client_address(scope, trusted_proxies) or "unknown"


_Headers = tuple[tuple[bytes, bytes], ...]

#: Paths never limited unless the caller says otherwise: health probes and scrapes.
EXEMPT_PATHS = ("/health", "/metrics")


class RateLimitGate:
    """One limit as each request meets it, for whichever middleware applies it.

    :class:`RateLimitMiddleware` (a layer of its own) and
    :class:`amas_otel.fastapi.RequestTelemetryMiddleware` (folded into its one
    layer) both go through here: which paths are exempt, the client's key,
    the decision, the ``RateLimit-*`` headers and the 429 answer.
    """

    def __init__(
        self,
        limiter: RateLimiter | RedisRateLimiter,
        exempt_paths: Iterable[str],
        trusted_proxies: Iterable[str],
        key_func: Callable[[Scope, str], Hashable] | None = None,
    ) -> None:
        self.limiter = limiter
        paths = tuple(p.rstrip("/") or "/" for p in exempt_paths)
        self._exact = frozenset(paths)
        self._prefixes = tuple(p + "/" for p in paths if p != "/")
        self._trusted = proxy_networks(trusted_proxies)
        self._key_func = key_func
        # Without proxies to trust or a key function the peer is the key: no more calls for it.
        self._key = _peer if not self._trusted and key_func is None else self._client_key
        # The in-memory limiter decides without I/O: called directly, no coroutine per request.
        self._check = limiter.check if type(limiter).acheck is RateLimiter.acheck else None
        # The last headers sent, by their numbers: a bucket that refills faster than it is
        # drained gives the same three numbers on every request.
        self._last_headers: tuple[tuple[int, int, int], _Headers] = ((-1, -1, -1), ())

    def exempt(self, path: str) -> bool:
        """True when ``path`` is never limited."""
        return path in self._exact or path.startswith(self._prefixes)

    def decide(self, scope: Scope) -> RateLimitDecision | None:
        """Take a token for ``scope``'s client without awaiting, when the limiter can (in memory).

        None when the limiter needs I/O (Redis): :meth:`admit` decides then.
        """
        check = self._check
        return check(self._key(scope)) if check is not None else None

    async def admit(self, scope: Scope, send: Send, decision: RateLimitDecision | None = None) -> _Headers | None:
        """Take a token for ``scope``'s client, unless ``decision`` (from :meth:`decide`) took it.

        Returns the ``RateLimit-*`` headers the response must carry, or None
        once the request has been answered 429 through ``send``.  Callers with
        an allowed decision in hand take :meth:`headers` instead: no coroutine.
        """
        if decision is None:
            decision = await self.limiter.acheck(self._key(scope))
        headers = self.headers(decision)
        if decision.allowed:
            return headers
        seconds = max(math.ceil(decision.retry_after), 1)
        await send_error(
            send,
            429,
            "rate_limited",
            "Too many requests",
            scope=scope,
            headers=[(b"retry-after", str(seconds).encode()), *headers],
            retry_after=seconds,
        )
        return None

    def _client_key(self, scope: Scope) -> Hashable:
        key: Hashable = client_address(scope, self._trusted)
        if self._key_func is not None:
            key = self._key_func(scope, key)
        return key

    def headers(self, decision: RateLimitDecision) -> _Headers:
        """The ``RateLimit-*`` headers for ``decision``."""
        numbers = (decision.limit, decision.remaining, math.ceil(decision.reset))
        last = self._last_headers
        if last[0] == numbers:
            return last[1]
        headers = (
            (b"ratelimit-limit", b"%d" % numbers[0]),
            (b"ratelimit-remaining", b"%d" % numbers[1]),
            (b"ratelimit-reset", b"%d" % numbers[2]),
        )
        self._last_headers = (numbers, headers)
        return headers


class RateLimitMiddleware:
    """Pure ASGI middleware applying ``limiter`` per client address.

    Refused requests get ``429`` with ``Retry-After`` (whole seconds) and a JSON
    body carrying the correlation id; every limited response carries
    ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``.
    Paths equal to or under ``exempt_paths`` (health, metrics) are never limited.
    ``key_func(scope, client_address)`` may choose another key (an API key, a user).

    :func:`amas_otel.fastapi.instrument_app` does not add this layer: it hands
    the limiter to ``RequestTelemetryMiddleware``, which applies it the same way
    from within its own layer.
    """

    def __init__(
        self,
        app: Any,
        limiter: RateLimiter | RedisRateLimiter,
        *,
        exempt_paths: Iterable[str] = EXEMPT_PATHS,
        trusted_proxies: Iterable[str] = (),
        key_func: Callable[[Scope, str], Hashable] | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self._gate = RateLimitGate(limiter, exempt_paths, trusted_proxies, key_func)

    def exempt(self, path: str) -> bool:
        """True when ``path`` is never limited."""
        return self._gate.exempt(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._gate.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        gate = self._gate
        decision = gate.decide(scope)
        if decision is not None and decision.allowed:  # no coroutine on the common path
            headers: _Headers | None = gate.headers(decision)
        else:
            headers = await gate.admit(scope, send, decision)
            if headers is None:
                return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = with_headers(message, headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
