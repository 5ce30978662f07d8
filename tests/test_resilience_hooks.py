"""Resilience hooks: the breaker and recovery state machines report through them, free of OpenTelemetry."""

from __future__ import annotations

import ast
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

import amas_otel
from amas_otel.breaker import CircuitBreakerConfig, CircuitBreakerService, CircuitState
from amas_otel.config import RecoverySettings
from amas_otel.recovery import ErrorContext, ErrorRecoveryService, ErrorSeverity, RecoveryStrategy
from amas_otel.resilience_hooks import (
    BreakerCreated,
    BreakerTransition,
    ManualInterventionRequired,
    RecoveryStarted,
    RetryScheduled,
    StrategyFinished,
    add_resilience_hook,
    remove_resilience_hook,
)

PACKAGE = Path(amas_otel.__file__).parent


@pytest.fixture
def seen() -> Iterator[list[Any]]:
    events: list[Any] = []
    add_resilience_hook(events.append)
    try:
        yield events
    finally:
        remove_resilience_hook(events.append)


def test_a_registered_hook_sees_every_breaker_transition(seen: list[Any]) -> None:
    breaker = CircuitBreakerService(meter_provider=MeterProvider()).create_breaker(
        "hooked", CircuitBreakerConfig(failure_threshold=2, recovery_timeout=0.0, success_threshold=1, timeout=None)
    )

    def fail() -> None:
        raise ValueError("down")

    for _ in range(2):
        with pytest.raises(ValueError):
            breaker.call(fail)
    breaker.call(lambda: "ok")  # recovery_timeout 0: the next call is a trial, and it closes the breaker
    assert [e.breaker for e in seen if isinstance(e, BreakerCreated)] == [breaker]
    transitions = [(e.previous_state, e.state) for e in seen if isinstance(e, BreakerTransition)]
    assert transitions == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    opened = next(e for e in seen if isinstance(e, BreakerTransition))
    assert (opened.breaker_name, opened.consecutive_failures, opened.last_failure, opened.retry_after) == (
        "hooked", 2, "ValueError", 0.0
    )


def test_a_failing_hook_never_reaches_the_caller_nor_silences_the_others(seen: list[Any]) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("hook bug")

    add_resilience_hook(broken)
    try:
        breaker = CircuitBreakerService(meter_provider=MeterProvider()).create_breaker("robust", CircuitBreakerConfig())
        breaker.force_open()
    finally:
        remove_resilience_hook(broken)
    assert [e.state for e in seen if isinstance(e, BreakerTransition)] == [CircuitState.OPEN]


def test_a_registered_hook_sees_recovery_steps_and_can_wrap_the_recovery(seen: list[Any]) -> None:
    wrapped: list[str] = []

    @contextmanager
    def around() -> Iterator[None]:
        wrapped.append("enter")
        yield
        wrapped.append("exit")

    def wrapper_hook(event: Any) -> Any:
        return around() if isinstance(event, RecoveryStarted) else None

    add_resilience_hook(wrapper_hook)
    try:
        service = ErrorRecoveryService(
            RecoverySettings(max_retries=2, retry_delay=0.001, exponential_backoff=False, max_retry_delay=0.001),
            breaker_service=CircuitBreakerService(meter_provider=MeterProvider()),
            meter_provider=MeterProvider(),
            random_source=random.Random(1),
        )
        service.set_strategies("flaky", [RecoveryStrategy.RETRY, RecoveryStrategy.FALLBACK, RecoveryStrategy.MANUAL_INTERVENTION])

        def retry() -> None:
            raise ValueError("still down")

        context = ErrorContext("flaky", "down", ErrorSeverity.LOW, component="db", retry=retry, fallback=lambda: None)
        context.fallback = lambda: (_ for _ in ()).throw(ValueError("no"))  # the fallback fails too
        assert service.handle_error_sync(context) is False
    finally:
        remove_resilience_hook(wrapper_hook)
    assert wrapped == ["enter", "exit"]
    assert [e.attempt for e in seen if isinstance(e, RetryScheduled)] == [1, 2]
    assert [(e.strategy, e.outcome) for e in seen if isinstance(e, StrategyFinished)] == [
        ("retry", "failure"), ("fallback", "failure"), ("manual_intervention", "escalated")
    ]
    (escalation,) = [e for e in seen if isinstance(e, ManualInterventionRequired)]
    assert escalation.context is context and escalation.details["component"] == "db"


@pytest.mark.parametrize("module", ["breaker.py", "recovery.py", "resilience_hooks.py"])
def test_state_machines_import_no_opentelemetry(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert [name for name in imported if name.split(".")[0] == "opentelemetry"] == []
    assert "opentelemetry" not in (PACKAGE / module).read_text()
