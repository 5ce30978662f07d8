"""Shared fixtures.  PostgreSQL and Redis are throwaway servers started once per session
(``tests/support/services.py``) unless ``AMAS_TEST_POSTGRES_DSN`` / ``AMAS_TEST_REDIS_URL``
name existing ones; a missing service is a failure, never a skip."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import free_port
from tests.support.otlp import OtlpReceiver

if TYPE_CHECKING:
    from tests.support.capture import Capture
from tests.support.services import postgres_server, redis_server

__all__ = ["PYTHON", "REPO", "free_port", "python_env"]

# Fixtures shared by the logging and redaction tests (make_pipeline).
pytest_plugins = ["tests.logging_support"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL ``test`` database: ``$AMAS_TEST_POSTGRES_DSN``, else a throwaway server."""
    if dsn := os.environ.get("AMAS_TEST_POSTGRES_DSN"):
        yield dsn
        return
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis database: ``$AMAS_TEST_REDIS_URL``, else a throwaway server."""
    if url := os.environ.get("AMAS_TEST_REDIS_URL"):
        yield url
        return
    with redis_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _fast_paths_restored() -> Iterator[None]:
    """A test that switches a fast path off (a simulated SDK change) leaves it as it found it."""
    from amas_otel._fastpath import fast_paths

    saved = {path: (path.on, path.reason, path.tested, path.checked) for path in fast_paths().values()}
    yield
    for path, (on, reason, tested, checked) in saved.items():
        path.on, path.reason, path.tested, path.checked = on, reason, tested, checked


@pytest.fixture(scope="session")
def example_capture(tmp_path_factory: pytest.TempPathFactory) -> "Capture":
    """The example service's spans, metrics, log records and JSON lines for one request mix (run once)."""
    from tests.support.capture import capture_example

    return capture_example(tmp_path_factory.mktemp("capture"), python_env, REPO)


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
