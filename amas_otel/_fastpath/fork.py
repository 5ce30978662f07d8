"""The child's own ``process.pid`` in the resource after ``os.fork``.

gunicorn ``--preload`` (and any pre-forking server) builds the providers in
the master; each worker inherits them, resource included, so every worker
would report the master's PID.  The SDK refreshes its process-dependent
resource detectors after a fork (``service.instance.id`` by default) through
each provider's private ``_update_resource``; there is no public way to
change a provider's resource, so this does the same for ``process.pid``.
On an SDK without ``_update_resource`` it does nothing.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

from opentelemetry.sdk.resources import Resource

from amas_otel.semconv import ResourceAttr

__all__ = ["refresh_process_after_fork"]

_log = logging.getLogger("amas_otel.sdk")


def refresh_process_after_fork(*providers: Any) -> None:
    """In every forked child, set ``process.pid`` in each of ``providers``' resource to the child's PID."""
    if not hasattr(os, "register_at_fork"):
        return
    refs = [weakref.ref(provider) for provider in providers if provider is not None]

    def after_in_child() -> None:
        update = Resource({ResourceAttr.PROCESS_PID: os.getpid()})
        for ref in refs:
            provider = ref()
            update_resource = getattr(provider, "_update_resource", None)
            if update_resource is None:
                continue
            try:
                update_resource(update)
            except Exception:  # noqa: BLE001 - a fork must never fail over telemetry
                _log.debug("amas_otel: refreshing the resource after fork failed", exc_info=True)

    os.register_at_fork(after_in_child=after_in_child)
