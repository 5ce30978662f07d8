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


# --- logging / correlation (issue: logging) -------------------------------

# --- redaction -------------------------------------------------------------

# --- circuit breaker -------------------------------------------------------

# --- error recovery --------------------------------------------------------

# --- health ----------------------------------------------------------------

# --- metrics service / http ------------------------------------------------

# --- rate limiting ---------------------------------------------------------
