"""Audit and security records: authentication, authorization and security events, whatever LOG_LEVEL says.

Each record goes through the logging pipeline (redacted like every record,
exported as an OTel log record with an event name) and, as a span event of
the same name, onto the current span.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from opentelemetry import trace

from amas_otel import semconv
from amas_otel.logging.bridge import attribute_value
from amas_otel.logging.pipeline import active_pipeline, ensure_logging
from amas_otel.redaction import get_redactor

__all__ = ["SecurityLogger", "security_logger"]

_log = logging.getLogger("amas_otel.logging")

_SECURITY_LEVELS = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}


class SecurityLogger:
    """Audit records: OTel log records with an event name, emitted whatever LOG_LEVEL says.

    With audit enabled (``LOG_ENABLE_AUDIT``) each call writes a record through
    the logging pipeline (redacted like every record) and adds a span event of
    the same name to the current span.  Authentication attempts are counted by
    :meth:`amas_otel.metrics.MetricsService.record_authentication` in any case.
    """

    def __init__(self, *, tracer_provider: Any = None) -> None:
        del tracer_provider  # events go on the *current* span, whichever provider made it

    def log_authentication(
        self, user: str, success: bool, ip_address: str | None = None, *, method: str | None = None, **details: Any
    ) -> None:
        """One authentication attempt by ``user`` from ``ip_address``."""
        outcome = "success" if success else "failure"
        self._count_authentication(bool(success), method)
        fields = {semconv.AUDIT_USER: user, semconv.AUDIT_OUTCOME: outcome, **details}
        if ip_address is not None:
            fields[semconv.CLIENT_ADDRESS] = ip_address
        if method is not None:
            fields["amas.auth.method"] = method
        self._emit(
            semconv.AUDIT_AUTHENTICATION,
            "info" if success else "warning",
            "authentication succeeded" if success else "authentication failed",
            fields,
        )

    def log_authorization(self, user: str, resource: str, action: str, granted: bool, **details: Any) -> None:
        """One access decision: ``user`` asked to ``action`` on ``resource``."""
        fields = {
            semconv.AUDIT_USER: user,
            semconv.AUDIT_RESOURCE: resource,
            semconv.AUDIT_ACTION: action,
            semconv.AUDIT_OUTCOME: "granted" if granted else "denied",
            **details,
        }
        self._emit(
            semconv.AUDIT_AUTHORIZATION,
            "info" if granted else "warning",
            "access granted" if granted else "access denied",
            fields,
        )

    def log_security_event(self, kind: str, severity: str = "medium", **details: Any) -> None:
        """A security-relevant event (``severity``: low, medium, high, critical)."""
        level = _SECURITY_LEVELS.get(str(severity).lower())
        if level is None:
            raise ValueError(f"severity: {severity!r} is not accepted; expected one of low, medium, high, critical")
        fields = {semconv.AUDIT_KIND: kind, semconv.AUDIT_SEVERITY: str(severity).lower(), **details}
        self._emit(semconv.AUDIT_SECURITY, level, f"security event: {kind}", fields)

    @staticmethod
    def _count_authentication(success: bool, method: str | None) -> None:
        try:
            from amas_otel.metrics import get_metrics_service

            get_metrics_service().record_authentication(success, method=method)
        except Exception:  # noqa: BLE001 - a metrics failure must not fail the login
            _log.debug("amas_otel: cannot count an authentication attempt", exc_info=True)

    @staticmethod
    def _emit(event_name: str, level: str, message: str, fields: dict[str, Any]) -> None:
        ensure_logging("security_logger")
        pipeline = active_pipeline()
        if pipeline is not None and not pipeline.config.enable_audit:
            return
        event_dict: dict[str, Any] = {"event": message, "logger": "amas_otel.audit", "event_name": event_name, **fields}
        processors = pipeline.processors if pipeline is not None else structlog.get_config()["processors"]
        try:
            # Run the pipeline directly: audit records bypass the level filter.
            for processor in processors:
                event_dict = processor(None, level, event_dict)
            if pipeline is not None and isinstance(event_dict, str):
                pipeline.stream.write(event_dict + "\n")
                pipeline.stream.flush()
        except Exception:  # noqa: BLE001 - see _count_authentication
            _log.debug("amas_otel: cannot write an audit record", exc_info=True)
            return
        span = trace.get_current_span()
        if span.is_recording():
            cleaned, _ = get_redactor().redact_mapping(fields)
            span.add_event(event_name, {k: attribute_value(v) for k, v in cleaned.items() if v is not None})


#: The process-wide :class:`SecurityLogger`.
security_logger = SecurityLogger()
