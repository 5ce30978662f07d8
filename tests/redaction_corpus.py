"""A fixed corpus of ordinary values and of keyless secrets, for the redaction accuracy figures.

``ordinary_corpus()`` returns at least 1,000 realistic values no level may change (identifiers,
digests, order numbers, versions, routes, timestamps, host and file names, user agents, messages…);
``keyless_secrets()`` returns generated secrets with no key name and no marker (base64 DER keys and
certificates without PEM armour, random tokens).  Both are generated from a fixed seed.

    .venv/bin/python -m tests.redaction_corpus     # prints the false-positive rate per level and the leak rate per kind
"""

from __future__ import annotations

import base64
import functools
import random
import string
import uuid
from collections.abc import Callable

__all__ = ["ordinary_corpus", "keyless_secrets", "secret_corpus", "rates"]

_SEED = 16
_HEX = "0123456789abcdef"
_WORDS = (
    "order user account payment invoice cart item product customer session report export import queue worker "
    "billing shipping checkout inventory catalog search profile settings health metrics audit tenant region"
).split()
_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_HEX) for _ in range(n))


def _camel(rng: random.Random, words: int) -> str:
    return "".join(w.capitalize() for w in rng.sample(_WORDS, words))


def _iso(rng: random.Random) -> str:
    y, mo, d = rng.randint(1990, 2035), rng.randint(1, 12), rng.randint(1, 28)
    h, mi, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    form = rng.randrange(6)
    if form == 0:
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"
    if form == 1:
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{rng.randint(0, 999999):06d}+{rng.randint(0, 12):02d}:00"
    if form == 2:
        return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}"
    if form == 3:
        return f"{y:04d}-{mo:02d}-{d:02d}"
    if form == 4:
        return f"{y:04d}{mo:02d}{d:02d}T{h:02d}{mi:02d}{s:02d}Z"
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{rng.randint(0, 999):03d}-05:00"


def _version(rng: random.Random) -> str:
    core = f"{rng.randint(0, 30)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}"
    return rng.choice(["", "v"]) + core + rng.choice(["", "", "-rc1", "-beta.2", "+build.57", "-alpha", ".post1", ".dev3"])


def _order(rng: random.Random) -> str:
    n = rng.randint(1, 999999)
    return rng.choice(
        [
            f"ORD-{rng.randint(2015, 2030)}-{n:06d}",
            f"#{rng.randint(100000, 9999999)}",
            f"PO-{rng.randint(10000, 99999)}-{rng.choice(string.ascii_uppercase)}",
            f"INV/{rng.randint(2015, 2030)}/{n:05d}",
            f"SO{rng.randint(10000000, 99999999)}",
            f"order_{n}",
            str(rng.randint(1000, 99999999)),
            f"A{rng.randint(100, 999)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        ]
    )


def _route(rng: random.Random) -> str:
    a, b = rng.sample(_WORDS, 2)
    n = rng.randint(1, 10**7)
    return rng.choice(
        [
            f"/api/v{rng.randint(1, 3)}/{a}s/{{id}}/{b}s",
            f"/api/v{rng.randint(1, 3)}/{a}s/{n}/{b}s",
            f"/api/v2/{a.capitalize()}s/{n}/{b.capitalize()}Items",
            f"/{a}/{b}",
            f"/health/{rng.choice(['live', 'ready', 'detailed'])}",
            f"/static/js/{a}.{_hex(rng, 8)}.js",
            f"/api/v1/{a}s/{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            f"/api/v1/{a}s?page={rng.randint(1, 99)}&per_page=50&sort=-created_at",
        ]
    )


def _other(rng: random.Random) -> str:
    a, b, c = rng.sample(_WORDS, 3)
    name = rng.choice(_NAMES)
    n = rng.randint(1, 99999)
    return rng.choice(
        [
            f"{a}-{b}-{rng.randint(1, 20)}.prod.eu-west-{rng.randint(1, 3)}.internal",
            f"{a}-{_hex(rng, 9)}-{''.join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))}",
            f"ghcr.io/acme/{a}-{b}:{_version(rng).lstrip('v')}",
            f"python:3.{rng.randint(8, 13)}-slim@sha256:{_hex(rng, 64)}",
            f"Mozilla/5.0 (X11; Linux x86_64; rv:{rng.randint(90, 130)}.0) Gecko/20100101 Firefox/{rng.randint(90, 130)}.0",
            f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{rng.randint(100, 130)}.0.{rng.randint(1000, 9999)}.{rng.randint(10, 200)} Safari/537.36",
            f"python-requests/2.{rng.randint(20, 32)}.{rng.randint(0, 3)}",
            f"/var/log/{a}/{b}-{_iso(rng)[:10]}.log",
            f"C:\\Users\\{name}\\Documents\\{a}_{b}_{n}.xlsx",
            f"amas_otel.{a}.{_camel(rng, 2)}.{b}_{c}",
            f"com.example.{a}.{_camel(rng, 3)}Impl",
            f"get{_camel(rng, 3)}V{rng.randint(2, 9)}",
            f"{_camel(rng, 4)}Factory{rng.randint(2, 9)}",
            f"SELECT id, {a}_id, {b} FROM {c}s WHERE {a}_id = $1 ORDER BY created_at DESC LIMIT {rng.randint(1, 500)}",
            f"EUR {rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}",
            f"{rng.randint(0, 23)}h{rng.randint(0, 59)}m{rng.randint(0, 59)}s",
            f"{rng.randint(1, 2000)}ms",
            "application/json; charset=utf-8",
            rng.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "en-US", "de-DE", "pt_BR.UTF-8"]),
            f"s3://acme-{a}-backups/{_iso(rng)[:10].replace('-', '/')}/{b}-dump-{n:04d}.sql.gz",
            f"feature/JIRA-{rng.randint(100, 9999)}-add-{a}-{b}",
            f"SKU-{rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
            rng.choice(["GET", "POST", "PUT", "DELETE", "200 OK", "404 Not Found", "503 Service Unavailable"]),
            f"{a.capitalize()} {b} completed in {rng.randint(1, 999)} ms for {name}",
            f"Cache miss for {a} {n}, loading from {b} store",
            f"Retrying request in {rng.randint(1, 9)}.{rng.randint(0, 9)} s (attempt {rng.randint(1, 5)} of 5)",
            f"Processed {n} {a} records from {b}-queue in {rng.randint(1, 60)}s",
            f"tenant-{a}-{rng.choice(['prod', 'staging', 'dev'])}",
            f"{a}_{b}_{n}",
            f"{_camel(rng, 2)}Error: {b} {c} not found",
        ]
    )


_ORDINARY: tuple[tuple[str, Callable[[random.Random], str]], ...] = (
    ("uuid", lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4))),
    ("uuid, upper case", lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()),
    ("git commit id", lambda rng: _hex(rng, rng.choice([7, 8, 12, 40]))),
    ("sha-256 / md5 digest", lambda rng: _hex(rng, rng.choice([32, 64]))),
    ("trace id / span id", lambda rng: _hex(rng, rng.choice([32, 16]))),
    ("order number", _order),
    ("version string", _version),
    ("route / path", _route),
    ("ISO timestamp", _iso),
    ("other realistic value", _other),
)


def ordinary_corpus(per_kind: int = 120) -> list[tuple[str, str]]:
    """``(kind, value)`` pairs: ``per_kind`` values of each ordinary kind (1,200 by default), always the same."""
    rng = random.Random(_SEED)
    return [(kind, make(rng)) for kind, make in _ORDINARY for _ in range(per_kind)]


# --- secrets without a key or a marker -------------------------------------------------------------

def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _rsa_private_key(rng: random.Random) -> bytes:
    """A PKCS#8 PrivateKeyInfo holding an RSAPrivateKey-shaped structure of random integers."""
    integers = b"".join(_der(0x02, b"\x00" + rng.randbytes(size)) for size in (256, 3, 256, 128, 128, 128, 128, 128))
    rsa = _der(0x30, b"\x02\x01\x00" + integers)
    algorithm = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    return _der(0x30, b"\x02\x01\x00" + algorithm + _der(0x04, rsa))


def _ec_private_key(rng: random.Random) -> bytes:
    """An SEC 1 ECPrivateKey (P-256): version 1, a 32-byte secret, the curve OID."""
    return _der(0x30, b"\x02\x01\x01" + _der(0x04, rng.randbytes(32)) + bytes.fromhex("a00a06082a8648ce3d030107"))


def _certificate(rng: random.Random) -> bytes:
    name = _der(0x30, _der(0x31, _der(0x30, _der(0x06, b"\x55\x04\x03") + _der(0x0C, b"svc.example.com"))))
    tbs = _der(0x30, bytes.fromhex("a003020102") + _der(0x02, rng.randbytes(16)) + name + name + _der(0x30, rng.randbytes(rng.randint(150, 400))))
    signature_algorithm = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")
    return _der(0x30, tbs + signature_algorithm + _der(0x03, b"\x00" + rng.randbytes(256)))


def _wrapped(data: bytes, rng: random.Random) -> str:
    """Base64 on one line, or in 64-character lines as a PEM body without its armour."""
    text = base64.b64encode(data).decode()
    return text if rng.random() < 0.5 else "\n".join(text[i : i + 64] for i in range(0, len(text), 64))


_ALNUM = string.ascii_letters + string.digits
_SECRETS: tuple[tuple[str, Callable[[random.Random], str]], ...] = (
    ("DER private key (RSA, PKCS#8)", lambda rng: _wrapped(_rsa_private_key(rng), rng)),
    ("DER private key (EC)", lambda rng: _wrapped(_ec_private_key(rng), rng)),
    ("DER certificate", lambda rng: _wrapped(_certificate(rng), rng)),
    ("random token, base62, 20-64 chars", lambda rng: "".join(rng.choice(_ALNUM) for _ in range(rng.randint(20, 64)))),
    ("random token, base64 of 16-48 bytes", lambda rng: base64.b64encode(rng.randbytes(rng.randint(16, 48))).decode()),
    ("random token, base64url of 16-48 bytes", lambda rng: base64.urlsafe_b64encode(rng.randbytes(rng.randint(16, 48))).decode().rstrip("=")),
)


def keyless_secrets(per_kind: int = 200) -> list[tuple[str, str]]:
    """``(kind, secret)`` pairs without key or marker, ``per_kind`` of each kind, always the same."""
    rng = random.Random(_SEED + 1)
    return [(kind, make(rng)) for kind, make in _SECRETS for _ in range(per_kind)]


@functools.cache
def secret_corpus(per_kind: int = 200) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """``(kind, text, needles)``: the keyless secrets and the marked kinds of tests.redaction_secrets, in sentences."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.redaction_secrets import SECRET_KINDS

    rng = random.Random(_SEED + 2)
    found: list[tuple[str, str, tuple[str, ...]]] = []
    for kind, text in keyless_secrets(per_kind):
        # The needles: the secret itself and each of its lines (a line is what a grep for it finds).
        needles = tuple({text, *(line for line in text.splitlines() if len(line) >= 16)})
        found.append((kind, rng.choice(["{}", "key material: {}", "got {} from the vault", "{}\n"]).format(text), needles))
    for kind, strategy in sorted(SECRET_KINDS.items()):
        drawn: list[object] = []

        @settings(max_examples=per_kind, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(secret: object) -> None:
            drawn.append(secret)

        collect()
        found += [(kind, f"user said {s.text} twice", s.needles) for s in drawn]  # type: ignore[attr-defined]
    return tuple(found)


def rates(level: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """``({ordinary kind: (changed, total)}, {secret kind: (leaked, total)})`` at ``level``."""
    from amas_otel.redaction import Redactor

    redactor = Redactor(level)
    false_positives: dict[str, tuple[int, int]] = {}
    for kind, value in ordinary_corpus():
        changed, total = false_positives.get(kind, (0, 0))
        false_positives[kind] = (changed + (redactor.redact_text(value) != value), total + 1)
    leaks: dict[str, tuple[int, int]] = {}
    for kind, text, needles in secret_corpus():
        out = redactor.redact_text(text)
        leaked, total = leaks.get(kind, (0, 0))
        leaks[kind] = (leaked + any(n in out for n in needles), total + 1)
    return false_positives, leaks


def _main() -> None:
    for level in ("low", "medium", "high", "maximum"):
        false_positives, leaks = rates(level)
        changed = sum(c for c, _ in false_positives.values())
        total = sum(t for _, t in false_positives.values())
        print(f"level {level}: false positives {changed}/{total} ordinary values ({100 * changed / total:.2f} %)")
        for kind, (c, t) in false_positives.items():
            if c:
                print(f"    {kind}: {c}/{t}")
        for kind, (leaked, t) in leaks.items():
            print(f"    leak rate {kind}: {leaked}/{t} ({100 * leaked / t:.1f} %)")


if __name__ == "__main__":
    _main()
