"""The README's signal table is checked against what the example service really sends.

One capture (``tests/support/capture.py``: the example app under ``amas-otel-instrument``, OTLP/HTTP to a
loopback receiver, a request mix covering every path) is the source of truth: every metric, span, span
event, resource attribute and amas-otel log-record attribute it observes must be documented in the
README's signal table.
"""

from __future__ import annotations

import re


from tests.conftest import REPO
from tests.support.capture import Capture

_README = (REPO / "README.md").read_text()
_SIGNAL_TABLE = _README[_README.index("## Signal table") :]
_SIGNAL_TABLE = _SIGNAL_TABLE[: _SIGNAL_TABLE.find("\n## ", 1) if "\n## " in _SIGNAL_TABLE[1:] else None]
_DOCUMENTED = set(re.findall(r"`([^`\s]+)`", _SIGNAL_TABLE))
# Attributes the SDK puts on every resource (telemetry.sdk.*) are the SDK's, not ours to document.
_SDK_RESOURCE = {"telemetry.sdk.language", "telemetry.sdk.name", "telemetry.sdk.version"}
# Log records of the application's own loggers and of uvicorn carry the caller's fields, not ours.
_FOREIGN_LOG_SCOPES = {"example", "uvicorn.error", "uvicorn.access", "uvicorn"}


def _documented(name: str) -> bool:
    if name in _DOCUMENTED:
        return True
    # Prefixes documented with a placeholder, e.g. `amas.context.<name>`.
    return any(doc.endswith("<name>") and name.startswith(doc[: -len("<name>")]) for doc in _DOCUMENTED)


def _undocumented(names: set[str]) -> list[str]:
    return sorted(name for name in names if not _documented(name))


def test_capture_covers_the_request_mix(example_capture: Capture) -> None:
    statuses = {r.label: r.status for r in example_capture.responses}
    assert statuses["data"] == 200 and statuses["order_invalid"] == 400 and statuses["unmatched"] == 404
    assert statuses["report_bug"] == 500 and statuses["downstream_down_3"] == 503
    assert statuses["downstream_recovered"] == 200
    assert example_capture.server_spans() and example_capture.metrics and example_capture.logs


def test_every_metric_and_metric_attribute_is_in_the_signal_table(example_capture: Capture) -> None:
    names = {p.name for p in example_capture.metrics}
    keys = {key for p in example_capture.metrics for key in p.attributes}
    assert not _undocumented(names), f"metrics missing from the README signal table: {_undocumented(names)}"
    assert not _undocumented(keys), f"metric attributes missing from the README signal table: {_undocumented(keys)}"


def test_every_span_name_attribute_and_event_is_in_the_signal_table(example_capture: Capture) -> None:
    keys = {key for s in example_capture.spans for key in s.attributes}
    events = {name for s in example_capture.spans for name, _ in s.events} - {"exception"}
    event_keys = {key for s in example_capture.spans for _, attrs in s.events for key in attrs}
    event_keys -= {"exception.type", "exception.message", "exception.stacktrace", "exception.escaped"}
    assert not _undocumented(keys), f"span attributes missing: {_undocumented(keys)}"
    assert not _undocumented(events), f"span events missing: {_undocumented(events)}"
    assert not _undocumented(event_keys), f"span event attributes missing: {_undocumented(event_keys)}"


def test_every_resource_attribute_is_in_the_signal_table(example_capture: Capture) -> None:
    keys = set(example_capture.resource) - _SDK_RESOURCE
    assert not _undocumented(keys), f"resource attributes missing: {_undocumented(keys)}"


def test_every_amas_otel_log_attribute_is_in_the_signal_table(example_capture: Capture) -> None:
    records = [r for r in example_capture.logs if r.scope not in _FOREIGN_LOG_SCOPES]
    assert records, "no amas-otel log record was captured"
    keys = {key for r in records for key in r.attributes}
    assert not _undocumented(keys), f"log-record attributes missing: {_undocumented(keys)}"
