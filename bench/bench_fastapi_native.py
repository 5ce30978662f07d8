"""Per-request cost in process: amas-otel's lean server span vs FastAPI's native spans on the same providers.

    .venv/bin/python bench/bench_fastapi_native.py [--requests 1000] [--rounds 5]

Four FastAPI apps with one route ``GET /items/{item_id}``, driven by direct ASGI calls (no server, no
network: what is measured is the instrumentation), all on one SDK ``TracerProvider`` (no processor)
and one ``MetricsService``:

- bare: FastAPI's native telemetry off, no amas-otel;
- lean: ``FastAPI()`` under :func:`amas_otel.fastapi.instrument_fastapi` (what the launcher does):
  amas-otel's server span and ``http.server.request.duration``;
- native: ``FastAPI(telemetry={"tracer_provider": ..., "metrics": False, "logs": False})`` under the
  same instrumentation: FastAPI's own server span and operation spans (dependencies, endpoint,
  serialization), amas-otel's duration;
- native without operation spans: the same with ``"operation_spans": False``.

Rounds alternate the apps so that noise from other processes hits all of them; the median round of
each is compared.  The question it answers (issue 20): can FastAPI's native instrumentation carry
amas-otel's providers as cheaply as amas-otel's own layer?  Target: none (a decision, not a gate).
Runtime < 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/3",
    "raw_path": b"/items/3",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
}


def build_apps() -> dict[str, Any]:
    from fastapi import FastAPI
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from amas_otel.fastapi import instrument_fastapi, uninstrument_fastapi
    from amas_otel.metrics import MetricsService

    tracer_provider = TracerProvider()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    service = MetricsService(meter_provider=meter_provider, registry=CollectorRegistry(), system_metrics=False)

    def app(telemetry: dict[str, Any] | None) -> Any:
        application = FastAPI(telemetry=telemetry) if telemetry is not None else FastAPI()

        @application.get("/items/{item_id}")
        async def item(item_id: int) -> dict:
            return {"id": item_id}

        return application

    native = {"tracer_provider": tracer_provider, "metrics": False, "logs": False}
    instrument_fastapi(tracer_provider=tracer_provider, metrics_service=service)
    try:
        apps = {
            "lean (amas-otel's span + duration)": app(None),
            "native (FastAPI's spans + operation spans; amas-otel's duration)": app(native),
            "native, operation_spans off (amas-otel's duration)": app({**native, "operation_spans": False}),
        }
        for application in apps.values():  # built while instrument_fastapi is in force
            application.middleware_stack = application.build_middleware_stack()
    finally:
        uninstrument_fastapi()
    bare = app({"tracing": False, "metrics": False, "logs": False})
    return {"bare": bare, **apps}


async def per_request(app: Any, count: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    start = time.perf_counter()
    for _ in range(count):
        await app(dict(_SCOPE), receive, send)
    return (time.perf_counter() - start) / count * 1e6


async def main(requests: int, rounds: int) -> None:
    apps = build_apps()
    for app in apps.values():  # warm-up
        await per_request(app, 200)
    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            results[name].append(await per_request(app, requests))
    bare = statistics.median(results["bare"])
    print(f"{'variant':68s} {'µs/request':>10s} {'added':>8s} {'× lean':>7s}")
    lean_added = statistics.median(results["lean (amas-otel's span + duration)"]) - bare
    for name, values in results.items():
        value = statistics.median(values)
        added = value - bare
        ratio = f"{added / lean_added:7.1f}" if name != "bare" and lean_added > 0 else ""
        print(f"{name:68s} {value:10.1f} {added:8.1f} {ratio}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.rounds))
