"""Error recovery strategies: which to try for an error, and trying them.

>>> service = get_error_recovery_service()
>>> ok = await service.handle_error(ErrorContext("database_error", "Connection failed",
...     ErrorSeverity.HIGH, component="database_service", operation="connect", retry=connect))
>>> @auto_recover("api_error", ErrorSeverity.MEDIUM, fallback=cached_quote)
... async def fetch_quote(): ...

For an error, the strategies configured for its (error type, severity) are
tried in order until one succeeds (defaults by severity in
:data:`DEFAULT_STRATEGIES`; override with :meth:`ErrorRecoveryService.set_strategies`):

``retry``
    re-run ``context.retry`` up to ``ERROR_RECOVERY_MAX_RETRIES`` times,
    sleeping ``ERROR_RECOVERY_RETRY_DELAY`` × 2^(n-1) (when
    ``ERROR_RECOVERY_EXPONENTIAL_BACKOFF``), capped at
    ``ERROR_RECOVERY_MAX_RETRY_DELAY``, with "equal jitter" (a uniform draw in
    [delay/2, delay]).  Stops as soon as the component's circuit breaker is
    OPEN, so a failing dependency is never hammered.  Each attempt is an
    ``amas.recovery.retry`` span event with the attempt number and the delay.
``fallback``
    call ``context.fallback`` or the fallback registered for the error type.
``circuit_breaker``
    open the component's breaker (from the circuit breaker service).
``graceful_degradation``
    enter the component's registered degraded mode; health reports it as
    ``degraded`` through a non-critical check until :meth:`~ErrorRecoveryService.restore`.
``service_restart``
    call the component's registered restart hook.
``manual_intervention``
    log a CRITICAL security-style record and add a span event; nothing is
    retried and the error counts as not recovered.

A strategy with nothing to work on (no retry callable, no fallback, no
breaker, no hook) is ``skipped``.  Every attempt is counted in
:meth:`~ErrorRecoveryService.get_stats` and told to the resilience hooks
(:mod:`amas_otel.resilience_hooks`); the default hook
(:mod:`amas_otel.resilience_otel`) makes the span, its events and the
``amas.recovery.attempts`` counter.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from amas_otel.config import ConfigError, RecoverySettings, get_settings
from amas_otel.resilience_hooks import (
    ManualInterventionRequired,
    RecoveryOutcome,
    RecoveryStarted,
    ResilienceHook,
    RetryScheduled,
    StrategyFinished,
    enter_hooks,
    notify,
)
from amas_otel.resilience_otel import RecoveryTelemetry

__all__ = [
    "ErrorSeverity",
    "RecoveryStrategy",
    "ErrorContext",
    "ErrorRecoveryService",
    "DEFAULT_STRATEGIES",
    "get_error_recovery_service",
    "auto_recover",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class ErrorSeverity(str, enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RecoveryStrategy(str, enum.Enum):
    RETRY = "retry"
    FALLBACK = "fallback"
    CIRCUIT_BREAKER = "circuit_breaker"
    GRACEFUL_DEGRADATION = "graceful_degradation"
    SERVICE_RESTART = "service_restart"
    MANUAL_INTERVENTION = "manual_intervention"


_R = RecoveryStrategy
#: Strategies tried, in order, when nothing more specific is configured.
DEFAULT_STRATEGIES: Mapping[ErrorSeverity, tuple[RecoveryStrategy, ...]] = {
    ErrorSeverity.LOW: (_R.RETRY, _R.FALLBACK),
    ErrorSeverity.MEDIUM: (_R.RETRY, _R.FALLBACK, _R.GRACEFUL_DEGRADATION),
    ErrorSeverity.HIGH: (_R.RETRY, _R.FALLBACK, _R.GRACEFUL_DEGRADATION, _R.CIRCUIT_BREAKER, _R.SERVICE_RESTART),
    ErrorSeverity.CRITICAL: (_R.MANUAL_INTERVENTION,),
}

_SUCCESS, _FAILURE, _SKIPPED = RecoveryOutcome.SUCCESS, RecoveryOutcome.FAILURE, RecoveryOutcome.SKIPPED
_BREAKER_OPEN, _ESCALATED = RecoveryOutcome.BREAKER_OPEN, RecoveryOutcome.ESCALATED


@dataclass
class ErrorContext:
    """One error to recover from.

    ``retry`` re-runs the failed operation; ``fallback`` is an alternative for
    this error only; ``breaker`` names the circuit breaker guarding the
    operation (default: ``component``).  After a successful recovery that
    produced a value (retry, fallback, degraded mode), it is in ``result``.
    """

    error_type: str
    error_message: str
    severity: ErrorSeverity = ErrorSeverity.MEDIUM
    component: str | None = None
    operation: str | None = None
    exception: BaseException | None = None
    retry: Callable[[], Any] | None = None
    fallback: Callable[[], Any] | None = None
    breaker: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    result: Any = None
    recovered_by: RecoveryStrategy | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.error_type, str) or not self.error_type:
            raise ConfigError([f"ErrorContext.error_type: {self.error_type!r} is invalid; expected a non-empty string"])
        try:
            self.severity = ErrorSeverity(self.severity)
        except ValueError:
            raise ConfigError(
                [f"ErrorContext.severity: {self.severity!r} is invalid; expected one of {', '.join(s.value for s in ErrorSeverity)}"]
            ) from None


# Strategies are written once as generators that yield _Sleep or _Call steps
# and return their outcome; a sync and an async driver run them.
@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float

    def run_sync(self) -> None:
        time.sleep(self.seconds)

    async def run_async(self) -> None:
        await asyncio.sleep(self.seconds)


@dataclass(frozen=True, slots=True)
class _Call:
    """Call ``fn()``; its result (or exception) is sent back into the plan."""

    fn: Callable[[], Any]

    def run_sync(self) -> Any:
        value = self.fn()
        if inspect.isawaitable(value):
            _close(value)
            raise TypeError(f"{self.fn!r} returned an awaitable in synchronous recovery; give a sync callable")
        return value

    async def run_async(self) -> Any:
        value = self.fn()
        return await value if inspect.isawaitable(value) else value


_Plan = Generator[_Sleep | _Call, Any, RecoveryOutcome]


class _PlanRun:
    """One strategy's plan being driven: each step's result, or its exception, goes back into the plan."""

    __slots__ = ("_plan", "_value", "_error", "outcome")

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._value: Any = None
        self._error: Exception | None = None
        self.outcome = RecoveryOutcome.FAILURE

    def next_step(self) -> _Sleep | _Call | None:
        """The step the plan asks for next; None once it has returned its ``outcome``."""
        value, error = self._value, self._error
        self._value = self._error = None
        try:
            return self._plan.throw(error) if error is not None else self._plan.send(value)
        except StopIteration as done:
            self.outcome = done.value
            return None

    def settle(self, run: Callable[[], Any]) -> None:
        try:
            self._value = run()
        except Exception as exc:  # noqa: BLE001 - handed to the strategy
            self._error = exc

    async def settle_async(self, run: Callable[[], Awaitable[Any]]) -> None:
        try:
            self._value = await run()
        except Exception as exc:  # noqa: BLE001 - handed to the strategy
            self._error = exc


def _drive_sync(plan: _Plan) -> RecoveryOutcome:
    run = _PlanRun(plan)
    while (step := run.next_step()) is not None:
        run.settle(step.run_sync)
    return run.outcome


async def _drive_async(plan: _Plan) -> RecoveryOutcome:
    run = _PlanRun(plan)
    while (step := run.next_step()) is not None:
        await run.settle_async(step.run_async)
    return run.outcome


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


@dataclass
class _Degradation:
    handler: Callable[[ErrorContext], Any] | None
    active: bool = False
    reason: str | None = None


class ErrorRecoveryService:
    """Strategy selection, registered fallbacks/degraded modes/restart hooks, statistics."""

    def __init__(
        self,
        settings: RecoverySettings | None = None,
        *,
        breaker_service: Any = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        random_source: random.Random | None = None,
    ) -> None:
        """``tracer_provider``/``meter_provider`` (None: the global ones) carry the default hook's signals."""
        self.settings = settings or get_settings().error_recovery
        self._breakers = breaker_service
        self._hook: ResilienceHook = RecoveryTelemetry(tracer_provider, meter_provider)
        self._random = random_source or random.Random()
        self._strategies: dict[tuple[str | None, ErrorSeverity | None], tuple[RecoveryStrategy, ...]] = {}
        self._fallbacks: dict[str, Callable[[], Any]] = {}
        self._degradations: dict[str, _Degradation] = {}
        self._restart_hooks: dict[str, Callable[[ErrorContext], Any]] = {}
        self._stats: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    # --- configuration ----------------------------------------------------------

    def set_strategies(
        self,
        error_type: str | None,
        strategies: Iterable[RecoveryStrategy | str],
        *,
        severity: ErrorSeverity | str | None = None,
    ) -> None:
        """Strategies for ``error_type`` (None: any type) at ``severity`` (None: any severity).

        Lookup order: (type, severity), (type, any), (any, severity), then :data:`DEFAULT_STRATEGIES`.
        """
        chosen = []
        for item in strategies:
            try:
                chosen.append(RecoveryStrategy(item))
            except ValueError:
                raise ConfigError(
                    [f"strategies: {item!r} is not a recovery strategy; expected one of {', '.join(s.value for s in RecoveryStrategy)}"]
                ) from None
        with self._lock:
            self._strategies[(error_type, ErrorSeverity(severity) if severity is not None else None)] = tuple(chosen)

    def strategies_for(self, error_type: str, severity: ErrorSeverity) -> tuple[RecoveryStrategy, ...]:
        for key in ((error_type, severity), (error_type, None), (None, severity)):
            if key in self._strategies:
                return self._strategies[key]
        return DEFAULT_STRATEGIES[severity]

    def register_fallback(self, error_type: str, fallback: Callable[[], Any]) -> None:
        self._fallbacks[error_type] = fallback

    def register_restart_hook(self, component: str, hook: Callable[[ErrorContext], Any]) -> None:
        self._restart_hooks[component] = hook

    def register_degraded_mode(self, component: str, handler: Callable[[ErrorContext], Any] | None = None) -> None:
        """Declare that ``component`` can run degraded.  ``handler(context)`` runs on entering
        the mode and its return value becomes the recovered result.  A non-critical health
        check ``degraded:<component>`` reports ``degraded`` while the mode is active."""
        self._degradations[component] = degradation = _Degradation(handler)
        try:
            from amas_otel.health import add_health_check
        except ImportError:  # health not installed: degradation still works, health just can't say so
            return

        def check() -> dict[str, Any]:
            if degradation.active:
                return {"status": "degraded", "message": f"{component} runs in degraded mode: {degradation.reason}"}
            return {"status": "healthy", "message": f"{component} runs normally"}

        add_health_check(f"degraded:{component}", check, critical=False)

    def is_degraded(self, component: str) -> bool:
        degradation = self._degradations.get(component)
        return bool(degradation and degradation.active)

    def restore(self, component: str) -> None:
        """Leave degraded mode."""
        degradation = self._degradations.get(component)
        if degradation is not None:
            degradation.active, degradation.reason = False, None

    def get_stats(self) -> dict[str, Any]:
        """Counts by error type and by strategy, each split by outcome."""
        by_type: dict[str, dict[str, int]] = {}
        by_strategy: dict[str, dict[str, int]] = {}
        with self._lock:
            items = list(self._stats.items())
        for (error_type, strategy, outcome), count in items:
            for table, key in ((by_type, error_type), (by_strategy, strategy)):
                row = table.setdefault(key, {})
                row[outcome] = row.get(outcome, 0) + count
        return {"by_error_type": by_type, "by_strategy": by_strategy, "total_attempts": sum(c for _, c in items)}

    # --- handling ---------------------------------------------------------------------

    async def handle_error(self, context: ErrorContext) -> bool:
        """Try the configured strategies; True when one recovered (see ``context.result``)."""
        with enter_hooks(self._hook, RecoveryStarted(context)):
            for strategy in self._chosen(context):
                outcome = await _drive_async(self._plan(strategy, context))
                if self._finish(strategy, context, outcome):
                    return True
            return False

    def handle_error_sync(self, context: ErrorContext) -> bool:
        """:meth:`handle_error` for synchronous code: sleeps block, callables must be sync."""
        with enter_hooks(self._hook, RecoveryStarted(context)):
            for strategy in self._chosen(context):
                outcome = _drive_sync(self._plan(strategy, context))
                if self._finish(strategy, context, outcome):
                    return True
            return False

    def _chosen(self, context: ErrorContext) -> tuple[RecoveryStrategy, ...]:
        return self.strategies_for(context.error_type, context.severity) if self.settings.enabled else ()

    def _finish(self, strategy: RecoveryStrategy, context: ErrorContext, outcome: RecoveryOutcome) -> bool:
        key = (context.error_type, strategy.value, outcome.value)
        with self._lock:
            self._stats[key] = self._stats.get(key, 0) + 1
        notify(self._hook, StrategyFinished(context, strategy.value, outcome))
        if outcome == _SUCCESS:
            context.recovered_by = strategy
            return True
        return False

    def _plan(self, strategy: RecoveryStrategy, context: ErrorContext) -> _Plan:
        return getattr(self, f"_plan_{strategy.value}")(context)

    def _breaker(self, context: ErrorContext) -> Any:
        name = context.breaker or context.component
        if not name:
            return None
        if self._breakers is None:
            from amas_otel.breaker import get_circuit_breaker_service

            self._breakers = get_circuit_breaker_service()
        return self._breakers.find_breaker(name)

    def _delay(self, attempt: int) -> float:
        cfg = self.settings
        delay = cfg.retry_delay * (2 ** (attempt - 1) if cfg.exponential_backoff else 1)
        delay = min(delay, cfg.max_retry_delay)
        return self._random.uniform(delay / 2, delay)

    def _plan_retry(self, context: ErrorContext) -> _Plan:
        if context.retry is None or self.settings.max_retries == 0:
            return _SKIPPED
        breaker = self._breaker(context)
        for attempt in range(1, self.settings.max_retries + 1):
            if breaker is not None and breaker.retry_after() > 0:
                return _BREAKER_OPEN
            delay = self._delay(attempt)
            notify(self._hook, RetryScheduled(context, attempt, delay))
            yield _Sleep(delay)
            if breaker is not None and breaker.retry_after() > 0:
                return _BREAKER_OPEN
            try:
                context.result = yield _Call(context.retry)
            except Exception as exc:  # noqa: BLE001 - the next attempt decides
                context.exception = exc
                continue
            return _SUCCESS
        return _FAILURE

    def _plan_fallback(self, context: ErrorContext) -> _Plan:
        fallback = context.fallback or self._fallbacks.get(context.error_type)
        if fallback is None:
            return _SKIPPED
        try:
            context.result = yield _Call(fallback)
        except Exception:  # noqa: BLE001
            return _FAILURE
        return _SUCCESS

    def _plan_circuit_breaker(self, context: ErrorContext) -> _Plan:
        breaker = self._breaker(context)
        if breaker is None:
            return _SKIPPED
        breaker.force_open()
        return _SUCCESS
        yield  # a generator like the others

    def _plan_graceful_degradation(self, context: ErrorContext) -> _Plan:
        degradation = self._degradations.get(context.component or "")
        if degradation is None:
            return _SKIPPED
        degradation.active, degradation.reason = True, f"{context.error_type}: {context.error_message}"
        if degradation.handler is not None:
            try:
                context.result = yield _Call(lambda: degradation.handler(context))  # type: ignore[misc]
            except Exception:  # noqa: BLE001
                return _FAILURE
        return _SUCCESS

    def _plan_service_restart(self, context: ErrorContext) -> _Plan:
        hook = self._restart_hooks.get(context.component or "")
        if hook is None:
            return _SKIPPED
        try:
            restarted = yield _Call(lambda: hook(context))
        except Exception:  # noqa: BLE001
            return _FAILURE
        return _FAILURE if restarted is False else _SUCCESS

    def _plan_manual_intervention(self, context: ErrorContext) -> _Plan:
        details = {
            "error_type": context.error_type,
            "error_message": context.error_message,
            "severity": context.severity.value,
            "component": context.component,
            "operation": context.operation,
        }
        notify(self._hook, ManualInterventionRequired(context, details))
        return _ESCALATED
        yield


_service: ErrorRecoveryService | None = None
_service_lock = threading.Lock()


def get_error_recovery_service() -> ErrorRecoveryService:
    """The process-wide service (ERROR_RECOVERY_* settings, global providers)."""
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                _service = ErrorRecoveryService()
    return _service


def auto_recover(
    error_type: str,
    severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
    *,
    component: str | None = None,
    exceptions: tuple[type[BaseException], ...] = (Exception,),
    fallback: Callable[..., Any] | None = None,
    service: ErrorRecoveryService | None = None,
) -> Callable[[_F], _F]:
    """On ``exceptions`` from the decorated (sync or async) function, run recovery with a
    retry that calls it again with the same arguments.  Returns the recovered value when a
    strategy produced one; re-raises the original exception otherwise."""
    severity = ErrorSeverity(severity)

    def context_for(fn: Callable[..., Any], exc: BaseException, args: tuple, kwargs: dict) -> ErrorContext:
        return ErrorContext(
            error_type,
            str(exc),
            severity,
            component=component,
            operation=fn.__qualname__,
            exception=exc,
            retry=functools.partial(fn, *args, **kwargs),
            fallback=functools.partial(fallback, *args, **kwargs) if fallback else None,
        )

    def decorate(fn: _F) -> _F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except exceptions as exc:
                    context = context_for(fn, exc, args, kwargs)
                    if await (service or get_error_recovery_service()).handle_error(context) and _has_result(context):
                        return context.result
                    raise

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except exceptions as exc:
                context = context_for(fn, exc, args, kwargs)
                if (service or get_error_recovery_service()).handle_error_sync(context) and _has_result(context):
                    return context.result
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


def _has_result(context: ErrorContext) -> bool:
    return context.recovered_by in (RecoveryStrategy.RETRY, RecoveryStrategy.FALLBACK) or (
        context.recovered_by is RecoveryStrategy.GRACEFUL_DEGRADATION and context.result is not None
    )
