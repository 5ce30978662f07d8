"""Client-error exceptions and input validation.

The exceptions carry what an HTTP layer needs (:mod:`amas_otel.fastapi` maps
them to 400 / 401 / 403); their messages name the offending *field* and never
repeat the submitted value, so a password or token typed into the wrong
field cannot leak into a response body or a log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace

__all__ = [
    "AmasError",
    "ValidationError",
    "AuthenticationError",
    "AuthorizationError",
    "validate_required_fields",
    "validate_email",
    "validate_password_strength",
    "MIN_PASSWORD_LENGTH",
    "CORRELATION_HEADER",
    "correlation_id",
    "error_body",
    "send_error",
]

#: Header carrying the correlation id (same spelling as amas_otel.logging's contract).
CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_HEADER_KEY = CORRELATION_HEADER.lower().encode()

#: The shortest password :func:`validate_password` accepts by default.
MIN_PASSWORD_LENGTH = 8


class AmasError(Exception):
    """Base of the client errors; ``status_code`` is the HTTP status it maps to."""

    status_code = 400
    #: Stable machine-readable code, used as ``error.type`` and in error bodies.
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(AmasError):
    """Input does not meet a requirement; ``field`` names the input, when there is one."""

    status_code = 400
    code = "validation_error"


class AuthenticationError(AmasError):
    """The caller could not be authenticated (HTTP 401)."""

    status_code = 401
    code = "authentication_error"

    def __init__(self, message: str = "Authentication required", *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class AuthorizationError(AmasError):
    """The authenticated caller may not do this (HTTP 403)."""

    status_code = 403
    code = "authorization_error"

    def __init__(self, message: str = "Not permitted", *, field: str | None = None) -> None:
        super().__init__(message, field=field)


def validate_required_fields(data: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Raise :class:`ValidationError` naming every field of ``fields`` missing or empty in ``data``.

    ``None``, empty strings (after stripping) and empty collections count as missing.
    """
    if not isinstance(data, Mapping):
        raise ValidationError(f"Expected an object with fields, got {type(data).__name__}")
    missing = [name for name in fields if _is_empty(data.get(name))]
    if missing:
        label = "field" if len(missing) == 1 else "fields"
        raise ValidationError(f"Missing required {label}: {', '.join(missing)}", field=missing[0])


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return not value
    return False


# A pragmatic subset of RFC 5322: one "@", a dot-atom local part, a domain of
# LDH labels with a TLD of two letters or more.  Full RFC syntax (quoted local
# parts, comments, IP literals) is valid but almost never intended in a form.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def validate_email(value: Any, *, field: str = "email") -> str:
    """Return ``value`` stripped if it is a plausible e-mail address, else raise :class:`ValidationError`.

    The message names ``field`` and does not echo the value.
    """
    if not isinstance(value, str):
        raise ValidationError(f"Field '{field}' must be a string e-mail address", field=field)
    text = value.strip()
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise ValidationError(f"Field '{field}' is not a valid e-mail address", field=field)
    return text


def validate_password_strength(password: Any, *, field: str = "password", min_length: int = MIN_PASSWORD_LENGTH) -> None:
    """Raise :class:`ValidationError` unless ``password`` is strong enough.

    At least ``min_length`` (8) characters.  Also required:
    a letter and a digit or symbol.  The message says what is missing; it
    never contains the password.
    """
    if not isinstance(password, str):
        raise ValidationError(f"Field '{field}' must be a string", field=field)
    if len(password) < min_length:
        raise ValidationError(f"Password must be at least {min_length} characters", field=field)
    problems = []
    if not any(ch.isalpha() for ch in password):
        problems.append("a letter")
    if not any(not ch.isalpha() for ch in password):
        problems.append("a digit or symbol")
    if problems:
        raise ValidationError(f"Password must contain {' and '.join(problems)}", field=field)


# --- error bodies ---------------------------------------------------------------

_current_correlation_id: Callable[[], str | None] | None = None


def _logging_correlation_id() -> str | None:
    global _current_correlation_id
    if _current_correlation_id is None:
        try:
            from amas_otel.logging import current_correlation_id
        except ImportError:  # logging without correlation support: fall back below

            def current_correlation_id() -> str | None:
                return None

        _current_correlation_id = current_correlation_id
    return _current_correlation_id()


def correlation_id(scope: Mapping[str, Any] | None = None) -> str | None:
    """The correlation id of the request being handled.

    In order: the one :mod:`amas_otel.logging` put in context (its
    ``CorrelationMiddleware``), the request's ``X-Correlation-ID`` header, the
    current trace id — so an error body can always be matched to telemetry.
    """
    found = _logging_correlation_id()
    if found:
        return found
    if scope is not None:
        for name, value in scope.get("headers", ()):
            if name == _CORRELATION_HEADER_KEY:
                return value.decode("latin-1")[:128]
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def error_body(code: str, message: str, *, scope: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON error body every amas-otel handler answers with.

    ``{"error": code, "message": message, "correlation_id": ..., **extra}`` —
    only what the client may see: never a traceback, exception text of an
    unexpected error, or a submitted value.
    """
    return {"error": code, "message": message, "correlation_id": correlation_id(scope), **extra}


async def send_error(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    status: int,
    code: str,
    message: str,
    *,
    scope: Mapping[str, Any] | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> None:
    """Answer an ASGI request with :func:`error_body` as JSON (for pure ASGI middleware)."""
    body = json.dumps(error_body(code, message, scope=scope, **extra), separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
