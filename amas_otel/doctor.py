"""What ``amas-otel doctor`` looks at beyond the telemetry path: the configured health checks and the circuit breakers.

Nothing here configures telemetry: the doctor is a separate process that must
not open a Prometheus port or export anything on the application's behalf.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

from opentelemetry import metrics, trace

from amas_otel.config import ConfigError, Settings
from amas_otel.semconv import Breaker

__all__ = ["Finding", "run_configured_checks", "breaker_states"]

#: ``(verdict, text)``: verdict is ``ok``, ``warn``, ``FAIL`` or ``info``; only ``FAIL`` fails the doctor.
Finding = tuple[str, str]


class _Silent:
    """A logger that writes nothing: the doctor prints each check's result itself."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def run_configured_checks(settings: Settings) -> list[Finding]:
    """Build the ``health: checks:`` entries and run each once, concurrently, without retries.

    Each check is bounded by its own timeout (else ``HEALTH_CHECK_TIMEOUT``),
    so the whole run ends within the longest one plus about a second.  A
    critical check that is unhealthy, or an entry that cannot be built (a
    ``package.module:attribute`` that does not import…), is a ``FAIL``.
    """
    from amas_otel.health.checks import HealthStatus
    from amas_otel.health.service import HealthCheckService
    from amas_otel.redaction import get_redactor

    health = settings.health
    if not health.enabled:
        return [("info", "health checks are off (HEALTH_CHECK_ENABLED=false)")]
    if not health.checks:
        return [("info", "no health checks in the configuration (health.checks); checks added in code are on the app's /health/detailed")]
    service = HealthCheckService(
        timeout=health.timeout,
        retries=0,
        interval=0,
        enabled=True,
        # Explicit no-op providers: global ones would configure amas-otel in the doctor's process.
        tracer_provider=trace.NoOpTracerProvider(),
        meter_provider=metrics.NoOpMeterProvider(),
        logger=_Silent(),
    )
    try:
        service.add_configured_checks(health.checks)
    except ConfigError as exc:
        return [("FAIL", f"health check configuration: {problem}") for problem in exc.problems]
    report = asyncio.run(service.report(fresh=True))
    redact = get_redactor().redact_text  # a dependency's error text can carry a DSN or a token
    findings: list[Finding] = []
    for name, result in report.checks.items():
        if result.status is HealthStatus.HEALTHY:
            verdict = "ok"
        elif result.status is HealthStatus.UNHEALTHY and result.critical:
            verdict = "FAIL"
        else:
            verdict = "warn"
        kind = f"{result.type}, {'critical' if result.critical else 'not critical'}"
        findings.append(
            (verdict, f"health check {name} ({kind}): {result.status.value}: {redact(result.message)} ({result.duration_seconds:.3f}s)")
        )
    return findings


def breaker_states(url: str, timeout: float = 2.0) -> dict[str, str] | None:
    """The circuit breakers a running application reports at its metrics endpoint ``url``: ``{name: state}``.

    Read from the ``amas_breaker_state`` gauge (1 for each breaker's current
    state; ``amas_breaker_state_ratio`` through the collector, which suffixes
    gauges of unit 1).  None when nothing answers there with Prometheus text.
    """
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a URL the user configured
            text = response.read().decode("utf-8", "replace")
        families = list(text_string_to_metric_families(text))
    except (OSError, ValueError):
        return None
    gauge = Breaker.STATE_METRIC.replace(".", "_")
    states: dict[str, str] = {}
    for family in families:
        if family.name not in (gauge, f"{gauge}_ratio"):
            continue
        for sample in family.samples:
            name, state = sample.labels.get(Breaker.NAME.replace(".", "_")), sample.labels.get(Breaker.STATE.replace(".", "_"))
            if name and state and sample.value == 1:
                states[name] = state
    return states
