"""Asking the OTLP log encoder whether it takes some records, without sending them.

:class:`amas_otel._sanitize.RecordIsolatingLogExporter` uses it to find the
records of a failed batch that cannot be encoded.  Private name:
``opentelemetry.exporter.otlp.proto.common._log_encoder.encode_logs``, the
encoder the OTLP log exporters themselves call; the logs signal has no
public encoder module (traces and metrics have ``trace_encoder`` and
``metrics_encoder``).  Without it (another exporter release) :func:`encodes`
answers None: a failed batch is then returned as it was, unexamined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
except ImportError:  # pragma: no cover - another exporter layout
    encode_logs = None

__all__ = ["encodes"]


def encodes(records: Sequence[Any]) -> bool | None:
    """True when the OTLP encoder takes ``records``, False when it refuses them, None when it cannot be asked."""
    if encode_logs is None:
        return None
    try:
        encode_logs(records)
    except Exception:  # noqa: BLE001 - any refusal is the answer
        return False
    return True
