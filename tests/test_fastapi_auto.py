"""amas_otel.fastapi.instrument_fastapi (what amas-otel-instrument uses) through a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from amas_otel.fastapi import instrument_app, instrument_fastapi, uninstrument_fastapi
from tests.support.asgi_server import serve
from tests.test_fastapi import _Telemetry


@pytest.fixture
def telemetry() -> Iterator[_Telemetry]:
    telemetry = _Telemetry()
    instrument_fastapi(tracer_provider=telemetry.tracer_provider, metrics_service=telemetry.metrics)
    try:
        yield telemetry
    finally:
        uninstrument_fastapi()


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("no")

    return app


def _durations(telemetry: _Telemetry) -> dict[tuple[str, str], float]:
    return {
        (s["labels"].get("http_route", ""), s["labels"]["http_response_status_code"]): s["value"]["count"]
        for s in telemetry.metrics.get_metrics("dict").get("http_server_request_duration_seconds", [])
    }


def test_every_app_gets_one_lean_server_span_and_the_duration(telemetry: _Telemetry) -> None:
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with serve(_app()) as url, httpx.Client(base_url=url) as client:
        assert client.get("/items/1").json() == {"id": 1}
        assert client.get("/items/2", headers={"traceparent": f"00-{parent_trace}-00f067aa0ba902b7-01"}).status_code == 200
        assert client.get("/boom").status_code == 500
    spans = telemetry.spans.get_finished_spans()
    assert [s.name for s in spans] == ["GET /items/{item_id}", "GET /items/{item_id}", "GET /boom"]
    assert all(s.kind is SpanKind.SERVER for s in spans)  # FastAPI's built-in spans are off: nothing doubled
    assert spans[0].attributes["http.route"] == "/items/{item_id}" and spans[0].attributes["http.response.status_code"] == 200
    assert format(spans[1].context.trace_id, "032x") == parent_trace
    assert spans[2].attributes["error.type"] == "RuntimeError" and not spans[2].status.is_ok
    assert _durations(telemetry) == {("/items/{item_id}", "200"): 2.0, ("/boom", "500"): 1.0}


def test_instrument_app_keeps_its_own_wiring_and_uninstrument_restores(telemetry: _Telemetry) -> None:
    own = instrument_app(
        _app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, health=False, metrics_path=""
    )
    with serve(own) as url, httpx.Client(base_url=url) as client:
        assert client.get("/items/3").status_code == 200
    assert len(telemetry.spans.get_finished_spans()) == 1  # not one from each layer
    assert _durations(telemetry) == {("/items/{item_id}", "200"): 1.0}

    uninstrument_fastapi()
    with serve(_app()) as url, httpx.Client(base_url=url) as client:
        assert client.get("/items/4").status_code == 200
    assert len(telemetry.spans.get_finished_spans()) == 1
