"""One redaction engine for every signal: structlog events, spans, OTel log records, metric attributes.

A :class:`Redactor` is built for a security level (``low`` < ``medium`` < ``high``
< ``maximum``, see :data:`LEVEL_RULES`) plus the extra ``LOG_REDACT_PATTERNS``.
It applies three kinds of rules:

* **key rules** – a value stored under a sensitive key (``password``,
  ``api_key``, ``Authorization``…) is replaced whole.  Keys are compared after
  lower-casing and removing every non-alphanumeric character, so ``API-Key``,
  ``api_key`` and ``apiKey`` are the same key; the decision is cached per key.
* **value rules** – secrets recognised by their shape (JWTs, PEM private keys,
  provider API keys, e-mail addresses, Luhn-valid card numbers…) are replaced
  inside any string, including JSON documents held in strings, URL query
  strings and ``key=value`` text (quoted values and header lines whole); at
  ``high`` and ``maximum`` also keyless secrets: base64 DER keys and
  certificates, random-looking tokens.
* **structure** – dataclass, attrs, pydantic and namedtuple instances are
  cleaned field by field, ``(key, value)`` pairs by their key.

Replacements read ``[REDACTED:<kind>]`` and every cleaned record/span gets the
number of replacements in :data:`amas_otel.semconv.REDACTION_COUNT`.

Speed: short strings found clean are remembered, so the repeated values of
real traffic (methods, routes, hosts) cost one set lookup; "quiet" strings no
rule of the level can match (request UUIDs, hex trace ids, lower-case paths
holding a short id) are recognised by a few byte-table translations and not
remembered (they would churn the cache); everything else is checked with a handful of
substring tests (C speed), and only strings that contain a possible trigger
(``@``, ``=``, ``eyJ``, long digit runs…) reach the regular expressions.
Only clean values are remembered, never secrets; small non-negative integers
(status codes, ports) are remembered too, so they are skipped at C speed.

Failures never lose telemetry: if redacting a value raises, the whole value
becomes ``[REDACTED:error]``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import json
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import SynchronousMultiLogRecordProcessor
from opentelemetry.sdk.trace import Event, ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Status

from amas_otel._fastpath.span_fields import SpanParts, plain_mapping, span_parts
from amas_otel._sanitize import encodable, is_encodable
from amas_otel._redaction_keys import SENSITIVE_KEYS, is_sensitive_key, normalize_key
from amas_otel.config import ConfigError, LoggingSettings, parse_setting
from amas_otel.scope import amas_meter
from amas_otel.semconv import REDACTION_COUNT, REDACTION_DROPPED, REDACTION_SIGNAL

__all__ = [
    "SecurityLevel",
    "Redactor",
    "RedactingSpanProcessor",
    "RedactingLogRecordProcessor",
    "LEVEL_RULES",
    "MAXIMUM_ALLOWED_KEYS",
    "get_redactor",
    "configure_redaction",
    "safe_metric_attributes",
]


class SecurityLevel(str, enum.Enum):
    """How much is removed; each level removes everything the lower ones do."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    MAXIMUM = "maximum"


_ORDER = {SecurityLevel.LOW: 0, SecurityLevel.MEDIUM: 1, SecurityLevel.HIGH: 2, SecurityLevel.MAXIMUM: 3}

# --- key rules ----------------------------------------------------------------
# Every level applies the shared word rule of amas_otel._redaction_keys (the
# same list the collector's redaction processor blocks), so ``access_token``,
# ``X-API-Key`` and ``Set-Cookie`` are secret while ``input_tokens`` is not.
# Each level adds the keys below, matched on the normalised key (lower case,
# alphanumerics only), which *contains* a term or *ends with* a suffix.
_CONTAINS = (
    ("passphrase", "privatekey", "clientsecret"),
    ("iban", "socialsecurity", "cvc", "creditcard", "cardnumber"),
    ("phone", "mobile", "ipaddress", "dateofbirth", "birthdate", "email"),
)
_SUFFIXES = (
    ("signature", "sig", "otp"),
    ("accountnumber",),
    ("clientip", "remoteip", "sourceip", "clientaddress", "peeraddress", "dob"),
)

# --- value rules --------------------------------------------------------------
# (kind, minimum level index, regex) in matching priority.  Kinds whose name
# starts with "_" protect well-known harmless shapes (UUIDs, ISO timestamps)
# from the looser number rules and are left unchanged.
_VALUE_RULES: tuple[tuple[str, int, str], ...] = (
    ("private_key", 0, r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----|.*)"),
    # user:password@ (the user may be empty: redis://:pw@host; the password may hold "@": up to the last one).
    ("url_password", 0, r"(?<=://)[^/?#\s:@]{0,256}:[^/?#\s]{1,256}(?=@)"),
    ("bearer", 0, r"\b(?i:bearer)\s+[A-Za-z0-9._~+/-]{8,}=*"),
    ("basic", 0, r"\b(?i:basic)\s+[A-Za-z0-9+/]{8,}=*"),
    ("jwt", 0, r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ("aws_key", 0, r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    ("github_token", 0, r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    ("slack_token", 0, r"\bxox[abposre]-[A-Za-z0-9-]{10,250}"),
    ("stripe_key", 0, r"\b(?:sk|rk|pk|whsec)_(?:live|test)_[A-Za-z0-9]{10,250}"),
    ("email", 1, r"(?<![\w.%+-])[\w.%+-]{1,64}+@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b"),
    ("_uuid", 1, r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    ("_timestamp", 1, r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"),
    ("iban", 1, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    ("ssn", 1, r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
    # Issuer prefixes 2-6 only: epoch timestamps (1…) are not cards.
    ("card", 1, r"(?<![\w.])[2-6](?:[ -]?\d){12,18}(?![\w.])"),
    ("ip", 2, r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])"),
    ("ip", 2, r"(?<![\w:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?|::1)(?![\w:])"),
    ("phone", 2, r"(?<![\w+])(?:\+\d{8,15}|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,5}){1,3})(?!\w)"),
)

# --- keyless secrets (high and maximum) ------------------------------------------------
# Values with a secret's signature and no key or marker, the way entropy scanners
# (detect-secrets, gitleaks) find them.  Base64 DER starting a SEQUENCE ("M…") whose first
# element is a version INTEGER is a private key (PKCS#1, PKCS#8, SEC 1); one starting with
# another SEQUENCE is a certificate (or public / encrypted key); the base64 lines that follow
# it (a PEM body without its armour) go with it.  A run of 20+ base64/base64url characters
# holding upper and lower case is a random token unless at least 80 % of it is explained by
# the structure of names: words ("Http", "request"), acronyms before a word or a separator
# ("XMLHttp", "JIRA-"), numbers of 3+ digits, separators.  Identifiers, routes and branch
# names score >= 0.88 on the corpus of tests/redaction_corpus.py, random tokens <= 0.72.
_KEYLESS_RANK = 2
_KEYLESS_KINDS = ("private_key", "certificate", "random_token")
_DER_BASE64 = re.compile(
    r"(?<![A-Za-z0-9+/])M[A-Za-z0-9+/]{38,}={0,2}(?:[ \t]*\r?\n[ \t]*[A-Za-z0-9+/]{4,}={0,2}(?![A-Za-z0-9+/=]))*"
)
_TOKEN_RUN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}=*")
_NAME_PARTS = re.compile(
    r"[A-Z]{2,}(?=[A-Z][a-z]{3})|[A-Z]{2,}(?![A-Za-z])|[A-Z]?[a-z]{3,}|\d{3,}|[A-Z]?\d{1,2}(?=[A-Z][a-z]{2})|[/_+.-]"
)
_NAME_SHARE = 0.8
_WHITE_SPACE = re.compile(r"\s+")


def _der_kind(text: str) -> str | None:
    """``private_key`` or ``certificate`` when base64 ``text`` starts a DER structure of that kind."""
    head = _WHITE_SPACE.sub("", text)[:64]
    try:
        data = base64.b64decode(head[: len(head) // 4 * 4])
    except ValueError:
        return None
    if len(data) < 8 or data[0] != 0x30:
        return None
    size = data[1]
    if size < 0x80:
        length, start = size, 2
    elif 0x81 <= size <= 0x83:
        start = 2 + size - 0x80
        length = int.from_bytes(data[2:start], "big")
    else:
        return None
    inner = data[start : start + 3]
    if length < 30:
        return None
    if inner in (b"\x02\x01\x00", b"\x02\x01\x01"):
        return "private_key"
    if inner[:1] == b"\x30" and (0x81 <= inner[1] <= 0x83 or inner[1] == 0x0D):
        return "certificate"
    return None


def _looks_random(token: str) -> bool:
    """True for a run of base64 characters with both cases that names do not explain (see above)."""
    body = token.rstrip("=")
    if len(body) < 20 or body.isupper() or body.islower() or body.upper() == body.lower():
        return False
    named = sum(len(part) for part in _NAME_PARTS.findall(body))
    return named < _NAME_SHARE * len(body)


#: Human-readable summary of what each level removes (the README table is generated from it).
LEVEL_RULES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    level.value: {
        "keys (word rule)": SENSITIVE_KEYS,
        "keys containing": tuple(t for i in range(min(_ORDER[level], 2) + 1) for t in _CONTAINS[i]),
        "keys ending with": tuple(t for i in range(min(_ORDER[level], 2) + 1) for t in _SUFFIXES[i]),
        "values": tuple(
            dict.fromkeys(
                [k for k, lvl, _ in _VALUE_RULES if lvl <= _ORDER[level] and not k.startswith("_")]
                + list(_KEYLESS_KINDS if _ORDER[level] >= _KEYLESS_RANK else ())
            )
        ),
    }
    for level in SecurityLevel
}

#: At ``maximum`` only these keys (exact) and key prefixes (ending in ".") keep their values.
MAXIMUM_ALLOWED_KEYS: tuple[str, ...] = (
    "event", "level", "logger", "timestamp", "trace_id", "span_id", "component", "correlation_id",
    "event_name", "exception.type", "error.type", "http.request.method", "http.response.status_code",
    "http.route", "http.server.request.duration", "url.scheme", "server.port", "rpc.system", "rpc.service", "rpc.method", "db.system",
    "db.operation.name", "messaging.system", "host.name", "process.pid",
    "service.", "telemetry.", "otel.", "amas.", "code.", "network.protocol.", "thread.",
)

_ALWAYS_SAFE_LOG_KEYS = frozenset(
    {"timestamp", "level", "logger", "trace_id", "span_id", "trace_flags", "_record", "_from_structlog", REDACTION_COUNT}
)
_ERROR = "[REDACTED:error]"
_log = logging.getLogger("amas_otel.redaction")
_NOTHING: frozenset[str] = frozenset()
_CACHE_LIMIT = 8192
_CACHE_MAX_LEN = 256
_NON_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)
# ``key=value`` / ``key: value`` / ``'key': 'value'`` / ``('key', 'value')`` inside text.  A quoted value
# is taken whole (reprs of dataclasses, pydantic models, namedtuples and attrs classes quote their
# strings: ``password='hunter 2x'``); an unquoted one is one token, with an authentication scheme word
# before it (``Token X``); after a header-style ``Key: `` the value of a sensitive key runs to the end
# of the line (``Cookie: a=1; sid=X``), see :meth:`Redactor._pairs`.
_QUOTED_VALUE = r"b?'(?:[^'\\\r\n]|\\.)*+'|b?\"(?:[^\"\\\r\n]|\\.)*+\""  # b'…': the repr of bytes
_AUTH_SCHEMES = r"(?i:bearer|basic|token|digest|negotiate|apikey|api-key|key|hmac|dpop|jwt|mac|oauth)"
_KV = re.compile(
    r"(?<![\w.\-])(?P<k>[A-Za-z_][\w.\-]{0,127}+)(?P<s>\s*=\s*|[\"']\s*[:=]\s*|[\"']\s*,\s*|:\s+)"
    rf"(?P<v>{_QUOTED_VALUE}|{_AUTH_SCHEMES}\s+[^\s&;,'\"}}\])?#]+|[^\s&;,'\"}}\])?#]+)"
)
_NOT_KEYS = ("Error", "Exception", "Warning")  # "ValueError: …" in text names a class, not a key
_PAIR_KEY = re.compile(r"[A-Za-z_][\w.\-]{0,127}")  # what the first item of a (key, value) pair looks like
_UNKNOWN = object()
_BAD_KEY = "_bad_key"  # the key_kind of a key UTF-8 cannot encode: renamed, see Redactor._changes
_RENAMES = object()  # the entry of a _changes result listing (old key, new key) pairs
_CARD_MIN = 2 * 10**12  # the smallest 13-digit number with a card issuer prefix
_SMALL_INT = 65536  # non-negative ints below this are remembered clean (no int that small is a secret)
_NUMBER_KINDS = frozenset({"_uuid", "_timestamp", "iban", "ssn", "card", "ip", "phone"})
# Strings no value rule of a level can match ("quiet"), recognised without the
# scan: str(uuid4()) (the _uuid rule keeps it whole), dash-free lower-case hex
# ids with a letter (trace/span ids: no rule finds a secret without a
# separator or a non-word neighbour), and lower-case words and paths
# ([a-z0-9./{}-]) with fewer digits than the level's number stage needs (low:
# any number, medium: 8, high: 6 and then no "."; the number stage needs 9,
# or 7, or digits and a ".").  Every trigger of the scan (upper case, white
# space, "@", "=", ":", "_", "%", quotes, "+") is outside these characters but
# "xox" (Slack).  Words with at most four digits (routes, versions) are worth
# remembering; ids and paths holding a long id would only churn the cache.
# The test runs on bytes with C-level translate() calls: a regular expression
# saying the same allocates a match object and a stack per call, on the path
# every clean span takes (README, benchmarks).
_WORD_LIMITS = (sys.maxsize, 8, 6)  # most digits in a quiet word, per level (capped at high)
_HEX_DIGITS = b"0123456789abcdef"
_UUID_SHAPE = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
_UUID_MASK = bytes(120 if c in _HEX_DIGITS else 45 if c == 45 else 63 for c in range(256))  # hex digit -> "x"
_WORD_LETTERS = b"abcdefghijklmnopqrstuvwxyz/{}-"  # the word characters but digits and "."
_DIGITS_AS_ZERO = bytes(48 if 48 <= c <= 57 else c for c in range(256))  # a string's shape: every digit "0"


class _Quietness(enum.Enum):
    """What :func:`_quiet_test` decided about a string's shape."""

    LOUD = "loud"  # a rule might match: scan it
    QUIET = "quiet"  # no rule can match
    QUIET_REPEATING = "quiet_repeating"  # no rule can match, and such words repeat: remember the value clean


def _quiet_test(rank: int, remember: Callable[[Any], None]) -> Callable[[Any], bool]:
    """The level's test for a hashable value no rule can match; it ``remember``s the repeating ones.

    Numbers other than long ints (card numbers) are quiet; small non-negative
    ints (status codes, ports: seen on every span) are remembered.  Values
    of other types are not quiet.
    """
    dotted = rank >= 2  # at high a quiet word holds digits or ".", not both
    limit = _WORD_LIMITS[min(rank, 2)]
    # Each byte's class in one translate(): digit "0", word letter "a" ("." is one below high), "?" for the rest.
    letters = _WORD_LETTERS if dotted else _WORD_LETTERS + b"."
    classes = bytes(48 if 48 <= c <= 57 else 97 if c in letters else 46 if c == 46 else 63 for c in range(256))

    def verdict(shape: bytes) -> _Quietness:
        """Whether a string of this shape is quiet; repeating when it is a word with at most four digits."""
        marked = shape.translate(classes)
        if b"?" in marked:
            digits = -1  # not a word
        else:
            digits = marked.count(b"0")
            if dotted and digits and b"." in marked:
                digits = -1
        if 4 < digits <= limit:
            return _LOUD if b"xox" in shape else _QUIET
        if shape and not shape.isdigit() and shape.translate(_UUID_MASK).strip(b"x") == b"":  # a hex id
            return _QUIET
        if 0 <= digits <= limit and b"xox" not in shape:
            return _QUIET_REPEATING
        return _LOUD

    # Verdicts by shape: the UTF-8 bytes with every digit written as "0".  No rule
    # here looks at which digits a string holds, only where they are, so paths
    # differing by an id share one verdict (one translate and a dict lookup).
    shapes: dict[bytes, _Quietness] = {}

    def quiet(value: Any) -> bool:
        kind = type(value)
        if kind is not str:
            if kind is int:
                if 0 <= value < _SMALL_INT:
                    remember(value)
                return value < _CARD_MIN
            return kind is bool or kind is float
        try:
            data = value.encode()
        except UnicodeEncodeError:  # a lone surrogate: in no quiet character set
            return False
        if len(data) == 36 and data.translate(_UUID_MASK) == _UUID_SHAPE:
            return True
        shape = data.translate(_DIGITS_AS_ZERO)
        found = shapes.get(shape)
        if found is None:
            found = verdict(shape)
            if len(shape) <= _CACHE_MAX_LEN:
                if len(shapes) >= _CACHE_LIMIT:
                    shapes.clear()
                shapes[shape] = found
        if found is _QUIET_REPEATING:
            remember(value)
        return found is not _LOUD

    return quiet


_LOUD, _QUIET, _QUIET_REPEATING = _Quietness.LOUD, _Quietness.QUIET, _Quietness.QUIET_REPEATING
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
_SHARED_WORDS = sorted({normalize_key(k) for k in SENSITIVE_KEYS}, key=len, reverse=True)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _digit_count(text: str) -> int:
    return len(text.encode("utf-8", "ignore").translate(None, _NON_DIGITS))


def _fields_of(value: Any) -> dict[str, Any] | None:
    """The fields of a namedtuple, dataclass, attrs class or pydantic model instance, by name; None for anything else."""
    cls = type(value)
    if isinstance(value, tuple):
        names = getattr(cls, "_fields", None)
        return dict(zip(names, value)) if isinstance(names, tuple) else None
    if isinstance(value, (str, bytes, bytearray, int, float, Mapping, list)) or isinstance(value, type):
        return None
    if dataclasses.is_dataclass(cls):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(cls)}
    attributes = getattr(cls, "__attrs_attrs__", None)
    if attributes is not None:
        return {a.name: getattr(value, a.name, None) for a in attributes}
    if hasattr(cls, "__pydantic_fields__") and callable(getattr(value, "model_dump", None)):
        return value.model_dump()
    if hasattr(cls, "__fields__") and callable(getattr(value, "dict", None)):  # pydantic 1
        return value.dict()
    return None


class _Counter:
    """Redactions made in one record; starts at the class's 0 (no ``__init__``: one per span, on the hot path)."""

    n = 0


class Redactor:
    """The redaction engine for one security level.

    ``patterns`` are ``LOG_REDACT_PATTERNS`` entries: a plain name made of
    letters, digits, ``_ . -`` adds a sensitive key (matched like the built-in
    ones: normalised key equal to it or ending with it); anything else is a
    regular expression whose matches inside values become
    ``[REDACTED:pattern]``.  ``allow_keys`` extends :data:`MAXIMUM_ALLOWED_KEYS`.
    Invalid input raises :class:`~amas_otel.config.ConfigError`.
    """

    def __init__(
        self,
        level: SecurityLevel | str = SecurityLevel.MEDIUM,
        patterns: Iterable[str] = (),
        *,
        allow_keys: Iterable[str] = (),
    ) -> None:
        self.level = SecurityLevel(
            parse_setting(LoggingSettings, "security_level", level, label="security_level (LOG_SECURITY_LEVEL)")
        )
        rank = _ORDER[self.level]
        problems: list[str] = []
        extra_keys: list[str] = []
        self._custom: list[re.Pattern[str]] = []
        for raw in patterns if not isinstance(patterns, str) else [patterns]:
            entry = str(raw).strip()
            if not entry:
                continue
            if _PLAIN_KEY.fullmatch(entry):
                extra_keys.append(normalize_key(entry))
                continue
            try:
                compiled = re.compile(entry)
            except re.error as exc:
                problems.append(
                    f"redact_patterns (LOG_REDACT_PATTERNS): {entry!r} is not a valid regular expression ({exc}); "
                    "expected key names (letters, digits, _ . -) or regular expressions"
                )
                continue
            if compiled.search("") is not None:
                problems.append(
                    f"redact_patterns (LOG_REDACT_PATTERNS): {entry!r} matches the empty string and would redact "
                    "everything; expected a pattern that matches only the secret"
                )
                continue
            self._custom.append(compiled)
        if problems:
            raise ConfigError(problems)
        self.patterns = tuple(str(p) for p in (patterns if not isinstance(patterns, str) else [patterns]))
        level_slice = min(rank, 2) + 1
        self._contains = tuple(t for i in range(level_slice) for t in _CONTAINS[i])
        self._suffixes = tuple(t for i in range(level_slice) for t in _SUFFIXES[i]) + tuple(extra_keys)
        allowed = MAXIMUM_ALLOWED_KEYS + tuple(allow_keys)
        self._allow_exact = frozenset(k for k in allowed if not k.endswith("."))
        self._allow_prefix = tuple(k for k in allowed if k.endswith("."))
        self._maximum = self.level is SecurityLevel.MAXIMUM
        self._digits = rank >= 1
        self._network = rank >= 2
        # Two stages, each run only when its cheap gate fires: shapes announced
        # by a literal marker (``@``, ``eyJ``, ``AKIA``…) and number shapes.
        rules = [(kind, rx) for kind, lvl, rx in _VALUE_RULES if lvl <= rank]
        self._stages = [
            (kinds, re.compile("|".join(f"({rx})" for _, rx in chosen), re.DOTALL) if chosen else None)
            for chosen in (
                [(k, rx) for k, rx in rules if k not in _NUMBER_KINDS],
                [(k, rx) for k, rx in rules if k in _NUMBER_KINDS],
            )
            for kinds in ([k for k, _ in chosen],)
        ]
        self._key_cache: dict[str, str | None] = {}
        self._harmless: set[str] = set()  # the keys cached with kind None, for one C-level subset test
        self._clean: set[str | int] = set()  # strings and small ints found clean
        # A custom pattern can match anything: no string is quiet then.
        self._quiet = None if self._custom else _quiet_test(rank, self._remember)

    def __repr__(self) -> str:
        return f"Redactor(level={self.level.value!r}, patterns={self.patterns!r})"

    # --- keys -----------------------------------------------------------------

    def key_kind(self, key: str) -> str | None:
        """The redaction kind for a value stored under ``key``, or None when the value is only scanned."""
        try:
            return self._key_cache[key]
        except KeyError:
            pass
        kind = self._decide_key(key)
        if len(self._key_cache) >= _CACHE_LIMIT:
            self._key_cache.clear()
            self._harmless.clear()
        self._key_cache[key] = kind
        if kind is None:
            self._harmless.add(key)
        return kind

    def _decide_key(self, key: str) -> str | None:
        if not is_encodable(key):
            return _BAD_KEY
        norm = normalize_key(key)
        if is_sensitive_key(key):
            return next((word for word in _SHARED_WORDS if word in norm), "secret")
        for term in self._contains:
            if term in norm:
                return term
        for term in self._suffixes:
            if norm.endswith(term):
                return term
        if self._maximum and key not in self._allow_exact and not str(key).startswith(self._allow_prefix):
            return "not_allowed"
        return None

    # --- public API -------------------------------------------------------------

    def redact(self, obj: Any) -> Any:
        """A copy of ``obj`` (str, number, mapping, sequence, JSON text…) with secrets replaced."""
        return self._any(obj, _Counter())

    def redact_text(self, text: str) -> str:
        """``text`` with every secret found by the value rules replaced."""
        return self._text(text, _Counter())

    def redact_mapping(self, attributes: Mapping[str, Any]) -> tuple[Mapping[str, Any], int]:
        """``(cleaned, count)``; ``cleaned`` is ``attributes`` itself when nothing was found."""
        if self._quiet_mapping(attributes):
            return attributes, 0
        counter = _Counter()
        changes = self._changes(attributes, counter, _NOTHING)
        if changes is None:
            return attributes, counter.n
        cleaned = dict(attributes)
        _apply(cleaned, changes)
        return cleaned, counter.n

    def structlog_processor(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """structlog processor: clean every field in place and add the redaction count."""
        counter = _Counter()
        changes = self._changes(event_dict, counter, _ALWAYS_SAFE_LOG_KEYS)
        if changes is not None:
            _apply(event_dict, changes)
        if counter.n:
            event_dict[REDACTION_COUNT] = counter.n
        return event_dict

    # --- for the span and log record pipelines (a counter per record) -------------

    def is_quiet(self, attributes: Mapping[str, Any]) -> bool:
        """True when nothing in ``attributes`` can need redaction (see :meth:`_quiet_mapping`)."""
        return self._quiet_mapping(attributes)

    def known_clean(self, text: str) -> bool:
        """True when ``text`` was found clean before (one set lookup)."""
        return text in self._clean

    def redact_counted(self, value: Any, counter: _Counter) -> Any:
        """:meth:`redact` adding the replacements to ``counter``; ``value`` itself when nothing was found."""
        return self._any(value, counter)

    def changes(self, attributes: Mapping[str, Any], counter: _Counter) -> dict[str, Any] | None:
        """``{key: cleaned value}`` for the values of ``attributes`` that must change, or None (see :meth:`_changes`)."""
        return self._changes(attributes, counter, _NOTHING)

    def redacted_span(self, span: ReadableSpan) -> ReadableSpan | None:
        """``span`` itself when nothing needs redaction, else a redacted rebuild; None (counted) when neither can be made."""
        try:
            # The hot path of every span: a span without events, links or status
            # description, whose name is known clean and whose attributes are
            # quiet, returns before any per-record bookkeeping.
            parts = span_parts(span)
            name, attributes, has_events, description = parts
            quiet = attributes is None or self._quiet_mapping(attributes)
            if quiet and not has_events and not description and (not name or name in self._clean):
                return span
            return _rebuilt_if_redacted(self, span, parts, quiet)
        except Exception:  # noqa: BLE001 - fail closed: every value dropped, never the original
            _log.warning("amas_otel: cannot redact span %r; its values are dropped", getattr(span, "name", None), exc_info=True)
        return _without_values(span)

    # --- engine -----------------------------------------------------------------

    def _quiet_mapping(self, attributes: Mapping[str, Any]) -> bool:
        """True when nothing in ``attributes`` can need redaction, decided without a Python call per known value.

        The fast path of spans, log records and metric points: when every key
        is known harmless (one C-level subset test), only the values not
        already seen clean are looked at (one set lookup each), and a number or
        a never-seen quiet string (a path with an id, a request UUID: see
        :func:`_quiet_test`) ends there.  False sends the mapping through :meth:`_changes`.
        """
        quiet = self._quiet
        plain = plain_mapping(attributes) if type(attributes) is BoundedAttributes else attributes
        if quiet is None or not self._harmless.issuperset(plain):
            return False
        clean = self._clean
        try:
            # An inline membership test: no Python-level call per value, as filterfalse(set.__contains__) would make.
            for value in plain.values():
                if value not in clean and not quiet(value):
                    return False
        except TypeError:  # an unhashable value (list, dict): the per-key loop
            return False
        return True

    def _changes(
        self, attributes: Mapping[str, Any], counter: _Counter, skip: frozenset[str]
    ) -> dict[str, Any] | None:
        """``{key: cleaned value}`` for the values of ``attributes`` that must change, or None.

        The per-key loop behind :meth:`_quiet_mapping`; ``skip`` (keys the
        pipeline itself writes) is consulted only for values not seen clean.
        """
        key_cache, clean = self._key_cache, self._clean
        plain = plain_mapping(attributes) if type(attributes) is BoundedAttributes else attributes
        changes: dict[str, Any] | None = None
        for key, value in plain.items():
            if key_cache.get(key, _UNKNOWN) is None:
                kind = type(value)
                if kind is str:
                    if value in clean or key in skip:
                        continue
                    new = self._text(value, counter)
                elif kind is bool or kind is float or (kind is int and value < _CARD_MIN) or key in skip:
                    continue
                else:
                    new = self._field(key, value, counter)
            elif key in skip:
                continue
            elif type(key) is str and self.key_kind(key) is _BAD_KEY:
                # A key UTF-8 cannot encode (a lone surrogate): the value moves to the key made encodable.
                if changes is None:
                    changes = {}
                renamed = encodable(key)
                changes.setdefault(_RENAMES, []).append((key, renamed))  # type: ignore[union-attr]
                changes[key] = self._field(renamed, value, counter)
                continue
            else:
                new = self._field(key, value, counter)
            if new is not value:
                if changes is None:
                    changes = {}
                changes[key] = new
        return changes

    def _field(self, key: Any, value: Any, counter: _Counter) -> Any:
        try:
            kind = self.key_kind(key) if isinstance(key, str) else None
            if kind is not None and kind is not _BAD_KEY:
                return self._replaced(kind, value, counter)
            return self._any(value, counter)
        except Exception:  # noqa: BLE001 - a redaction bug must cost the value, not the record
            counter.n += 1
            return _ERROR

    @staticmethod
    def _replaced(kind: str, value: Any, counter: _Counter) -> Any:
        """The value of a sensitive key: ``[REDACTED:kind]`` unless empty or redacted already."""
        if value is None or value == "" or (isinstance(value, str) and value.startswith("[REDACTED:")):
            return value
        counter.n += 1
        return f"[REDACTED:{kind}]"

    def _any(self, value: Any, counter: _Counter) -> Any:
        if isinstance(value, str):
            return self._text(value, counter)
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, int):
            if self._digits and _CARD_MIN <= value < 10**19 and str(value)[0] in "23456" and _luhn(str(value)):
                counter.n += 1
                return "[REDACTED:card]"
            return value
        if isinstance(value, Mapping):
            out = {}
            changed = False
            for k, v in value.items():
                new = self._field(k, v, counter)
                if type(k) is str and not is_encodable(k):
                    k = encodable(k)
                    changed = True
                changed = changed or new is not v
                out[k] = new
            return out if changed else value
        fields = _fields_of(value)
        if fields is not None:
            # Dataclasses, attrs classes, pydantic models and namedtuples: orjson renders some of them
            # natively (every field, whatever the repr shows), so they are cleaned field by field; when
            # a field changes the object becomes the mapping of its cleaned fields.
            cleaned = self._any(fields, counter)
            return value if cleaned is fields else cleaned
        if isinstance(value, (list, tuple)):
            if len(value) == 2 and (kind := self._pair_kind(value[0])) is not None:
                # ("password", "hunter2x"), a header tuple (b"authorization", b"Bearer x"): a key and its value.
                second = self._replaced(kind, value[1], counter)
                if second is value[1]:
                    return value
                return (value[0], second) if isinstance(value, tuple) else [value[0], second]
            items = [self._any(v, counter) for v in value]
            if all(a is b for a, b in zip(items, value)):
                return value
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, (bytes, bytearray)):
            text = bytes(value).decode("utf-8", "replace")
            return value if self._text(text, counter) is text else "[REDACTED:bytes]"
        # Anything else is rendered with str() by exporters and with repr() by the JSON and console
        # renderers: both are scanned, and the cleaned repr replaces the object when either held a secret.
        text, shown = str(value), repr(value)
        cleaned = self._text(text, counter)
        if shown == text:
            return value if cleaned is text else cleaned
        cleaned_shown = self._text(shown, counter)
        return value if cleaned is text and cleaned_shown is shown else cleaned_shown

    def _pair_kind(self, first: Any) -> str | None:
        """The kind of a ``(key, value)`` pair's value when ``first`` names a secret, else None."""
        if isinstance(first, (bytes, bytearray)):
            first = bytes(first).decode("latin-1")
        if type(first) is not str or not _PAIR_KEY.fullmatch(first):
            return None
        kind = self.key_kind(first)
        return None if kind == "not_allowed" or kind is _BAD_KEY else kind

    def _remember(self, text: str | int) -> None:
        if type(text) is str and len(text) > _CACHE_MAX_LEN:
            return
        if len(self._clean) >= _CACHE_LIMIT:
            self._clean.clear()
        self._clean.add(text)

    def _text(self, text: str, counter: _Counter) -> str:
        if text in self._clean:
            return text
        if self._quiet is not None and self._quiet(text):
            return text
        try:
            if not text.isascii():
                text = encodable(text)  # lone surrogates: no sink can encode them
            out = self._scrub(text, counter) if len(text) >= 5 or self._maximum else text
            if self._custom:
                out = self._custom_patterns(out, counter)
        except Exception:  # noqa: BLE001 - see _field
            counter.n += 1
            return _ERROR
        if out is text:
            self._remember(text)
        return out

    def _scrub(self, text: str, counter: _Counter) -> str:
        first = text[:1]
        if first == "{" or first == "[":
            stripped = text.strip()
            if stripped[-1:] in ("}", "]"):
                try:
                    document = json.loads(stripped)
                except ValueError:
                    document = None
                if isinstance(document, (dict, list)):
                    before = counter.n
                    cleaned = self._any(document, counter)
                    return text if counter.n == before else json.dumps(cleaned, ensure_ascii=False)
        out = text
        # Cheap gates (substring tests run at C speed; a regex alternation is
        # several times slower): each stage runs only when its trigger is present.
        if (
            "=" in out
            or (":" in out and (": " in out or ":\t" in out or '":' in out or "':" in out))
            or ("," in out and ("'," in out or '",' in out))
        ):
            out = self._pairs(out, counter)
        if (
            "@" in out
            or "eyJ" in out
            or "-----" in out
            or "AKIA" in out
            or "ASIA" in out
            or "xox" in out
            or ("_" in out and ("gh" in out or "k_" in out or "whsec" in out))
            or ("bearer" in (lowered := out.lower()) or "basic" in lowered)
        ):
            out = self._stage(0, out, counter)
        if self._digits and len(out) >= (2 if self._network else 9):
            digits = _digit_count(out)
            if digits >= (7 if self._network else 9) or (self._network and digits and ("." in out or ":" in out)):
                out = self._stage(1, out, counter)
        if self._network and len(out) >= 20 and not out.islower():  # keyless secrets hold upper case
            out = self._keyless(out, counter)
        return out

    def _keyless(self, text: str, counter: _Counter) -> str:
        """``text`` without base64 DER keys and certificates and random tokens (see :func:`_looks_random`)."""

        def der(m: re.Match[str]) -> str:
            kind = _der_kind(m.group(0))
            if kind is None:
                return m.group(0)
            counter.n += 1
            return f"[REDACTED:{kind}]"

        def token(m: re.Match[str]) -> str:
            found = m.group(0)
            if _looks_random(found):
                counter.n += 1
                return "[REDACTED:random_token]"
            if "/" not in found:
                return found
            # A path holding a token ("/reset/<token>"): its segments one by one.
            segments = found.split("/")
            kept = [s if not _looks_random(s) else "[REDACTED:random_token]" for s in segments]
            counter.n += sum(a is not b for a, b in zip(kept, segments))
            return "/".join(kept)

        if "M" in text:
            text = _DER_BASE64.sub(der, text)
        return _TOKEN_RUN.sub(token, text)

    def _stage(self, index: int, text: str, counter: _Counter) -> str:
        kinds, pattern = self._stages[index]
        if pattern is None:
            return text
        return pattern.sub(lambda m: self._value(kinds, m, counter), text)

    def _pairs(self, text: str, counter: _Counter) -> str:
        """``text`` with the value of every sensitive ``key=value`` (and the other forms of :data:`_KV`) replaced whole.

        After a key that is not sensitive the search goes on from the start of
        its value, so a pair inside a value (``note=password=x``,
        ``data='token=x'``) is found too.
        """
        parts: list[str] = []
        done = position = 0
        search = _KV.search
        while (m := search(text, position)) is not None:
            replaced = self._kv(m, text, counter)
            if replaced is None:
                position = m.start("v")
                continue
            replacement, position = replaced
            parts += (text[done : m.start()], replacement)
            done = position
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def _kv(self, m: re.Match[str], text: str, counter: _Counter) -> tuple[str, int] | None:
        """``(replacement of the match, where the replaced value ends)``, or None when the pair stays."""
        key, value = m.group("k"), m.group("v")
        # Only keys naming a secret count in text (maximum's allow list is for fields and attributes: a
        # query string or "charset=utf-8" stays); "PaymentSessionError: …" is an exception, not a key.
        kind = None if key.endswith(_NOT_KEYS) else self._pair_kind(key)
        if kind is None:
            if "%" in value:
                decoded = urllib.parse.unquote(value)
                before = counter.n
                self._stage(1, self._stage(0, decoded, counter), counter)
                if counter.n != before:
                    return f"{key}{m.group('s')}[REDACTED:encoded]", m.end()
            return None
        end = m.end()
        prefix = "b" if value[:2] in ("b'", 'b"') else ""
        value = value[len(prefix) :]
        quote = value[0] if value[0] in "'\"" and len(value) > 1 and value[-1] == value[0] else ""
        if quote:
            value = value[1:-1]
        elif m.group("s")[0] == ":":  # a header line: the whole rest of the line is the value
            line_end = text.find("\n", end)
            end = len(text) if line_end < 0 else line_end - (text[line_end - 1 : line_end] == "\r")
        if value.startswith("[REDACTED:") and end == m.end():
            return None
        counter.n += 1
        return f"{key}{m.group('s')}{prefix}{quote}[REDACTED:{kind}]{quote}", end

    def _value(self, kinds: list[str], m: re.Match[str], counter: _Counter) -> str:
        kind = kinds[m.lastindex - 1]  # type: ignore[operator]
        found = m.group(0)
        if kind[0] == "_":
            return found
        if kind == "card":
            digits = found.replace(" ", "").replace("-", "")
            if not 13 <= len(digits) <= 19 or not _luhn(digits) or len(set(digits)) == 1:
                return found
        elif kind == "iban":
            if not _iban_ok(found):
                return found
        elif kind == "phone":
            if _digit_count(found) < (8 if found.startswith("+") else 9):
                return found
        counter.n += 1
        return f"[REDACTED:{kind}]"

    def _custom_patterns(self, text: str, counter: _Counter) -> str:
        for pattern in self._custom:
            text, n = pattern.subn("[REDACTED:pattern]", text)
            counter.n += n
        return text


# --- the configured redactor -------------------------------------------------------

_redactor: Redactor | None = None


def get_redactor() -> Redactor:
    """The process's redactor (``LOG_SECURITY_LEVEL`` / ``LOG_REDACT_PATTERNS`` unless configured otherwise)."""
    global _redactor
    if _redactor is None:
        from amas_otel.config import get_settings

        settings = get_settings().logging
        _redactor = Redactor(settings.security_level, settings.redact_patterns)
    return _redactor


def configure_redaction(redactor: Redactor | None) -> Redactor | None:
    """Make ``redactor`` the one :func:`get_redactor` returns (``configure_logging`` does);
    ``None`` goes back to the one described by the settings."""
    global _redactor
    _redactor = redactor
    return redactor


def safe_metric_attributes(attributes: Mapping[str, Any], redactor: Redactor | None = None) -> Mapping[str, Any]:
    """``attributes`` fit for a metric data point: sensitive values collapse to ``[REDACTED:kind]``.

    Metric attributes are exported on every collection and become label
    values, so a leaked secret is both persisted and a cardinality explosion;
    instruments fed with caller-provided attributes pass them through here.
    """
    cleaned, _ = (redactor or get_redactor()).redact_mapping(attributes)
    return cleaned


# --- span and log record pipelines -------------------------------------------------


class _RedactingChain:
    """What both redacting chains share: their redactor (None: the configured one) and the
    processors they hand cleaned items to, a tuple replaced whole so the export path reads it without a lock."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor
        self._receivers: tuple[Any, ...] = ()
        self._receivers_lock = threading.Lock()

    def _add_receiver(self, processor: Any, register: Callable[[Any], None]) -> None:
        with self._receivers_lock:
            register(processor)
            self._receivers += (processor,)

    def _current_redactor(self) -> Redactor:
        return self._redactor or get_redactor()


class RedactingSpanProcessor(_RedactingChain, SynchronousMultiSpanProcessor):
    """A tracer provider's processor chain that hands every processor in it the finished span redacted.

    Install it as ``TracerProvider(active_span_processor=RedactingSpanProcessor())``
    (``configure()`` does): every processor added to the provider then
    receives, in ``on_end``, the span the redactor returns — the snapshot
    itself when nothing was found, else a new ``ReadableSpan`` built through
    its public constructor from redacted copies of the name, attributes,
    events (exception messages and stack traces included), links and status
    description, dropped counts kept.  Nothing writes a span's private
    fields, so an SDK release that renames them cannot make a "redacted"
    span export its original data: a span the redactor cannot rebuild is
    dropped and counted in ``amas.redaction.dropped``.  The live span is
    never touched; ``on_start`` and the rest are the SDK's.
    """

    def add_span_processor(self, span_processor: Any) -> None:
        self._add_receiver(span_processor, super().add_span_processor)

    def on_end(self, span: ReadableSpan) -> None:
        receivers = self._receivers
        if not receivers:
            _warn_not_a_chain()
            return
        cleaned = self._current_redactor().redacted_span(span)
        if cleaned is not None:
            for processor in receivers:
                processor.on_end(cleaned)


@functools.cache
def _warn_not_a_chain() -> None:
    # Added as one processor among others it cannot hand them a rebuilt span: they would see the original.
    _log.warning(
        "amas_otel: RedactingSpanProcessor has no processors to hand redacted spans to; install it as the "
        "provider's chain, TracerProvider(active_span_processor=RedactingSpanProcessor()), and add exporters to the provider"
    )


class RedactingLogRecordProcessor(_RedactingChain, SynchronousMultiLogRecordProcessor):
    """A logger provider's processor chain that hands every processor in it the record redacted (body and attributes).

    Install it as ``LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor())``
    (``configure()`` does).  Records emitted by amas-otel's own structlog
    pipeline were cleaned already and carry a marker, so they are not
    scanned twice.  The record's body and attributes are replaced through the
    API record's public fields; a record that cannot be cleaned is dropped
    and counted in ``amas.redaction.dropped``.
    """

    def add_log_record_processor(self, log_record_processor: Any) -> None:
        self._add_receiver(log_record_processor, super().add_log_record_processor)

    def on_emit(self, log_data: Any) -> None:
        if _redacted_record(self._current_redactor(), log_data):
            for processor in self._receivers:
                processor.on_emit(log_data)

    emit = on_emit  # the name older SDKs call


def _rebuilt_if_redacted(redactor: Redactor, span: ReadableSpan, parts: SpanParts, quiet: bool) -> ReadableSpan:
    """``span`` rebuilt with its ``parts`` redacted, or ``span`` itself when no value changed."""
    name, attributes, has_events, description = parts
    counter = _Counter()
    new_name = redactor.redact_counted(name, counter) if name else name
    events, links = (_redacted_events(redactor, span, counter), _redacted_links(redactor, span, counter)) if has_events else (None, None)
    new_description = redactor.redact_counted(description, counter) if description else description
    changes = None if quiet else redactor.changes(attributes or {}, counter)
    if not (counter.n or changes or new_name is not name or events is not None or links is not None or new_description is not description):
        return span
    status = span.status
    return _rebuilt_span(
        span,
        name=new_name,
        attributes=_with_count(span.dropped_attributes, attributes, changes, counter.n),
        events=span.events if events is None else events,
        links=span.links if links is None else links,
        status=status if new_description is description else Status(status.status_code, new_description),
    )


def _without_values(span: ReadableSpan) -> ReadableSpan | None:
    """``span`` with every value dropped (name, attributes, events, links, status description), or None (counted)."""
    try:
        return _rebuilt_span(span, name=_ERROR, attributes={REDACTION_COUNT: 1}, events=(), links=(), status=Status(span.status.status_code))
    except Exception:  # noqa: BLE001 - nothing can be sent safely: drop it, counted
        _log.warning("amas_otel: cannot rebuild span; it is dropped", exc_info=True)
        _count_dropped("span")
        return None


def _rebuilt_span(span: ReadableSpan, *, name: str, attributes: Any, events: Any, links: Any, status: Status) -> ReadableSpan:
    """A ``ReadableSpan`` like ``span`` (through the public constructor) with the given redacted parts."""
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=_bounded_list(events, span.dropped_events),
        links=_bounded_list(links, span.dropped_links),
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _bounded_list(items: Any, dropped: int) -> BoundedList:
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded


def _bounded(original: Any, cleaned: Mapping[str, Any]) -> Any:
    if not isinstance(original, BoundedAttributes):
        return cleaned
    copy = BoundedAttributes(original.maxlen, cleaned, immutable=True, max_value_len=original.max_value_len)
    copy.dropped += original.dropped
    return copy


def _redacted_events(redactor: Redactor, span: ReadableSpan, counter: _Counter) -> list[Any] | None:
    """The span's events with redacted names and attributes, or None when none changed."""
    new_events, changed = [], False
    for event in span.events:
        attrs, n = redactor.redact_mapping(event.attributes) if event.attributes else (event.attributes, 0)
        event_name = redactor.redact_counted(event.name, counter)
        if attrs is not event.attributes or event_name is not event.name:
            counter.n += n
            changed = True
            event = Event(event_name, _bounded(event.attributes, attrs), event.timestamp)
        new_events.append(event)
    return new_events if changed else None


def _redacted_links(redactor: Redactor, span: ReadableSpan, counter: _Counter) -> list[Any] | None:
    """The span's links with redacted attributes, or None when none changed."""
    new_links, changed = [], False
    for link in span.links:
        if link.attributes:
            attrs, n = redactor.redact_mapping(link.attributes)
            if attrs is not link.attributes:
                counter.n += n
                changed = True
                link = trace.Link(link.context, _bounded(link.attributes, attrs))
        new_links.append(link)
    return new_links if changed else None


def _apply(target: dict[Any, Any], changes: dict[Any, Any]) -> None:
    """Write ``changes`` (from :meth:`Redactor._changes`) into ``target``, renaming the keys listed under ``_RENAMES``."""
    renames = changes.pop(_RENAMES, None)
    target.update(changes)
    for old, new in renames or ():
        target[new] = target.pop(old)


def _cleaned(attributes: Mapping[str, Any] | None, changes: dict[Any, Any] | None, count: int) -> dict[str, Any]:
    """A copy of ``attributes`` with ``changes`` applied and the item's redaction ``count`` added (when any)."""
    cleaned = dict(attributes or {})
    if changes:
        _apply(cleaned, changes)
    if count:
        cleaned[REDACTION_COUNT] = count
    return cleaned


def _with_count(dropped: int, attributes: Any, changes: dict[Any, Any] | None, count: int) -> BoundedAttributes:
    """A span's attributes, cleaned (:func:`_cleaned`), with its ``dropped`` count kept."""
    bounded = BoundedAttributes(None, _cleaned(attributes, changes, count), immutable=True)
    bounded.dropped = dropped
    return bounded


def _redacted_record(redactor: Redactor, log_data: Any) -> bool:
    """Clean ``log_data``'s API record in place (its public ``body`` and ``attributes``); False (counted) when it cannot be."""
    try:
        record = log_data.log_record
        if getattr(record, "amas_otel_redacted", False):  # cleaned by the structlog pipeline (amas_otel.logging.bridge)
            return True
        counter = _Counter()
        try:
            body = record.body
            new_body = redactor.redact_counted(body, counter) if body is not None else body
            attributes = record.attributes
            changes = None if attributes is None or redactor.is_quiet(attributes) else redactor.changes(attributes, counter)
            if not (counter.n or changes or new_body is not body):
                return True
            new_attributes = _bounded(attributes, _cleaned(attributes, changes, counter.n))
        except Exception:  # noqa: BLE001 - the engine failed on a value: mask the record, keep it
            _log.warning("amas_otel: cannot redact a log record; its body and attributes are masked", exc_info=True)
            new_body, new_attributes = _ERROR, {REDACTION_COUNT: 1}
        record.body = new_body
        record.attributes = new_attributes
        # What the exporters will read, read back the way they read it.
        if log_data.log_record.body is not new_body or log_data.log_record.attributes is not new_attributes:
            raise RuntimeError("the record did not take the redacted values")
        return True
    except Exception:  # noqa: BLE001 - fail closed: the record is not sent
        _log.warning("amas_otel: cannot redact a log record; it is dropped", exc_info=True)
        _count_dropped("log_record")
        return False


def _count_dropped(signal: str) -> None:
    try:
        amas_meter().create_counter(
            REDACTION_DROPPED, unit="{item}", description="Spans and log records dropped because they could not be redacted"
        ).add(1, {REDACTION_SIGNAL: signal})
    except Exception:  # noqa: BLE001
        _log.debug("amas_otel: cannot count a dropped item", exc_info=True)


