"""Hypothesis strategies for every secret kind the redaction engine recognises, and for ordinary values."""

from __future__ import annotations

import base64
import json
import string
from dataclasses import dataclass
from datetime import datetime

from hypothesis import strategies as st

ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Secret:
    kind: str
    text: str  # what is placed in telemetry
    needles: tuple[str, ...]  # substrings that must never reach an exporter


def _luhn_complete(prefix_digits: str) -> str:
    for check in "0123456789":
        digits = prefix_digits + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


@st.composite
def cards(draw: st.DrawFn) -> Secret:
    prefix, length = draw(st.sampled_from([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16), ("4", 13)]))
    body = draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    number = _luhn_complete(prefix + body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    shown = sep.join(number[i : i + 4] for i in range(0, len(number), 4)) if sep else number
    return Secret("card", shown, (number, shown))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@st.composite
def jwts(draw: st.DrawFn) -> Secret:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": draw(st.text(ALNUM, min_size=1, max_size=12)), "iat": draw(st.integers(0, 2**31))}).encode())
    sig = draw(st.text(ALNUM + "-_", min_size=20, max_size=43))
    token = f"{header}.{payload}.{sig}"
    return Secret("jwt", token, (token, payload))


def _token(kind: str, prefix: str, alphabet: str, size: int, needle_from_prefix: bool = True) -> st.SearchStrategy[Secret]:
    return st.text(alphabet, min_size=size, max_size=size).map(lambda t: Secret(kind, prefix + t, (prefix + t, t)))


@st.composite
def bearers(draw: st.DrawFn) -> Secret:
    # Random-looking, as real tokens are: not a name such as "exception.stacktrace" (Hypothesis also
    # draws string constants from the code under test, and such a name is in every export legitimately).
    token = draw(
        st.text(ALNUM + "._-", min_size=20, max_size=40).filter(
            lambda t: t[0].isalnum() and sum(c.isdigit() for c in t) >= 2 and any(c.isupper() for c in t)
        )
    )
    scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
    return Secret("bearer", f"{scheme} {token}", (token,))


@st.composite
def basics(draw: st.DrawFn) -> Secret:
    user = draw(st.text(string.ascii_lowercase, min_size=3, max_size=10))
    password = draw(st.text(ALNUM, min_size=8, max_size=20))
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Secret("basic", f"Basic {encoded}", (encoded, encoded.rstrip("=")))


@st.composite
def emails(draw: st.DrawFn) -> Secret:
    local = draw(st.from_regex(r"[a-z0-9][a-z0-9._+-]{1,20}[a-z0-9]", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z0-9]{2,12}", fullmatch=True)) + draw(st.sampled_from([".com", ".org", ".io", ".co.uk"]))
    address = f"{local}@{domain}"
    return Secret("email", address, (address,))


@st.composite
def ssns(draw: st.DrawFn) -> Secret:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    text = f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"
    return Secret("ssn", text, (text,))


@st.composite
def ibans(draw: st.DrawFn) -> Secret:
    country = draw(st.sampled_from(["DE", "FR", "GB", "NL"]))
    bban = draw(st.text(string.digits, min_size=18, max_size=18))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    compact = f"{country}{check:02d}{bban}"
    spaced = draw(st.booleans())
    shown = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if spaced else compact
    return Secret("iban", shown, (compact, shown))


@st.composite
def pems(draw: st.DrawFn) -> Secret:
    body = draw(st.text(ALNUM + "+/", min_size=64, max_size=64))
    label = draw(st.sampled_from(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"]))
    text = f"-----BEGIN {label}-----\n{body[:32]}\n{body[32:]}\n-----END {label}-----"
    return Secret("private_key", text, (body[:32], body[32:]))


@st.composite
def url_passwords(draw: st.DrawFn) -> Secret:
    scheme = draw(st.sampled_from(["redis", "postgres", "amqp", "https", "mongodb+srv"]))
    user = draw(st.sampled_from(["", "app", "default", "svc-user"]))
    # Random-looking, as bearers(): not a word Hypothesis drew from the code under test ("componen" of "amas.component").
    password = draw(
        st.text(ALNUM + "!$*-_.~@", min_size=8, max_size=24).filter(
            lambda p: p[0] != "@" and sum(c.isalnum() for c in p) >= 6 and sum(c.isdigit() for c in p) >= 2
        )
    )
    host = draw(st.sampled_from(["127.0.0.1:6379/0", "db.internal:5432/app", "cache"]))
    return Secret("url_password", f"{scheme}://{user}:{password}@{host}", (password,))


#: A strategy per secret kind found at levels low and medium.
SECRET_KINDS: dict[str, st.SearchStrategy[Secret]] = {
    "card": cards(),
    "jwt": jwts(),
    "bearer": bearers(),
    "basic": basics(),
    "email": emails(),
    "ssn": ssns(),
    "iban": ibans(),
    "private_key": pems(),
    "url_password": url_passwords(),
    "aws_key": _token("aws_key", "AKIA", string.ascii_uppercase + string.digits, 16),
    "github_token": _token("github_token", "ghp_", ALNUM, 36),
    "slack_token": _token("slack_token", "xoxb-", string.digits + "-" + ALNUM, 24),
    "stripe_key": _token("stripe_key", "sk_live_", ALNUM, 24),
}


def secrets() -> st.SearchStrategy[Secret]:
    """One secret of any supported kind (levels low and medium)."""
    return st.one_of(*SECRET_KINDS.values())


@st.composite
def phones(draw: st.DrawFn) -> Secret:
    digits = draw(st.text(string.digits, min_size=7, max_size=7))
    area = draw(st.integers(200, 999))
    text = draw(st.sampled_from([f"+1 {area} {digits[:3]} {digits[3:]}", f"({area}) {digits[:3]}-{digits[3:]}", f"+44{area}{digits}"]))
    return Secret("phone", text, (text, f"{digits[:3]} {digits[3:]}" if " " in text else text))


@st.composite
def ips(draw: st.DrawFn) -> Secret:
    octets = draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))
    text = ".".join(map(str, octets))
    return Secret("ip", text, (text,))


def ordinary_values() -> st.SearchStrategy[str]:
    """Values that must come through every level below maximum unchanged."""
    hexdigits = "0123456789abcdef"
    moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))
    return st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        moments.map(lambda d: d.isoformat()),
        moments.map(lambda d: d.isoformat() + "Z"),
        moments.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
        st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 999)).map(lambda v: "%d.%d.%d" % v),
        st.tuples(st.integers(0, 9), st.integers(0, 30), st.integers(0, 9), st.sampled_from(["-rc1", "-beta.2", "+build5", ""])).map(
            lambda v: "v%d.%d.%d%s" % v
        ),
        st.text(hexdigits, min_size=32, max_size=32),
        st.text(hexdigits, min_size=16, max_size=16),
        st.sampled_from(["GET", "POST", "/api/v1/users/{id}", "checkout-service", "python-requests/2.31.0", "OK", "max_tokens"]),
        st.integers(0, 10**6).map(lambda n: f"/api/v1/orders/{n}/items"),
        st.integers(1_500_000_000_000, 1_900_000_000_000).map(str),
    )
