"""The hook interface between the resilience state machines and whoever watches them.

:mod:`amas_otel.breaker` and :mod:`amas_otel.recovery` know nothing of
OpenTelemetry: at each step worth observing they build one of the event
records below and hand it to their hooks.  The OpenTelemetry signals
(:mod:`amas_otel.resilience_otel`) are the hook installed by default; an
application adds its own with :func:`add_resilience_hook`:

>>> def page_on_open(event):
...     if isinstance(event, BreakerTransition) and event.state is CircuitState.OPEN:
...         pager.send(f"{event.breaker_name} opened")
>>> add_resilience_hook(page_on_open)

A hook is any callable taking one event.  For :class:`RecoveryStarted` it may
return a context manager, entered for the whole recovery (the OpenTelemetry hook
opens the recovery span that way); otherwise its return value is ignored.  A
hook that raises is logged at debug level and never reaches the caller.
"""

from __future__ import annotations

import enum
import logging
import threading
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CircuitState",
    "BreakerCounts",
    "RecoveryOutcome",
    "BreakerCreated",
    "BreakerTransition",
    "RecoveryStarted",
    "RetryScheduled",
    "StrategyFinished",
    "ManualInterventionRequired",
    "ResilienceEvent",
    "ResilienceHook",
    "add_resilience_hook",
    "remove_resilience_hook",
    "notify",
    "enter_hooks",
]


class CircuitState(enum.StrEnum):
    """A breaker's state; ``str()`` and f-strings give the value (``closed``), the spelling of the signals."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class RecoveryOutcome(enum.StrEnum):
    """How one recovery strategy attempt ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    #: The strategy had nothing to work on (no retry callable, fallback, breaker or hook).
    SKIPPED = "skipped"
    #: Retrying stopped because the component's circuit breaker is open.
    BREAKER_OPEN = "breaker_open"
    #: Handed to a person (manual intervention).
    ESCALATED = "escalated"


@dataclass(frozen=True, slots=True)
class BreakerCounts:
    """A breaker's call totals since it was made (counters: never reset)."""

    success: int
    failure: int
    timeout: int
    rejected: int
    interrupted: int


@dataclass(frozen=True, slots=True)
class BreakerCreated:
    """A breaker was made.  ``breaker`` is the :class:`~amas_otel.breaker.CircuitBreaker`:
    its ``name``, ``state`` and ``counts()`` can be read whenever a hook likes."""

    breaker: Any


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """A breaker moved from ``previous_state`` to ``state``.

    ``consecutive_failures`` is the count of the state left; ``retry_after`` is
    the seconds until a trial call when the breaker opened (None otherwise).
    """

    breaker_name: str
    previous_state: CircuitState
    state: CircuitState
    consecutive_failures: int
    last_failure: str | None
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class RecoveryStarted:
    """Recovery of ``context`` (an :class:`~amas_otel.recovery.ErrorContext`) begins.
    A hook may return a context manager that is held open until recovery ends."""

    context: Any


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Retry number ``attempt`` (1 = first retry) will run after ``delay`` seconds."""

    context: Any
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class StrategyFinished:
    """One strategy was tried, with ``outcome``."""

    context: Any
    strategy: str
    outcome: RecoveryOutcome


@dataclass(frozen=True, slots=True)
class ManualInterventionRequired:
    """Nothing automatic may handle ``context``: a person has to.  ``details`` names the error."""

    context: Any
    details: dict[str, Any]


ResilienceEvent = (
    BreakerCreated | BreakerTransition | RecoveryStarted | RetryScheduled | StrategyFinished | ManualInterventionRequired
)


class ResilienceHook(Protocol):
    """A callable told about each :data:`ResilienceEvent`."""

    def __call__(self, event: ResilienceEvent) -> AbstractContextManager[Any] | None: ...


# A tuple replaced whole on change, so notify() reads it without the lock.
_added_hooks: tuple[ResilienceHook, ...] = ()
_lock = threading.Lock()
_log = logging.getLogger("amas_otel.resilience")


def add_resilience_hook(hook: ResilienceHook) -> None:
    """Tell ``hook`` about every breaker and recovery event from now on (after the default hook)."""
    global _added_hooks
    if not callable(hook):
        raise TypeError(f"add_resilience_hook: {hook!r} is not callable; expected a callable taking one event")
    with _lock:
        if hook not in _added_hooks:
            _added_hooks = (*_added_hooks, hook)


def remove_resilience_hook(hook: ResilienceHook) -> None:
    """Stop telling ``hook``; a hook that was never added is ignored."""
    global _added_hooks
    with _lock:
        _added_hooks = tuple(h for h in _added_hooks if h is not hook)


def notify(default_hook: ResilienceHook, event: ResilienceEvent) -> list[AbstractContextManager[Any]]:
    """Hand ``event`` to ``default_hook`` and every added hook; return the context managers they gave."""
    held = []
    for hook in (default_hook, *_added_hooks):
        try:
            result = hook(event)
        except Exception:  # noqa: BLE001 - a watcher must not break the call it watches
            _log.debug("amas_otel: resilience hook %r failed on %s", hook, type(event).__name__, exc_info=True)
            continue
        if result is not None:
            held.append(result)
    return held


def enter_hooks(default_hook: ResilienceHook, event: ResilienceEvent) -> ExitStack:
    """:func:`notify`, then enter the context managers the hooks returned, on one stack to close."""
    stack = ExitStack()
    for manager in notify(default_hook, event):
        try:
            stack.enter_context(manager)
        except Exception:  # noqa: BLE001
            _log.debug("amas_otel: resilience hook context %r failed to open", manager, exc_info=True)
    return stack
