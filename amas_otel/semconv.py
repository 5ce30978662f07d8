"""Every metric, attribute and event name amas-otel emits, in one place.

Names follow the OpenTelemetry semantic conventions where one exists
(``http.server.request.duration``, ``error.type``, ``service.name``…);
everything else lives under the ``amas.`` namespace.  The README's signal
table documents each of them; a test keeps the two in step.
"""

from __future__ import annotations

__all__ = [
    "INSTRUMENTATION_SCOPE",
    "ResourceAttr",
]

#: Instrumentation scope name used for every tracer, meter and logger of amas-otel itself.
INSTRUMENTATION_SCOPE = "amas_otel"


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

# --- logging / correlation (issue: logging) -------------------------------
# Agreed: counter "amas.log.records" (attrs amas.log.level, amas.component);
# counter "amas.auth.attempts" (attr amas.auth.outcome = success|failure).

# --- redaction -------------------------------------------------------------

# --- circuit breaker -------------------------------------------------------
# Agreed: observable gauge "amas.breaker.state" unit "{state}" (attrs amas.breaker.name,
# amas.breaker.state = closed|open|half_open; 1 for the current state, 0 otherwise);
# observable counter "amas.breaker.calls" unit "{call}" (attrs amas.breaker.name,
# amas.breaker.outcome = success|failure|timeout|rejected).

# --- error recovery --------------------------------------------------------
# Agreed: counter "amas.recovery.attempts" (attrs amas.recovery.strategy, amas.recovery.outcome, error.type).

# --- health ----------------------------------------------------------------
# Agreed: observable gauge "amas.health.check.status" unit "{status}" (attrs amas.health.check.name,
# amas.health.check.critical = true|false; value 1 healthy, 0.5 degraded, 0 unhealthy);
# histogram "amas.health.check.duration" unit "s".

# --- metrics service / http ------------------------------------------------
# Agreed: histogram "http.server.request.duration" unit "s" (attrs http.request.method, http.route,
# http.response.status_code); counter "amas.errors" unit "{error}" (attrs error.type, amas.component).

# --- rate limiting ---------------------------------------------------------
# Agreed: counter "amas.ratelimit.rejections" unit "{request}".
