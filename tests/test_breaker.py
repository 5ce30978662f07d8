"""Circuit breaker: transitions, timeouts, concurrency invariants, telemetry."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from amas_otel.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenException,
    CircuitBreakerService,
    CircuitBreakerTimeoutError,
    CircuitState,
    circuit_breaker,
    get_circuit_breaker_service,
)
from amas_otel.breaker_requests import BreakerOpenError, breaker_session
from amas_otel.config import ConfigError
from tests.conftest import free_port
from tests.support import prometheus


class Boom(Exception):
    pass


class Telemetry:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.service = CircuitBreakerService(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def points(self, metric: str) -> dict[tuple, float]:
        found = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        for p in m.data.data_points:
                            found[tuple(sorted(p.attributes.items()))] = p.value
        return found


@pytest.fixture
def tel() -> Telemetry:
    return Telemetry()


def cfg(**kw: Any) -> CircuitBreakerConfig:
    base = dict(failure_threshold=2, recovery_timeout=0.05, success_threshold=2, timeout=1.0)
    base.update(kw)
    return CircuitBreakerConfig(**base)


def fail() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        with pytest.raises(Boom):
            breaker.call(fail)


def wait_recovery(breaker: CircuitBreaker) -> None:
    time.sleep(breaker.config.recovery_timeout + 0.01)


# --- configuration -----------------------------------------------------------


def test_defaults_come_from_settings(clean_env: pytest.MonkeyPatch) -> None:
    from amas_otel.config import set_active_settings, load_settings

    clean_env.setenv("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "7")
    clean_env.setenv("CIRCUIT_BREAKER_TIMEOUT", "2.5")
    set_active_settings(load_settings())
    try:
        config = CircuitBreakerConfig()
        assert (config.failure_threshold, config.timeout, config.success_threshold) == (7, 2.5, 3)
    finally:
        clean_env.delenv("CIRCUIT_BREAKER_FAILURE_THRESHOLD")
        clean_env.delenv("CIRCUIT_BREAKER_TIMEOUT")
        set_active_settings(load_settings())


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"failure_threshold": 0}, "failure_threshold: 0"),
        ({"timeout": -1}, "timeout: -1"),
        ({"half_open_max_calls": "2"}, "half_open_max_calls: '2'"),
        ({"failure_exceptions": (int,)}, "failure_exceptions"),
    ],
)
def test_bad_config_names_argument_and_value(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        CircuitBreakerConfig(**kwargs)
    assert fragment in str(info.value) and "expected" in str(info.value)


# --- transitions -------------------------------------------------------------


def test_closed_to_open_to_half_open_to_closed(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("dep", cfg())
    assert breaker.call(ok) == "ok" and breaker.state is CircuitState.CLOSED
    trip(breaker)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenException) as info:
        breaker.call(ok)
    assert info.value.breaker_name == "dep" and 0 < info.value.retry_after <= 0.05
    wait_recovery(breaker)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    stats = breaker.get_stats()
    assert (stats["successes"], stats["failures"], stats["rejections"], stats["transitions"]) == (3, 2, 1, 3)


def test_half_open_failure_reopens(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("dep", cfg())
    trip(breaker)
    wait_recovery(breaker)
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() > 0.03


def test_success_resets_consecutive_failures(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("dep", cfg(failure_threshold=3))
    for _ in range(5):
        with pytest.raises(Boom):
            breaker.call(fail)
        with pytest.raises(Boom):
            breaker.call(fail)
        breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED


def test_ignored_and_foreign_exceptions_are_not_failures(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker(
        "dep", cfg(failure_threshold=1, failure_exceptions=(Boom, KeyError), ignored_exceptions=(KeyError,))
    )
    for exc in (KeyError("x"), ValueError("y")):
        with pytest.raises(type(exc)):
            breaker.call(lambda e=exc: (_ for _ in ()).throw(e))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["successes"] == 2


def test_disabled_breaker_never_opens(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("dep", cfg(enabled=False))
    for _ in range(5):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state is CircuitState.CLOSED and breaker.get_stats()["failures"] == 5


def test_reset_and_force_open(tel: Telemetry) -> None:
    service = tel.service
    breaker = service.create_breaker("dep", cfg())
    breaker.force_open()
    assert breaker.state is CircuitState.OPEN
    service.reset("dep")
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(KeyError, match="no circuit breaker named 'nope'; known: dep"):
        service.reset("nope")


def test_service_registry(tel: Telemetry) -> None:
    service = tel.service
    a = service.create_breaker("a", cfg())
    assert service.create_breaker("a") is a and service.get_breaker("a") is a
    assert service.find_breaker("b") is None and service.find_breaker("a") is a
    with pytest.raises(ValueError, match="already exists"):
        service.create_breaker("a", cfg(failure_threshold=9))
    service.create_breaker("b")
    assert service.list_breakers() == ["a", "b"]
    assert set(service.get_all_stats()) == {"a", "b"}
    a.force_open()
    service.reset_all()
    assert a.state is CircuitState.CLOSED
    assert isinstance(get_circuit_breaker_service(), CircuitBreakerService)
    with pytest.raises(ConfigError, match="name: ''"):
        CircuitBreaker("")


def test_get_breaker_creates_a_missing_breaker_from_the_settings(clean_env: pytest.MonkeyPatch) -> None:
    """The guide's ``service.get_breaker("external_api").call(...)``: get-or-create with the CIRCUIT_BREAKER_* defaults."""
    from amas_otel.config import set_active_settings, load_settings

    clean_env.setenv("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "2")
    set_active_settings(load_settings())
    try:
        service = CircuitBreakerService()
        breaker = service.get_breaker("external_api")
        assert service.get_breaker("external_api") is breaker and service.list_breakers() == ["external_api"]
        assert breaker.config.failure_threshold == 2 and breaker.call(lambda: "ok") == "ok"
    finally:
        clean_env.delenv("CIRCUIT_BREAKER_FAILURE_THRESHOLD")
        set_active_settings(load_settings())


# --- forms: decorator, context manager, async -------------------------------


def test_decorator_sync_and_async(tel: Telemetry) -> None:
    @circuit_breaker("deco", cfg(), service=tel.service)
    def sync_fn(x: int) -> int:
        return x * 2

    @circuit_breaker("deco", service=tel.service)
    async def async_fn(x: int) -> int:
        await asyncio.sleep(0)
        return x * 3

    assert sync_fn(2) == 4 and sync_fn.__name__ == "sync_fn"
    assert asyncio.run(async_fn(2)) == 6
    import inspect

    assert inspect.iscoroutinefunction(async_fn)
    assert tel.service.get_breaker("deco").get_stats()["successes"] == 2


def test_decorated_method_binds_self(tel: Telemetry) -> None:
    class Client:
        @circuit_breaker("method", cfg(), service=tel.service)
        async def get(self, x: int) -> tuple:
            return (self, x)

    client = Client()
    assert asyncio.run(client.get(1)) == (client, 1)


def test_guard_sync(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("g", cfg())
    for _ in range(2):
        with pytest.raises(Boom), breaker.guard():
            raise Boom()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenException), breaker.guard():
        pytest.fail("must not run")


async def test_guard_async_timeout_cancels(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("ga", cfg(timeout=0.05, failure_threshold=1))
    started = time.monotonic()
    with pytest.raises(CircuitBreakerTimeoutError):
        async with breaker.guard():
            await asyncio.sleep(5)
    assert time.monotonic() - started < 1
    assert breaker.state is CircuitState.OPEN and breaker.get_stats()["timeouts"] == 1


async def test_async_call_and_timeout_cancels_the_call(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("t", cfg(timeout=0.05, failure_threshold=2))
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def quick(x: int) -> int:
        await asyncio.sleep(0)
        return x

    assert await breaker.call(quick, 5) == 5
    started = time.monotonic()
    with pytest.raises(CircuitBreakerTimeoutError) as info:
        await breaker.call(slow)
    assert time.monotonic() - started < 1 and cancelled.is_set()
    assert info.value.breaker_name == "t" and isinstance(info.value, TimeoutError)
    assert asyncio.current_task().cancelling() == 0  # our cancellation was consumed
    with pytest.raises(CircuitBreakerTimeoutError):
        await breaker.call(slow)
    assert breaker.state is CircuitState.OPEN
    stats = breaker.get_stats()
    assert (stats["successes"], stats["timeouts"]) == (1, 2)


async def test_timeouts_of_different_breakers_and_nested_calls(tel: Telemetry) -> None:
    outer = tel.service.create_breaker("outer", cfg(timeout=0.1))
    inner = tel.service.create_breaker("inner", cfg(timeout=5.0))

    async def slow() -> None:
        await asyncio.sleep(5)

    async def through_inner() -> None:
        await inner.call(slow)

    started = time.monotonic()
    with pytest.raises(CircuitBreakerTimeoutError) as info:
        await outer.call(through_inner)
    assert info.value.breaker_name == "outer" and time.monotonic() - started < 1
    # The inner call was cancelled by the outer timeout: neither a failure nor a timeout of its own.
    assert inner.get_stats()["interrupted"] == 1 and inner.get_stats()["timeouts"] == 0


async def test_external_cancellation_is_not_a_failure(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("c", cfg(failure_threshold=1, half_open_max_calls=1))
    breaker.force_open()
    await asyncio.sleep(0.06)

    async def hang() -> None:
        await asyncio.sleep(5)

    task = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0.01)
    assert breaker.state is CircuitState.HALF_OPEN
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = breaker.get_stats()
    assert stats["interrupted"] == 1 and stats["failures"] == 0
    assert stats["half_open_in_flight"] == 0  # the trial slot was given back
    assert breaker.state is CircuitState.HALF_OPEN


async def quick() -> str:
    await asyncio.sleep(0)
    return "ok"


async def hang() -> None:
    await asyncio.sleep(5)


async def seconds_to_time_out(breaker: CircuitBreaker) -> float:
    started = time.monotonic()
    with pytest.raises(CircuitBreakerTimeoutError):
        await breaker.call(hang)
    return time.monotonic() - started


def test_timeouts_on_new_and_restarted_loops_of_one_thread(tel: Telemetry) -> None:
    # Each loop below starts after another one ended with a sweep pending for an earlier
    # deadline than its own calls have: that sweep never fires there.
    early = tel.service.create_breaker("early", cfg(timeout=0.2))
    late = tel.service.create_breaker("late", cfg(timeout=0.3, failure_threshold=100))
    for _ in range(2):
        assert asyncio.run(early.call(quick)) == "ok"
        assert asyncio.run(seconds_to_time_out(late)) < 1
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(early.call(quick)) == "ok"
        assert second.run_until_complete(late.call(quick)) == "ok"
        # ``first`` runs again while its old sweep is still pending.
        assert first.run_until_complete(seconds_to_time_out(late)) < 1
        assert second.run_until_complete(seconds_to_time_out(late)) < 1
    finally:
        first.close()
        second.close()
    assert late.get_stats()["timeouts"] == 4 and late.get_stats()["interrupted"] == 0


def test_timeouts_on_loops_of_several_threads(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("threaded", cfg(timeout=0.2, failure_threshold=100))
    elapsed: list[float] = []

    async def one_thread() -> None:
        assert await breaker.call(quick) == "ok"
        elapsed.append(await seconds_to_time_out(breaker))

    threads = [threading.Thread(target=asyncio.run, args=(one_thread(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(elapsed) == 4 and max(elapsed) < 1
    assert breaker.get_stats()["timeouts"] == 4


async def test_a_timeout_error_raised_by_the_call_is_its_failure_not_the_breakers_timeout(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("own-timeout", cfg(timeout=5, failure_threshold=100, failure_exceptions=(TimeoutError,)))

    async def gives_up() -> None:
        raise TimeoutError("the dependency's own deadline")

    with pytest.raises(TimeoutError, match="the dependency's own deadline") as raised:
        await breaker.call(gives_up)
    assert not isinstance(raised.value, CircuitBreakerTimeoutError)
    stats = breaker.get_stats()
    assert stats["failures"] == 1 and stats["timeouts"] == 0
    assert await seconds_to_time_out(tel.service.create_breaker("deadline", cfg(timeout=0.05, failure_threshold=100))) < 1


def test_sync_timeout_is_measured_and_counted(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("s", cfg(timeout=0.02, failure_threshold=1))
    assert breaker.call(lambda: time.sleep(0.05) or "late") == "late"
    assert breaker.state is CircuitState.OPEN and breaker.get_stats()["timeouts"] == 1


# --- concurrency invariants ----------------------------------------------------


def test_exact_counts_under_100_threads(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("threads", cfg(failure_threshold=10**9))
    barrier = threading.Barrier(100)
    per_thread = 200

    def work(i: int) -> None:
        barrier.wait(5)
        for n in range(per_thread):
            if (i + n) % 4 == 0:
                with pytest.raises(Boom):
                    breaker.call(fail)
            else:
                breaker.call(ok)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stats = breaker.get_stats()
    assert stats["failures"] == 100 * per_thread // 4
    assert stats["successes"] == 100 * per_thread * 3 // 4


def test_half_open_admits_at_most_the_configured_trials_threads(tel: Telemetry) -> None:
    limit = 3
    breaker = tel.service.create_breaker("ho", cfg(half_open_max_calls=limit, success_threshold=10**6))
    breaker.force_open()
    wait_recovery(breaker)
    active = 0
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(100)

    def trial() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.002)
        with lock:
            active -= 1

    def work() -> None:
        barrier.wait(5)
        for _ in range(20):
            try:
                breaker.call(trial)
            except CircuitBreakerOpenException:
                pass

    threads = [threading.Thread(target=work) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stats = breaker.get_stats()
    assert 1 <= peak <= limit
    assert stats["successes"] + stats["rejections"] == 100 * 20
    assert stats["half_open_in_flight"] == 0


async def test_1000_tasks_exact_counts_and_trial_limit(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("tasks", cfg(failure_threshold=10**9))
    tasks_n = 1000

    async def work(i: int) -> None:
        async def fn() -> int:
            await asyncio.sleep(0)
            if i % 5 == 0:
                raise Boom()
            return i

        try:
            await breaker.call(fn)
        except Boom:
            pass

    await asyncio.gather(*(work(i) for i in range(tasks_n)))
    stats = breaker.get_stats()
    assert (stats["successes"], stats["failures"]) == (800, 200)

    limited = tel.service.create_breaker("tasks-ho", cfg(half_open_max_calls=2, success_threshold=10**6))
    limited.force_open()
    await asyncio.sleep(0.06)
    active = peak = 0

    async def trial() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        active -= 1

    async def attempt() -> None:
        try:
            await limited.call(trial)
        except CircuitBreakerOpenException:
            pass

    await asyncio.gather(*(attempt() for _ in range(tasks_n)))
    stats = limited.get_stats()
    assert 1 <= peak <= 2 and stats["successes"] + stats["rejections"] == tasks_n


# --- telemetry -----------------------------------------------------------------


def test_observable_metrics_and_transition_events(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("m", cfg())
    breaker.call(ok)
    tracer = tel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        trip(breaker)
    with pytest.raises(CircuitBreakerOpenException):
        breaker.call(ok)
    state = tel.points("amas.breaker.state")
    assert state[(("amas.breaker.name", "m"), ("amas.breaker.state", "open"))] == 1
    assert state[(("amas.breaker.name", "m"), ("amas.breaker.state", "closed"))] == 0
    assert state[(("amas.breaker.name", "m"), ("amas.breaker.state", "half_open"))] == 0
    calls = tel.points("amas.breaker.calls")
    key = lambda outcome: (("amas.breaker.name", "m"), ("amas.breaker.outcome", outcome))  # noqa: E731
    assert (calls[key("success")], calls[key("failure")], calls[key("rejected")], calls[key("timeout")]) == (1, 2, 1, 0)

    request = next(s for s in tel.spans.get_finished_spans() if s.name == "request")
    (event,) = [e for e in request.events if e.name == "amas.breaker.state_change"]
    assert dict(event.attributes) == {
        "amas.breaker.name": "m",
        "amas.breaker.previous_state": "closed",
        "amas.breaker.state": "open",
        "amas.breaker.consecutive_failures": 2,
        "amas.breaker.retry_after": 0.05,
    }
    # A transition outside any span gets its own short span.
    wait_recovery(breaker)
    breaker.call(ok)
    own = [s for s in tel.spans.get_finished_spans() if s.name == "amas.breaker.transition"]
    assert own and own[-1].events[0].attributes["amas.breaker.state"] == "half_open"


def test_transition_is_logged(tel: Telemetry) -> None:
    import structlog

    breaker = tel.service.create_breaker("log", cfg())
    with structlog.testing.capture_logs() as logs:
        trip(breaker)
    (record,) = [r for r in logs if r.get("event") == "circuit breaker state changed"]
    assert record["amas.breaker.name"] == "log" and record["log_level"] == "warning"
    assert record["amas.breaker.state"] == "open" and record["amas.breaker.previous_state"] == "closed"
    assert record["amas.breaker.consecutive_failures"] == 2 and record["amas.breaker.last_failure"] == "Boom"


def test_no_synchronous_instrument_on_the_call_path(tel: Telemetry) -> None:
    breaker = tel.service.create_breaker("quiet", cfg())
    for _ in range(100):
        breaker.call(ok)
    names = {m.name for rm in tel.reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert names == {"amas.breaker.state", "amas.breaker.calls"}
    assert tel.points("amas.breaker.calls")[(("amas.breaker.name", "quiet"), ("amas.breaker.outcome", "success"))] == 100


@pytest.mark.slow
def test_prometheus_scrape_shows_open_breaker(tmp_path) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    port = free_port()
    httpd, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        service = CircuitBreakerService(meter_provider=provider)
        breaker = service.create_breaker("payments", cfg(recovery_timeout=600))
        service.create_breaker("search", cfg())
        trip(breaker)
        with pytest.raises(CircuitBreakerOpenException):
            breaker.call(ok)
        with prometheus.start([f"127.0.0.1:{port}"], tmp_path) as server:
            (open_series,) = server.wait_for('amas_breaker_state{amas_breaker_state="open"} == 1')
            assert open_series["metric"]["amas_breaker_name"] == "payments"
            closed = server.query('amas_breaker_state{amas_breaker_name="search",amas_breaker_state="closed"}')
            assert closed[0]["value"][1] == "1"
            rejected = server.query('amas_breaker_calls_total{amas_breaker_name="payments",amas_breaker_outcome="rejected"}')
            assert rejected[0]["value"][1] == "1"
    finally:
        httpd.shutdown()
        provider.shutdown()


# --- requests integration -------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/slow":
            time.sleep(0.5)
        try:
            self.send_response(type(self).status)
            self.end_headers()
            self.wfile.write(b"hi")
        except BrokenPipeError:
            pass  # the client timed out, which is the point of /slow

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    _Handler.status = 200


def test_requests_session_goes_through_the_breaker(tel: Telemetry, http_server: str) -> None:
    session = breaker_session("backend", http_server + "/", config=cfg(recovery_timeout=60), service=tel.service)
    breaker = tel.service.get_breaker("backend")
    assert session.get(http_server + "/ok").text == "hi"
    _Handler.status = 503
    for _ in range(2):
        assert session.get(http_server + "/x").status_code == 503  # returned, counted as failure
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(BreakerOpenError) as info:
        session.get(http_server + "/ok")
    assert isinstance(info.value, requests.ConnectionError) and info.value.breaker_name == "backend"
    # Other hosts do not go through it.
    other = requests.Session()
    assert other.get(http_server + "/ok").status_code == 503


def test_requests_timeout_comes_from_the_breaker(tel: Telemetry, http_server: str) -> None:
    session = breaker_session("slowdep", http_server, config=cfg(timeout=0.1, failure_threshold=1), service=tel.service)
    with pytest.raises(requests.Timeout):
        session.get(http_server + "/slow")
    assert tel.service.get_breaker("slowdep").state is CircuitState.OPEN


def test_tally_counts_exactly_across_threads_and_reads() -> None:
    from amas_otel._counting import Tally

    tally = Tally()
    assert tally.value() == 0 and tally.value() == 0  # reading does not count

    def step() -> None:
        for _ in range(20_000):
            next(tally)

    threads = [threading.Thread(target=step) for _ in range(4)]
    for thread in threads:
        thread.start()
    seen = [tally.value() for _ in range(50)]  # reads while counting
    for thread in threads:
        thread.join()
    assert seen == sorted(seen) and tally.value() == 80_000 and tally.value() == 80_000


def test_half_open_trial_limit_holds_across_phases(tel: Telemetry) -> None:
    """A trial still running from the previous HALF_OPEN period counts against the next one's limit."""
    breaker = tel.service.create_breaker("phases", cfg(half_open_max_calls=2, success_threshold=10**6))
    breaker.force_open()
    wait_recovery(breaker)
    active = peak = 0
    lock = threading.Lock()
    entered = {name: threading.Event() for name in ("slow", "failing", "next-1", "next-2")}
    release = {name: threading.Event() for name in entered}
    outcome: dict[str, str] = {}

    def trial(name: str) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        entered[name].set()
        release[name].wait(10)
        with lock:
            active -= 1
        if name == "failing":
            raise Boom("trial failed")

    def run(name: str) -> None:
        try:
            breaker.call(trial, name)
            outcome[name] = "ran"
        except Boom:
            outcome[name] = "failed"
        except CircuitBreakerOpenException:
            outcome[name] = "rejected"
            entered[name].set()

    def start(name: str) -> threading.Thread:
        thread = threading.Thread(target=run, args=(name,))
        thread.start()
        assert entered[name].wait(5)
        return thread

    threads = [start("slow"), start("failing")]
    release["failing"].set()  # one trial fails: OPEN again while the slow one still runs
    threads[1].join(5)
    assert breaker.state is CircuitState.OPEN
    wait_recovery(breaker)
    threads += [start("next-1"), start("next-2")]  # the next HALF_OPEN period
    for event in release.values():
        event.set()
    for thread in threads:
        thread.join(5)
    assert peak == 2
    assert outcome == {"slow": "ran", "failing": "failed", "next-1": "ran", "next-2": "rejected"}
    assert breaker.get_stats()["half_open_in_flight"] == 0


async def test_timed_calls_hold_only_the_calls_in_flight(tel: Telemetry) -> None:
    """A slow call does not keep the deadlines of the thousands of quick ones that finished after it started."""
    import amas_otel.breaker as module

    breaker = tel.service.create_breaker("in-flight", cfg(timeout=5, failure_threshold=100))
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    slow_call = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    for _ in range(1000):
        assert await breaker.call(quick) == "ok"
    assert len(module._thread.deadlines.running) == 1  # the slow call only
    release.set()
    assert await slow_call == "slow"
    assert not module._thread.deadlines.running
