"""Whether OpenTelemetry's ``FastAPIInstrumentor`` instrumented an application: an attribute check, not a fast path.

``opentelemetry-instrumentation-fastapi`` marks each application it
instruments with ``_is_instrumented_by_opentelemetry`` and offers no public
question for it.  Reading it needs no gate: a release without the attribute
makes this answer False, and amas-otel then adds its own telemetry layer
beside the instrumentor's instead of standing back.
"""

from __future__ import annotations

from typing import Any

__all__ = ["instrumented_by_opentelemetry"]


def instrumented_by_opentelemetry(app: Any) -> bool:
    """True when ``FastAPIInstrumentor`` instrumented ``app`` (its own wrapper, or ``instrument_app``)."""
    return bool(getattr(app, "_is_instrumented_by_opentelemetry", False))
