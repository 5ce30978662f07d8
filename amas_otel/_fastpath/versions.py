"""The releases the fast paths were tested against: ``(oldest tested, first untested)`` per distribution.

Kept in step with the bounds in ``pyproject.toml`` and ``constraints/oldest.txt``:
CI runs the suite against the oldest and the newest releases allowed.
"""

from __future__ import annotations

__all__ = ["OTEL_API", "OTEL_SDK", "OTLP_EXPORTER", "STRUCTLOG"]

OTEL_API = {"opentelemetry-api": ("1.45.2", "1.46")}
OTEL_SDK = {**OTEL_API, "opentelemetry-sdk": ("1.45.2", "1.46")}
OTLP_EXPORTER = {
    "opentelemetry-exporter-otlp-proto-common": ("1.45.2", "1.46"),
    "opentelemetry-exporter-otlp-proto-http": ("1.45.2", "1.46"),
}
STRUCTLOG = {"structlog": ("24.1", "26.2")}
