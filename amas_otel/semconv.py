"""Every metric, attribute and event name amas-otel emits, in one place.

Names follow the OpenTelemetry semantic conventions where one exists
(``http.server.request.duration``, ``error.type``, ``service.name``…);
everything else lives under the ``amas.`` namespace.  The README's signal
table documents each of them; a test keeps the two in step.
"""

from __future__ import annotations

__all__ = [
    "INSTRUMENTATION_SCOPE",
    "SCHEMA_URL",
    "ResourceAttr",
]

#: Instrumentation scope name used for every tracer, meter and logger of amas-otel itself.
INSTRUMENTATION_SCOPE = "amas_otel"
#: The semantic-conventions version whose names amas-otel emits (``db.system.name``,
#: ``system.memory.state``, ``vcs.ref.head.revision``…), carried by its meters and tracers.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"


class ResourceAttr:
    """Resource attributes filled by :mod:`amas_otel.resource`."""

    SERVICE_NAME = "service.name"
    SERVICE_VERSION = "service.version"
    SERVICE_INSTANCE_ID = "service.instance.id"
    #: OTel VCS semantic convention: the revision (commit) the service was built from.
    VCS_REF_HEAD_REVISION = "vcs.ref.head.revision"
    VCS_REF_HEAD_NAME = "vcs.ref.head.name"
    HOST_NAME = "host.name"
    PROCESS_PID = "process.pid"
    PROCESS_RUNTIME_NAME = "process.runtime.name"
    PROCESS_RUNTIME_VERSION = "process.runtime.version"
    PROJECT_ROOT = "amas.project.root"


#: Attribute naming the application component a signal is about.
COMPONENT = "amas.component"
#: OTel semantic convention attribute for the class of an error.
ERROR_TYPE = "error.type"
#: OTel semantic convention attribute for a rendered traceback (log records of ``logger.exception``).
EXCEPTION_STACKTRACE = "exception.stacktrace"
#: OTel semantic convention attributes for an exception's class (module-qualified) and message.
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"

# --- logging / correlation (issue: logging) -------------------------------
# Agreed: counter "amas.log.records" (attrs amas.log.level, amas.component);
# counter "amas.auth.attempts" (attr amas.auth.outcome = success|failure).

#: Observable counter of log records, unit "{record}", attrs LOG_LEVEL and COMPONENT.
LOG_RECORDS = "amas.log.records"
#: Log level of a record (lower case: debug, info, warning, error, critical).
LOG_LEVEL = "amas.log.level"
#: Span event added for each warning/error record logged while the span is active.
LOG_EVENT = "amas.log"
#: Attribute of LOG_EVENT holding the record's message.
LOG_MESSAGE = "amas.log.message"
#: Correlation id of the request (LoggingContext / X-Correlation-ID) on spans.
CORRELATION_ID = "amas.correlation.id"
#: Prefix of span attributes made from other LoggingContext values (amas.context.<name>).
CONTEXT_PREFIX = "amas.context."
#: OTel semantic convention attribute for the user a span acts for (LoggingContext user_id).
USER_ID = "user.id"
#: Event names of the audit log records (OTel log record event_name) and span events.
AUDIT_AUTHENTICATION = "amas.audit.authentication"
AUDIT_AUTHORIZATION = "amas.audit.authorization"
AUDIT_SECURITY = "amas.audit.security_event"
#: Attributes of audit records.
AUDIT_USER = "amas.audit.user"
AUDIT_OUTCOME = "amas.audit.outcome"
AUDIT_RESOURCE = "amas.audit.resource"
AUDIT_ACTION = "amas.audit.action"
AUDIT_KIND = "amas.audit.kind"
AUDIT_SEVERITY = "amas.audit.severity"
#: OTel semantic convention attribute for the client's address.
CLIENT_ADDRESS = "client.address"

# --- redaction -------------------------------------------------------------
#: Number of values redacted in a span / log record (like the collector redaction processor's summary).
REDACTION_COUNT = "amas.redaction.count"
#: Counter of spans / log records dropped because redaction could not run as designed (fail closed).
REDACTION_DROPPED = "amas.redaction.dropped"
#: Attribute of REDACTION_DROPPED: ``span`` or ``log_record``.
REDACTION_SIGNAL = "amas.redaction.signal"

# --- fast paths ------------------------------------------------------------
#: Counter of fast paths switched off at run time after an error (amas_otel._fastpath.gate).
FASTPATH_FAILURES = "amas.fastpath.failures"
#: Attribute of FASTPATH_FAILURES: the fast path's name (``span_export``, ``span_fields``, ``log_export``, ``histogram``).
FASTPATH_NAME = "amas.fastpath.name"

# --- encodable telemetry (amas_otel._sanitize) -------------------------------
#: Observable counter, unit "{value}": telemetry values UTF-8 cannot encode (lone surrogates) or the
#: OTLP encoder refuses, replaced (U+FFFD, or their text) instead of failing the line or the batch.
SANITIZED_VALUES = "amas.telemetry.values.sanitized"
#: Observable counter, unit "{record}": log records dropped because they could not be encoded even sanitised.
DROPPED_RECORDS = "amas.telemetry.log_records.dropped"

# --- circuit breaker -------------------------------------------------------
# Agreed: observable gauge "amas.breaker.state" unit "1", the hw.status pattern (attrs amas.breaker.name,
# amas.breaker.state = closed|open|half_open; 1 for the current state, 0 otherwise);
# observable counter "amas.breaker.calls" unit "{call}" (attrs amas.breaker.name,
# amas.breaker.outcome = success|failure|timeout|rejected).


class Breaker:
    """Circuit breaker signals (:mod:`amas_otel.resilience_otel`); log records use the same names."""

    #: Observable gauge like ``hw.status``: one series per state, 1 for the current one and 0 for the others.
    STATE_METRIC = "amas.breaker.state"
    STATE_UNIT = "1"
    #: Observable counter of finished or rejected calls, read from the breaker's own counts.
    CALLS_METRIC = "amas.breaker.calls"
    CALLS_UNIT = "{call}"
    NAME = "amas.breaker.name"
    STATE = "amas.breaker.state"
    OUTCOME = "amas.breaker.outcome"
    PREVIOUS_STATE = "amas.breaker.previous_state"
    #: Consecutive failures (closed) or trial successes (half-open) when the state changed.
    FAILURES = "amas.breaker.consecutive_failures"
    RETRY_AFTER = "amas.breaker.retry_after"
    #: Log records of transitions: what the last failure was (exception class or ``timeout``).
    LAST_FAILURE = "amas.breaker.last_failure"
    #: Span event (and log event) for every state transition.
    STATE_CHANGE_EVENT = "amas.breaker.state_change"
    #: Span started for a transition that happens outside any recording span.
    TRANSITION_SPAN = "amas.breaker.transition"
    #: HTTP integration: the dependency a request was sent to.
    DEPENDENCY = "amas.breaker.dependency"

# --- error recovery --------------------------------------------------------
# Agreed: counter "amas.recovery.attempts" (attrs amas.recovery.strategy, amas.recovery.outcome, error.type).


class Recovery:
    """Error recovery signals (:mod:`amas_otel.resilience_otel`)."""

    #: Counter of strategy attempts by strategy and outcome.
    ATTEMPTS_METRIC = "amas.recovery.attempts"
    ATTEMPTS_UNIT = "{attempt}"
    STRATEGY = "amas.recovery.strategy"
    OUTCOME = "amas.recovery.outcome"
    SEVERITY = "amas.recovery.severity"
    OPERATION = "amas.recovery.operation"
    #: Retry attempt number (1 = first retry) and the delay slept before it, in seconds.
    ATTEMPT = "amas.recovery.attempt"
    DELAY = "amas.recovery.delay"
    #: Span around one ``handle_error`` (or ``auto_recover`` recovery).
    HANDLE_SPAN = "amas.recovery.handle_error"
    RETRY_EVENT = "amas.recovery.retry"
    STRATEGY_EVENT = "amas.recovery.strategy"
    MANUAL_INTERVENTION_EVENT = "amas.recovery.manual_intervention"

# --- health ----------------------------------------------------------------


class HealthSignal:
    """Names emitted by :mod:`amas_otel.health`."""

    #: Observable gauge in the ``hw.status`` pattern: per check, one series per result
    #: (CHECK_RESULT = healthy / degraded / unhealthy), 1 for the current result, 0 for the others.
    STATUS_METRIC = "amas.health.check.status"
    STATUS_UNIT = "1"
    #: Histogram, unit "s": one check run, all attempts included.
    DURATION_METRIC = "amas.health.check.duration"
    #: Span name prefix; the span is named ``"health_check <check name>"``.
    SPAN_PREFIX = "health_check"
    #: Span event added before each retry of a failed attempt.
    RETRY_EVENT = "amas.health.check.retry"
    CHECK_NAME = "amas.health.check.name"
    CHECK_TYPE = "amas.health.check.type"
    #: Boolean on every signal (spans, metric points, log records).
    CHECK_CRITICAL = "amas.health.check.critical"
    #: The verdict (healthy / degraded / unhealthy) on spans, duration points, log records, and the
    #: state attribute of STATUS_METRIC (what ``hw.state`` is to ``hw.status``).
    CHECK_RESULT = "amas.health.check.result"
    #: Why the check has its verdict (the result's message), on status-change log records.
    CHECK_MESSAGE = "amas.health.check.message"
    CHECK_ATTEMPTS = "amas.health.check.attempts"
    #: On the retry event: the attempt that failed (1-based).
    ATTEMPT = "amas.health.check.attempt"
    PREVIOUS_RESULT = "amas.health.check.previous_result"

# --- metrics service / http ------------------------------------------------
# Agreed: histogram "http.server.request.duration" unit "s" (attrs http.request.method, http.route,
# http.response.status_code); counter "amas.errors" unit "{error}" (attrs error.type, amas.component).


#: The HTTP methods the semantic conventions know by default (``http.request.method``): RFC 9110's, PATCH
#: (RFC 5789) and QUERY, as opentelemetry-python-contrib's ``sanitize_method`` lists them; others are
#: recorded as ``_OTHER``.  ``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` replaces the list (amas_otel.http_origin).
KNOWN_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"})


class HttpAttr:
    """OTel HTTP semantic-convention attributes of server spans, ``http.server.request.duration`` and request logs."""

    REQUEST_METHOD = "http.request.method"
    #: The method as received, on spans, when it is not a known one (``http.request.method`` is then ``_OTHER``).
    REQUEST_METHOD_ORIGINAL = "http.request.method_original"
    ROUTE = "http.route"
    RESPONSE_STATUS_CODE = "http.response.status_code"
    #: ``2xx``/``4xx``… with ``MetricsService(status_code_classes=True)``, instead of RESPONSE_STATUS_CODE.
    RESPONSE_STATUS_CLASS = "amas.http.response.status_class"
    URL_SCHEME = "url.scheme"
    URL_PATH = "url.path"
    #: The query string, values redacted like every attribute (on spans, when a query was received).
    URL_QUERY = "url.query"
    PROTOCOL_VERSION = "network.protocol.version"
    SERVER_ADDRESS = "server.address"
    SERVER_PORT = "server.port"
    USER_AGENT = "user_agent.original"
    #: Duration of the request in seconds on its log record (the unit of ``http.server.request.duration``).
    REQUEST_DURATION = "http.server.request.duration"


class MetricAttr:
    """``amas.*`` attributes of the metrics service's instruments."""

    OUTCOME = "amas.outcome"
    EVENT_NAME = "amas.event.name"
    OPERATION = "amas.operation.name"
    AUTH_OUTCOME = "amas.auth.outcome"
    AUTH_METHOD = "amas.auth.method"
    AGENT_NAME = "amas.agent.name"
    TASK_TYPE = "amas.task.type"
    CACHE_NAME = "amas.cache.name"
    CACHE_OPERATION = "amas.cache.operation"
    CACHE_RESULT = "amas.cache.result"
    DB_SYSTEM = "db.system.name"
    DB_OPERATION = "db.operation.name"
    FILESYSTEM_MOUNTPOINT = "system.filesystem.mountpoint"
    #: system.filesystem.usage: used / free / reserved.
    FILESYSTEM_STATE = "system.filesystem.state"
    #: system.memory.usage and .utilization: used / free / buffers / cached.
    MEMORY_STATE = "system.memory.state"
    #: Set by the SDK on the data point that absorbs attribute sets beyond the cardinality limit.
    OVERFLOW = "otel.metric.overflow"


class Metric:
    """Instruments of :mod:`amas_otel.metrics`: (name, unit) pairs, semconv names where one exists."""

    HTTP_SERVER_DURATION = ("http.server.request.duration", "s")
    HTTP_SERVER_REQUEST_SIZE = ("http.server.request.body.size", "By")
    HTTP_SERVER_RESPONSE_SIZE = ("http.server.response.body.size", "By")
    ERRORS = ("amas.errors", "{error}")
    BUSINESS_EVENTS = ("amas.business.events", "{event}")
    OPERATION_DURATION = ("amas.operation.duration", "s")
    DB_DURATION = ("db.client.operation.duration", "s")
    AUTH_ATTEMPTS = ("amas.auth.attempts", "{attempt}")
    AGENT_DURATION = ("amas.agent.execution.duration", "s")
    TASK_DURATION = ("amas.task.duration", "s")
    CACHE_OPERATIONS = ("amas.cache.operations", "{operation}")
    CACHE_HIT_RATIO = ("amas.cache.hit_ratio", "1")
    SYSTEM_CPU_UTILIZATION = ("system.cpu.utilization", "1")
    SYSTEM_MEMORY_USAGE = ("system.memory.usage", "By")
    SYSTEM_MEMORY_UTILIZATION = ("system.memory.utilization", "1")
    SYSTEM_FILESYSTEM_USAGE = ("system.filesystem.usage", "By")
    SYSTEM_FILESYSTEM_UTILIZATION = ("system.filesystem.utilization", "1")
    PROCESS_MEMORY_USAGE = ("process.memory.usage", "By")

# --- rate limiting ---------------------------------------------------------
# Agreed: counter "amas.ratelimit.rejections" unit "{request}".

RATELIMIT_REJECTIONS = ("amas.ratelimit.rejections", "{request}")
#: Which limiter store decided: ``memory`` or ``redis``.
RATELIMIT_BACKEND = "amas.ratelimit.backend"
#: ``amas.breaker.name`` of the circuit breaker around the Redis rate limiter's calls.
RATELIMIT_REDIS_BREAKER = "amas.ratelimit.redis"
