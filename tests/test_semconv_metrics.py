"""Issue #19, metrics side: what the example service's capture shows for health, system, scope and HTTP metrics.

The capture (``tests/support/capture.py``, session fixture ``example_capture``) is the example app under
``amas-otel-instrument`` exporting OTLP/HTTP to a loopback receiver, driven through the issue's request
mix (the ``downstream`` health check goes unhealthy and back).  Behaviour the mix does not reach (a
degraded check, a database operation, back-to-back collections of ``system.cpu.utilization``) is
asserted by the focused tests in ``tests/test_health.py`` and ``tests/test_metrics.py``; the
``OTEL_METRIC_EXPORT_INTERVAL`` precedence is asserted here on a child process of its own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import amas_otel
from amas_otel.config import ConfigError, load_settings
from amas_otel.semconv import SCHEMA_URL
from tests.support.capture import Capture, MetricPoint
from tests.support.otlp import OtlpReceiver
from tests.test_first_use import run_child

_STATUS = "amas.health.check.status"
_RESULTS = {"healthy", "degraded", "unhealthy"}


def _exports(capture: Capture, name: str) -> list[list[MetricPoint]]:
    """The points of metric ``name``, one list per export, oldest first."""
    by_time: dict[int, list[MetricPoint]] = defaultdict(list)
    for point in capture.metrics:
        if point.name == name:
            by_time[point.time_unix_nano].append(point)
    return [by_time[t] for t in sorted(by_time)]


def _states(points: list[MetricPoint]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = defaultdict(dict)
    for point in points:
        found[point.attributes["amas.health.check.name"]][point.attributes["amas.health.check.result"]] = point.value
    return dict(found)


# --- health -------------------------------------------------------------------------------------


def test_health_status_is_a_state_gauge_one_series_per_result(example_capture: Capture) -> None:
    exports = _exports(example_capture, _STATUS)
    assert exports, "no amas.health.check.status point was exported"
    for points in exports:
        assert {(p.kind, p.unit) for p in points} == {("gauge", "1")}
        for check, states in _states(points).items():
            # hw.status pattern: every result has its series (degraded too), exactly one of them is 1.
            assert set(states) == _RESULTS, (check, states)
            assert sorted(states.values()) == [0, 0, 1], (check, states)
    history = [_states(points)["downstream"] for points in exports]
    assert {"healthy": 0, "degraded": 0, "unhealthy": 1} in history  # the dependency went down…
    assert history[-1] == {"healthy": 1, "degraded": 0, "unhealthy": 0}  # …and came back


def test_health_check_critical_is_a_boolean_on_spans_metrics_and_logs(example_capture: Capture) -> None:
    key = "amas.health.check.critical"
    on_metrics = [p.attributes[key] for p in example_capture.metrics if key in p.attributes]
    on_spans = [s.attributes[key] for s in example_capture.spans if key in s.attributes]
    on_logs = [r.attributes[key] for r in example_capture.logs if key in r.attributes]
    on_lines = [line[key] for line in example_capture.json_lines if key in line]
    names = {p.name for p in example_capture.metrics if key in p.attributes}
    assert names == {_STATUS, "amas.health.check.duration"}
    for signal, values in {"metrics": on_metrics, "spans": on_spans, "logs": on_logs, "json lines": on_lines}.items():
        assert values, f"no {key} on {signal}"
        assert {type(value) for value in values} == {bool}, signal
        assert set(values) == {True}, signal  # the example's downstream check is critical


def test_health_status_change_logs_use_the_amas_health_names(example_capture: Capture) -> None:
    changes = [r for r in example_capture.logs if r.body == "health check status changed"]
    assert [r.attributes["amas.health.check.result"] for r in changes] == ["unhealthy", "healthy"]
    for record in changes:
        assert "reason" not in record.attributes
        assert record.attributes["amas.health.check.name"] == "downstream"
        assert record.attributes["amas.health.check.critical"] is True
        assert record.attributes["amas.health.check.message"] in ("downstream is down", "downstream reachable")
    assert changes[1].attributes["amas.health.check.previous_result"] == "unhealthy"
    # The same names the health spans and metric points use for the same concepts.
    span_keys = {k for s in example_capture.spans if s.name == "health_check downstream" for k in s.attributes}
    assert {"amas.health.check.name", "amas.health.check.result", "amas.health.check.critical"} <= span_keys


# --- system and process metrics ----------------------------------------------------------------


def test_usages_are_up_down_counters_split_by_state(example_capture: Capture) -> None:
    memory = example_capture.points("system.memory.usage")
    assert {(p.kind, p.unit) for p in memory} == {("updowncounter", "By")}
    assert {"used", "free"} <= {p.attributes["system.memory.state"] for p in memory}
    filesystem = example_capture.points("system.filesystem.usage")
    assert {(p.kind, p.unit) for p in filesystem} == {("updowncounter", "By")}
    assert {p.attributes["system.filesystem.state"] for p in filesystem} == {"used", "free", "reserved"}
    assert all("system.filesystem.mountpoint" in p.attributes for p in filesystem)
    (rss,) = example_capture.points("process.memory.usage")
    assert (rss.kind, rss.unit, rss.attributes) == ("updowncounter", "By", {}) and rss.value > 1_000_000
    utilization = example_capture.points("system.memory.utilization")
    assert {p.kind for p in utilization} == {"gauge"} and {p.attributes["system.memory.state"] for p in utilization} >= {"used"}
    assert sum(p.value for p in utilization) == pytest.approx(1.0, abs=0.01)  # the states add up to the total


def test_cpu_utilization_is_a_fraction_measured_over_its_own_window(example_capture: Capture) -> None:
    values = [p.value for points in _exports(example_capture, "system.cpu.utilization") for p in points]
    assert len(values) >= 3 and all(0.0 <= v <= 1.0 for v in values)
    assert any(v > 0 for v in values)
    assert {(p.kind, p.unit) for p in example_capture.points("system.cpu.utilization")} == {("gauge", "1")}


# --- scope, HTTP status codes ------------------------------------------------------------------


def test_every_amas_otel_meter_is_one_scope_with_version_and_schema_url(example_capture: Capture) -> None:
    ours = [p for p in example_capture.metrics if p.scope == "amas_otel"]
    assert {(p.scope_version, p.schema_url) for p in ours} == {(amas_otel.__version__, SCHEMA_URL)}
    assert SCHEMA_URL.startswith("https://opentelemetry.io/schemas/1.")
    scopes_of: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for point in example_capture.metrics:
        scopes_of[point.name].add((point.scope, point.scope_version, point.schema_url))
    assert scopes_of["amas.log.records"] == {("amas_otel", amas_otel.__version__, SCHEMA_URL)}
    assert {name: s for name, s in scopes_of.items() if len(s) > 1} == {}  # no instrument under a second scope
    for name in (_STATUS, "system.memory.usage", "http.server.request.duration", "amas.breaker.calls"):
        assert scopes_of[name] == {("amas_otel", amas_otel.__version__, SCHEMA_URL)}, name


def test_http_status_code_on_metrics_is_always_an_integer(example_capture: Capture) -> None:
    codes = [p.attributes["http.response.status_code"] for p in example_capture.metrics if "http.response.status_code" in p.attributes]
    assert codes and {type(code) for code in codes} == {int}
    assert {200, 400, 404, 500, 503} <= set(codes)
    assert not [p for p in example_capture.metrics if "amas.outcome" in p.attributes and p.name.startswith("db.")]


# --- SDK configuration: OTEL_METRIC_EXPORT_INTERVAL wins ---------------------------------------


def test_otel_metric_export_interval_wins_over_the_amas_fallback(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    began = time.monotonic()
    run_child(
        """
        import os, time
        import amas_otel
        from amas_otel.metrics import get_metrics_service
        amas_otel.configure()
        get_metrics_service(system_metrics=False).record_business_event("tick")
        time.sleep(3)
        os._exit(0)  # no shutdown flush: only the periodic pushes count
        """,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_METRIC_EXPORT_INTERVAL="300",
        AMAS_CUSTOM_METRICS_INTERVAL="60",
    )
    assert time.monotonic() - began < 30
    pushes = otlp_receiver.of("/v1/metrics")
    assert len(pushes) >= 3, f"{len(pushes)} pushes in 3 s with OTEL_METRIC_EXPORT_INTERVAL=300 (ms)"
    assert "amas.business.events" in otlp_receiver.metric_names()


def test_amas_interval_is_the_fallback_and_bad_values_name_the_variable() -> None:
    settings = load_settings(environ={"AMAS_CUSTOM_METRICS_INTERVAL": "7"}, config_files=[])
    assert settings.otel.metric_export_interval is None and settings.metrics.custom_metrics_interval == 7.0
    assert load_settings(environ={"OTEL_METRIC_EXPORT_TIMEOUT": "2500"}, config_files=[]).otel.metric_export_timeout == 2500
    for variable in ("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"):
        for bad in ("soon", "0", "-5"):
            with pytest.raises(ConfigError, match=f"{variable}: invalid value '{bad}'"):
                load_settings(environ={variable: bad}, config_files=[])


def test_server_spans_name_their_semantic_conventions_version(example_capture: Capture) -> None:
    assert {span.schema_url for span in example_capture.server_spans()} == {SCHEMA_URL}
