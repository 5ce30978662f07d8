"""Circuit breakers: the state machine and its call paths (sync, async, ``guard()``).

>>> breaker = get_circuit_breaker_service().create_breaker("payments", CircuitBreakerConfig(failure_threshold=3))
>>> breaker.call(charge, card)                 # sync callable
>>> await breaker.call(fetch_quote, "EUR")     # coroutine function
>>> @circuit_breaker("payments")
... async def charge(card): ...
>>> with breaker.guard(): ...                  # or ``async with breaker.guard():``

States
    CLOSED lets every call through and counts consecutive failures; at
    ``failure_threshold`` it OPENs.  OPEN rejects calls with
    :class:`CircuitBreakerOpenException` (``retry_after`` = seconds until the
    next trial).  Once ``recovery_timeout`` has passed, the next call moves it
    to HALF_OPEN, which admits at most ``half_open_max_calls`` trial calls at
    a time (others are rejected; a trial still running from an earlier
    HALF_OPEN period holds its slot until it ends, so the limit holds across
    periods); ``success_threshold`` trial successes CLOSE
    it, one trial failure OPENs it again.  Transitions happen on calls: an
    OPEN breaker nobody calls stays OPEN.

Outcomes
    An exception counts as a failure when it is an instance of
    ``failure_exceptions`` and not of ``ignored_exceptions``.  Any other
    ``Exception`` means the dependency answered (a 404, a validation error) and
    counts as a success.  ``BaseException``\\ s that are not ``Exception``\\ s
    (cancellation, ``KeyboardInterrupt``) count as neither ("interrupted").

Timeouts (``timeout`` seconds, ``None`` for none) — a timeout is a failure
    *async*: the call is cancelled at the deadline (like :func:`asyncio.timeout`)
    and :class:`CircuitBreakerTimeoutError` (a :class:`TimeoutError`) is raised.
    All timed calls on one event loop share one timer, set for the earliest
    deadline in flight: a call notes its deadline and arms nothing itself.
    *sync*: Python cannot interrupt a running function, and running it in a
    worker thread would leave it running anyway, so the call is measured: a
    call that overran still returns its result (or raises its exception) — it
    is not silently repeated or discarded, which matters for calls with side
    effects — but is counted as a ``timeout`` failure.  To actually bound
    blocking I/O, give the client its own timeout (the requests integration in
    :mod:`amas_otel.breaker_requests` passes the breaker's timeout to requests).

Telemetry
    The state machine knows nothing of OpenTelemetry: it tells its hooks
    (:mod:`amas_otel.resilience_hooks`) when a breaker is made and when it
    changes state.  The default hook, :mod:`amas_otel.resilience_otel`, reads
    the state and call counts when metrics are collected (the call path touches
    no instrument) and turns transitions into span events and log records.
    Hook failures are logged and never reach the caller.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from amas_otel._counting import Tally
from amas_otel.config import ConfigError, get_settings
from amas_otel.resilience_hooks import BreakerCounts, BreakerCreated, BreakerTransition, CircuitState, ResilienceHook, notify
from amas_otel.resilience_otel import BreakerTelemetry
from amas_otel.sdk import configure_on_first_use

__all__ = [
    "CircuitState",
    "BreakerCounts",
    "CircuitBreakerConfig",
    "CircuitBreaker",
    "CircuitBreakerOpenException",
    "CircuitBreakerTimeoutError",
    "CircuitBreakerService",
    "get_circuit_breaker_service",
    "circuit_breaker",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_monotonic = time.monotonic
_CO_COROUTINE = inspect.CO_COROUTINE


_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class CircuitBreakerOpenException(Exception):
    """The breaker rejected the call without running it.

    ``retry_after`` is the number of seconds until the breaker admits a trial
    call (0 when it is HALF_OPEN and all trial slots are taken).
    """

    def __init__(self, breaker_name: str, retry_after: float) -> None:
        self.breaker_name = breaker_name
        self.retry_after = max(0.0, retry_after)
        super().__init__(f"circuit breaker {breaker_name!r} is open; retry in {self.retry_after:.3f}s")


class CircuitBreakerTimeoutError(TimeoutError):
    """An async call ran past the breaker's ``timeout`` and was cancelled."""

    def __init__(self, breaker_name: str, timeout: float) -> None:
        self.breaker_name = breaker_name
        self.timeout = timeout
        super().__init__(f"call through circuit breaker {breaker_name!r} exceeded its {timeout}s timeout")


def _setting(name: str) -> Callable[[], Any]:
    return lambda: getattr(get_settings().circuit_breaker, name)


def _exception_classes(argument: str, value: Any) -> tuple[type[BaseException], ...]:
    classes = (value,) if isinstance(value, type) else tuple(value)
    bad = [c for c in classes if not (isinstance(c, type) and issubclass(c, BaseException))]
    if bad:
        raise ConfigError([f"CircuitBreakerConfig.{argument}: {bad[0]!r} is not an exception class; expected exception classes"])
    return classes


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Breaker behaviour.  Unset fields take the ``CIRCUIT_BREAKER_*`` settings.

    ``timeout=None`` disables the per-call timeout.  ``enabled=False`` keeps
    the breaker CLOSED whatever happens (calls are still counted).
    """

    failure_threshold: int = field(default_factory=_setting("failure_threshold"))
    recovery_timeout: float = field(default_factory=_setting("recovery_timeout"))
    success_threshold: int = field(default_factory=_setting("success_threshold"))
    timeout: float | None = field(default_factory=_setting("timeout"))
    failure_exceptions: tuple[type[BaseException], ...] = (Exception,)
    ignored_exceptions: tuple[type[BaseException], ...] = ()
    half_open_max_calls: int = 1
    enabled: bool = field(default_factory=_setting("enabled"))

    def __post_init__(self) -> None:
        problems = []
        for name in ("failure_threshold", "success_threshold", "half_open_max_calls"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"CircuitBreakerConfig.{name}: {value!r} is invalid; expected an integer >= 1")
        value = self.recovery_timeout
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            problems.append(f"CircuitBreakerConfig.recovery_timeout: {value!r} is invalid; expected seconds >= 0")
        value = self.timeout
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            problems.append(f"CircuitBreakerConfig.timeout: {value!r} is invalid; expected seconds > 0 or None")
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "failure_exceptions", _exception_classes("failure_exceptions", self.failure_exceptions))
        object.__setattr__(self, "ignored_exceptions", _exception_classes("ignored_exceptions", self.ignored_exceptions))


class _Phase:
    """One stay in a state.  A call remembers the phase it was admitted in, so
    a late result from an earlier phase never moves the current one."""

    __slots__ = ("state", "since", "failures", "successes")

    def __init__(self, state: CircuitState) -> None:
        self.state = state
        self.since = _monotonic()
        self.failures = 0  # consecutive, in CLOSED
        self.successes = 0  # trial successes, in HALF_OPEN


#: Async callables whose call() closure is kept per breaker (a bound on per-call lambdas).
_RUNNER_CACHE_SIZE = 256


class _Outcome(enum.Enum):
    """How a call through the breaker ended (see "Outcomes" in the module docs)."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


_SUCCESS, _FAILURE, _TIMEOUT, _INTERRUPTED = _Outcome.SUCCESS, _Outcome.FAILURE, _Outcome.TIMEOUT, _Outcome.INTERRUPTED


class CircuitBreaker:
    """A named circuit breaker.  Thread-safe and asyncio-safe; see the module docs."""

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        """``tracer_provider``/``meter_provider`` (None: the global ones) carry the default hook's signals."""
        if not isinstance(name, str) or not name:
            raise ConfigError([f"CircuitBreaker name: {name!r} is invalid; expected a non-empty string"])
        if config is not None and not isinstance(config, CircuitBreakerConfig):
            raise ConfigError([f"CircuitBreaker config: {config!r} is invalid; expected a CircuitBreakerConfig"])
        self.name = name
        self.config = config = config or CircuitBreakerConfig()
        self._timeout = config.timeout
        self._lock = threading.Lock()
        self._phase = _Phase(_CLOSED)
        self._ok = Tally()
        self._failed = Tally()
        self._timed_out = Tally()
        self._rejected = Tally()
        self._interrupted = Tally()
        self._transitions = 0
        # Trials running, whichever HALF_OPEN period admitted them: a slow trial
        # from the previous period still holds its slot in the next one.
        self._trials_in_flight = 0
        self._last_failure: str | None = None
        self._runners: dict[Any, Callable[..., Awaitable[Any]]] = {}
        self._hook: ResilienceHook = BreakerTelemetry(tracer_provider, meter_provider)
        notify(self._hook, BreakerCreated(self))

    # --- public API -------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return self._phase.state

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` through the breaker.

        For a coroutine function (or a partial of one) this returns a
        coroutine to ``await``; otherwise it runs the call and returns its result.
        Raises :class:`CircuitBreakerOpenException` when the call is rejected.
        """
        try:
            is_async = fn.__code__.co_flags & _CO_COROUTINE
        except AttributeError:  # partials, callable objects
            is_async = inspect.iscoroutinefunction(fn)
        if is_async:
            try:  # a subscript is cheaper than .get()
                runner = self._runners[fn]
            except KeyError:
                if len(self._runners) >= _RUNNER_CACHE_SIZE:
                    self._runners.clear()
                runner = self._runners[fn] = _async_runner(self, fn)
            return runner(*args, **kwargs) if kwargs else runner(*args)
        return self._call_sync(fn, args, kwargs)

    def guard(self) -> _Guard:
        """Context manager form: ``with breaker.guard():`` or ``async with breaker.guard():``.

        Raises :class:`CircuitBreakerOpenException` on entry when rejected; the
        block's exception (or its absence) is the call's outcome.  ``async with``
        cancels the block at the timeout; ``with`` measures it.
        """
        return _Guard(self)

    def retry_after(self) -> float:
        """Seconds until an OPEN breaker admits a trial call (0 when not OPEN)."""
        phase = self._phase
        if phase.state is not _OPEN:
            return 0.0
        return max(0.0, phase.since + self.config.recovery_timeout - _monotonic())

    def reset(self) -> None:
        """Close the breaker and forget consecutive failures (totals are kept: they are counters)."""
        self._move_to(_CLOSED, force=True)

    def force_open(self) -> None:
        """Open the breaker now; it admits a trial after ``recovery_timeout``."""
        self._move_to(_OPEN, force=True)

    def counts(self) -> BreakerCounts:
        """Call totals by outcome since the breaker was made."""
        return BreakerCounts(
            success=self._ok.value(),
            failure=self._failed.value(),
            timeout=self._timed_out.value(),
            rejected=self._rejected.value(),
            interrupted=self._interrupted.value(),
        )

    def get_stats(self) -> dict[str, Any]:
        phase = self._phase
        counts = self.counts()
        cfg = self.config
        return {
            "name": self.name,
            "state": phase.state.value,
            "state_age_seconds": _monotonic() - phase.since,
            "retry_after": self.retry_after(),
            "consecutive_failures": phase.failures,
            "half_open_successes": phase.successes,
            "half_open_in_flight": self._trials_in_flight,
            "transitions": self._transitions,
            "calls": counts.success + counts.failure + counts.timeout + counts.interrupted,
            "successes": counts.success,
            "failures": counts.failure,
            "timeouts": counts.timeout,
            "rejections": counts.rejected,
            "interrupted": counts.interrupted,
            "last_failure": self._last_failure,
            "config": {
                "failure_threshold": cfg.failure_threshold,
                "recovery_timeout": cfg.recovery_timeout,
                "success_threshold": cfg.success_threshold,
                "timeout": cfg.timeout,
                "half_open_max_calls": cfg.half_open_max_calls,
                "enabled": cfg.enabled,
            },
        }

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._phase.state.value}>"

    # --- call paths ----------------------------------------------------------
    # The CLOSED path reads one attribute, calls, bumps one lock-free counter.

    def _call_sync(self, fn: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> Any:
        phase = self._phase
        trial = False
        if phase.state is not _CLOSED:
            phase, trial = self._admit()
        start = _monotonic()
        try:
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except BaseException as exc:
            self._settle(phase, trial, self._classify(exc, start))
            raise
        timeout = self._timeout
        if trial or (timeout is not None and _monotonic() - start > timeout):
            self._settle(phase, trial, self._classify(None, start))
        else:
            next(self._ok)
            if phase.failures:
                self._clear_failures(phase)
        return result

    # --- state machine ---------------------------------------------------------

    def _admit(self) -> tuple[_Phase, bool]:
        """Admission outside CLOSED: returns (phase, is_trial) or raises when rejected."""
        change = None
        with self._lock:
            phase = self._phase
            if phase.state is _OPEN:
                wait = phase.since + self.config.recovery_timeout - _monotonic()
                if wait > 0:
                    next(self._rejected)
                    raise CircuitBreakerOpenException(self.name, wait)
                change = self._enter(_HALF_OPEN)
                phase = self._phase
            if phase.state is _HALF_OPEN:
                if self._trials_in_flight >= self.config.half_open_max_calls:
                    next(self._rejected)
                    raise CircuitBreakerOpenException(self.name, 0.0)
                self._trials_in_flight += 1
                trial = True
            else:
                trial = False
        if change:
            self._announce(*change)
        return phase, trial

    def _classify(self, exc: BaseException | None, start: float | None) -> _Outcome:
        """Outcome of a finished call: ``exc`` is what it raised, ``start`` its sync start time."""
        if isinstance(exc, Exception) or exc is None:
            if exc is not None and isinstance(exc, self.config.failure_exceptions) and not isinstance(
                exc, self.config.ignored_exceptions
            ):
                self._last_failure = type(exc).__qualname__
                return _FAILURE
            timeout = self._timeout
            if start is not None and timeout is not None and _monotonic() - start > timeout:
                self._last_failure = "timeout"
                return _TIMEOUT
            return _SUCCESS
        return _INTERRUPTED

    def _settle(self, phase: _Phase, trial: bool, outcome: _Outcome) -> None:
        if outcome is _SUCCESS:
            next(self._ok)
        elif outcome is _FAILURE:
            next(self._failed)
        elif outcome is _TIMEOUT:
            next(self._timed_out)
        else:
            next(self._interrupted)
        change = None
        failed = outcome is _FAILURE or outcome is _TIMEOUT
        with self._lock:
            if trial:
                self._trials_in_flight -= 1
            if phase is self._phase and outcome is not _INTERRUPTED:
                if phase.state is _CLOSED:
                    if not failed:
                        phase.failures = 0
                    else:
                        phase.failures += 1
                        if phase.failures >= self.config.failure_threshold and self.config.enabled:
                            change = self._enter(_OPEN)
                elif phase.state is _HALF_OPEN and trial:
                    if failed:
                        change = self._enter(_OPEN)
                    else:
                        phase.successes += 1
                        if phase.successes >= self.config.success_threshold:
                            change = self._enter(_CLOSED)
        if change:
            self._announce(*change)

    def _clear_failures(self, phase: _Phase) -> None:
        with self._lock:
            if phase is self._phase:
                phase.failures = 0

    def _enter(self, state: CircuitState) -> tuple[_Phase, _Phase]:
        """Start a new phase; the caller holds the lock and announces the change after releasing it."""
        old = self._phase
        self._phase = new = _Phase(state)
        self._transitions += 1
        return old, new

    def _move_to(self, state: CircuitState, *, force: bool) -> None:
        with self._lock:
            old = self._phase
            change = self._enter(state) if force or old.state is not state else None
        if change and old.state is not state:
            self._announce(*change)

    def _announce(self, old: _Phase, new: _Phase) -> None:
        """Tell the hooks about a transition (after the lock is released: hooks may be slow)."""
        notify(
            self._hook,
            BreakerTransition(
                breaker_name=self.name,
                previous_state=old.state,
                state=new.state,
                consecutive_failures=old.failures,
                last_failure=self._last_failure,
                retry_after=float(self.config.recovery_timeout) if new.state is _OPEN else None,
            ),
        )


def _internal_log() -> Any:
    import logging

    return logging.getLogger("amas_otel.breaker")


def _async_runner(breaker: CircuitBreaker, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The async call path, as a closure so a decorated coroutine function costs one coroutine, not two."""
    timeout = breaker._timeout
    ok = breaker._ok

    async def run_through_breaker(*args: Any, **kwargs: Any) -> Any:
        phase = breaker._phase
        trial = False
        if phase.state is not _CLOSED:
            phase, trial = breaker._admit()
        token = None
        if timeout is not None:
            try:  # a call is dearer than a try
                deadlines = _thread.deadlines
            except AttributeError:
                deadlines = _NO_DEADLINES
            # current_task(loop) is a dict lookup; without the loop it first finds the running
            # loop (a getpid() system call).  None: another loop runs on this thread now.
            task = _current_task(deadlines.loop) if deadlines.loop is not None else None
            if task is None:
                task = _current_task()
                if task is not None:
                    deadlines = _thread.deadlines = _Deadlines(task.get_loop())
            if task is not None:  # registered inline: a method call costs more than this
                token = next(_tokens)
                deadline = _monotonic() + timeout
                deadlines.running[token] = (deadline, task)
                if deadline < deadlines.next_at:
                    deadlines.schedule(deadline)
        try:
            # ``f(*args, **kwargs)`` copies kwargs into a new dict on every call; most calls pass none.
            result = await (fn(*args, **kwargs) if kwargs else fn(*args))
        except BaseException as exc:
            # Swept (no longer running, its token expired): our cancellation, and when nobody
            # else's (as with asyncio.timeout), the breaker's timeout.
            if token is not None and deadlines.running.pop(token, None) is None and deadlines.expired(token):
                if exc.__class__ is asyncio.CancelledError and task.uncancel() == 0:  # type: ignore[union-attr]
                    breaker._settle(phase, trial, _TIMEOUT)
                    raise CircuitBreakerTimeoutError(breaker.name, timeout) from None  # type: ignore[arg-type]
            breaker._settle(phase, trial, breaker._classify(exc, None))
            raise
        if token is not None and deadlines.running.pop(token, None) is None:
            deadlines.expired(token)  # finished before the cancellation reached it: forget the token
        if trial:
            breaker._settle(phase, trial, _SUCCESS)
        else:
            next(ok)
            if phase.failures:
                breaker._clear_failures(phase)
        return result

    return run_through_breaker


_current_task = asyncio.current_task
_tokens = itertools.count()  # one per timed call: next() is atomic


class _Deadlines:
    """Times out the async breaker calls of one event loop with one timer.

    Each timed call registers ``running[token] = (deadline, task)`` (public
    asyncio only: the task from ``asyncio.current_task()``, a
    ``loop.call_later`` timer, ``task.cancel()``) and removes it when it
    returns, so only calls in flight are held.  The timer fires at the
    earliest deadline it knows of, cancels the tasks whose deadline passed
    (moving their tokens to ``_expired``, so the call reports a timeout
    rather than a cancellation) and re-arms at the next deadline in flight.
    One ``asyncio.timeout`` per call arms and cancels a timer handle per
    call, which dwarfs the breaker itself (README, benchmarks); here a busy
    breaker costs one sweep per ``timeout`` period.
    """

    __slots__ = ("loop", "running", "_expired", "handle", "next_at")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.running: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._expired: set[int] = set()
        self.handle: asyncio.TimerHandle | None = None
        self.next_at = float("inf")

    def expired(self, token: int) -> bool:
        """Whether the sweep cancelled the call of ``token`` (asked once: the token is forgotten)."""
        if token in self._expired:
            self._expired.discard(token)
            return True
        return False

    def schedule(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.next_at = when
        # call_later, not call_at: uvloop's clock has another epoch than time.monotonic.
        self.handle = self.loop.call_later(max(0.0, when - _monotonic()), self.sweep)  # type: ignore[union-attr]

    def sweep(self) -> None:
        self.handle = None
        self.next_at = float("inf")
        now = _monotonic()
        nearest = float("inf")
        running = self.running
        for token, (deadline, task) in list(running.items()):
            if deadline <= now:
                del running[token]
                self._expired.add(token)
                task.cancel()
            elif deadline < nearest:
                nearest = deadline
        if nearest != float("inf"):
            self.schedule(nearest)


#: ``deadlines``: the _Deadlines of the loop running (or last run) on each thread.
_thread = threading.local()
#: Until a timed call runs on a thread: deadlines of no loop, which every call replaces.
_NO_DEADLINES = _Deadlines(None)


class _Guard:
    """One use of ``breaker.guard()``."""

    __slots__ = ("_breaker", "_phase", "_trial", "_start", "_limit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._limit: asyncio.Timeout | None = None

    def __enter__(self) -> CircuitBreaker:
        breaker = self._breaker
        phase = breaker._phase
        self._phase, self._trial = (phase, False) if phase.state is _CLOSED else breaker._admit()
        self._start = _monotonic()
        return breaker

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        breaker = self._breaker
        breaker._settle(self._phase, self._trial, breaker._classify(exc, self._start))

    async def __aenter__(self) -> CircuitBreaker:
        breaker = self.__enter__()
        if breaker._timeout is not None:
            self._limit = asyncio.timeout(breaker._timeout)
            await self._limit.__aenter__()
        return breaker

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        breaker, limit = self._breaker, self._limit
        if limit is not None:
            try:
                await limit.__aexit__(exc_type, exc, tb)
            except TimeoutError as timed_out:  # raised only when our deadline expired
                breaker._settle(self._phase, self._trial, _TIMEOUT)
                raise CircuitBreakerTimeoutError(breaker.name, breaker._timeout) from timed_out  # type: ignore[arg-type]
        breaker._settle(self._phase, self._trial, breaker._classify(exc, None))


# --- service and decorator ----------------------------------------------------


class CircuitBreakerService:
    """A registry of named breakers sharing telemetry providers."""

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def create_breaker(self, name: str, config: CircuitBreakerConfig | None = None) -> CircuitBreaker:
        """Create breaker ``name``.  Asking again for an existing name returns it when
        ``config`` is None or equal to its config, and raises ``ValueError`` otherwise."""
        if self._tracer_provider is None or self._meter_provider is None:  # on the global providers
            configure_on_first_use("create_breaker")
        with self._lock:
            existing = self._breakers.get(name)
            if existing is not None:
                if config is not None and config != existing.config:
                    raise ValueError(
                        f"circuit breaker {name!r} already exists with {existing.config}; "
                        f"cannot create it again with {config}"
                    )
                return existing
            breaker = CircuitBreaker(
                name, config, tracer_provider=self._tracer_provider, meter_provider=self._meter_provider
            )
            self._breakers[name] = breaker
        _internal_log().debug("amas_otel: circuit breaker %r created: %s", name, breaker.config)
        return breaker

    def get_breaker(self, name: str) -> CircuitBreaker:
        """Breaker ``name``, created on first request with ``CircuitBreakerConfig()`` (the
        ``CIRCUIT_BREAKER_*`` settings), so ``get_breaker("external_api").call(...)`` needs no set-up.

        To configure a breaker differently, :meth:`create_breaker` it with its
        config before anything asks for it by name.
        """
        return self._breakers.get(name) or self.create_breaker(name)

    def find_breaker(self, name: str) -> CircuitBreaker | None:
        """Breaker ``name`` if it exists, else None (nothing is created)."""
        return self._breakers.get(name)

    def list_breakers(self) -> list[str]:
        with self._lock:
            return sorted(self._breakers)

    def get_all_stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            breakers = list(self._breakers.values())
        return {breaker.name: breaker.get_stats() for breaker in breakers}

    def reset(self, name: str) -> None:
        """Close breaker ``name``; ``KeyError`` naming the known breakers when there is none."""
        breaker = self._breakers.get(name)
        if breaker is None:
            raise KeyError(f"no circuit breaker named {name!r}; known: {', '.join(self.list_breakers()) or 'none'}")
        breaker.reset()

    def reset_all(self) -> None:
        with self._lock:
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.reset()


_service: CircuitBreakerService | None = None
_service_lock = threading.Lock()


def get_circuit_breaker_service() -> CircuitBreakerService:
    """The process-wide service (global tracer and meter providers).

    The first call configures amas-otel when nothing has yet
    (:func:`amas_otel.sdk.configure_on_first_use`), so breaker states reach the configured readers.
    """
    global _service
    configure_on_first_use("get_circuit_breaker_service")
    if _service is None:
        with _service_lock:
            if _service is None:
                _service = CircuitBreakerService()
    return _service


def circuit_breaker(
    name: str, config: CircuitBreakerConfig | None = None, *, service: CircuitBreakerService | None = None
) -> Callable[[_F], _F]:
    """Decorate a sync or async function so every call goes through breaker ``name``
    (created in ``service``, default the global one, on first use of the name)."""
    breaker = (service or get_circuit_breaker_service()).create_breaker(name, config)

    def decorate(fn: _F) -> _F:
        if inspect.iscoroutinefunction(fn):
            async_wrapper = functools.wraps(fn)(_async_runner(breaker, fn))
            async_wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        call_sync = breaker._call_sync

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return call_sync(fn, args, kwargs)

        wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
