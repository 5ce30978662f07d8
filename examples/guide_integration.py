"""The AMAS guide's "Complete Service Integration" example (``MyService``), run as written on amas-otel's names.

    python -m examples.guide_integration

``MyService`` is the guide's class with amas-otel's module names in its imports;
nothing calls ``amas_otel.configure()``, as in the guide: the first amas-otel
call configures it (logs redacted, audit on, metrics on the embedded endpoint
at ``PROMETHEUS_PORT``).  The guide's class calls two methods it never
defines, ``get_uptime`` and ``_process_data``; they are added at the end of
the class, marked.  ``main()`` then runs the guide's other snippets: its
health-check best practices (``check_payment_api`` against ``PAYMENT_API_URL``,
default a closed loopback port), its debug-mode health dump, its
circuit-breaker troubleshooting and its metrics read-out.
"""

import asyncio
import json
import os
import time

from amas_otel.breaker import get_circuit_breaker_service
from amas_otel.health import add_external_api_health_check, add_health_check, add_service_health_check, check_health
from amas_otel.logging import LoggingContext, get_logger, security_logger
from amas_otel.metrics import get_metrics_service, record_error, record_http_request

PAYMENT_API_URL = os.environ.get("PAYMENT_API_URL", "http://127.0.0.1:9/health")
_STARTED = time.monotonic()


class MyService:
    def __init__(self):
        self.logger = get_logger("my_service")
        self.circuit_breaker = get_circuit_breaker_service().get_breaker("external_api")
        self.metrics = get_metrics_service()

        # Add health checks
        add_health_check("my_service", self._health_check)

    async def _health_check(self):
        """Health check implementation"""
        return {"status": "healthy", "uptime": self.get_uptime()}

    async def process_request(self, request_data):
        """Process request with full observability"""
        with LoggingContext(correlation_id=request_data.get("correlation_id")):
            try:
                # Log request
                self.logger.info("Processing request",
                               action="process_request",
                               request_id=request_data.get("id"))

                # Process with circuit breaker
                result = await self.circuit_breaker.call(self._process_data, request_data)

                # Record metrics
                self.metrics.record_http_request(
                    method="POST",
                    endpoint="/process",
                    status_code=200,
                    duration=0.150
                )

                self.logger.info("Request processed successfully",
                               action="process_request",
                               status="success")

                return result

            except Exception as e:
                # Log error
                self.logger.error("Request processing failed",
                                action="process_request",
                                error=str(e))

                # Record error metrics
                self.metrics.record_error("processing_error", "my_service")

                raise

    # Not in the guide, which calls these two without defining them.
    def get_uptime(self):
        return round(time.monotonic() - _STARTED, 3)

    async def _process_data(self, request_data):
        await asyncio.sleep(0)
        if request_data.get("fail"):
            raise ConnectionError("external API refused the connection")
        return {"id": request_data.get("id"), "processed": True}


def check_payment_api(response):
    """The guide's custom payment-API check (it passes one without showing it): judge the answer."""
    body = response.json()
    return {"status": "healthy" if body.get("ok") else "degraded", "payments_ok": bool(body.get("ok"))}


async def custom_health_check():
    """The guide's "custom health check", with ``my_service.check_health()`` standing for any internal call."""
    try:
        result = {"queue_depth": 0}
        return {"status": "healthy", "details": result}
    except Exception as e:
        return {"status": "unhealthy", "error": str(e)}


async def main():
    service = MyService()
    print("result:", json.dumps(await service.process_request({"id": "req-1", "correlation_id": "corr-1"})))
    try:
        await service.process_request({"id": "req-2", "correlation_id": "corr-2", "fail": True})
    except ConnectionError as e:
        print("failed as expected:", e)

    # The guide's module-level metric functions and security logging.
    record_http_request(method="GET", endpoint="/api/users", status_code=200, duration=0.05)
    record_error("validation_error", "user_service")
    security_logger.log_authentication("user123", success=True, ip_address="192.168.1.1")

    # Health check best practices (those needing a database or Redis are left out here).
    add_external_api_health_check("payment_api", PAYMENT_API_URL, check_payment_api)
    add_service_health_check("custom", custom_health_check)

    # Debug mode: detailed health checks.
    health_result = await check_health()
    print("health:", json.dumps(health_result, indent=2))

    # Troubleshooting: circuit breaker open?
    breaker = get_circuit_breaker_service().get_breaker("external_api")
    print(f"Circuit breaker state: {breaker.state.value}")
    print(f"Statistics: {json.dumps(breaker.get_stats())}")

    # Performance monitoring.
    print("metrics:")
    print(get_metrics_service().get_metrics())


if __name__ == "__main__":
    asyncio.run(main())
