"""Redaction engine: key and value rules per level, structures, errors, and the span / log-record processors."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from amas_otel.config import ConfigError
from amas_otel.redaction import (
    LEVEL_RULES,
    RedactingSpanProcessor,
    Redactor,
    _quiet_test,
    safe_metric_attributes,
)
from amas_otel.semconv import REDACTION_COUNT
from tests.redaction_secrets import Secret, ips, ordinary_values, phones, secrets

MEDIUM = Redactor("medium")
HIGH = Redactor("high")


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "db_password", "passwd", "api_key", "API-Key", "apiKey", "x-api-key", "Authorization",
     "http.request.header.authorization", "cookie", "Set-Cookie", "session", "session_id", "private_key",
     "privateKey", "credit_card", "ssn", "access_token", "client_secret", "aws.secret.access.key"],
)
def test_sensitive_keys_are_matched_case_and_separator_insensitively(key: str) -> None:
    assert Redactor("low").key_kind(key) is not None
    assert MEDIUM.redact({key: "plain value"})[key].startswith("[REDACTED:")


@pytest.mark.parametrize("key", ["max_tokens", "gen_ai.usage.input_tokens", "http.route", "user.name", "classname", "amas.auth.outcome"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert MEDIUM.redact({key: "plain"}) == {key: "plain"}


@pytest.mark.parametrize(
    ("level", "text", "kind"),
    [
        ("low", "Bearer abcdefgh12345678", "bearer"),
        ("low", "AKIAIOSFODNN7EXAMPLE", "aws_key"),
        ("low", "postgres://app:s3cr3t@db:5432/x", "url_password"),
        ("medium", "mail me at jane.doe@example.com", "email"),
        ("medium", "4111 1111 1111 1111", "card"),
        ("medium", "SSN 123-45-6789", "ssn"),
        ("medium", "GB82 WEST 1234 5698 7654 32", "iban"),
        ("high", "call +1 555 123 4567", "phone"),
        ("high", "from 10.1.2.3", "ip"),
        ("high", "from 2001:db8::8a2e:370:7334", "ip"),
    ],
)
def test_value_rules_by_level(level: str, text: str, kind: str) -> None:
    assert f"[REDACTED:{kind}]" in Redactor(level).redact_text(text)
    lower = {"medium": "low", "high": "medium"}.get(level)
    if lower:
        assert Redactor(lower).redact_text(text) == text
    assert kind in LEVEL_RULES[level]["values"]


def test_luhn_and_mod97_keep_non_secrets() -> None:
    assert MEDIUM.redact_text("order 4111 1111 1111 1112") == "order 4111 1111 1111 1112"
    assert MEDIUM.redact_text("GB82 WEST 1234 5698 7654 33") == "GB82 WEST 1234 5698 7654 33"
    assert MEDIUM.redact(4111111111111111) == "[REDACTED:card]" and MEDIUM.redact(1716200000123) == 1716200000123


def test_nested_structures_json_strings_and_query_strings() -> None:
    doc = {
        "user": {"name": "ann", "password": "pw", "contacts": ["ann@example.com", {"apiKey": "k"}]},
        "payload": json.dumps({"card": "4111111111111111", "nested": {"token": "t0k3n"}}),
        "url": "https://api.example.com/cb?code=1&access_token=abc.def&email=ann%40example.com#frag",
        "text": "login failed password=hunter2 for {'secret': 'xyz'}",
    }
    out = MEDIUM.redact(doc)
    assert out["user"] == {"name": "ann", "password": "[REDACTED:password]", "contacts": ["[REDACTED:email]", {"apiKey": "[REDACTED:apikey]"}]}
    assert json.loads(out["payload"]) == {"card": "[REDACTED:card]", "nested": {"token": "[REDACTED:token]"}}
    assert out["url"] == "https://api.example.com/cb?code=1&access_token=[REDACTED:token]&email=[REDACTED:encoded]#frag"
    assert out["text"] == "login failed password=[REDACTED:password] for {'secret': '[REDACTED:secret]'}"
    assert doc["user"]["password"] == "pw"  # the input is not modified


def test_extra_patterns_add_keys_and_regexes_and_bad_ones_fail_at_start() -> None:
    r = Redactor("low", ["tenant_code", r"ACME-\d{6}"])
    assert r.redact({"X-Tenant-Code": "t1", "note": "id ACME-123456 ok"}) == {
        "X-Tenant-Code": "[REDACTED:tenantcode]",
        "note": "id [REDACTED:pattern] ok",
    }
    with pytest.raises(ConfigError, match=r"LOG_REDACT_PATTERNS.*'\(unclosed'.*regular expression"):
        Redactor("low", ["password", "(unclosed"])
    with pytest.raises(ConfigError, match="empty string"):
        Redactor("low", ["a*"])
    with pytest.raises(ConfigError, match="LOG_SECURITY_LEVEL.*'extreme'"):
        Redactor("extreme")


def test_maximum_keeps_only_allow_listed_keys() -> None:
    r = Redactor("maximum", allow_keys=["order.id"])
    out = r.redact({"http.route": "/x", "service.name": "s", "order.id": "o-1", "customer": "ann", "event": "hi 10.0.0.1"})
    assert out == {"http.route": "/x", "service.name": "s", "order.id": "o-1", "customer": "[REDACTED:not_allowed]", "event": "hi [REDACTED:ip]"}


def test_a_redaction_error_redacts_the_whole_value_and_keeps_the_rest() -> None:
    class Exploding:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert MEDIUM.redact({"a": Exploding(), "b": "fine"}) == {"a": "[REDACTED:error]", "b": "fine"}


def test_metric_attributes_check() -> None:
    assert safe_metric_attributes({"route": "/x", "user.email": "a@b.co", "code": 200}, MEDIUM) == {
        "route": "/x",
        "user.email": "[REDACTED:email]",
        "code": 200,
    }
    clean = {"route": "/x"}
    assert safe_metric_attributes(clean, MEDIUM) is clean


# --- the quiet-string fast path (ids, paths) must agree with the full scan ------------------

LEVELS = ("low", "medium", "high", "maximum")


def _full_scan(level: str) -> Redactor:
    reference = Redactor(level)
    reference._quiet = None  # noqa: SLF001 - the same engine without the fast path
    return reference


FULL_SCANS = {level: _full_scan(level) for level in LEVELS}
FAST = {level: Redactor(level) for level in LEVELS}
_NEAR_QUIET = st.text("0123456789abcdefox-./{} ", max_size=48)


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        _NEAR_QUIET,
        st.uuids().map(str),
        st.builds(lambda a, b, c: a + b + c, _NEAR_QUIET, secrets().map(lambda s: s.text), _NEAR_QUIET),
        st.builds(lambda a, b, c: a + b + c, _NEAR_QUIET, st.one_of(phones(), ips()).map(lambda s: s.text), _NEAR_QUIET),
    )
)
def test_quiet_fast_path_agrees_with_the_full_scan(text: str) -> None:
    for level in LEVELS:
        expected = FULL_SCANS[level].redact_mapping({"url.path": text})
        assert FAST[level].redact_mapping({"url.path": text}) == expected, level
        assert FAST[level].redact_text(text) == FULL_SCANS[level].redact_text(text), level


# The definition _quiet_test implements without regular expressions: a string is quiet
# when it fully matches and holds no "xox"; it is remembered when group 1 and 2 did not take part.
_QUIET_IDS = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]*+[a-f][0-9a-f]*+)"
_QUIET_WORDS = (
    r"[a-z./{}-]*+(?:[0-9][a-z./{}-]*+){0,4}+((?:[0-9][a-z./{}-]*+)++)?",  # low: no number rules
    r"[a-z./{}-]*+(?:[0-9][a-z./{}-]*+){0,4}+((?:[0-9][a-z./{}-]*+){1,4}+)?",  # medium: the number stage needs 9 digits
    r"[a-z./{}-]*+|[a-z/{}-]*+(?:[0-9][a-z/{}-]*+){0,4}+((?:[0-9][a-z/{}-]*+){1,2}+)?",  # high: 7, or digits and "."
)
_QUIET_REFERENCE = [re.compile(f"{_QUIET_IDS}|{_QUIET_WORDS[min(rank, 2)]}").fullmatch for rank in range(4)]


def _assert_quiet_test_is_the_reference(text: str) -> None:
    for rank, fullmatch in enumerate(_QUIET_REFERENCE):
        match = fullmatch(text)
        quiet = match is not None and "xox" not in text
        remembered: list[Any] = []
        assert _quiet_test(rank, remembered.append)(text) is quiet, (rank, text)
        assert remembered == ([text] if quiet and match.lastindex is None else []), (rank, text)  # type: ignore[union-attr]


_UUID = "3f2a9c1e-8b7d-4e6f-a1b2-c3d4e5f60718"
_DIGIT_UUID = "12345678-1234-4234-8234-123456789012"


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.text("0123456789abcdefgxoA./{}-_ \u00e9\ud800", max_size=40),
        st.text("0123456789abf.x/-", max_size=40),
        st.uuids().map(str),
        st.builds(lambda u, i, c: u[:i] + c + u[i + 1 :], st.uuids().map(str), st.integers(0, 36), st.sampled_from("0aAfgx-.:")),
        st.builds(lambda i, tail: f"/api/v1/users/{i}/orders{tail}", st.integers(0, 10**12), st.sampled_from(["", ".json", "/xox", "/A"])),
    )
)
def test_quiet_test_agrees_with_its_regular_expression(text: str) -> None:
    _assert_quiet_test_is_the_reference(text)


_SHARED_REMEMBERED: list[Any] = []
# One test per level kept across examples: later strings of a shape already seen take the remembered verdict.
_SHARED_QUIET = [_quiet_test(rank, _SHARED_REMEMBERED.append) for rank in range(4)]


@settings(max_examples=300, deadline=None)
@given(
    shape=st.text("0123456789abcdefxo./{}-A", min_size=1, max_size=30),
    fills=st.lists(st.text("0123456789", min_size=30, max_size=30), min_size=2, max_size=4),
)
def test_strings_of_one_shape_get_the_verdict_of_the_reference(shape: str, fills: list[str]) -> None:
    # The same string with other digits in the same places: one cached verdict must fit them all.
    for fill in fills:
        digits = iter(fill)
        text = "".join(next(digits) if ch.isdigit() else ch for ch in shape)
        for rank, fullmatch in enumerate(_QUIET_REFERENCE):
            match = fullmatch(text)
            quiet = match is not None and "xox" not in text
            _SHARED_REMEMBERED.clear()
            assert _SHARED_QUIET[rank](text) is quiet, (rank, text)
            assert _SHARED_REMEMBERED == ([text] if quiet and match.lastindex is None else []), (rank, text)  # type: ignore[union-attr]


def test_quiet_test_agrees_with_its_regular_expression_on_every_one_char_change_of_a_uuid() -> None:
    for base in (_UUID, _DIGIT_UUID, _UUID.upper(), "abcdefab-abcd-abcd-abcd-abcdefabcdef"):
        _assert_quiet_test_is_the_reference(base)
        for i in range(len(base) + 1):
            for ch in "09afgxA-.{/é\ud800":
                _assert_quiet_test_is_the_reference(base[:i] + ch + base[i + 1 :])  # replaced
                _assert_quiet_test_is_the_reference(base[:i] + ch + base[i:])  # inserted
            _assert_quiet_test_is_the_reference(base[:i] + base[i + 1 :])  # removed
    for text in ("", "0", "1234", "12345", "123456789", "abc", "a.b/1", "xox", "/xox/12345", "f" * 64, "0" * 64, str(uuid.UUID(int=0))):
        _assert_quiet_test_is_the_reference(text)


def test_quiet_test_takes_numbers_and_remembers_small_ints() -> None:
    remembered: list[Any] = []
    quiet = _quiet_test(1, remembered.append)
    assert quiet(200) and quiet(-5) and quiet(1.5) and quiet(True) and quiet(10**12)
    assert not quiet(4111111111111111) and not quiet(b"bytes") and not quiet(None)
    assert remembered == [200]


@pytest.mark.parametrize(
    ("level", "text", "kind"),
    [
        ("medium", "a-4111111111111111", "card"),  # hex with a dash, but not UUID-shaped
        ("medium", "3f2a9c1e-8b7d-4e6f-a1b2-4111111111111111", "card"),  # UUID-like, last group is a card
        ("medium", "3f2a9c1e-8b7d-4e6f-a1b2-c3d4e5f60718-4111111111111111", "card"),  # UUID plus a card
        ("medium", "/api/v1/users/4111111111111111/orders", "card"),  # a path whose "id" is a card
        ("medium", "/api/v1/users/123-45-6789/orders", "ssn"),  # 9 digits: past the medium limit of 8
        ("low", "xoxb-1234567890-abcdefghijkl", "slack_token"),  # lower case, quiet characters, but "xox"
        ("high", "/hosts/10.1.2.3", "ip"),  # digits with "." at high
        ("high", "/call/555-123-4567", "phone"),  # 10 digits: past the high limit of 6
    ],
)
def test_quiet_looking_values_holding_secrets_are_scanned(level: str, text: str, kind: str) -> None:
    assert f"[REDACTED:{kind}]" in Redactor(level).redact_mapping({"k": text})[0]["k"]
    assert f"[REDACTED:{kind}]" in Redactor(level).redact_text(text)


def test_quiet_values_pass_unchanged_and_only_short_ones_are_remembered() -> None:
    r = Redactor("medium")
    values = {
        "id": "3f2a9c1e-8b7d-4e6f-a1b2-c3d4e5f60718",
        "trace": "4bf92f3577b34da6a3ce929d0e0e4736",
        "path": "/api/v1/users/1234567/orders",
        "route": "/api/v1/users/{id}/orders",
        "agent": "curl/8.5.0",
        "port": 8443,
    }
    assert r.redact_mapping(values) == (values, 0)
    assert r._clean == {"/api/v1/users/{id}/orders", "curl/8.5.0"}  # noqa: SLF001 - ids would churn the cache


@settings(max_examples=200, deadline=None)
@given(number=st.one_of(st.integers(-(10**20), 10**20), st.integers(0, 70_000), st.sampled_from([4111111111111111, 5555555555554444])))
def test_remembered_small_ints_agree_with_the_full_scan(number: int) -> None:
    for level in LEVELS:
        values = {"http.response.status_code": number, "server.port": 8443}
        expected = FULL_SCANS[level].redact_mapping(values)
        assert FAST[level].redact_mapping(values) == expected, level
        assert FAST[level].redact_mapping(values) == expected, level  # again, now from the remembered set


def test_small_ints_are_remembered_and_card_numbers_still_found() -> None:
    r = Redactor("medium")
    values = {"http.response.status_code": 200, "server.port": 8443, "n": -1}
    for _ in range(2):  # the first pass learns the keys, the second takes the fast path
        assert r.redact_mapping(values) == (values, 0)
    assert {200, 8443} <= r._clean and -1 not in r._clean  # noqa: SLF001
    assert r.redact_mapping({"server.port": 8443, "n": 4111111111111111}) == (
        {"server.port": 8443, "n": "[REDACTED:card]"},
        1,
    )


def test_spans_with_only_links_or_only_a_status_description_are_cleaned() -> None:
    provider, exporter = _provider(MEDIUM)
    tracer = provider.get_tracer("t")
    linked = trace.SpanContext(1, 2, is_remote=True)
    with tracer.start_as_current_span("a", links=[trace.Link(linked, {"api_key": "k"})]):
        pass
    with tracer.start_as_current_span("b") as span:
        span.set_status(Status(StatusCode.ERROR, "denied for ann@example.com"))
    with_link, with_status = exporter.get_finished_spans()
    assert with_link.links[0].attributes == {"api_key": "[REDACTED:apikey]"}
    assert with_link.attributes[REDACTION_COUNT] == 1 and with_link.events == ()
    assert with_status.status.description == "denied for [REDACTED:email]"
    assert dict(with_status.attributes) == {REDACTION_COUNT: 1}


def test_a_custom_pattern_turns_the_fast_path_off() -> None:
    r = Redactor("medium", [r"ord[e]rs"])
    assert r.redact_mapping({"route": "/api/v1/orders"}) == ({"route": "/api/v1/[REDACTED:pattern]"}, 1)


def _provider(redactor: Redactor) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(active_span_processor=RedactingSpanProcessor(redactor))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_span_processor_cleans_every_part_before_export() -> None:
    provider, exporter = _provider(MEDIUM)
    tracer = provider.get_tracer("t")
    linked = trace.SpanContext(1, 2, is_remote=True)
    with tracer.start_as_current_span(
        "lookup ann@example.com",
        attributes={"db.password": "pw", "http.route": "/u", "ids": ("ok", "4111111111111111")},
        links=[trace.Link(linked, {"api_key": "k", "kind": "follows"})],
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        span.set_attribute("url.full", "https://x/?token=abc")
        span.add_event("retry", {"authorization": "Basic dXNlcjpwYXNzd29yZA==", "attempt": 2})
        try:
            raise ValueError("card 4111-1111-1111-1111 declined for ann@example.com")
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"ValueError: {exc}"))
        live = span
    (exported,) = exporter.get_finished_spans()
    assert exported.name == "lookup [REDACTED:email]"
    attrs = dict(exported.attributes)
    assert attrs["db.password"] == "[REDACTED:password]" and attrs["http.route"] == "/u"
    assert attrs["ids"] == ("ok", "[REDACTED:card]") and attrs["url.full"] == "https://x/?token=[REDACTED:token]"
    retry, exc_event = exported.events
    assert retry.attributes == {"authorization": "[REDACTED:authorization]", "attempt": 2}
    assert "4111" not in exc_event.attributes["exception.message"] and "example.com" not in exc_event.attributes["exception.stacktrace"]
    assert exc_event.attributes["exception.type"] == "ValueError"
    assert exported.status.description == "ValueError: card [REDACTED:card] declined for [REDACTED:email]"
    assert exported.links[0].attributes == {"api_key": "[REDACTED:apikey]", "kind": "follows"}
    # name 1, attributes 3, retry 1, exception message 2 + stack trace 4 (source line and message), status 2, link 1
    assert attrs[REDACTION_COUNT] == 14
    assert live.attributes["db.password"] == "pw"  # the live span is not rewritten, only what exporters see


def test_clean_spans_pass_unchanged_without_a_count() -> None:
    provider, exporter = _provider(MEDIUM)
    with provider.get_tracer("t").start_as_current_span("GET /users/{id}", attributes={"http.route": "/users/{id}", "n": 3}):
        pass
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes) == {"http.route": "/users/{id}", "n": 3} and span.name == "GET /users/{id}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secrets(), prefix=st.sampled_from(["", "value: ", "x "]), suffix=st.sampled_from(["", " end", "\n"]))
def test_every_secret_kind_is_found_in_text(secret: Secret, prefix: str, suffix: str) -> None:
    out = MEDIUM.redact_text(prefix + secret.text + suffix)
    for needle in secret.needles:
        assert needle not in out, (secret.kind, out)
    assert "[REDACTED:" in out


@settings(max_examples=40, deadline=None)
@given(secret=st.one_of(phones(), ips()))
def test_high_level_finds_phones_and_ips(secret: Secret) -> None:
    out = HIGH.redact_text(f"contact {secret.text} today")
    assert secret.text not in out and f"[REDACTED:{secret.kind}]" in out


@settings(max_examples=150, deadline=None)
@given(value=ordinary_values())
def test_no_false_positives_on_ordinary_values(value: str) -> None:
    for redactor in (MEDIUM, HIGH):
        assert redactor.redact_text(value) == value
        assert redactor.redact({"request.id": value, "items": [value]}) == {"request.id": value, "items": [value]}


def test_level_tables_grow_with_the_level() -> None:
    levels = ["low", "medium", "high", "maximum"]
    for lower, higher in zip(levels, levels[1:]):
        for column in ("values", "keys containing", "keys ending with"):
            assert set(LEVEL_RULES[lower][column]) <= set(LEVEL_RULES[higher][column])


def test_rendered_structlog_processor_counts(make_pipeline: Any) -> None:
    from amas_otel.logging import get_logger

    p = make_pipeline()
    get_logger("svc").info("paid", card="4111111111111111", note="ok", contact={"email": "ann@example.com"})
    line = p.lines()[-1]
    assert line["card"] == "[REDACTED:card]" and line["contact"] == {"email": "[REDACTED:email]"}
    assert line[REDACTION_COUNT] == 2 and line["note"] == "ok"



def test_log_record_processor_cleans_records_from_other_sources(make_pipeline: Any) -> None:
    p = make_pipeline()
    p.logger_provider.get_logger("foreign").emit(body="login ann@example.com", attributes={"session": "s-1", "ok": 1})
    record = p.logs.get_finished_logs()[-1].log_record
    assert record.body == "login [REDACTED:email]"
    assert dict(record.attributes) == {"session": "[REDACTED:session]", "ok": 1, REDACTION_COUNT: 2}


def test_redacting_span_processor_added_as_one_processor_among_others_says_how_to_install_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from amas_otel import redaction

    redaction._warn_not_a_chain.cache_clear()
    provider = TracerProvider()
    provider.add_span_processor(RedactingSpanProcessor(MEDIUM))  # the old way: it cannot clean what others see
    with caplog.at_level("WARNING", logger="amas_otel.redaction"):
        provider.get_tracer("t").start_span("a").end()
        provider.get_tracer("t").start_span("b").end()
    warnings = [r.getMessage() for r in caplog.records if r.name == "amas_otel.redaction"]
    assert len(warnings) == 1 and "TracerProvider(active_span_processor=RedactingSpanProcessor())" in warnings[0]


# --- issue 16: reprs, pairs, whole values, keyless secrets ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("User(name='bob', password='hunter 2x')", "User(name='bob', password='[REDACTED:password]')"),
        ('User(name="bob", password="hunter2x")', 'User(name="bob", password="[REDACTED:password]")'),
        ("email='[REDACTED:email]' password='hunter2x'", "email='[REDACTED:email]' password='[REDACTED:password]'"),
        ("{'password': 'hunter 2x'}", "{'password': '[REDACTED:password]'}"),
        ("Cookie: sid=X; theme=dark", "Cookie: [REDACTED:cookie]"),
        ("Authorization: Token abc123\nnext line", "Authorization: [REDACTED:authorization]\nnext line"),
        ("[['password','hunter2x']]", "[['password','[REDACTED:password]']]"),
        ("[(b'authorization', b'Token X')]", "[(b'authorization', b'[REDACTED:authorization]')]"),
        ("note=password=x", "note=password=[REDACTED:password]"),
        ("PaymentSessionError: order 12 not found", "PaymentSessionError: order 12 not found"),
    ],
)
def test_whole_values_in_text_are_redacted(text: str, expected: str) -> None:
    assert MEDIUM.redact_text(text) == expected


def test_structured_objects_and_pairs_are_redacted_field_by_field() -> None:
    import collections
    import dataclasses

    import attrs
    import pydantic

    @dataclasses.dataclass
    class Hidden:
        user: str
        password: str = dataclasses.field(repr=False)

    @attrs.define
    class Keyed:
        user: str
        api_key: str

    class Model(pydantic.BaseModel):
        email: str
        password: str

    pair = collections.namedtuple("pair", "user secret")
    cleaned = MEDIUM.redact(
        {
            "a": Hidden("bob", "hunter2x"),
            "b": Keyed("bob", "k1"),
            "c": Model(email="bob@example.com", password="pw"),
            "d": pair("bob", "s"),
            "e": [["password", "hunter2x"], ("user", "bob")],
            "f": [(b"authorization", b"Bearer x"), (b"accept", b"*/*")],
            "g": ["GET", "/x"],
        }
    )
    assert cleaned["a"] == {"user": "bob", "password": "[REDACTED:password]"}
    assert cleaned["b"] == {"user": "bob", "api_key": "[REDACTED:apikey]"}
    assert cleaned["c"] == {"email": "[REDACTED:email]", "password": "[REDACTED:password]"}
    assert cleaned["d"] == {"user": "bob", "secret": "[REDACTED:secret]"}
    assert cleaned["e"] == [["password", "[REDACTED:password]"], ("user", "bob")]
    assert cleaned["f"] == [(b"authorization", "[REDACTED:authorization]"), (b"accept", b"*/*")]
    assert cleaned["g"] == ["GET", "/x"]
    clean = Hidden("bob", "")
    assert MEDIUM.redact({"a": clean})["a"] is clean  # nothing found: the object itself, rendered natively


def test_an_object_whose_repr_differs_from_its_str_is_scanned_in_both() -> None:
    class Shown:
        def __str__(self) -> str:
            return "a login"

        def __repr__(self) -> str:
            return "Login(password='hunter2x')"

    assert MEDIUM.redact({"x": Shown()}) == {"x": "Login(password='[REDACTED:password]')"}


def test_keyless_secrets_at_high_and_maximum_only() -> None:
    from tests.redaction_corpus import keyless_secrets

    for kind, secret in keyless_secrets(per_kind=5):
        text = f"material {secret} end"
        assert MEDIUM.redact_text(text) == text, kind
        out = HIGH.redact_text(text)
        assert out.startswith("material [REDACTED:") and out.endswith(" end"), (kind, out)
    assert HIGH.redact_text("x " + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + " y") == "x [REDACTED:private_key] y"


def test_the_corpus_of_ordinary_values_survives_every_level_and_no_generated_secret_leaks() -> None:
    from tests.redaction_corpus import ordinary_corpus, rates

    assert len(ordinary_corpus()) >= 1000
    for level in LEVELS:
        false_positives, leaks = rates(level)
        assert {k: v for k, v in false_positives.items() if v[0]} == {}, level
        leaked = {k: v for k, v in leaks.items() if v[0]}
        if level in ("high", "maximum"):
            assert leaked == {}, level
        elif level == "medium":
            assert set(leaked) == {k for k in leaks if k.startswith(("DER", "random token"))}, level


def test_a_record_the_engine_fails_on_is_masked_and_still_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    from amas_otel.redaction import RedactingLogRecordProcessor

    def broken(self: Any, value: Any, counter: Any) -> Any:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(Redactor, "redact_counted", broken)
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor(MEDIUM))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("lib").emit(LogRecord(body="password=hunter2", attributes={"token": "abc"}))
    (exported,) = memory.get_finished_logs()
    assert exported.log_record.body == "[REDACTED:error]"
    assert dict(exported.log_record.attributes) == {REDACTION_COUNT: 1}
