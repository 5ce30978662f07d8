"""FastAPI's own test suite, for the installed FastAPI, run bare, under amas-otel-instrument and with
configure() + instrument_app on every app: every difference from the bare run is allow-listed with its
reason (scripts/fastapi-suite, scripts/fastapi_suite/allowlist.txt)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_fastapis_own_suite_changes_only_as_the_allow_list_says() -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "fastapi-suite")], capture_output=True, text=True, timeout=1800, cwd=REPO
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-4000:]
