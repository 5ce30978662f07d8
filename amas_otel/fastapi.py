"""One call to instrument a FastAPI application.

>>> app = FastAPI()
>>> instrument_app(app, rate_limiter=RateLimiter(requests_per_minute=600, burst_size=50))

wires, outermost first:

1. :class:`RequestTelemetryMiddleware`: the correlation id (what
   ``amas_otel.logging.CorrelationMiddleware`` does: from ``X-Correlation-ID``
   or baggage, in context, echoed on the response), one server span per
   request (no per-message spans), ``http.server.request.duration`` with the
   route *template*, request logs, JSON 500s — one layer, one context switch.
   ``tracing="otel"`` uses OpenTelemetry's ``FastAPIInstrumentor`` for the
   spans instead (with ``exclude_spans=["receive", "send"]`` and its own HTTP
   metrics off).  Either way one place records the duration, so Prometheus
   never sees two families of that name.  Rate limiting, when a limiter is
   given, is applied from within this layer too, once the correlation id and
   the span exist: a 429 carries both and is recorded like any response, and
   no extra layer or ``send`` wrapper is paid per request.  (Standalone, the
   same limiting is :class:`amas_otel.ratelimit.RateLimitMiddleware`.)

plus the health router (``amas_otel.health.health_router``), the metrics
endpoint (Prometheus text at ``PROMETHEUS_METRICS_PATH``) and exception
handlers mapping validation → 400, authentication → 401, authorization → 403,
rate limit → 429, open circuit breaker → 503 (both with ``Retry-After``), and
anything unexpected → 500, each only where the application has no handler of
its own.  Every error body is JSON (:func:`amas_otel.errors.error_body`) with
the correlation id and nothing internal.  FastAPI's ``RequestValidationError``
keeps FastAPI's 422 unless ``validation_errors="400"``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from amas_otel.baggage_limits import cap_baggage
from amas_otel.config import RateLimitSettings, get_settings
from amas_otel.errors import AmasError, AuthenticationError, error_body, send_error
from amas_otel._asgi import (
    CORRELATION_HEADER,
    CorrelationMiddleware,
    correlation_context,
    header_name,
    request_correlation_id,
    with_headers,
)
from amas_otel.http_origin import known_http_methods, normalise_method, proxy_networks, request_origin
from amas_otel.logging import exception_type_name, mark_logged, route_server_loggers
from amas_otel.logging.correlation import context_with
from amas_otel.metrics import MetricsService, get_metrics_service
from amas_otel.sdk import configure_on_first_use
from amas_otel.semconv import CLIENT_ADDRESS, CORRELATION_ID, ERROR_TYPE, HttpAttr, SCHEMA_URL
from amas_otel._fastpath.instrumentors import instrumented_by_opentelemetry
from amas_otel._fastpath.span_fields import set_valid_attributes
from amas_otel.ratelimit import (
    EXEMPT_PATHS,
    RateLimiter,
    RateLimitExceeded,
    RateLimitGate,
    RedisRateLimiter,
)

__all__ = ["instrument_app", "instrument_fastapi", "uninstrument_fastapi", "RequestTelemetryMiddleware"]

_log = logging.getLogger("amas_otel.fastapi")

_LOG_MODES = ("all", "errors", "none")
_TRACING_MODES = ("lean", "otel", "off")
_VALIDATION_MODES = ("fastapi", "400")
# OTel HTTP server span attributes (semantic conventions, stable).
_A_METHOD, _A_ROUTE, _A_STATUS = HttpAttr.REQUEST_METHOD, HttpAttr.ROUTE, HttpAttr.RESPONSE_STATUS_CODE
# ParentBased's delegate samplers (opentelemetry.sdk.trace.sampling).
_PARENT_BASED_DELEGATES = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


class _RequestHeaders(Getter[dict[str, str]]):
    """What propagators read: every request header, by lower-case name, repeated lines joined.

    RFC 9110 (5.3) combines a field's repeated lines into one value separated
    by commas; W3C ``tracestate`` and ``baggage`` say the same for theirs, so
    two ``baggage`` lines reach the propagator as one list of members.
    """

    def get(self, carrier: dict[str, str], key: str) -> list[str] | None:
        value = carrier.get(key.lower())
        return None if value is None else [value]

    def keys(self, carrier: dict[str, str]) -> list[str]:
        return list(carrier)


_REQUEST_HEADERS = _RequestHeaders()


def _header_carrier(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        previous = carrier.get(name)
        carrier[name] = value if previous is None else f"{previous},{value}"
    return carrier


class RequestTelemetryMiddleware:
    """Pure ASGI middleware: correlation, a server span, ``http.server.request.duration``, request logs, JSON 500s.

    One layer, one context switch and one ``send`` wrapper for everything per request:

    * ``correlation_header`` (optional, e.g. ``"X-Correlation-ID"``): what
      ``amas_otel.logging.CorrelationMiddleware`` does, folded in — the id from
      that header, else the ``correlation_id`` baggage entry, else a new UUID;
      the request runs inside ``LoggingContext(correlation_id=...)`` (context
      value and baggage, set up together with the span's context: one context
      switch per request), the server span — or without a ``tracer`` an
      enclosing recording span — gets ``amas.correlation.id``, and the
      response carries the header.
    * ``tracer`` (optional): a SERVER span per request, parent taken from the
      request's headers (all of them, repeated lines joined) by the globally
      configured propagator (``OTEL_PROPAGATORS``: W3C, B3, …), named
      ``{method} {route}`` once routing has matched, with the HTTP semantic
      convention attributes; 5xx sets status ERROR.  No per-message spans.
    * ``service``: the duration histogram, with the matched route's template
      (``scope["route"].path``: ``/api/orders/42`` → ``/api/orders/{order_id}``);
      unmatched requests carry no route.  ``service=None`` records nothing
      (another layer records the metric).
    * ``log_requests``: ``"all"`` (one line per request), ``"errors"`` (5xx and
      unhandled exceptions) or ``"none"``.
    * ``rate_limiter`` (optional): what :class:`amas_otel.ratelimit.RateLimitMiddleware`
      does with ``exempt_paths=rate_limit_exempt_paths`` and ``trusted_proxies``,
      folded in — decided after the correlation id and the span are set up, so
      a 429 carries ``X-Correlation-ID`` and is recorded on the span, in the
      duration histogram and in the logs like any response.
    * ``trusted_proxies`` (default ``RATE_LIMIT_TRUSTED_PROXIES``, the rate
      limiter's setting): peers whose ``Forwarded`` / ``X-Forwarded-*``
      headers give ``client.address``, ``url.scheme`` and
      ``server.address``/``server.port`` (:mod:`amas_otel.http_origin`);
      for any other peer the socket and the ``Host`` header do.
    * An unexpected exception is recorded on the span, counted in
      ``amas.errors``, logged (``request failed``, redacted), answered with a
      JSON 500 carrying only the correlation id, and then raised on to the
      server, as Starlette's ``ServerErrorMiddleware`` does.  Its ``error.type``
      (module-qualified class name, builtins bare, as the SDK's
      ``exception.type``) is the same on the span, the duration and the log record.
    * Request logs are written in the request's context (after its span
      ended): they carry its trace and span ids.
    """

    def __init__(
        self,
        app: Any,
        service: MetricsService | None,
        *,
        tracer: trace.Tracer | None = None,
        log_requests: str = "errors",
        record_body_sizes: bool = False,
        correlation_header: str | None = None,
        rate_limiter: RateLimiter | RedisRateLimiter | None = None,
        rate_limit_exempt_paths: Iterable[str] = EXEMPT_PATHS,
        trusted_proxies: Iterable[str] | None = None,
    ) -> None:
        if log_requests not in _LOG_MODES:
            raise ValueError(f"log_requests must be one of {', '.join(_LOG_MODES)}, got {log_requests!r}")
        self.app = app
        self._service = service
        self._tracer = tracer
        self._log_all = log_requests == "all"
        self._log_errors = log_requests != "none"
        self._sizes = record_body_sizes
        self._sampler_ignores_attributes = _ignores_attributes(getattr(tracer, "sampler", None))
        self._logger: Any = None
        # HTTP requests get their id here; websocket connections go through CorrelationMiddleware.
        self._correlation = CorrelationMiddleware(app, header=correlation_header) if correlation_header else None
        self._id_name = header_name(correlation_header) if correlation_header else b""
        if trusted_proxies is None:
            trusted_proxies = get_settings().rate_limit.trusted_proxies
        self._networks = proxy_networks(trusted_proxies)
        self._known_methods = known_http_methods()
        self._rate_limit = (
            RateLimitGate(rate_limiter, rate_limit_exempt_paths, trusted_proxies) if rate_limiter is not None else None
        )
        # Built with the application's middleware stack, on its first call: by then the server
        # has set up its logging, after amas-otel's when the launcher configured it first.
        route_server_loggers()

    def _get_logger(self) -> Any:
        if self._logger is None:
            from amas_otel.logging import get_logger

            self._logger = get_logger("amas_otel.http", component="http")
        return self._logger

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self._correlation is not None:
                await self._correlation(scope, receive, send)
            elif scope["type"] == "lifespan":
                await self.app(scope, receive, _flush_before_shutdown_completes(send))
            else:
                await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        sent = 0
        sizes = self._sizes
        started = False
        correlation_id: str | None = None
        ctx = None
        span = None
        if self._tracer is not None:
            span, ctx, correlation_id, scheme = self._start_span(scope)
        else:
            scheme = request_origin(scope, self._networks).scheme if self._networks else scope.get("scheme", "http")
            if self._correlation is not None:
                correlation_id, ctx = correlation_context(scope["headers"], self._id_name)
        if correlation_id is not None:
            id_header = (self._id_name, correlation_id.encode("latin-1"))
        token = otel_context.attach(ctx) if ctx is not None else None
        rate_limit = self._rate_limit
        limit_headers: tuple[tuple[bytes, bytes], ...] | None = ()

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status, sent, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                # One new header list for both: the application's, RateLimit-*, X-Correlation-ID.
                if correlation_id is not None:
                    message = with_headers(message, (*limit_headers, id_header), id_header[0])
                elif limit_headers:
                    message = with_headers(message, limit_headers)
            elif sizes and message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        failure: Exception | None = None
        try:
            # Inside the try: a limiter that raises (Redis with fail_open=False) gets the JSON 500.
            if rate_limit is not None and not rate_limit.exempt(scope["path"]):
                decision = rate_limit.decide(scope)
                if decision is not None and decision.allowed:  # in memory: no coroutine to await
                    limit_headers = rate_limit.headers(decision)
                else:  # a limiter with I/O, or a 429 (it carries its own RateLimit-* headers)
                    limit_headers = await rate_limit.admit(scope, send_wrapper, decision)
            if limit_headers is not None:  # None: refused, the 429 is sent
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            failure = exc
            if span is not None:
                span.record_exception(exc)
            if started or _answers_server_errors(scope.get("app")):
                raise  # the application's own Exception / 500 handler answers (in ServerErrorMiddleware)
            await self._answer_unexpected(scope, send_wrapper, exc)
            # Then raised on, as Starlette's ServerErrorMiddleware does after its own 500: the server
            # reports it (uvicorn logs it, then closes the connection) and TestClient raises it, as
            # without amas-otel.  The `request failed` record (logged below, before it propagates)
            # is its one report in amas-otel's log: the server's repeats only the line.
            raise
        finally:
            duration = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", "") if route is not None else ""
            error_type = exception_type_name(type(failure)) if failure is not None else None
            try:
                if span is not None:
                    method = scope["method"]
                    self._end_span(span, method if method in self._known_methods else "HTTP", template, status, error_type)
                # Still in the request's context, so the record carries its trace and span ids;
                # after the span ended, so an error record adds no second exception event to it.
                if self._log_all or (self._log_errors and (status >= 500 or failure is not None)):
                    self._log(scope, template, status, duration, failure, error_type, correlation_id)
            finally:
                if token is not None:
                    otel_context.detach(token)
            # Recorded outside the span's context: a span in context would make
            # the SDK's trace-based exemplar filter sample every measurement.
            if self._service is not None:
                try:
                    self._service.record_http_request(
                        scope["method"],
                        template,
                        status,
                        duration,
                        _content_length(scope) if sizes else None,
                        sent if sizes else None,
                        scheme=scheme,
                        protocol_version=scope.get("http_version", "1.1"),
                        error_type=error_type,
                    )
                except Exception:  # noqa: BLE001 - telemetry must not fail the request
                    _log.debug("amas_otel: recording request metrics failed", exc_info=True)

    def _start_span(self, scope: MutableMapping[str, Any]) -> tuple[Any, Any, str | None, str]:
        """Start the request's span; return it, the context to run the request in, the correlation id and ``url.scheme``.

        The incoming ``baggage`` (all its lines, joined) is cut to the W3C
        limits and parsed once, by the global propagator; the correlation id is
        read from what it parsed.
        """
        # Every header goes to the globally configured propagator (W3C, B3, Jaeger, a custom one):
        # which headers it reads is its business.  Repeated lines arrive joined.
        carrier = _header_carrier(scope["headers"])
        user_agent = carrier.get("user-agent")
        if "baggage" in carrier:
            carrier["baggage"] = cap_baggage(carrier["baggage"])
        parent = propagate.extract(carrier, context=otel_context.get_current(), getter=_REQUEST_HEADERS)
        correlation_id = None
        if self._correlation is not None:
            # With a propagator that leaves baggage alone, the correlation id reads the header itself.
            parsed = parent if "baggage" in carrier and _reads_baggage(propagate.get_global_textmap()) else None
            correlation_id = request_correlation_id(scope["headers"], self._id_name, parsed)
        method, original = normalise_method(scope["method"], self._known_methods)
        origin = request_origin(scope, self._networks, carrier)
        attributes: dict[str, Any] = {
            _A_METHOD: method,
            HttpAttr.URL_PATH: scope["path"],
            HttpAttr.URL_SCHEME: origin.scheme,
            HttpAttr.PROTOCOL_VERSION: scope.get("http_version", "1.1"),
        }
        if original is not None:
            attributes[HttpAttr.REQUEST_METHOD_ORIGINAL] = original
        query = scope.get("query_string")
        if query:  # its values are redacted with every span attribute (RedactingSpanProcessor)
            attributes[HttpAttr.URL_QUERY] = query.decode("latin-1")
        if origin.client_address:
            attributes[CLIENT_ADDRESS] = origin.client_address
        if origin.server_address:
            attributes[HttpAttr.SERVER_ADDRESS] = origin.server_address
            if origin.server_port is not None:
                attributes[HttpAttr.SERVER_PORT] = origin.server_port
        if user_agent:
            attributes[HttpAttr.USER_AGENT] = user_agent
        # The sampler gets the attributes at span creation, unless it is made of
        # the SDK's samplers, which never read them: then they are stored once
        # the span exists, without the SDK validating each value again.
        blind = self._sampler_ignores_attributes
        span = self._tracer.start_span(  # type: ignore[union-attr]
            "HTTP" if original is not None else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=None if blind else attributes,
        )
        if correlation_id is None:
            if blind:
                set_valid_attributes(span, attributes)
            return span, trace.set_span_in_context(span, parent), None, origin.scheme
        # The id is set here, not by CorrelationSpanProcessor from the context:
        # one write, and the id chosen from the header wins over a baggage one.
        if blind:
            attributes[CORRELATION_ID] = correlation_id
            set_valid_attributes(span, attributes)
        else:
            set_valid_attributes(span, {CORRELATION_ID: correlation_id})
        context = trace.set_span_in_context(span, context_with({"correlation_id": correlation_id}, parent))
        return span, context, correlation_id, origin.scheme

    @staticmethod
    def _end_span(span: Any, span_method: str, template: str, status: int, error_type: str | None) -> None:
        # One write for all of them: each call takes a lock (and, through the SDK, validates).
        attributes: dict[str, Any] = {_A_STATUS: status}
        if template:
            attributes[_A_ROUTE] = template
            span.update_name(f"{span_method} {template}")
        if error_type is not None or status >= 500:
            attributes[ERROR_TYPE] = error_type or str(status)
            span.set_status(Status(StatusCode.ERROR))
        set_valid_attributes(span, attributes)
        span.end()

    async def _answer_unexpected(self, scope: Any, send: Any, exc: Exception) -> None:
        # The JSON 500 is sent here, inside the application, so it carries the correlation id.
        if self._service is not None:
            try:
                self._service.record_error(exception_type_name(type(exc)), "http")
            except Exception:  # noqa: BLE001 - telemetry must not fail the request
                pass
        await send_error(send, 500, "internal_error", "Internal server error", scope=scope)

    def _log(
        self,
        scope: Any,
        template: str,
        status: int,
        duration: float,
        failure: BaseException | None,
        error_type: str | None,
        correlation_id: str | None,
    ) -> None:
        try:
            method, original = normalise_method(scope["method"], self._known_methods)
            fields: dict[str, Any] = {
                _A_METHOD: method,
                _A_STATUS: status,
                HttpAttr.REQUEST_DURATION: round(duration, 6),
            }
            if original is not None:
                fields[HttpAttr.REQUEST_METHOD_ORIGINAL] = original
            if template:
                fields[_A_ROUTE] = template
            if correlation_id is not None:
                fields["correlation_id"] = correlation_id
            logger = self._get_logger()
            if failure is not None:
                # The exception itself (exception.type, .message, .stacktrace from the pipeline),
                # through the redactor, with the request's trace and correlation ids: the
                # server's own report of it comes later, outside them.
                logger.error("request failed", exc_info=failure, **{ERROR_TYPE: error_type}, **fields)
                mark_logged(failure)
            elif status >= 500:
                logger.warning("request", **{ERROR_TYPE: str(status)}, **fields)
            else:
                logger.info("request", **fields)
        except Exception:  # noqa: BLE001 - a logging failure must not fail the request
            _log.debug("amas_otel: request logging failed", exc_info=True)


def _answers_server_errors(app: Any) -> bool:
    """True when ``app`` answers unexpected exceptions itself, so the layer lets them through.

    That is when it registered its own handler for ``Exception`` or status 500
    (read per failing request, not at instrumentation time: a handler added
    after :func:`instrument_app` wins too), or when it configured FastAPI's
    native telemetry, which records the exception (span status, log record)
    only if it reaches FastAPI's own error handling.
    """
    handlers = getattr(app, "exception_handlers", None)
    if handlers and (Exception in handlers or 500 in handlers):
        return True
    return getattr(app, "__dict__", {}).get("_amas_otel_native_telemetry") is True


def _flush_before_shutdown_completes(send: Any) -> Any:
    """``send`` for the lifespan: flush telemetry once the application has shut down, before the server is told.

    The server's shutdown path, after the last request and the application's
    own shutdown handlers, and before the server exits — under uvicorn and
    gunicorn's UvicornWorker the process is then killed by the SIGTERM it got,
    and ``atexit`` never runs.  A flush, not a shutdown: a process that serves
    again (a test client, a second server) keeps its telemetry.
    """

    async def send_then_flush(message: MutableMapping[str, Any]) -> None:
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            from starlette.concurrency import run_in_threadpool

            from amas_otel.sdk import flush

            await run_in_threadpool(flush)  # bounded by AMAS_SHUTDOWN_TIMEOUT_SECONDS
        await send(message)

    return send_then_flush


def _reads_baggage(propagator: Any) -> bool:
    """True when ``propagator`` (the global one) extracts the ``baggage`` header."""
    try:
        return "baggage" in propagator.fields
    except Exception:  # noqa: BLE001 - a custom propagator without fields: read the header ourselves
        return False


def _ignores_attributes(sampler: Any) -> bool:
    """True when ``sampler`` is made only of the SDK's own samplers, none of which reads span attributes."""
    from opentelemetry.sdk.trace import sampling

    method = getattr(type(sampler), "should_sample", None)
    if method in (sampling.StaticSampler.should_sample, sampling.TraceIdRatioBased.should_sample):
        return True
    if method is sampling.ParentBased.should_sample:
        return all(_ignores_attributes(getattr(sampler, name, None)) for name in _PARENT_BASED_DELEGATES)
    return False


def _content_length(scope: Any) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# --- exception handlers ---------------------------------------------------------


def _json_error(request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, scope=request.scope, **extra), status_code=status, headers=headers)


def _retry_after(seconds: Any) -> int:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return 1
    return max(math.ceil(value), 1) if math.isfinite(value) else 1


def _install_handlers(app: Any, service: MetricsService, validation_errors: str) -> None:
    """amas-otel's handlers, each only where the application has none of its own.

    FastAPI's defaults (``HTTPException``, ``RequestValidationError``) count as
    none; a handler the application passed to ``FastAPI(exception_handlers=...)``
    or registers later wins, and the request is still recorded by the layer.
    """
    from fastapi import exception_handlers as fastapi_handlers
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    defaults = (fastapi_handlers.http_exception_handler, fastapi_handlers.request_validation_exception_handler)

    def add(exc_class: type[Exception], handler: Any) -> None:
        current = app.exception_handlers.get(exc_class)
        if current is None or current in defaults:
            app.add_exception_handler(exc_class, handler)

    def count(exc: BaseException) -> None:
        try:
            service.record_error(type(exc).__qualname__, "http")
        except Exception:  # noqa: BLE001
            pass

    async def amas_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AmasError)
        count(exc)
        extra = {"field": exc.field} if exc.field else {}
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        return _json_error(request, exc.status_code, exc.code, exc.message, headers, **extra)

    async def request_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        count(exc)
        if validation_errors == "fastapi":  # FastAPI's own 422, as the OpenAPI schema says
            return await fastapi_handlers.request_validation_exception_handler(request, exc)
        # A 400 naming the fields only: FastAPI's 422 body echoes the submitted input, secrets included.
        return _json_error(request, 400, "validation_error", "Invalid request", fields=_invalid_fields(exc))

    async def rate_limited(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimitExceeded)
        seconds = _retry_after(exc.retry_after)
        return _json_error(
            request, 429, exc.code, exc.message, {"Retry-After": str(seconds)}, retry_after=seconds
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        return _json_error(request, exc.status_code, "http_error", message, exc.headers)

    add(AmasError, amas_error)
    add(RequestValidationError, request_validation)
    add(RateLimitExceeded, rate_limited)
    add(HTTPException, http_error)

    from amas_otel.breaker import CircuitBreakerOpenException

    async def breaker_open(request: Request, exc: Exception) -> Response:
        count(exc)
        seconds = _retry_after(getattr(exc, "retry_after", 1))
        return _json_error(
            request,
            503,
            "service_unavailable",
            "A dependency is temporarily unavailable",
            {"Retry-After": str(seconds)},
            retry_after=seconds,
        )

    add(CircuitBreakerOpenException, breaker_open)


def _invalid_fields(exc: Any) -> list[str]:
    return sorted({".".join(str(part) for part in error.get("loc", ())) for error in exc.errors()})


_VALIDATION_400_SCHEMA = "AmasValidationError"


def _advertise_validation_400(app: Any) -> None:
    """Make ``app``'s OpenAPI schema say what ``validation_errors="400"`` answers.

    FastAPI documents a 422 ``HTTPValidationError`` on every operation with
    parameters; with ``validation_errors="400"`` the schema says 400 and its body instead.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        if app.__dict__.get("_amas_otel_openapi_patched") is schema:
            return schema
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses") if isinstance(operation, dict) else None
                if responses and "422" in responses and "HTTPValidationError" in str(responses["422"]):
                    del responses["422"]
                    responses["400"] = {
                        "description": "Validation Error",
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{_VALIDATION_400_SCHEMA}"}}},
                    }
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components[_VALIDATION_400_SCHEMA] = {
            "title": _VALIDATION_400_SCHEMA,
            "type": "object",
            "required": ["error", "message", "fields"],
            "properties": {
                "error": {"title": "Error", "type": "string", "const": "validation_error"},
                "message": {"title": "Message", "type": "string"},
                "correlation_id": {"title": "Correlation Id", "anyOf": [{"type": "string"}, {"type": "null"}]},
                "fields": {"title": "Fields", "type": "array", "items": {"type": "string"}},
            },
        }
        if "HTTPValidationError" not in str(schema.get("paths", {})):
            components.pop("HTTPValidationError", None)
            if "#/components/schemas/ValidationError'" not in str(schema):
                components.pop("ValidationError", None)
        app._amas_otel_openapi_patched = schema
        return schema

    app.openapi = openapi


# --- endpoints ------------------------------------------------------------------


def _metrics_endpoint(service: MetricsService) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST
    from starlette.concurrency import run_in_threadpool

    async def metrics_endpoint(request: Request) -> Response:
        # Collection walks every instrument; keep it off the event loop.
        text = await run_in_threadpool(service.get_metrics, "prometheus")
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return metrics_endpoint


def instrument_app(
    app: Any,
    *,
    metrics_service: MetricsService | None = None,
    tracer_provider: Any = None,
    tracing: str = "lean",
    exclude_spans: Iterable[str] = ("receive", "send"),
    correlation: bool = True,
    log_requests: str = "errors",
    health: bool = True,
    health_service: Any = None,
    health_details_token: str | None = None,
    metrics_path: str | None = None,
    rate_limiter: RateLimiter | RedisRateLimiter | None = None,
    trusted_proxies: Iterable[str] | None = None,
    rate_limit_exempt_paths: Iterable[str] | None = None,
    record_body_sizes: bool = False,
    validation_errors: str = "fastapi",
) -> Any:
    """Instrument ``app`` (a ``fastapi.FastAPI`` not yet started) and return it.

    ``tracing``: ``"lean"`` (default) — server spans from amas-otel's own
    middleware, one span per request and nothing per ASGI message;
    ``"otel"`` — OpenTelemetry's ``FastAPIInstrumentor`` (``exclude_spans``
    applies; its HTTP metrics are switched off so the metric has one source);
    ``"off"``.  FastAPI's built-in telemetry is turned off for an app that did not
    configure it, so spans and metrics are not doubled; an app that configured it
    keeps it, and then gets no second span / duration from here (see
    ``_beside_native_telemetry``).
    An app already instrumented from outside (``opentelemetry-instrument``,
    ``amas-otel-instrument``) keeps that instrumentation, which then also
    records ``http.server.request.duration``.

    ``metrics_service`` defaults to :func:`get_metrics_service`;
    ``tracer_provider`` to the global one.  ``metrics_path`` defaults to
    ``PROMETHEUS_METRICS_PATH`` (``/metrics``); pass ``""`` for no endpoint on
    the app.  ``rate_limiter`` enables limiting per client address
    (``trusted_proxies`` may set it through ``X-Forwarded-For``); without one,
    ``RATE_LIMIT_ENABLED=true`` builds it from ``RATE_LIMIT_REQUESTS_PER_MINUTE``,
    ``RATE_LIMIT_BURST_LIMIT`` and ``RATE_LIMIT_REDIS_URL`` (shared through Redis
    when set), and ``trusted_proxies`` defaults to ``RATE_LIMIT_TRUSTED_PROXIES``.
    Health and metrics paths are exempt unless ``rate_limit_exempt_paths`` says
    otherwise.  ``health_service`` / ``health_details_token`` go to
    ``health_router``.  ``validation_errors``: ``"fastapi"`` (default) keeps
    FastAPI's 422 and its ``detail`` body; ``"400"`` answers 400
    ``validation_error`` naming the fields only, and the OpenAPI schema says so.
    The application's own exception handlers win over amas-otel's.  Calling
    twice on one app raises :class:`RuntimeError`.
    """
    if getattr(app, "_amas_otel_instrumented", False):
        raise RuntimeError("instrument_app() was already called on this application")
    if tracing not in _TRACING_MODES:
        raise ValueError(f"tracing must be one of {', '.join(_TRACING_MODES)}, got {tracing!r}")
    configure_on_first_use("instrument_app")
    settings = get_settings()
    service = metrics_service or get_metrics_service()
    if metrics_path is None:
        metrics_path = settings.metrics.prometheus_path
    if rate_limiter is None and settings.rate_limit.enabled:
        rate_limiter = _configured_limiter(settings.rate_limit)
    if trusted_proxies is None:
        trusted_proxies = settings.rate_limit.trusted_proxies
    health_prefix = "/health"
    if validation_errors not in _VALIDATION_MODES:
        raise ValueError(f"validation_errors must be one of {', '.join(_VALIDATION_MODES)}, got {validation_errors!r}")
    otel_already = instrumented_by_opentelemetry(app)
    traces, meters = _beside_native_telemetry(app)
    if otel_already or (tracing == "lean" and not traces):
        tracing = "off"
    # FastAPIInstrumentor's middleware switches FastAPI's native telemetry off (FastAPI's rule):
    # the duration is then recorded here whatever the app configured.
    meters = meters or tracing == "otel"

    if rate_limit_exempt_paths is None:
        rate_limit_exempt_paths = (health_prefix, *([metrics_path] if metrics_path else []))
    tracer = None
    if tracing == "lean":
        from amas_otel import __version__

        tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("amas_otel.fastapi", __version__, schema_url=SCHEMA_URL)
    app.add_middleware(
        RequestTelemetryMiddleware,
        service=service if meters and not otel_already else None,
        tracer=tracer,
        log_requests=log_requests,
        record_body_sizes=record_body_sizes,
        correlation_header=CORRELATION_HEADER if correlation else None,
        rate_limiter=rate_limiter,
        rate_limit_exempt_paths=tuple(rate_limit_exempt_paths),
        trusted_proxies=tuple(trusted_proxies),
    )

    _install_handlers(app, service, validation_errors)
    if validation_errors == "400":
        _advertise_validation_400(app)

    if health:
        from amas_otel.health import health_router

        app.include_router(health_router(health_service, details_token=health_details_token))
    if metrics_path:
        # An API route (not a bare Starlette one) puts itself in scope["route"], so
        # scrapes are recorded with their route like every other request.
        app.add_api_route(metrics_path, _metrics_endpoint(service), methods=["GET"], include_in_schema=False)

    if tracing == "otel":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracer_provider,
            meter_provider=NoOpMeterProvider(),
            exclude_spans=list(exclude_spans) or None,  # type: ignore[arg-type]
        )
    app._amas_otel_instrumented = True
    return app


def _configured_limiter(limits: RateLimitSettings) -> RateLimiter | RedisRateLimiter:
    if limits.redis_url:
        return RedisRateLimiter(
            limits.redis_url, limits.requests_per_minute, limits.burst_size, socket_timeout=limits.redis_timeout
        )
    return RateLimiter(limits.requests_per_minute, limits.burst_size)


# --- every FastAPI application (auto-instrumentation) ----------------------------

_patched: dict[str, Any] = {}


def instrument_fastapi(*, tracer_provider: Any = None, metrics_service: MetricsService | None = None) -> None:
    """Give every ``fastapi.FastAPI`` application amas-otel's lean request telemetry.

    What ``amas-otel-instrument`` (the amas distro's ``fastapi`` instrumentor)
    does instead of OpenTelemetry's ``FastAPIInstrumentor``: each application,
    whenever it was created, builds its middleware stack wrapped in
    :class:`RequestTelemetryMiddleware` — one SERVER span per request named
    ``{method} {route}`` with the HTTP semantic-convention attributes and the
    incoming trace context, ``http.server.request.duration`` with the route
    template, logs of failed requests; no per-message spans.  FastAPI's
    built-in telemetry is switched off for applications that did not configure
    it, so nothing is doubled; one that did keeps it (and gets from here only
    what it does not record itself).  Applications that call
    :func:`instrument_app` keep that configuration instead, and those the user
    instrumented with OpenTelemetry's ``FastAPIInstrumentor`` keep exactly
    that.  Calling again does nothing; undo with :func:`uninstrument_fastapi`.
    """
    from fastapi import FastAPI

    if _patched:
        return
    from amas_otel import __version__

    original_build = FastAPI.build_middleware_stack
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("amas_otel.fastapi", __version__, schema_url=SCHEMA_URL)

    def build_middleware_stack(self: Any) -> Any:
        stack = original_build(self)
        if getattr(self, "_amas_otel_instrumented", False) or instrumented_by_opentelemetry(self):
            # instrument_app() wired its own telemetry, or the application chose
            # OpenTelemetry's FastAPIInstrumentor itself (whose wrapper calls this
            # method and expects Starlette's stack back): the application's choice wins.
            return stack
        traces, meters = _beside_native_telemetry(self)
        return RequestTelemetryMiddleware(
            stack, (metrics_service or get_metrics_service()) if meters else None, tracer=tracer if traces else None
        )

    _patched.update(build_middleware_stack=original_build)
    FastAPI.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


def uninstrument_fastapi() -> None:
    """Undo :func:`instrument_fastapi` for applications that build their middleware stack afterwards."""
    from fastapi import FastAPI

    for name, original in _patched.items():
        setattr(FastAPI, name, original)
    _patched.clear()


# FastAPI's defaults for FastAPI(telemetry=...) (fastapi.telemetry.TelemetryConfig), auto_configure aside.
_NATIVE_DEFAULTS = {
    "tracer_provider": None,
    "meter_provider": None,
    "logger_provider": None,
    "tracing": True,
    "metrics": True,
    "logs": True,
    "operation_spans": True,
    "exclude": None,
}


def _beside_native_telemetry(app: Any) -> tuple[bool, bool]:
    """Whether amas-otel records ``app``'s server span and its request duration: ``(traces, meters)``.

    FastAPI (0.16x and later) traces, meters and logs requests natively as
    soon as providers exist.  An application that configured that itself —
    settings other than FastAPI's defaults in ``FastAPI(telemetry={...})``, or
    ``FASTAPI_OTEL_AUTO_CONFIGURE=true`` — keeps it exactly as configured, and
    amas-otel leaves to it what it records (its spans, its duration metric), so
    nothing is doubled.  For any other application FastAPI's native telemetry
    would only double amas-otel's, and it is switched off.  Decided once per
    application (its settings dict is read per request, so this works for an
    application built before the call).
    """
    config = getattr(app, "_telemetry", None)
    if not isinstance(config, dict):  # a FastAPI without native telemetry
        return True, True
    native = app.__dict__.get("_amas_otel_native_telemetry")
    if native is None:
        native = config.get("auto_configure") is True or any(
            config.get(key, default) != default for key, default in _NATIVE_DEFAULTS.items()
        )
        app._amas_otel_native_telemetry = native
        if not native:
            config.update(tracing=False, metrics=False, logs=False, operation_spans=False)
    if not native:
        return True, True
    return not config.get("tracing", True), not config.get("metrics", True)
