"""The one list of sensitive attribute keys, and the rule that matches them.

Both lines of defence use it: the in-process redaction (span, log-record and
structlog processors) calls :func:`is_sensitive_key`, and the collector's
``redaction`` processor lists :func:`blocked_key_patterns` in
``otel-collector.yaml`` (``python -m amas_otel._redaction_keys`` prints that
YAML block).  Tests hold the three together.

The rule is case- and separator-insensitive and works on whole words: a key is
split into words at every character that is not an ASCII letter or digit and
at each lower-case-or-digit to upper-case step (``apiKey`` -> ``api``,
``Key``); the key is sensitive when some run of consecutive words, lower-cased
and joined, equals one of :data:`SENSITIVE_KEYS` with its separators removed.
So ``password``, ``user.password``, ``X-API-Key``, ``apiKey``, ``API_KEY``,
``access_token`` and ``Set-Cookie`` match, while ``classname`` (which contains
"ssn"), ``input_tokens`` and ``amas.auth.outcome`` do not.
"""

from __future__ import annotations

import re

__all__ = ["SENSITIVE_KEYS", "blocked_key_patterns", "is_sensitive_key", "normalize_key"]

#: Sensitive keys as people write them; matching ignores case and separators.
SENSITIVE_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "authorization",
    "cookie",
    "set-cookie",
    "session",
    "private_key",
    "credential",
    "credentials",
    "credit_card",
    "card_number",
    "cvv",
    "ssn",
    "jwt",
)

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_CAMEL_STEP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalize_key(key: str) -> str:
    """``key`` lower-cased with every separator removed (``"Set-Cookie"`` -> ``"setcookie"``)."""
    return _NOT_ALNUM.sub("", key).lower()


_WORDS = frozenset(normalize_key(k) for k in SENSITIVE_KEYS)
_LONGEST = max(len(w) for w in _WORDS)


def is_sensitive_key(key: str) -> bool:
    """True when ``key`` names a secret under the word rule described in the module docstring."""
    words = [w.lower() for part in _NOT_ALNUM.split(key) for w in _CAMEL_STEP.split(part) if w]
    for start in range(len(words)):
        joined = ""
        for word in words[start:]:
            joined += word
            if len(joined) > _LONGEST:
                break
            if joined in _WORDS:
                return True
    return False


def _word_regex(word: str) -> str:
    """RE2/Python regex for one normalized word (at least two characters), with the rule's word boundaries."""
    first, middle, last = word[0], word[1:-1], word[-1]

    def either(ch: str) -> str:
        return f"[{ch}{ch.upper()}]" if ch.isalpha() else ch

    sep = "[^A-Za-z0-9]*"
    # A word starts at the start of the key, after a separator, or at an
    # upper-case letter that follows a lower-case letter or digit.
    start = f"(?:(?:^|[^A-Za-z0-9]){either(first)}" + (f"|[a-z0-9]{first.upper()})" if first.isalpha() else ")")
    body = "".join(sep + either(ch) for ch in middle)
    # It ends at the end of the key, before a separator, or (when it ends in
    # lower case or a digit) before an upper-case letter.
    end = f"{sep}(?:{either(last)}(?:$|[^A-Za-z0-9])|{last}[A-Z])"
    return start + body + end


def blocked_key_patterns() -> tuple[str, ...]:
    """Regular expressions, valid in Go RE2 and Python, one per sensitive word.

    A key is sensitive exactly when one of them matches somewhere in it (the
    collector's ``redaction: blocked_key_patterns`` uses an unanchored match,
    like :func:`re.search`).
    """
    return tuple(_word_regex(w) for w in sorted(_WORDS))


if __name__ == "__main__":
    print("    blocked_key_patterns:")
    for _pattern in blocked_key_patterns():
        print(f"      - '{_pattern}'")
