"""amas_otel.ratelimit: the token bucket in memory and in Redis, and the ASGI middleware."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from amas_otel.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenException,
    CircuitBreakerService,
    CircuitState,
    get_circuit_breaker_service,
)
from amas_otel.http_origin import proxy_networks
from amas_otel.ratelimit import RateLimiter, RateLimitMiddleware, RedisRateLimiter, client_address
from tests.conftest import PYTHON, python_env
from tests.support.health_servers import SilentServer


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _rejections(reader: InMemoryMetricReader) -> float:
    data = reader.get_metrics_data()
    total = 0.0
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "amas.ratelimit.rejections":
                    total += sum(p.value for p in metric.data.data_points)
    return total


def test_burst_then_refill_at_the_configured_rate() -> None:
    clock = _Clock()
    reader = InMemoryMetricReader()
    limiter = RateLimiter(requests_per_minute=60, burst_size=3, clock=clock, meter_provider=MeterProvider(metric_readers=[reader]))
    assert [limiter.allow_request("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow_request("b")  # keys are independent
    clock.now += 0.5
    assert not limiter.allow_request("a")
    clock.now += 0.5  # one token per second
    assert limiter.allow_request("a")
    assert not limiter.allow_request("a")
    clock.now += 10  # never more than the burst
    assert [limiter.allow_request("a") for _ in range(4)] == [True, True, True, False]
    assert _rejections(reader) == 4


def test_check_reports_remaining_retry_after_and_reset() -> None:
    clock = _Clock()
    limiter = RateLimiter(requests_per_minute=120, burst_size=2, clock=clock)
    first = limiter.check("k")
    assert (first.allowed, first.limit, first.remaining, first.retry_after) == (True, 2, 1, 0.0)
    assert first.reset == pytest.approx(0.5)
    second = limiter.check("k")
    assert (second.allowed, second.remaining) == (True, 0)
    third = limiter.check("k")
    assert not third.allowed and third.remaining == 0
    assert third.retry_after == pytest.approx(0.5)
    assert third.reset == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests_per_minute": 0}, "requests_per_minute must be a positive number, got 0"),
        ({"requests_per_minute": float("inf")}, "requests_per_minute must be a positive number, got inf"),
        ({"burst_size": 0}, "burst_size must be a positive integer, got 0"),
        ({"burst_size": 2.5}, "burst_size must be a positive integer, got 2.5"),
        ({"max_keys": 0}, "max_keys must be a positive integer, got 0"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RateLimiter(**kwargs)


def test_memory_stays_bounded_with_a_million_keys() -> None:
    limiter = RateLimiter(requests_per_minute=60, burst_size=5, max_keys=50_000)
    for i in range(1_000_000):
        limiter.allow_request(i)
    assert len(limiter) <= 50_000
    assert limiter.evictions >= 950_000
    # A key in active use survives eviction (least recently used go first).
    limiter.reset()
    for _ in range(5):
        assert limiter.allow_request("hot")
    for i in range(200_000):
        limiter.allow_request(i)
        if i % 1000 == 0:
            limiter.allow_request("hot")  # touched: rejected, but moved to the back
    assert not limiter.allow_request("hot")


def test_thread_safe_exactly_burst_allowed() -> None:
    limiter = RateLimiter(requests_per_minute=1e-6, burst_size=1000, clock=lambda: 5.0)
    allowed = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        allowed.append(sum(limiter.allow_request("shared") for _ in range(500)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(allowed) == 1000


async def test_asyncio_safe_exactly_burst_allowed() -> None:
    limiter = RateLimiter(requests_per_minute=1e-6, burst_size=50, clock=lambda: 5.0)
    results = await asyncio.gather(*(limiter.acheck("k") for _ in range(200)))
    assert sum(r.allowed for r in results) == 50


# --- client address --------------------------------------------------------------


def _scope(peer: str, xff: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", xff.encode())] if xff else []
    return {"client": (peer, 5555), "headers": headers}


def test_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = proxy_networks(["10.0.0.0/8", "::1"])
    assert client_address(_scope("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"  # untrusted peer: ignored
    assert client_address(_scope("10.1.2.3", "1.2.3.4"), trusted) == "1.2.3.4"
    # The right-most untrusted hop is the client; a spoofed left part is ignored.
    assert client_address(_scope("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.9.9.9"), trusted) == "1.2.3.4"
    assert client_address(_scope("10.1.2.3"), trusted) == "10.1.2.3"
    assert client_address(_scope("10.1.2.3", "1.2.3.4"), ()) == "10.1.2.3"
    with pytest.raises(ValueError, match="trusted_proxies entry 'proxy.local' is not an IP address"):
        proxy_networks(["proxy.local"])


async def test_middleware_headers_follow_every_decision() -> None:
    # Equal numbers on consecutive requests (a refilled bucket) and changing ones:
    # each response carries its own decision's headers after the app's own.
    clock = _Clock()
    limiter = RateLimiter(requests_per_minute=60, burst_size=3, clock=clock)
    sent: list[dict] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: dict) -> None:
        sent.append(message)

    middleware = RateLimitMiddleware(app, limiter)
    scope = {"type": "http", "path": "/api", "client": ("198.51.100.7", 5555), "headers": []}
    for advance in (0.0, 10.0, 0.0, 0.0, 10.0):
        clock.now += advance
        await middleware(dict(scope), None, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [200] * 5
    assert [m["headers"] for m in starts] == [
        [
            (b"content-type", b"text/plain"),
            (b"ratelimit-limit", b"3"),
            (b"ratelimit-remaining", b"%d" % left),
            (b"ratelimit-reset", b"%d" % reset),
        ]
        for left, reset in ((2, 1), (2, 1), (1, 2), (0, 3), (2, 1))
    ]
    assert [m["body"] for m in sent if m["type"] == "http.response.body"] == [b"ok"] * 5


# --- Redis -----------------------------------------------------------------------


@pytest.fixture
def redis_prefix(redis_url: str) -> str:
    prefix = f"amas-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_redis_limiter_burst_and_retry_after(redis_prefix: str, redis_url: str) -> None:
    reader = InMemoryMetricReader()
    limiter = RedisRateLimiter(
        redis_url, requests_per_minute=60, burst_size=3, prefix=redis_prefix, meter_provider=MeterProvider(metric_readers=[reader])
    )
    decisions = [limiter.check("user-1") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert 0 < decisions[3].retry_after <= 1.0
    assert limiter.allow_request("user-2")
    ttl = redis.Redis.from_url(redis_url).pttl(f"{redis_prefix}user-1")
    assert 0 < ttl <= 3100  # expires when the bucket would be full again
    assert _rejections(reader) == 1
    limiter.close()


async def test_redis_limiter_async_client(redis_prefix: str, redis_url: str) -> None:
    # socket_timeout with a margin: under load the default 50 ms fails open (counts as allowed).
    limiter = RedisRateLimiter(redis_url, requests_per_minute=60, burst_size=5, prefix=redis_prefix, socket_timeout=2.0)
    results = await asyncio.gather(*(limiter.acheck("k") for _ in range(20)))
    assert sum(r.allowed for r in results) == 5
    await limiter.aclose()


def test_redis_limiter_shared_by_two_processes(redis_prefix: str, redis_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from amas_otel.ratelimit import RedisRateLimiter
        limiter = RedisRateLimiter({redis_url!r}, requests_per_minute=0.001, burst_size=100, prefix={redis_prefix!r})
        sys.stdin.readline()  # start together
        print(sum(limiter.allow_request("shared-client") for _ in range(150)))
        """
    )
    procs = [
        subprocess.Popen([PYTHON, "-c", script], env=python_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    counts = [int(proc.communicate(timeout=60)[0].strip()) for proc in procs]
    assert sum(counts) == 100, counts


def _limiter_breaker(reader: InMemoryMetricReader | None = None) -> CircuitBreaker:
    """A breaker like the limiter's default one, of a service of its own (tests must not share its state)."""
    service = CircuitBreakerService(meter_provider=MeterProvider(metric_readers=[reader]) if reader else None)
    config = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=60.0, success_threshold=1, timeout=None)
    return service.create_breaker("redis-limiter", config)


def test_redis_unavailable_fails_open_in_memory_or_raises() -> None:
    from tests.conftest import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RedisRateLimiter(url, requests_per_minute=60, burst_size=1, breaker=_limiter_breaker())
    # Decided in this process with the same limits while Redis is away: still a limit, never an error.
    assert limiter.allow_request("k") and not limiter.allow_request("k")
    strict = RedisRateLimiter(url, requests_per_minute=60, burst_size=1, fail_open=False, breaker=_limiter_breaker())
    with pytest.raises(redis.ConnectionError):
        strict.check("k")


def test_the_default_breaker_is_one_of_the_services_breakers() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    assert limiter.breaker is get_circuit_breaker_service().get_breaker("amas.ratelimit.redis")
    assert limiter.socket_timeout == 0.05
    with pytest.raises(ValueError, match="socket_timeout must be a positive number of seconds, got 0"):
        RedisRateLimiter("redis://127.0.0.1:1/0", socket_timeout=0)


@pytest.fixture
def black_hole() -> Iterator[SilentServer]:
    """A loopback "Redis" that accepts connections and never answers."""
    server = SilentServer()
    yield server
    server.close()


def test_redis_black_hole_costs_the_short_timeout_then_nothing(black_hole: SilentServer) -> None:
    reader = InMemoryMetricReader()
    breaker = _limiter_breaker(reader)
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{black_hole.port}/0", requests_per_minute=60, burst_size=2, breaker=breaker)
    start = time.monotonic()
    decisions = [limiter.check("client") for _ in range(3)]
    waited = time.monotonic() - start
    # Three calls waited the 0.05 s socket timeout (redis-py's own default waits 5 s each), and each
    # request was decided in memory with the same limits: a burst of 2, then refused.
    assert waited < 1.5, waited
    assert [d.allowed for d in decisions] == [True, True, False]
    assert breaker.state is CircuitState.OPEN
    # Open: no call waits on Redis, nor even connects to it.
    connections = len(black_hole.accepted)
    start = time.monotonic()
    assert all(limiter.allow_request(f"other-{n}") for n in range(50))
    assert time.monotonic() - start < 0.5
    assert len(black_hole.accepted) == connections
    # Its state is in the breaker metrics like any breaker's.
    states = {
        dict(point.attributes)["amas.breaker.state"]: point.value
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "amas.breaker.state"
        for point in metric.data.data_points
        if dict(point.attributes)["amas.breaker.name"] == "redis-limiter"
    }
    assert states == {"closed": 0, "open": 1, "half_open": 0}


def test_redis_black_hole_strict_limiter_raises_quickly_then_open(black_hole: SilentServer) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{black_hole.port}/0", fail_open=False, breaker=_limiter_breaker())
    start = time.monotonic()
    for _ in range(3):
        with pytest.raises(redis.TimeoutError):
            limiter.check("k")
    assert time.monotonic() - start < 1.5
    with pytest.raises(CircuitBreakerOpenException):
        limiter.check("k")


def test_redis_black_hole_does_not_hold_16_concurrent_clients(black_hole: SilentServer) -> None:
    import httpx
    from fastapi import FastAPI

    from amas_otel.fastapi import instrument_app
    from amas_otel.metrics import MetricsService
    from tests.support.asgi_server import serve

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict:
        return {"ok": True}

    limiter = RedisRateLimiter(
        f"redis://127.0.0.1:{black_hole.port}/0", requests_per_minute=600_000, burst_size=10_000, breaker=_limiter_breaker()
    )
    instrument_app(app, metrics_service=MetricsService(system_metrics=False), tracing="off", rate_limiter=limiter)

    async def load(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            statuses = []
            for _ in range(4):  # 4 waves of 16 concurrent requests
                responses = await asyncio.gather(*(client.get("/ping") for _ in range(16)))
                statuses += [r.status_code for r in responses]
            return statuses

    with serve(app) as url:
        start = time.monotonic()
        statuses = asyncio.run(load(url))
        elapsed = time.monotonic() - start
    assert statuses == [200] * 64
    # The first wave waits the 0.05 s timeout once, then the breaker is open; redis-py's default: 4 x 5 s.
    assert elapsed < 3.0, elapsed
    assert limiter.breaker.state is CircuitState.OPEN


def test_redis_limiter_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one of url= or client="):
        RedisRateLimiter()
