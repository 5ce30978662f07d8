"""The guide's "API Endpoint with Full Features" example, as written, on amas-otel's names.

    uvicorn examples.full_features:app --port 8000

The guide leaves process setup implicit; ``amas_otel.configure()`` is that
setup (providers, the Prometheus endpoint on PROMETHEUS_PORT, JSON logs).
Note the guide records ``request.url.path`` — a raw path, one series per id;
the SDK's cardinality limit folds the excess into one overflow series.
``instrument_app()`` (see examples/app.py) records route templates instead.
"""

import importlib.util
import time

from fastapi import FastAPI, Request

import amas_otel
from amas_otel.health import check_health
from amas_otel.logging import LoggingContext, get_logger
from amas_otel.metrics import get_metrics_service

amas_otel.configure()

# FastAPI >= 0.16x meters requests itself once providers exist; the middleware
# below is the one place recording http.server.request.duration here.
_native_telemetry = importlib.util.find_spec("fastapi.telemetry") is not None
app = FastAPI(**({"telemetry": {"metrics": False}} if _native_telemetry else {}))
logger = get_logger("api")
metrics = get_metrics_service()


@app.middleware("http")
async def metrics_middleware(request: Request, call_next):
    start_time = time.time()
    response = await call_next(request)
    duration = time.time() - start_time

    metrics.record_http_request(
        method=request.method,
        endpoint=request.url.path,
        status_code=response.status_code,
        duration=duration,
    )
    return response


@app.get("/api/data")
async def get_data(correlation_id: str = None):
    with LoggingContext(correlation_id=correlation_id):
        logger.info("Fetching data", action="get_data")
        return {"message": "Hello World"}


@app.get("/health")
async def health():
    return await check_health()
