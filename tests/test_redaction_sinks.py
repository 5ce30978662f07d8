"""Secrets in the shapes that used to get through, against every sink: JSON lines, console lines,
OTLP log records, span attributes and span events (real OTLP bytes from a loopback receiver).

Shapes: reprs of dataclasses, pydantic models, namedtuples and attrs classes (and the objects
themselves as log values), lists of (key, value) pairs and header tuples, whole values in free text
(``Cookie: a=1; sid=X``, ``Authorization: Token X``, ``{'password': 'two words'}``), and at ``high``
the keyless ones: base64 DER keys and certificates without armour, random tokens.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import logging
import random
import string
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amas_otel.logging import get_logger
from tests.redaction_corpus import keyless_secrets
from tests.test_redaction_otlp import _otlp_pipeline
from tests.support.otlp import OtlpReceiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


@dataclasses.dataclass
class Login:
    user: str
    password: str


@dataclasses.dataclass
class HiddenLogin:
    user: str
    password: str = dataclasses.field(repr=False)  # repr hides it, orjson would not


@attrs.define
class AttrsLogin:
    user: str
    api_key: str


class PydanticLogin(pydantic.BaseModel):
    email: str
    password: str


TupleLogin = collections.namedtuple("TupleLogin", "user secret")

# shape name -> (the value logged, given the secret)
SHAPES: dict[str, Callable[[str], Any]] = {
    "dataclass": lambda s: Login("bob", s),
    "dataclass, field hidden from repr": lambda s: HiddenLogin("bob", s),
    "attrs": lambda s: AttrsLogin("bob", s),
    "pydantic": lambda s: PydanticLogin(email="bob@example.com", password=s),
    "namedtuple": lambda s: TupleLogin("bob", s),
    "pairs": lambda s: [["user", "bob"], ["password", s]],
    "header tuples": lambda s: [(b"accept", b"*/*"), (b"authorization", f"Token {s}".encode())],
    "cookie header": lambda s: f"Cookie: theme=dark; sid={s}",
    "authorization header": lambda s: f"Authorization: Token {s}",
    "quoted mapping": lambda s: f"{{'password': '{s}', 'user': 'bob'}}",
    "repr with double quotes": lambda s: f'Login(user="bob", password="{s}")',
}

# Words no sink writes by itself (not "000000", which protobuf bytes hold anyway).
_WORD = st.text(string.ascii_letters + string.digits, min_size=8, max_size=14).filter(
    lambda w: sum(c.isalpha() for c in w) >= 3 and any(c.isdigit() for c in w)
)


def _pipeline(receiver: OtlpReceiver, fmt: str, level: str) -> tuple[Any, io.StringIO]:
    tracer_provider, stream = _otlp_pipeline(receiver, fmt, level)
    return tracer_provider.get_tracer("sinks"), stream


def _emit_everywhere(tracer: Any, value: Any) -> None:
    """``value`` as a log value (structured), in a log message, in span attributes, events and an exception."""
    text = value if isinstance(value, str) else repr(value)
    log = get_logger("sinks")
    with tracer.start_as_current_span("handle", attributes={"detail": text, "details": [text, "ok"]}) as span:
        span.add_event("step", {"detail": text})
        try:
            raise ValueError(f"rejected {text}")
        except ValueError as exc:
            span.record_exception(exc)
        log.warning("processing", value=value, nested={"inner": [value]})
        log.warning(f"processing {text}")
        logging.getLogger("sinks.stdlib").error("stdlib saw %s", value)


def _assert_absent(needles: list[str], receiver: OtlpReceiver, stream: io.StringIO, since: int) -> None:
    with receiver._lock:  # noqa: SLF001 - the receiver's own lock, for a consistent view
        data = b"".join(body for _, body in receiver.raw[since:])
    lines = stream.getvalue()
    assert data, "nothing reached the receiver"
    for needle in needles:
        assert needle.encode() not in data, needle
        assert needle not in lines, (needle, lines[-2000:])


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_secrets_in_reprs_objects_pairs_and_headers_never_reach_a_sink(
    shape: str, fmt: str, receiver: OtlpReceiver, make_pipeline: Any
) -> None:
    tracer, stream = _pipeline(receiver, fmt, "medium")

    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(first=_WORD, second=_WORD)
    def run(first: str, second: str) -> None:
        secret = f"{first} {second}" if shape not in ("header tuples",) else f"{first}{second}"
        since = len(receiver.raw)
        _emit_everywhere(tracer, SHAPES[shape](secret))
        _assert_absent([first, second], receiver, stream, since)

    run()
    assert "[REDACTED:" in stream.getvalue()


@pytest.mark.parametrize("level", ["high", "maximum"])
@pytest.mark.parametrize("fmt", ["json", "console"])
def test_keyless_secrets_never_reach_a_sink_at_high_and_maximum(level: str, fmt: str, receiver: OtlpReceiver, make_pipeline: Any) -> None:
    tracer, stream = _pipeline(receiver, fmt, level)
    by_kind: dict[str, list[str]] = collections.defaultdict(list)
    for kind, secret in keyless_secrets(per_kind=40):
        by_kind[kind].append(secret)
    rng = random.Random(level + fmt)
    for kind, found in sorted(by_kind.items()):
        for secret in rng.sample(found, 3):
            since = len(receiver.raw)
            _emit_everywhere(tracer, f"key material: {secret} (rotated)")
            _assert_absent([line for line in secret.splitlines() if len(line) >= 16], receiver, stream, since)
    assert "[REDACTED:random_token]" in stream.getvalue() and "[REDACTED:private_key]" in stream.getvalue()
