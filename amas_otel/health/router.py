"""Kubernetes-style health endpoints as a FastAPI router.

=====================  ===================================================  ==========
path                   answers                                              503 when
=====================  ===================================================  ==========
``/health``            aggregate status, timestamp, uptime, version,        aggregate unhealthy
                       each check's status
``/health/live``       the process itself (the event loop answers)          never
``/health/ready``      critical checks only                                 a critical check unhealthy
``/health/detailed``   every check with message and observed values,        as ``/health``
                       redacted; guarded by ``details``
=====================  ===================================================  ==========

``Accept: application/health+json`` selects the IETF health-check draft's
shape (``status`` pass/warn/fail, ``checks`` keyed by component).  Bodies are
rendered once per check run and served as cached bytes, so a probe costs a
dictionary lookup, not a check run or a JSON encoding.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response

from amas_otel.config import ConfigError
from amas_otel.health.checks import HealthStatus
from amas_otel.health.service import HealthCheckService, HealthReport, get_health_service, iso_utc

__all__ = ["health_router", "HEALTH_JSON"]

HEALTH_JSON = "application/health+json"
_JSON = "application/json"
_DETAILS_MODES = ("token", "on", "off")
_WITHHELD = "[withheld: amas_otel.redaction is not available]"


def _encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _redact(document: Any) -> Any:
    """Pass ``document`` through the configured redactor; withhold free text if there is none."""
    try:
        from amas_otel.redaction import get_redactor
    except ImportError:
        return _withhold(document)
    return get_redactor().redact(document)


def _withhold(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _WITHHELD if k in ("message", "output", "details") else _withhold(v) for k, v in document.items()}
    if isinstance(document, list):
        return [_withhold(v) for v in document]
    return document


def _ietf_check(result: Any, detailed: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"componentType": result.type, "status": result.status.ietf, "time": iso_utc(result.timestamp)}
    if detailed:
        entry |= {
            "observedValue": round(result.duration_seconds * 1000, 3),
            "observedUnit": "ms",
            "output": result.message,
            "details": dict(result.details),
        }
        if result.error_type:
            entry["error_type"] = result.error_type
    return entry


def _render(kind: str, report: HealthReport, ietf: bool) -> tuple[bytes, int]:
    checks = report.checks
    if kind == "ready":
        checks = {name: r for name, r in checks.items() if r.critical}
        status = HealthStatus.HEALTHY if report.ready else HealthStatus.UNHEALTHY
        code = 200 if report.ready else 503
    else:
        status = report.status
        code = 503 if status is HealthStatus.UNHEALTHY else 200
    detailed = kind == "detailed"
    if ietf:
        document: dict[str, Any] = {
            "status": status.ietf,
            "version": report.version,
            "checks": {name: [_ietf_check(r, detailed)] for name, r in checks.items()},
        }
    elif detailed:
        document = report.to_dict()
    else:
        document = {
            "status": status.value,
            "timestamp": iso_utc(report.timestamp),
            "uptime_seconds": round(report.uptime_seconds, 3),
            "version": report.version,
            "checks": {name: r.status.value for name, r in checks.items()},
        }
    if detailed:
        document = _redact(document)
    return _encode(document), code


def _wants_ietf(request: Request) -> bool:
    for key, value in request.scope["headers"]:
        if key == b"accept":
            return HEALTH_JSON.encode() in value
    return False


class _Cached(Response):
    """A response whose body and headers were prepared in advance (no per-request encoding)."""

    def __init__(self, body: bytes, status_code: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.status_code = status_code
        self.background = None
        # A copy: middleware may add headers to a response object.
        self.raw_headers = list(raw_headers)

    @staticmethod
    def headers_for(body: bytes, media_type: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]


@dataclass(frozen=True, slots=True)
class _RenderedView:
    """One endpoint's response to ``report``, rendered once and served until the report changes."""

    report: HealthReport
    body: bytes
    status_code: int
    headers: list[tuple[bytes, bytes]]


class _Views:
    """Rendered bodies of the latest report, per (endpoint, format)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bool], _RenderedView] = {}

    def respond(self, kind: str, report: HealthReport, request: Request) -> Response:
        ietf = _wants_ietf(request)
        key = (kind, ietf)
        view = self._cache.get(key)
        if view is None or view.report is not report:
            body, code = _render(kind, report, ietf)
            headers = _Cached.headers_for(body, HEALTH_JSON if ietf else _JSON)
            view = self._cache[key] = _RenderedView(report, body, code, headers)
        return _Cached(view.body, view.status_code, view.headers)


def health_router(
    service: HealthCheckService | None = None,
    *,
    details_token: str | None = None,
    details: str = "token",
    prefix: str = "/health",
    tags: list[str] | None = None,
) -> APIRouter:
    """A router with ``{prefix}``, ``{prefix}/live``, ``{prefix}/ready`` and ``{prefix}/detailed``.

    ``service`` defaults to :func:`get_health_service`.  ``details`` guards
    ``/detailed``: ``"token"`` (default) answers only requests carrying
    ``Authorization: Bearer <details_token>`` or ``X-Health-Token:
    <details_token>`` (401 otherwise; 403 while no token is configured),
    ``"on"`` answers everyone, ``"off"`` does not serve the path.  The
    router's lifespan starts and stops the service's background refresh.
    """
    problems = []
    if details not in _DETAILS_MODES:
        problems.append(f"details: got {details!r}; expected one of {', '.join(_DETAILS_MODES)}")
    if details_token is not None and (not isinstance(details_token, str) or not details_token):
        problems.append("details_token: expected a non-empty string or None")
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/"):
        problems.append(f"prefix: got {prefix!r}; expected a path such as '/health' (leading '/', no trailing '/')")
    if problems:
        raise ConfigError(problems)
    svc = service if service is not None else get_health_service()
    views = _Views()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            await svc.stop()

    router = APIRouter(prefix=prefix, tags=tags or ["health"], lifespan=lifespan)
    live = {
        ietf: (body, _Cached.headers_for(body, HEALTH_JSON if ietf else _JSON))
        for ietf, body in ((False, _encode({"status": "healthy"})), (True, _encode({"status": "pass"})))
    }

    @router.get("/live", summary="Liveness: the process itself, never its dependencies")
    async def liveness(request: Request) -> Response:
        body, headers = live[_wants_ietf(request)]
        return _Cached(body, 200, headers)

    def endpoint(kind: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            return views.respond(kind, await svc.report(), request)

        return handler

    router.add_api_route("", endpoint("summary"), methods=["GET"], summary="Aggregate health")
    router.add_api_route("/ready", endpoint("ready"), methods=["GET"], summary="Readiness: critical dependencies")
    if details == "off":
        return router
    detailed = endpoint("detailed")
    if details == "on":
        router.add_api_route("/detailed", detailed, methods=["GET"], summary="Every check with observed values")
        return router

    expected = details_token.encode() if details_token else None

    async def guarded(request: Request) -> Response:
        if expected is None:
            return Response(
                _encode({"error": "health details need a token: pass details_token= (or details='on') to health_router"}),
                403,
                media_type=_JSON,
            )
        headers = request.headers
        given = headers.get("x-health-token") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected):
            return Response(
                _encode({"error": "missing or wrong health details token"}),
                401,
                {"WWW-Authenticate": "Bearer"},
                _JSON,
            )
        return await detailed(request)

    router.add_api_route("/detailed", guarded, methods=["GET"], summary="Every check with observed values")
    return router
