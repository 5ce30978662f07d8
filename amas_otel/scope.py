"""amas-otel's own instrumentation scope: one name, version and schema URL for every meter and tracer.

The SDK keys meters and tracers by (name, version, schema_url): a meter
asked for with the name alone is a second scope beside the versioned one, and
its instruments are exported apart (a second ``otel_scope_*`` label set in
Prometheus).  Every amas-otel module gets its meter and tracer here so all
of them share one scope that says which semantic-conventions version its
names follow.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace

from amas_otel.semconv import INSTRUMENTATION_SCOPE, SCHEMA_URL

__all__ = ["amas_meter", "amas_tracer"]


def _version() -> str:
    from amas_otel import __version__

    return __version__


def amas_meter(meter_provider: Any = None) -> metrics.Meter:
    """The meter of amas-otel's scope on ``meter_provider`` (default: the global one)."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    return provider.get_meter(INSTRUMENTATION_SCOPE, _version(), schema_url=SCHEMA_URL)


def amas_tracer(tracer_provider: Any = None) -> trace.Tracer:
    """The tracer of amas-otel's scope on ``tracer_provider`` (default: the global one)."""
    return trace.get_tracer(INSTRUMENTATION_SCOPE, _version(), tracer_provider=tracer_provider, schema_url=SCHEMA_URL)
