"""The AMAS guide's integration example as a runnable FastAPI service.

    uvicorn examples.app:app --port 8000

Logging context, a circuit breaker around a downstream call, the metrics
service, health checks, input validation and rate limiting, all through
:func:`amas_otel.fastapi.instrument_app`.  Routes:

* ``GET  /api/data`` — the guide's hello route (logs inside a ``LoggingContext``)
* ``GET  /api/orders/{order_id}`` — validated path parameter, a business event
* ``POST /api/users`` — required fields, e-mail and password checks (400 with the field named)
* ``GET  /api/reports/{name}`` — ``daily`` answers; any other name hits an unguarded ``KeyError``
  (a bug left in on purpose): what an unexpected exception produces (a JSON 500, a ``request failed``
  log record with the exception, an ``exception`` span event)
* ``GET  /api/downstream`` — calls the simulated dependency through the breaker
  ``downstream``: failures open it, then 503 + ``Retry-After``
* ``POST /admin/dependency/{state}`` — ``up`` / ``down``; ``down`` makes the
  dependency fail and its (critical) health check report unhealthy (at the
  next check run: ``HEALTH_CHECK_INTERVAL``).  Needs
  ``Authorization: Bearer $AMAS_EXAMPLE_ADMIN_TOKEN`` (default ``change-me``):
  none → 401, a wrong one → 403.
* ``/health``, ``/health/ready``, ``/health/live``, ``/health/detailed``, ``/metrics``

Environment: ``AMAS_EXAMPLE_INSTRUMENT=0`` serves the same routes with no
amas-otel wiring at all (the baseline the benchmarks compare against, and the
app ``opentelemetry-instrument`` / ``amas-otel-instrument`` instrument from
outside); its logs are then plain structlog JSON lines on stderr at
``LOG_LEVEL``, unless a launcher configured logging first, so every variant
logs the same lines at the same level.  ``AMAS_EXAMPLE_RATE_LIMIT`` sets requests per minute per client
(default 600000: present but not in the way of a benchmark).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

from amas_otel.breaker import CircuitBreakerConfig, get_circuit_breaker_service
from amas_otel.errors import (
    AuthenticationError,
    AuthorizationError,
    ValidationError,
    validate_email,
    validate_password_strength,
    validate_required_fields,
)
from amas_otel.logging import LoggingContext, get_logger
from amas_otel.metrics import get_metrics_service

__all__ = ["app", "create_app"]

_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REPORTS = {"daily": ["orders", "users"]}


class _Dependency:
    """A simulated downstream service that can be switched down."""

    def __init__(self) -> None:
        self.up = True

    async def fetch(self) -> dict[str, str]:
        await asyncio.sleep(0)
        if not self.up:
            raise ConnectionError("downstream refused the connection")
        return {"downstream": "ok"}

    async def health(self) -> dict[str, str]:
        if self.up:
            return {"status": "healthy", "message": "downstream reachable"}
        return {"status": "unhealthy", "message": "downstream is down"}


class NewUser(BaseModel):
    email: str | None = None
    name: str | None = None
    password: str | None = None


def create_app(*, instrument: bool | None = None, **fastapi_options: Any) -> FastAPI:
    """Build the example service; ``instrument`` defaults to ``AMAS_EXAMPLE_INSTRUMENT`` (on), ``fastapi_options`` go to ``FastAPI()``."""
    if instrument is None:
        instrument = os.environ.get("AMAS_EXAMPLE_INSTRUMENT", "1") not in ("0", "false", "no")
    app = FastAPI(title="amas-otel example service", **fastapi_options)
    logger = get_logger("example", "api")
    dependency = _Dependency()
    breaker = get_circuit_breaker_service().create_breaker(
        "downstream", CircuitBreakerConfig(failure_threshold=3, recovery_timeout=5.0, success_threshold=1, timeout=2.0)
    )
    admin_token = os.environ.get("AMAS_EXAMPLE_ADMIN_TOKEN", "change-me")

    @app.get("/api/data")
    async def get_data(correlation_id: str | None = None) -> dict[str, str]:
        with LoggingContext(correlation_id=correlation_id):
            logger.info("Fetching data", action="get_data")
            return {"message": "Hello World"}

    @app.get("/api/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, str]:
        if not _ORDER_ID.fullmatch(order_id):
            raise ValidationError("Field 'order_id' must be 1-64 letters, digits, '-' or '_'", field="order_id")
        get_metrics_service().record_business_event("order_lookup")
        return {"order_id": order_id, "status": "shipped"}

    @app.post("/api/users", status_code=201)
    async def create_user(user: NewUser) -> dict[str, str]:
        data = user.model_dump()
        validate_required_fields(data, ["email", "name", "password"])
        email = validate_email(data["email"])
        validate_password_strength(data["password"])
        get_metrics_service().record_business_event("user_registration")
        return {"email": email, "name": data["name"]}

    @app.get("/api/reports/{name}")
    async def get_report(name: str) -> dict[str, object]:
        return {"report": name, "rows": _REPORTS[name]}

    @app.get("/api/downstream")
    async def downstream() -> dict[str, str]:
        try:
            return await breaker.call(dependency.fetch)
        except ConnectionError:
            # The breaker counted the failure; CircuitBreakerOpenException is left
            # to instrument_app's handler (503 + Retry-After).
            raise HTTPException(502, "Downstream dependency failed") from None

    @app.post("/admin/dependency/{state}")
    async def set_dependency(state: str, authorization: str | None = Header(default=None)) -> dict[str, str]:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthenticationError("Bearer token required", field="Authorization")
        if authorization.removeprefix("Bearer ") != admin_token:
            raise AuthorizationError("Token may not change dependencies", field="Authorization")
        if state not in ("up", "down"):
            raise ValidationError("Field 'state' must be 'up' or 'down'", field="state")
        dependency.up = state == "up"
        return {"dependency": state}

    if instrument:
        _instrument(app, dependency)
    else:
        _plain_logging()
    return app


def _plain_logging() -> None:
    # What the service would do without amas-otel: JSON lines with a UTC
    # timestamp at LOG_LEVEL.  A launcher (amas-otel-instrument) that set
    # logging up before the app was imported keeps its pipeline.
    import structlog

    if structlog.is_configured():
        return
    level = logging.getLevelNamesMapping().get(os.environ.get("LOG_LEVEL", "INFO").upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _instrument(app: FastAPI, dependency: _Dependency) -> None:
    import amas_otel
    from amas_otel.fastapi import instrument_app
    from amas_otel.health import add_health_check, get_health_service
    from amas_otel.ratelimit import RateLimiter

    amas_otel.configure()
    add_health_check("downstream", dependency.health, critical=True)
    per_minute = float(os.environ.get("AMAS_EXAMPLE_RATE_LIMIT", "600000"))
    instrument_app(
        app,
        health_service=get_health_service(),
        rate_limiter=RateLimiter(requests_per_minute=per_minute, burst_size=max(int(per_minute // 60), 1)),
        validation_errors="400",  # the guide's 400 naming the fields (the OpenAPI schema says so too)
    )


app = create_app()
