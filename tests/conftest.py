"""Shared fixtures.  Services are found from environment variables with loopback defaults;
a missing service is a failure, never a skip."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.otlp import OtlpReceiver

# Fixtures shared by the logging and redaction tests (make_pipeline).
pytest_plugins = ["tests.logging_support"]

REPO = Path(__file__).resolve().parent.parent
POSTGRES_DSN = os.environ.get("AMAS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AMAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every amas/OTel/guide variable so a test starts from defaults."""
    prefixes = ("OTEL_", "AMAS_", "LOG_", "HEALTH_CHECK_", "CIRCUIT_BREAKER_", "ERROR_RECOVERY_", "PROMETHEUS_", "PROJECT_ROOT_")
    for name in list(os.environ):
        if name.startswith(prefixes) and not name.startswith("AMAS_TEST_"):
            monkeypatch.delenv(name)
    return monkeypatch


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


PYTHON = sys.executable
