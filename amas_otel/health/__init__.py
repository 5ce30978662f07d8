"""Health checks as OpenTelemetry signals, with Kubernetes endpoints.

>>> from amas_otel.health import add_memory_health_check, add_database_health_check, check_health
>>> add_memory_health_check("memory", max_usage_percent=90.0)
>>> add_database_health_check("main_db", lambda: psycopg.connect(DSN))
>>> report = await check_health()          # {"status": "healthy", "uptime_seconds": ..., "checks": {...}}
>>> app.include_router(health_router(details_token=TOKEN))   # /health, /health/live, /ready, /detailed

Check types live in :mod:`amas_otel.health.checks`, running, caching and the
aggregate rule in :mod:`amas_otel.health.service`, endpoints in
:mod:`amas_otel.health.router` (imported on first use: FastAPI is optional).
"""

from __future__ import annotations

from typing import Any

from amas_otel.health import checks as _checks
from amas_otel.health import service as _service
from amas_otel.health.checks import *  # noqa: F403 - the public API is the two modules' __all__
from amas_otel.health.service import *  # noqa: F403

__all__ = [*_checks.__all__, *_service.__all__, "health_router", "HEALTH_JSON"]


def __getattr__(name: str) -> Any:
    # The router needs FastAPI, an optional dependency: import it on first use.
    if name in ("health_router", "HEALTH_JSON"):
        from amas_otel.health import router

        return getattr(router, name)
    raise AttributeError(f"module 'amas_otel.health' has no attribute {name!r}")
