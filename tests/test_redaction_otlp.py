"""End to end: secrets never reach the bytes of real OTLP requests or the rendered JSON lines."""

from __future__ import annotations

import json
import logging
import subprocess
import textwrap
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from amas_otel.logging import CorrelationSpanProcessor, LoggingConfig, LoggingContext, configure_logging, get_logger
from amas_otel.redaction import RedactingLogRecordProcessor, RedactingSpanProcessor
from tests.conftest import PYTHON, python_env
from tests.redaction_secrets import SECRET_KINDS, Secret
from tests.support.otlp import OtlpReceiver, attributes


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


def _otlp_pipeline(receiver: OtlpReceiver, fmt: str = "json", level: str = "medium") -> tuple[TracerProvider, Any]:
    """Spans and log records redacted and sent to ``receiver`` one by one; log lines (``fmt``) in the returned stream."""
    import io

    tracer_provider = TracerProvider(active_span_processor=RedactingSpanProcessor())
    tracer_provider.add_span_processor(CorrelationSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", timeout=5)))
    logger_provider = LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor())
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{receiver.endpoint}/v1/logs", timeout=5)))
    stream = io.StringIO()
    configure_logging(
        LoggingConfig(stream=stream, format=fmt, security_level=level, enable_metrics=False), logger_provider=logger_provider
    )
    return tracer_provider, stream


def _placements(secret: Secret) -> dict[str, Any]:
    return {
        "attr.plain": secret.text,
        "attr.embedded": f"user said {secret.text} twice",
        "attr.json": json.dumps({"data": {"note": secret.text, "list": [1, secret.text]}}),
        "attr.url": f"https://api.example.com/v1/items?q={urllib.parse.quote(secret.text, safe='')}&page=2",
        "attr.list": ["ok", secret.text],
    }


def _assert_absent(secret: Secret, data: bytes | str) -> None:
    raw = data if isinstance(data, bytes) else data.encode()
    for needle in {*secret.needles, *(urllib.parse.quote(n, safe="") for n in secret.needles)}:
        assert needle.encode() not in raw, (secret.kind, needle)


@pytest.mark.parametrize("kind", sorted(SECRET_KINDS))
def test_generated_secrets_never_reach_otlp_bytes_or_json_lines(kind: str, receiver: OtlpReceiver, make_pipeline: Any) -> None:
    tracer_provider, stream = _otlp_pipeline(receiver)
    tracer = tracer_provider.get_tracer("prop")
    log = get_logger("prop", "redaction")
    std = logging.getLogger("prop.stdlib")
    seen: list[Secret] = []

    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(secret=SECRET_KINDS[kind], password=st.text("abcdefghijkmnopqrstuvwxyz0123456789", min_size=12, max_size=20))
    def run(secret: Secret, password: str) -> None:
        seen.append(secret)
        placements = _placements(secret)
        with LoggingContext(correlation_id="prop-1"):
            with tracer.start_as_current_span(f"handle {secret.text}", attributes=placements) as span:
                span.add_event("step", {"detail": secret.text, "password": password})
                span.set_attribute("url.full", f"https://svc.example.com/cb?token={password}&x=1")
                try:
                    raise ValueError(f"rejected {secret.text}")
                except ValueError as exc:
                    span.record_exception(exc)
                log.warning("processing", note=secret.text, nested={"deep": [secret.text]}, password=password, **{"json": placements["attr.json"]})
                std.error("stdlib saw %s", secret.text)
        data = receiver.all_bytes()
        _assert_absent(secret, data)
        _assert_absent(secret, stream.getvalue())
        pw = Secret("password", password, (password,))
        _assert_absent(pw, data)
        _assert_absent(pw, stream.getvalue())

    run()
    assert seen and {s.kind for s in seen} == {kind}
    spans = receiver.spans()
    assert len(spans) >= len(seen) and all(attributes(s.attributes)["amas.redaction.count"] > 0 for s in spans)
    records = receiver.log_records()
    assert len(records) >= 2 * len(seen)
    assert all(r.trace_id and len(r.trace_id) == 16 for r in records)
    assert b"[REDACTED:" in receiver.all_bytes()


CHILD = textwrap.dedent(
    """
    import logging, amas_otel
    from amas_otel.logging import LoggingContext, get_logger, security_logger
    amas_otel.configure(service_name="redaction-e2e")
    tracer = amas_otel.get_tracer("e2e")
    log = get_logger("e2e", "checkout")
    secrets = {secrets!r}
    with LoggingContext(correlation_id="e2e-corr"):
        for s in secrets:
            with tracer.start_as_current_span("charge " + s, attributes={{"note": s, "api_key": "k-" + s[:4]}}) as span:
                span.add_event("ev", {{"detail": s}})
                try:
                    raise RuntimeError("failed for " + s)
                except RuntimeError as exc:
                    span.record_exception(exc)
                log.error("charge failed", detail=s, password="pw-" + s[:6])
                logging.getLogger("lib").warning("lib saw %s", s)
        security_logger.log_authentication("user123", success=False, ip_address="192.168.1.1", token="tok-secret-123456")
    amas_otel.shutdown(10)
    """
)

FIXED_SECRETS = [
    "ann.lee@example.com",
    "4111 1111 1111 1111",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Bearer zyxwvutsrqponmlkjihg1234",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-123456789012-abcdefghijkl",
    "sk_live_abcdefghijklmnopqrstuvwx",
    "123-45-6789",
    "DE89370400440532013000",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
]


@pytest.mark.slow
def test_configure_wires_redaction_and_correlation_into_real_exports(receiver: OtlpReceiver) -> None:
    env = python_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        LOG_SECURITY_LEVEL="medium",
        PROMETHEUS_ENABLED="false",
    )
    before = len(receiver.raw)
    child = subprocess.run(
        [PYTHON, "-c", CHILD.format(secrets=FIXED_SECRETS)], env=env, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert receiver.wait_for(lambda: len(receiver.log_records()) > 0 and len(receiver.spans()) >= len(FIXED_SECRETS))
    with receiver._lock:
        data = b"".join(body for _, body in receiver.raw[before:])
    for text in FIXED_SECRETS:
        needles = [text] if "PRIVATE" not in text else ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"]
        for needle in needles:
            assert needle.encode() not in data, needle
            assert needle not in child.stdout + child.stderr, needle
    assert b"tok-secret-123456" not in data and "tok-secret-123456" not in child.stdout + child.stderr
    lines = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert {line["logger"] for line in lines} >= {"e2e", "lib", "amas_otel.audit"}
    assert all(line["correlation_id"] == "e2e-corr" for line in lines)
    spans = [s for s in receiver.spans() if s.name.startswith("charge ")]
    assert all(attributes(s.attributes)["amas.correlation.id"] == "e2e-corr" for s in spans)
    assert all(attributes(s.attributes)["amas.redaction.count"] >= 4 for s in spans)
    records = receiver.log_records()
    audit = [r for r in records if r.event_name == "amas.audit.authentication"]
    assert audit and attributes(audit[0].attributes)["token"] == "[REDACTED:token]"
    assert receiver.wait_for(lambda: {"amas.log.records", "amas.auth.attempts"} <= receiver.metric_names(), timeout=5)
