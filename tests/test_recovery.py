"""Error recovery: strategies, selection, breaker awareness, telemetry."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from amas_otel.breaker import CircuitBreakerConfig, CircuitBreakerService, CircuitState
from amas_otel.config import ConfigError, RecoverySettings
from amas_otel.recovery import (
    ErrorContext,
    ErrorRecoveryService,
    ErrorSeverity,
    RecoveryStrategy,
    auto_recover,
    get_error_recovery_service,
)


class Env:
    def __init__(self, **settings: Any) -> None:
        self.reader = InMemoryMetricReader()
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.breakers = CircuitBreakerService(meter_provider=MeterProvider())
        base = dict(max_retries=3, retry_delay=0.001, exponential_backoff=True, max_retry_delay=0.004)
        base.update(settings)
        self.service = ErrorRecoveryService(
            RecoverySettings(**base),
            breaker_service=self.breakers,
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            random_source=random.Random(1),
        )

    def attempts(self) -> dict[tuple, int]:
        found = {}
        for rm in self.reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "amas.recovery.attempts":
                        for p in m.data.data_points:
                            found[(p.attributes["amas.recovery.strategy"], p.attributes["amas.recovery.outcome"])] = p.value
        return found

    def span(self) -> Any:
        (span,) = [s for s in self.spans.get_finished_spans() if s.name == "amas.recovery.handle_error"][-1:]
        return span


def flaky(failures: int, value: str = "done") -> Any:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError(f"attempt {calls['n']}")
        return value

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


async def test_retry_with_backoff_events_and_counters() -> None:
    env = Env()
    op = flaky(2)
    context = ErrorContext("db_error", "Connection failed", ErrorSeverity.LOW, component="db", retry=op)
    assert await env.service.handle_error(context) is True
    assert context.result == "done" and context.recovered_by is RecoveryStrategy.RETRY and op.calls["n"] == 3
    events = [e for e in env.span().events if e.name == "amas.recovery.retry"]
    assert [e.attributes["amas.recovery.attempt"] for e in events] == [1, 2, 3]
    delays = [e.attributes["amas.recovery.delay"] for e in events]
    # equal jitter within [d/2, d] of 1ms, 2ms, 4ms (capped at max 4ms)
    for delay, cap in zip(delays, (0.001, 0.002, 0.004)):
        assert cap / 2 <= delay <= cap
    assert env.attempts() == {("retry", "success"): 1}
    assert env.service.get_stats()["by_error_type"] == {"db_error": {"success": 1}}


def test_delay_is_capped_and_constant_without_backoff() -> None:
    env = Env(retry_delay=1.0, max_retry_delay=3.0)
    assert all(1.5 <= env.service._delay(n) <= 3.0 for n in (3, 4, 10))
    flat = Env(retry_delay=0.5, exponential_backoff=False, max_retry_delay=60.0)
    assert all(0.25 <= flat.service._delay(n) <= 0.5 for n in (1, 5))


async def test_retry_exhausted_then_fallback() -> None:
    env = Env(max_retries=2)
    env.service.register_fallback("api_error", lambda: "cached")
    context = ErrorContext("api_error", "boom", ErrorSeverity.MEDIUM, retry=flaky(10))
    assert await env.service.handle_error(context) is True
    assert context.result == "cached" and context.recovered_by is RecoveryStrategy.FALLBACK
    assert env.attempts() == {("retry", "failure"): 1, ("fallback", "success"): 1}
    assert env.service.get_stats()["by_strategy"] == {"retry": {"failure": 1}, "fallback": {"success": 1}}


async def test_retries_stop_when_the_breaker_is_open() -> None:
    env = Env(max_retries=5)
    breaker = env.breakers.create_breaker("payments", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60))

    def through_breaker() -> str:
        return breaker.call(flaky(100))

    context = ErrorContext("api_error", "x", ErrorSeverity.LOW, component="payments", retry=through_breaker)
    assert await env.service.handle_error(context) is False
    # First retry trips the breaker; no further attempt reaches the dependency.
    assert breaker.get_stats()["failures"] == 1 and breaker.get_stats()["rejections"] == 0
    assert env.attempts()[("retry", "breaker_open")] == 1
    assert len([e for e in env.span().events if e.name == "amas.recovery.retry"]) == 1


async def test_circuit_breaker_strategy_opens_the_component_breaker() -> None:
    env = Env()
    breaker = env.breakers.create_breaker("search", CircuitBreakerConfig(recovery_timeout=60))
    env.service.set_strategies("index_error", ["circuit_breaker"])
    assert await env.service.handle_error(ErrorContext("index_error", "x", component="search")) is True
    assert breaker.state is CircuitState.OPEN
    assert await env.service.handle_error(ErrorContext("index_error", "x", component="unknown")) is False
    assert env.attempts() == {("circuit_breaker", "success"): 1, ("circuit_breaker", "skipped"): 1}


async def test_graceful_degradation_reported_to_health() -> None:
    from amas_otel.health import get_health_service

    env = Env()
    component = f"recommender-{uuid.uuid4().hex[:6]}"
    env.service.register_degraded_mode(component, lambda ctx: ["popular items"])
    env.service.set_strategies("model_error", ["graceful_degradation"])
    check_name = f"degraded:{component}"

    async def status() -> str:
        report = await get_health_service().check_health(fresh=True)
        return report["checks"][check_name]["status"]

    assert await status() == "healthy"
    context = ErrorContext("model_error", "model unavailable", component=component)
    assert await env.service.handle_error(context) is True
    assert context.result == ["popular items"] and env.service.is_degraded(component)
    assert await status() == "degraded"
    env.service.restore(component)
    assert await status() == "healthy"


async def test_service_restart_hook() -> None:
    env = Env()
    restarted = []
    env.service.register_restart_hook("worker", lambda ctx: restarted.append(ctx.error_type))
    env.service.set_strategies(None, ["service_restart"], severity="high")
    assert await env.service.handle_error(ErrorContext("crash", "x", ErrorSeverity.HIGH, component="worker"))
    assert restarted == ["crash"]

    async def failing_restart(ctx: ErrorContext) -> bool:
        return False

    env.service.register_restart_hook("worker", failing_restart)
    assert not await env.service.handle_error(ErrorContext("crash", "x", ErrorSeverity.HIGH, component="worker"))


async def test_manual_intervention_logs_critical_and_retries_nothing() -> None:
    env = Env()
    op = flaky(0)
    context = ErrorContext("security_error", "token forged", ErrorSeverity.CRITICAL, component="auth", retry=op)
    with structlog.testing.capture_logs() as logs:
        assert await env.service.handle_error(context) is False
    assert op.calls["n"] == 0
    (record,) = [r for r in logs if r["event"] == "manual intervention required"]
    assert record["log_level"] == "critical" and record["security_event"] is True and record["error_type"] == "security_error"
    assert [e.name for e in env.span().events][0] == "amas.recovery.manual_intervention"
    assert env.attempts() == {("manual_intervention", "escalated"): 1}


async def test_strategy_selection_precedence_and_validation() -> None:
    env = Env()
    svc = env.service
    svc.set_strategies("db_error", ["fallback"])
    svc.set_strategies("db_error", ["retry"], severity=ErrorSeverity.HIGH)
    svc.set_strategies(None, ["service_restart"], severity=ErrorSeverity.LOW)
    assert svc.strategies_for("db_error", ErrorSeverity.HIGH) == (RecoveryStrategy.RETRY,)
    assert svc.strategies_for("db_error", ErrorSeverity.LOW) == (RecoveryStrategy.FALLBACK,)
    assert svc.strategies_for("other", ErrorSeverity.LOW) == (RecoveryStrategy.SERVICE_RESTART,)
    assert svc.strategies_for("other", ErrorSeverity.CRITICAL) == (RecoveryStrategy.MANUAL_INTERVENTION,)
    with pytest.raises(ConfigError, match="'reboot' is not a recovery strategy"):
        svc.set_strategies("x", ["reboot"])
    with pytest.raises(ConfigError, match="severity: 'extreme'"):
        ErrorContext("x", "y", "extreme")  # type: ignore[arg-type]


async def test_disabled_recovery_does_nothing() -> None:
    env = Env(enabled=False)
    op = flaky(0)
    assert await env.service.handle_error(ErrorContext("e", "m", retry=op)) is False and op.calls["n"] == 0


async def test_auto_recover_async_and_sync() -> None:
    env = Env()
    calls = {"a": 0, "s": 0}

    @auto_recover("api_error", ErrorSeverity.MEDIUM, service=env.service)
    async def fetch(x: int) -> int:
        calls["a"] += 1
        if calls["a"] < 3:
            raise ConnectionError("flaky")
        return x * 10

    @auto_recover("api_error", "low", service=env.service, fallback=lambda x: -x)
    def compute(x: int) -> int:
        calls["s"] += 1
        raise ValueError("always")

    assert await fetch(4) == 40 and calls["a"] == 3
    assert compute(5) == -5 and calls["s"] == 1 + 3

    @auto_recover("fatal", ErrorSeverity.CRITICAL, service=env.service)
    def fatal() -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        fatal()


def test_sync_retry_sleeps_with_backoff() -> None:
    env = Env(retry_delay=0.02, max_retry_delay=0.04)
    started = time.monotonic()
    context = ErrorContext("e", "m", ErrorSeverity.LOW, retry=flaky(2))
    assert env.service.handle_error_sync(context) is True
    assert time.monotonic() - started >= 0.01 + 0.02  # at least half of 20ms + 40ms


def test_global_service() -> None:
    assert get_error_recovery_service() is get_error_recovery_service()
