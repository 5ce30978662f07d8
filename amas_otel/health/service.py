"""The health check service: registration, bounded concurrent runs, caching, OTel signals.

Aggregate rule (``status`` of :func:`check_health` and ``/health``):

- **unhealthy** when at least one *critical* check is unhealthy;
- **degraded** when a check is degraded, or a *non-critical* check is unhealthy;
- **healthy** otherwise (also when no check is registered).

Readiness (``/health/ready``) looks at critical checks only: it fails exactly
when a critical check is unhealthy.

Every check runs concurrently with the others.  One attempt may take
``timeout`` seconds (the check's own, else ``HEALTH_CHECK_TIMEOUT``); a failed
or timed-out attempt is retried ``HEALTH_CHECK_RETRIES`` times after a short
backoff (0.1 s, doubling, at most 1 s), so one run of a check ends within
``(retries + 1) * (timeout + 1)`` seconds whatever the dependency does.

With ``HEALTH_CHECK_INTERVAL`` > 0 a background task runs all checks every
interval and probes answer from the last run.  Runs are single-flight: probes
arriving while a run is in progress wait for that run instead of starting
their own, so any number of concurrent probes costs at most one run per
interval.  With an interval of 0 every probe runs the checks (still
single-flight).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Status, StatusCode

from amas_otel.config import ConfigError, HealthCheckSpec, get_settings, parse_bool
from amas_otel.sdk import configure_on_first_use
from amas_otel.health.checks import (
    CacheHealthCheck,
    DatabaseHealthCheck,
    DiskHealthCheck,
    ExternalAPIHealthCheck,
    FileSystemHealthCheck,
    HealthCheck,
    HealthStatus,
    MemoryHealthCheck,
    NetworkHealthCheck,
    ServiceHealthCheck,
)
from amas_otel.scope import amas_meter, amas_tracer
from amas_otel.semconv import ERROR_TYPE, HealthSignal

__all__ = [
    "HealthCheckResult",
    "HealthReport",
    "aggregate",
    "HealthCheckService",
    "get_health_service",
    "add_health_check",
    "remove_health_check",
    "check_health",
    "check_dependency_health",
    "add_database_health_check",
    "add_cache_health_check",
    "add_external_api_health_check",
    "add_file_system_health_check",
    "add_memory_health_check",
    "add_disk_health_check",
    "add_network_health_check",
    "add_service_health_check",
    "check_spec_problems",
    "iso_utc",
]

_MAX_MESSAGE = 500
# Every run of every check, for LOG_LEVEL=DEBUG (status changes are logged at info and above).
_debug = logging.getLogger("amas_otel.health")
# Seconds; spans the sub-millisecond in-memory checks to timed-out ones.
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def iso_utc(ts: float) -> str:
    """``ts`` (epoch seconds) as the reports write time: ISO 8601, UTC, milliseconds, ``Z``."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class HealthCheckResult:
    """Outcome of one run of one check.  ``details`` holds the observed values."""

    name: str
    status: HealthStatus
    message: str
    critical: bool
    type: str
    duration_seconds: float
    #: Wall-clock end of the run, seconds since the epoch.
    timestamp: float
    attempts: int = 1
    #: ``timeout``, or the exception's class name, when the last attempt failed.
    error_type: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        result = {
            "status": self.status.value,
            "message": self.message,
            "critical": self.critical,
            "type": self.type,
            "duration_seconds": round(self.duration_seconds, 6),
            "timestamp": iso_utc(self.timestamp),
            "attempts": self.attempts,
            "details": dict(self.details),
        }
        if self.error_type:
            result["error_type"] = self.error_type
        return result


def aggregate(results: Iterable[HealthCheckResult]) -> HealthStatus:
    """The module docstring's rule applied to ``results``."""
    status = HealthStatus.HEALTHY
    for result in results:
        if result.status is HealthStatus.UNHEALTHY and result.critical:
            return HealthStatus.UNHEALTHY
        if result.status is not HealthStatus.HEALTHY:
            status = HealthStatus.DEGRADED
    return status


@dataclass(frozen=True)
class HealthReport:
    """One run of every check: the cached answer probes read."""

    status: HealthStatus
    checks: Mapping[str, HealthCheckResult]
    #: Wall-clock end of the run, seconds since the epoch.
    timestamp: float
    uptime_seconds: float
    version: str | None
    #: ``time.monotonic()`` at the end of the run (cache age).
    finished: float

    @property
    def ready(self) -> bool:
        """False when a critical check is unhealthy."""
        return not any(r.critical and r.status is HealthStatus.UNHEALTHY for r in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        """The report as a dict: status, timestamp, uptime_seconds, version, checks, summary."""
        counts = {s.value: 0 for s in HealthStatus}
        for result in self.checks.values():
            counts[result.status.value] += 1
        return {
            "status": self.status.value,
            "timestamp": iso_utc(self.timestamp),
            "uptime_seconds": round(self.uptime_seconds, 3),
            "version": self.version,
            "checks": {name: result.to_dict() for name, result in self.checks.items()},
            "summary": {
                "total": len(self.checks),
                **counts,
                "critical_failures": sum(
                    1 for r in self.checks.values() if r.critical and r.status is HealthStatus.UNHEALTHY
                ),
            },
        }


@dataclass(frozen=True)
class _Registration:
    name: str
    check: HealthCheck
    critical: bool
    timeout: float | None


class _Timeout(TimeoutError):
    """The attempt's wait ran out (the probe itself may still be running)."""


def _consume(task: asyncio.Future) -> None:
    """Retrieve an abandoned attempt's outcome so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


class HealthCheckService:
    """Holds checks, runs them, caches the report and emits the OTel signals.

    ``timeout`` / ``retries`` / ``interval`` / ``enabled`` default to
    ``HEALTH_CHECK_TIMEOUT`` / ``HEALTH_CHECK_RETRIES`` /
    ``HEALTH_CHECK_INTERVAL`` / ``HEALTH_CHECK_ENABLED``.  Telemetry goes to
    ``tracer_provider`` / ``meter_provider`` (default: the global ones) and
    status changes are logged through ``logger`` (default:
    ``amas_otel.logging.get_logger("amas_otel.health", component="health")``).
    With ``enabled=False`` no check runs and the report is healthy and empty.
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        interval: float | None = None,
        enabled: bool | None = None,
        version: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        logger: Any = None,
    ) -> None:
        if tracer_provider is None or meter_provider is None:  # on the global providers
            configure_on_first_use("HealthCheckService")
        if None in (timeout, retries, interval, enabled):
            settings = get_settings().health
            timeout = settings.timeout if timeout is None else timeout
            retries = settings.retries if retries is None else retries
            interval = settings.interval if interval is None else interval
            enabled = settings.enabled if enabled is None else enabled
        problems = []
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            problems.append(f"timeout: got {timeout!r}; expected a number of seconds greater than 0")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            problems.append(f"retries: got {retries!r}; expected an integer >= 0")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
            problems.append(f"interval: got {interval!r}; expected a number of seconds >= 0 (0: run on every probe)")
        if problems:
            raise ConfigError(problems)
        self.timeout, self.retries, self.interval, self.enabled = float(timeout), retries, float(interval), bool(enabled)
        self._version = version
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._checks: dict[str, _Registration] = {}
        self._latest: dict[str, HealthCheckResult] = {}
        self._report: HealthReport | None = None
        self._run_task: asyncio.Task | None = None
        self._bg_task: asyncio.Task | None = None
        self._runs = 0
        self._logger = logger

        self._tracer = amas_tracer(tracer_provider)
        meter = amas_meter(meter_provider)
        meter.create_observable_gauge(
            HealthSignal.STATUS_METRIC,
            callbacks=[self._observe],
            unit=HealthSignal.STATUS_UNIT,
            description="Last result of each health check: 1 on the series of its current result, 0 on the others",
        )
        self._duration = meter.create_histogram(
            HealthSignal.DURATION_METRIC,
            unit="s",
            description="Duration of one health check run, retries included",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )

    # --- registration -----------------------------------------------------

    def add(
        self, name: str, check: HealthCheck | Callable[[], Any], *, critical: bool = True, timeout: float | None = None
    ) -> HealthCheck:
        """Register ``check`` (a :class:`HealthCheck` or a callable, see
        :class:`~amas_otel.health.ServiceHealthCheck`) as ``name``, replacing a
        check of that name.  ``timeout`` overrides the service's per attempt."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
            raise ValueError(f"timeout: expected seconds greater than 0 or None, got {timeout!r}")
        if not isinstance(critical, bool):
            raise TypeError(f"critical: expected True or False, got {critical!r}")
        if not isinstance(check, HealthCheck):
            check = ServiceHealthCheck(check)
        with self._lock:
            checks = dict(self._checks)
            checks[name] = _Registration(name, check, critical, None if timeout is None else float(timeout))
            self._checks = checks
            self._latest.pop(name, None)
        return check

    def remove(self, name: str) -> bool:
        """Unregister ``name``; False when there was no such check."""
        with self._lock:
            if name not in self._checks:
                return False
            checks = dict(self._checks)
            del checks[name]
            self._checks = checks
            self._latest.pop(name, None)
            return True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._checks)

    @property
    def runs(self) -> int:
        """How many full runs of all checks have completed."""
        return self._runs

    def add_configured_checks(self, specs: Iterable[HealthCheckSpec]) -> None:
        """Register the ``health: checks:`` entries; :class:`ConfigError` names every bad one."""
        built, problems = _build_checks(tuple(specs), self.timeout)
        if problems:
            raise ConfigError(problems)
        for spec, check in built:
            self.add(spec.name, check, critical=spec.critical, timeout=spec.timeout)

    # --- running ------------------------------------------------------------

    async def report(self, *, fresh: bool = False) -> HealthReport:
        """The current report: the cached one when an interval is set and it is
        current, else a new run (joined by concurrent callers).  ``fresh``
        forces a run."""
        report = self._report
        if not fresh and report is not None and self.interval > 0:
            if self._background_running() or time.monotonic() - report.finished < self.interval:
                return report
        if not fresh and self.interval > 0 and self.enabled:
            self.start()
        return await self._refresh()

    async def check_health(self, *, fresh: bool = False) -> dict[str, Any]:
        """:meth:`report` as a plain dict (the ``/health/detailed`` body)."""
        return (await self.report(fresh=fresh)).to_dict()

    async def check_dependency(self, name: str) -> HealthCheckResult:
        """Run check ``name`` now (timeout and retries apply) and return its result."""
        registration = self._checks.get(name)
        if registration is None:
            known = ", ".join(sorted(self._checks)) or "none"
            raise KeyError(f"no health check named {name!r}; registered: {known}")
        return await self._run_one(registration)

    def start(self) -> None:
        """Start the background refresh on the running event loop (once; needs ``interval`` > 0)."""
        if self.interval <= 0 or self._background_running():
            return
        self._bg_task = asyncio.get_running_loop().create_task(self._background(), name="amas-otel-health")

    async def stop(self) -> None:
        """Stop the background refresh."""
        task, self._bg_task = self._bg_task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _background_running(self) -> bool:
        task = self._bg_task
        return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()

    async def _background(self) -> None:
        while True:
            began = time.monotonic()
            await self._refresh()
            await asyncio.sleep(max(self.interval - (time.monotonic() - began), 0.0))

    async def _refresh(self) -> HealthReport:
        loop = asyncio.get_running_loop()
        task = self._run_task
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._run_task = loop.create_task(self._run_all())
        # Shielded: a probe that gives up must not cancel the run others wait for.
        return await asyncio.shield(task)

    async def _run_all(self) -> HealthReport:
        registrations = list(self._checks.values()) if self.enabled else []
        outcomes = await asyncio.gather(*(self._run_one(r) for r in registrations), return_exceptions=True)
        # _run_one reports check failures itself; this catches failures of the machinery
        # (a broken tracer, say) so that one of them cannot fail every probe.
        results = [
            _result(reg, None, out, 1, 0.0) if isinstance(out, BaseException) else out
            for reg, out in zip(registrations, outcomes)
        ]
        checks = {r.name: r for r in results}
        report = HealthReport(
            status=aggregate(results),
            checks=checks,
            timestamp=time.time(),
            uptime_seconds=time.monotonic() - self._started,
            version=self.version,
            finished=time.monotonic(),
        )
        self._report = report
        self._runs += 1
        return report

    @property
    def version(self) -> str | None:
        """``service.version`` of the resource, unless given to the constructor."""
        if self._version is None:
            try:
                from amas_otel.resource import build_resource

                version = build_resource(get_settings().otel).attributes.get("service.version")
            except Exception:  # noqa: BLE001 - a version is nice to have, never worth failing a probe
                version = None
            self._version = str(version) if version else ""
        return self._version or None

    async def _run_one(self, registration: _Registration) -> HealthCheckResult:
        name, check = registration.name, registration.check
        timeout = registration.timeout or self.timeout
        attributes = {
            HealthSignal.CHECK_NAME: name,
            HealthSignal.CHECK_TYPE: check.type,
            HealthSignal.CHECK_CRITICAL: registration.critical,
        }
        began = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"{HealthSignal.SPAN_PREFIX} {name}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            attempt = 0
            while True:
                attempt += 1
                observed, error = await self._attempt(check, timeout)
                if error is None or attempt > self.retries:
                    break
                span.add_event(
                    HealthSignal.RETRY_EVENT,
                    {HealthSignal.ATTEMPT: attempt, ERROR_TYPE: _error_type(error)},
                )
                await asyncio.sleep(min(0.1 * 2 ** (attempt - 1), 1.0))
            result = _result(registration, observed, error, attempt, time.perf_counter() - began)
            span.set_attribute(HealthSignal.CHECK_RESULT, result.status.value)
            span.set_attribute(HealthSignal.CHECK_ATTEMPTS, attempt)
            if result.error_type:
                span.set_attribute(ERROR_TYPE, result.error_type)
            if error is not None and not isinstance(error, _Timeout):
                span.record_exception(error)
            if result.status is HealthStatus.UNHEALTHY:
                span.set_status(Status(StatusCode.ERROR, result.message))
            # In the check's span: a status-change record carries its trace and span ids.
            self._note(result)
        self._duration.record(
            result.duration_seconds,
            {
                HealthSignal.CHECK_NAME: name,
                HealthSignal.CHECK_CRITICAL: registration.critical,
                HealthSignal.CHECK_RESULT: result.status.value,
            },
        )
        return result

    @staticmethod
    async def _attempt(check: HealthCheck, timeout: float) -> tuple[dict[str, Any] | None, BaseException | None]:
        try:
            task = asyncio.ensure_future(check.probe(timeout))
        except Exception as exc:  # noqa: BLE001 - e.g. a subclass whose probe is not async
            return None, exc
        try:
            done, _ = await asyncio.wait((task,), timeout=timeout)
        finally:
            if not task.done():
                # Not awaited: a check that swallows cancellation must not hold the probe.
                task.cancel()
                task.add_done_callback(_consume)
        if not done:
            return None, _Timeout(f"no answer within {timeout:g}s")
        if task.cancelled():
            return None, asyncio.CancelledError("the check was cancelled")
        error = task.exception()
        if error is not None:
            return None, error
        observed = task.result()
        if not isinstance(observed, Mapping):
            return None, TypeError(f"probe() returned {type(observed).__name__}, expected a dict")
        return dict(observed), None

    def _note(self, result: HealthCheckResult) -> None:
        """Keep the latest result (for the gauge) and log a change of status."""
        with self._lock:
            if result.name not in self._checks:
                return  # removed while it ran
            previous = self._latest.get(result.name)
            self._latest[result.name] = result
        _debug.debug(
            "amas_otel: health check %r: %s in %.3fs after %d attempt(s): %s",
            result.name,
            result.status.value,
            result.duration_seconds,
            result.attempts,
            result.message,
        )
        before = previous.status if previous is not None else None
        if before is result.status or (before is None and result.status is HealthStatus.HEALTHY):
            return
        level = {HealthStatus.HEALTHY: "info", HealthStatus.DEGRADED: "warning", HealthStatus.UNHEALTHY: "error"}
        fields = {
            HealthSignal.CHECK_NAME: result.name,
            HealthSignal.CHECK_RESULT: result.status.value,
            HealthSignal.CHECK_CRITICAL: result.critical,
            HealthSignal.CHECK_MESSAGE: result.message,
        }
        if before is not None:
            fields[HealthSignal.PREVIOUS_RESULT] = before.value
        try:
            getattr(self._log(), level[result.status])("health check status changed", **fields)
        except Exception:  # noqa: BLE001 - logging trouble must not fail a probe
            pass

    def _log(self) -> Any:
        if self._logger is None:
            from amas_otel.logging import get_logger

            self._logger = get_logger("amas_otel.health", component="health")
        return self._logger

    def _observe(self, options: CallbackOptions) -> Iterator[Observation]:
        # The hw.status pattern: one series per possible result, 1 on the current one, so a
        # query selects a state by label and a missing value never reads as "unhealthy".
        for result in list(self._latest.values()):
            for status in HealthStatus:
                yield Observation(
                    1 if status is result.status else 0,
                    {
                        HealthSignal.CHECK_NAME: result.name,
                        HealthSignal.CHECK_CRITICAL: result.critical,
                        HealthSignal.CHECK_RESULT: status.value,
                    },
                )


def _error_type(error: BaseException) -> str:
    # A probe's own client timeout and the attempt's wait race to notice the
    # same silent dependency; either way it is reported as one kind.
    return "timeout" if isinstance(error, TimeoutError) else type(error).__qualname__


def _result(
    registration: _Registration,
    observed: dict[str, Any] | None,
    error: BaseException | None,
    attempts: int,
    duration: float,
) -> HealthCheckResult:
    details: dict[str, Any] = {}
    error_type = None
    if error is not None:
        status = HealthStatus.UNHEALTHY
        error_type = _error_type(error)
        if isinstance(error, TimeoutError):
            message = str(error) or "timed out"
        else:
            message = f"{type(error).__name__}: {error}"
        if attempts > 1:
            message += f" (after {attempts} attempts)"
    else:
        assert observed is not None
        try:
            status = HealthStatus.parse(observed.pop("status", HealthStatus.HEALTHY))
        except ValueError as exc:
            status, message, error_type = HealthStatus.UNHEALTHY, str(exc), "ValueError"
        else:
            message = str(observed.pop("message", "") or status.value)
        details = observed
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return HealthCheckResult(
        name=registration.name,
        status=status,
        message=message,
        critical=registration.critical,
        type=registration.check.type,
        duration_seconds=duration,
        timestamp=time.time(),
        attempts=attempts,
        error_type=error_type,
        details=details,
    )


# --- checks from configuration -------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError("expected a number")
    return float(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


def _statuses(value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    try:
        return tuple(_integer(v) for v in values)
    except ValueError:
        raise ValueError("expected an HTTP status code or a list of them") from None


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping of header names to values")
    return {str(k): str(v) for k, v in value.items()}


def _import_path(value: Any) -> str:
    """``package.module:attribute`` as text, checked for its form only (nothing is imported)."""
    text = _text(value)
    module_name, sep, attribute = text.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError("expected 'package.module:attribute'")
    return text


def _object(value: Any) -> Any:
    """Import ``package.module:attribute``."""
    module_name, _, attribute = _import_path(value).partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import it ({exc})") from None
    if not callable(target):
        raise ValueError("expected it to name a callable")
    return target


def _psycopg_connect(dsn: str, timeout: float) -> Callable[[], Any]:
    def connect() -> Any:
        import psycopg

        return psycopg.connect(dsn, connect_timeout=max(1, math.ceil(timeout)), autocommit=True)

    return connect


def _redis_client(url: str, timeout: float) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # The service retries (HEALTH_CHECK_RETRIES); the client's own retries would multiply them.
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _unresolved(*args: Any) -> None:
    """Stands for an imported callable or a client while entries are only validated."""


#: Per type: option -> parser; and a builder from parsed options and the timeout.
_OPTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "database": {"dsn": _text, "connect": _object, "query": _text},
    "cache": {"url": _text, "client": _object, "key_prefix": _text},
    "external_api": {
        "url": _text,
        "expected_status": _statuses,
        "headers": _headers,
        "verify": parse_bool,
        "check": _object,
    },
    "file_system": {"path": _text, "writable": parse_bool, "min_free_bytes": _integer},
    "memory": {"max_usage_percent": _number, "warn_usage_percent": _number},
    "disk": {"path": _text, "max_usage_percent": _number, "warn_usage_percent": _number},
    "network": {"host": _text, "port": _integer},
    "service": {"callable": _object},
}
#: Per type: the options one of which must be given (exactly one, when there are several).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "database": ("dsn", "connect"),
    "cache": ("url", "client"),
    "external_api": ("url",),
    "file_system": ("path",),
    "network": ("host",),
    "service": ("callable",),
}


def _build_one(kind: str, options: dict[str, Any], timeout: float, resolve: bool) -> HealthCheck:
    if kind == "database":
        connect = _psycopg_connect(options["dsn"], timeout) if "dsn" in options else options["connect"]
        return DatabaseHealthCheck(connect, **{k: v for k, v in options.items() if k == "query"})
    if kind == "cache":
        if "url" in options:
            client = _redis_client(options["url"], timeout) if resolve else _unresolved
        else:
            client = options["client"]
        return CacheHealthCheck(client, **{k: v for k, v in options.items() if k == "key_prefix"})
    if kind == "external_api":
        return ExternalAPIHealthCheck(**options)
    if kind == "file_system":
        return FileSystemHealthCheck(**options)
    if kind == "memory":
        return MemoryHealthCheck(**options)
    if kind == "disk":
        return DiskHealthCheck(**options)
    if kind == "network":
        return NetworkHealthCheck(**options)
    return ServiceHealthCheck(options["callable"])


def _build_checks(
    specs: tuple[HealthCheckSpec, ...], default_timeout: float, *, resolve: bool = True
) -> tuple[list[tuple[HealthCheckSpec, HealthCheck]], list[str]]:
    """The checks ``specs`` describe, and every problem with them (``file:line:health.checks[name].key: …``).

    ``resolve=False`` validates only: ``package.module:attribute`` values are
    checked for their form but not imported, and no client is created.
    """
    problems: list[str] = []
    built = []
    for spec in specs:
        label = f"{spec.origin}:health.checks[{spec.name}]"
        accepted = _OPTIONS.get(spec.type)
        if accepted is None:
            problems.append(f"{label}.type: got {spec.type!r}; expected one of " + ", ".join(_OPTIONS))
            continue
        options: dict[str, Any] = {}
        bad = False
        for key, raw in spec.options.items():
            parser = accepted.get(key)
            accepted_text = ", ".join(["name", "type", "timeout", "critical", *accepted])
            if parser is None:
                problems.append(f"{label}.{key}: unknown option for type {spec.type}; accepted keys: {accepted_text}")
                bad = True
                continue
            try:
                if parser is _object and not resolve:
                    _import_path(raw)
                    options[key] = _unresolved
                else:
                    options[key] = parser(raw)
            except ValueError as exc:
                problems.append(f"{label}.{key}: got {raw!r}; {exc}")
                bad = True
        required = _REQUIRED.get(spec.type, ())
        given = [key for key in required if key in spec.options]
        if len(required) == 1 and not given:
            problems.append(f"{label}: option {required[0]!r} is required for type {spec.type}")
            bad = True
        elif len(required) > 1 and len(given) != 1:
            problems.append(f"{label}: give exactly one of {', '.join(required)} for type {spec.type}")
            bad = True
        if bad:
            continue
        try:
            built.append((spec, _build_one(spec.type, options, spec.timeout or default_timeout, resolve)))
        except (ValueError, TypeError, ImportError) as exc:
            problems.append(f"{label}: {exc}")
    return built, problems


def check_spec_problems(specs: Iterable[HealthCheckSpec]) -> list[str]:
    """Every problem with ``health: checks:`` entries, one line each naming ``file:line:health.checks[name].key``.

    What :func:`amas_otel.config.load_settings` runs on the configuration:
    option names, values, required options and the checks' own argument
    checks, importing nothing and connecting nowhere.  Building the checks
    (:meth:`HealthCheckService.add_configured_checks`, ``amas-otel doctor``)
    also imports the ``package.module:attribute`` values.
    """
    return _build_checks(tuple(specs), 1.0, resolve=False)[1]


# --- the process-wide service and its module-level functions -----------------

_default: HealthCheckService | None = None
_default_lock = threading.Lock()


def get_health_service() -> HealthCheckService:
    """The process-wide service, built on first use from ``get_settings().health``
    (including its ``checks:`` list; a bad entry raises :class:`ConfigError`).

    The first call configures amas-otel when nothing has yet
    (:func:`amas_otel.sdk.configure_on_first_use`): check spans, gauges and logs go where configured.
    """
    global _default
    configure_on_first_use("get_health_service")
    with _default_lock:
        if _default is None:
            service = HealthCheckService()
            service.add_configured_checks(get_settings().health.checks)
            _default = service
        return _default


def add_health_check(
    name: str, check: HealthCheck | Callable[[], Any], *, critical: bool = True, timeout: float | None = None
) -> HealthCheck:
    """Register ``check`` with the process-wide service (see :meth:`HealthCheckService.add`)."""
    return get_health_service().add(name, check, critical=critical, timeout=timeout)


def remove_health_check(name: str) -> bool:
    """Unregister ``name`` from the process-wide service."""
    return get_health_service().remove(name)


async def check_health(*, fresh: bool = False) -> dict[str, Any]:
    """The process-wide report as a dict (cached per ``HEALTH_CHECK_INTERVAL``)."""
    return await get_health_service().check_health(fresh=fresh)


async def check_dependency_health(name: str) -> HealthCheckResult:
    """Run the process-wide check ``name`` now; the result has ``.status`` and ``.message``."""
    return await get_health_service().check_dependency(name)


def add_database_health_check(
    name: str, connect: Callable[[], Any], *, query: str = "SELECT 1", critical: bool = True, timeout: float | None = None
) -> HealthCheck:
    """:class:`DatabaseHealthCheck` on the process-wide service."""
    return add_health_check(name, DatabaseHealthCheck(connect, query=query), critical=critical, timeout=timeout)


def add_cache_health_check(name: str, client: Any, *, critical: bool = True, timeout: float | None = None) -> HealthCheck:
    """:class:`CacheHealthCheck` on the process-wide service."""
    return add_health_check(name, CacheHealthCheck(client), critical=critical, timeout=timeout)


def add_external_api_health_check(
    name: str,
    url: str,
    check: Callable[[Any], Any] | None = None,
    *,
    expected_status: int | Iterable[int] = 200,
    headers: Mapping[str, str] | None = None,
    critical: bool = True,
    timeout: float | None = None,
) -> HealthCheck:
    """:class:`ExternalAPIHealthCheck` on the process-wide service; ``check(response)`` judges the answer
    (``add_external_api_health_check("payment_api", url, check_payment_api)``)."""
    api_check = ExternalAPIHealthCheck(url, check, expected_status=expected_status, headers=headers)
    return add_health_check(name, api_check, critical=critical, timeout=timeout)


def add_file_system_health_check(
    name: str, path: str, *, writable: bool = False, min_free_bytes: int = 0, critical: bool = True, timeout: float | None = None
) -> HealthCheck:
    """:class:`FileSystemHealthCheck` on the process-wide service."""
    check = FileSystemHealthCheck(path, writable=writable, min_free_bytes=min_free_bytes)
    return add_health_check(name, check, critical=critical, timeout=timeout)


def add_memory_health_check(
    name: str,
    max_usage_percent: float = 90.0,
    *,
    warn_usage_percent: float | None = None,
    critical: bool = True,
    timeout: float | None = None,
) -> HealthCheck:
    """:class:`MemoryHealthCheck` on the process-wide service."""
    check = MemoryHealthCheck(max_usage_percent, warn_usage_percent=warn_usage_percent)
    return add_health_check(name, check, critical=critical, timeout=timeout)


def add_disk_health_check(
    name: str,
    max_usage_percent: float = 90.0,
    *,
    path: str = "/",
    warn_usage_percent: float | None = None,
    critical: bool = True,
    timeout: float | None = None,
) -> HealthCheck:
    """:class:`DiskHealthCheck` on the process-wide service."""
    check = DiskHealthCheck(path, max_usage_percent, warn_usage_percent=warn_usage_percent)
    return add_health_check(name, check, critical=critical, timeout=timeout)


def add_network_health_check(
    name: str, host: str, port: int | None = None, *, critical: bool = True, timeout: float | None = None
) -> HealthCheck:
    """:class:`NetworkHealthCheck` on the process-wide service."""
    return add_health_check(name, NetworkHealthCheck(host, port), critical=critical, timeout=timeout)


def add_service_health_check(
    name: str, func: Callable[[], Any], *, critical: bool = True, timeout: float | None = None
) -> HealthCheck:
    """:class:`ServiceHealthCheck` on the process-wide service."""
    return add_health_check(name, ServiceHealthCheck(func), critical=critical, timeout=timeout)
