"""amas_otel.errors: validation helpers and their messages."""

from __future__ import annotations

import pytest

from amas_otel.errors import (
    AuthenticationError,
    AuthorizationError,
    ValidationError,
    error_body,
    validate_email,
    validate_password_strength,
    validate_required_fields,
)


def test_required_fields_names_every_missing_field() -> None:
    with pytest.raises(ValidationError) as info:
        validate_required_fields({"email": "a@b.io", "name": "  ", "password": None}, ["email", "name", "password"])
    assert str(info.value) == "Missing required fields: name, password"
    assert info.value.field == "name"
    validate_required_fields({"email": "a@b.io", "count": 0}, ["email", "count"])  # 0 is a value


def test_required_fields_rejects_non_mapping() -> None:
    with pytest.raises(ValidationError, match="Expected an object with fields, got list"):
        validate_required_fields(["email"], ["email"])  # type: ignore[arg-type]


@pytest.mark.parametrize("good", ["user@example.com", "first.last+tag@sub.example.co.uk", " x@y.io "])
def test_valid_emails(good: str) -> None:
    assert validate_email(good) == good.strip()


@pytest.mark.parametrize("bad", ["", "plain", "a@b", "a@@b.io", "a b@c.io", "a@-b.io", "x" * 250 + "@b.io", None, 42])
def test_invalid_emails_name_the_field_not_the_value(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_email(bad, field="contact_email")
    assert "contact_email" in str(info.value)
    if isinstance(bad, str) and bad:
        assert bad not in str(info.value)


def test_password_rules_never_echo_the_password() -> None:
    for secret, expected in [
        ("s3cr", "at least 8 characters"),
        ("onlyletters", "a digit or symbol"),
        ("1234567890", "a letter"),
    ]:
        with pytest.raises(ValidationError) as info:
            validate_password_strength(secret)
        assert expected in str(info.value)
        assert secret not in str(info.value)
        assert info.value.field == "password"
    validate_password_strength("correct-horse-9")


def test_guide_message_for_short_password() -> None:
    with pytest.raises(ValidationError, match="^Password must be at least 8 characters$"):
        validate_password_strength("short1!")


def test_status_codes_and_error_body() -> None:
    assert (ValidationError("x").status_code, AuthenticationError().status_code, AuthorizationError().status_code) == (
        400,
        401,
        403,
    )
    scope = {"headers": [(b"x-correlation-id", b"req-123")]}
    assert error_body("validation_error", "bad", scope=scope, field="email") == {
        "error": "validation_error",
        "message": "bad",
        "correlation_id": "req-123",
        "field": "email",
    }
