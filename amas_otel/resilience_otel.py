"""The default resilience hook: breaker and recovery events as OpenTelemetry signals.

Breakers: ``amas.breaker.state`` (observable gauge, ``hw.status``-style: one
series per state, 1 for the current one) and ``amas.breaker.calls``
(observable counter by outcome) are read from each breaker's own counts when
metrics are collected, so the call path touches no instrument.  A transition
adds ``amas.breaker.state_change`` to the current span (or to a short
``amas.breaker.transition`` span when none is recording) and logs one record.

Recovery: one ``amas.recovery.handle_error`` span per recovery, span events
for retries and strategies, the ``amas.recovery.attempts`` counter and a
critical security record when a person must step in.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from amas_otel.resilience_hooks import (
    BreakerCreated,
    BreakerTransition,
    CircuitState,
    ManualInterventionRequired,
    RecoveryStarted,
    ResilienceEvent,
    RetryScheduled,
    StrategyFinished,
)
from amas_otel.scope import amas_meter, amas_tracer
from amas_otel.semconv import COMPONENT, ERROR_TYPE, Breaker, Recovery

__all__ = ["BreakerTelemetry", "RecoveryTelemetry"]


class _BreakerInstruments:
    """The two observable instruments of one meter provider, reporting every breaker made with it."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._breakers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        meter.create_observable_gauge(
            Breaker.STATE_METRIC,
            callbacks=[self._observe_state],
            unit=Breaker.STATE_UNIT,
            description="Circuit breaker state: 1 for the current state, 0 for the others",
        )
        meter.create_observable_counter(
            Breaker.CALLS_METRIC,
            callbacks=[self._observe_calls],
            unit=Breaker.CALLS_UNIT,
            description="Calls through a circuit breaker by outcome (success, failure, timeout, rejected)",
        )

    def add(self, breaker: Any) -> None:
        with self._lock:
            self._breakers.add(breaker)

    def _snapshot(self) -> list[Any]:
        with self._lock:
            return list(self._breakers)

    def _observe_state(self, options: CallbackOptions) -> Iterable[Observation]:
        for breaker in self._snapshot():
            current = breaker.state
            for state in CircuitState:
                yield Observation(1 if state is current else 0, {Breaker.NAME: breaker.name, Breaker.STATE: state.value})

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        for breaker in self._snapshot():
            counts = breaker.counts()
            for outcome, count in (
                ("success", counts.success),
                ("failure", counts.failure),
                ("timeout", counts.timeout),
                ("rejected", counts.rejected),
            ):
                yield Observation(count, {Breaker.NAME: breaker.name, Breaker.OUTCOME: outcome})


class _ProviderInstruments(NamedTuple):
    meter_provider: Any
    instruments: _BreakerInstruments


# One set of observable instruments per meter provider: a second set would report every breaker twice.
_instruments: dict[int, _ProviderInstruments] = {}
_instruments_lock = threading.Lock()


def _instruments_for(meter_provider: metrics.MeterProvider | None) -> _BreakerInstruments:
    key = id(meter_provider)
    with _instruments_lock:
        entry = _instruments.get(key)
        if entry is None or entry.meter_provider is not meter_provider:  # ids are reused once a provider is gone
            meter = amas_meter(meter_provider)
            entry = _instruments[key] = _ProviderInstruments(meter_provider, _BreakerInstruments(meter))
        return entry.instruments


def _internal_log() -> Any:
    import logging

    return logging.getLogger("amas_otel.resilience")


class BreakerTelemetry:
    """The default hook of the breakers made with these providers (None: the global ones)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None, meter_provider: Any = None) -> None:
        self._tracer_provider = tracer_provider
        self._instruments = _instruments_for(meter_provider)

    def __call__(self, event: ResilienceEvent) -> None:
        if isinstance(event, BreakerTransition):
            self._transition(event)
        elif isinstance(event, BreakerCreated):
            self._instruments.add(event.breaker)

    def _transition(self, event: BreakerTransition) -> None:
        attributes: dict[str, Any] = {
            Breaker.NAME: event.breaker_name,
            Breaker.PREVIOUS_STATE: event.previous_state.value,
            Breaker.STATE: event.state.value,
            Breaker.FAILURES: event.consecutive_failures,
        }
        if event.retry_after is not None:
            attributes[Breaker.RETRY_AFTER] = event.retry_after
        try:
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(Breaker.STATE_CHANGE_EVENT, attributes)
            else:
                tracer = amas_tracer(self._tracer_provider)
                with tracer.start_as_current_span(Breaker.TRANSITION_SPAN, attributes={Breaker.NAME: event.breaker_name}) as own:
                    own.add_event(Breaker.STATE_CHANGE_EVENT, attributes)
        except Exception:  # noqa: BLE001 - telemetry must not break the call
            _internal_log().debug("amas_otel: breaker span event failed", exc_info=True)
        try:
            from amas_otel.logging import get_logger

            log = get_logger("amas_otel.breaker", component="circuit_breaker")
            emit = log.warning if event.state is CircuitState.OPEN else log.info
            emit(
                "circuit breaker state changed",
                event_name=Breaker.STATE_CHANGE_EVENT,
                **{
                    **attributes,
                    Breaker.LAST_FAILURE: event.last_failure,
                    Breaker.RETRY_AFTER: event.retry_after,
                },
            )
        except Exception:  # noqa: BLE001
            _internal_log().debug("amas_otel: breaker log record failed", exc_info=True)


class RecoveryTelemetry:
    """The default hook of an :class:`~amas_otel.recovery.ErrorRecoveryService`."""

    def __init__(self, tracer_provider: Any = None, meter_provider: metrics.MeterProvider | None = None) -> None:
        self._tracer = amas_tracer(tracer_provider)
        self._attempts = amas_meter(meter_provider).create_counter(
            Recovery.ATTEMPTS_METRIC, unit=Recovery.ATTEMPTS_UNIT, description="Error recovery strategy attempts by outcome"
        )

    def __call__(self, event: ResilienceEvent) -> AbstractContextManager[Any] | None:
        if isinstance(event, RecoveryStarted):
            return self._span(event.context)
        span = trace.get_current_span()  # the recovery span, opened on RecoveryStarted
        if isinstance(event, StrategyFinished):
            outcome = event.outcome.value
            self._attempts.add(1, {Recovery.STRATEGY: event.strategy, Recovery.OUTCOME: outcome, ERROR_TYPE: event.context.error_type})
            span.add_event(Recovery.STRATEGY_EVENT, {Recovery.STRATEGY: event.strategy, Recovery.OUTCOME: outcome})
        elif isinstance(event, RetryScheduled):
            span.add_event(Recovery.RETRY_EVENT, {Recovery.ATTEMPT: event.attempt, Recovery.DELAY: event.delay})
        elif isinstance(event, ManualInterventionRequired):
            self._escalate(event, span)
        return None

    def _span(self, context: Any) -> AbstractContextManager[Any]:
        attributes = {ERROR_TYPE: context.error_type, Recovery.SEVERITY: context.severity.value}
        if context.component:
            attributes[COMPONENT] = context.component
        if context.operation:
            attributes[Recovery.OPERATION] = context.operation
        return self._tracer.start_as_current_span(Recovery.HANDLE_SPAN, attributes=attributes)

    @staticmethod
    def _escalate(event: ManualInterventionRequired, span: trace.Span) -> None:
        details = event.details
        span.add_event(Recovery.MANUAL_INTERVENTION_EVENT, {k: v for k, v in details.items() if v is not None})
        try:
            from amas_otel.logging import get_logger

            get_logger("amas_otel.security", component=event.context.component or "error_recovery").critical(
                "manual intervention required", event_name=Recovery.MANUAL_INTERVENTION_EVENT, security_event=True, **details
            )
        except Exception:  # noqa: BLE001 - a failed log must not hide the escalation's span event
            _internal_log().debug("amas_otel: manual intervention log record failed", exc_info=True)
