"""The README is part of the product: its commands, settings and signal names must match the code."""

from __future__ import annotations

import dataclasses
import re

from amas_otel import semconv
from amas_otel.config import _SECTIONS
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_same_test_command() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["./scripts/demo", "./scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^\./scripts/test\s*$", ci, re.M)


def test_every_setting_is_documented() -> None:
    for cls in _SECTIONS.values():
        for f in dataclasses.fields(cls):
            if f.metadata.get("env"):
                assert f"`{f.metadata['env']}`" in README, f.metadata["env"]


def _names(namespace: object) -> set[str]:
    found = set()
    for key, value in vars(namespace).items():
        if key.startswith("_"):
            continue
        if key.isupper() and isinstance(value, str):
            found.add(value)
        elif key.isupper() and isinstance(value, tuple) and value and isinstance(value[0], str):
            found.add(value[0])  # (name, unit) pairs
        elif isinstance(value, type):
            found |= _names(value)
    return found


def test_every_signal_name_is_in_the_readme() -> None:
    names = _names(semconv) - {semconv.INSTRUMENTATION_SCOPE}

    def documented(name: str) -> bool:
        # A prefix such as "amas.context." is documented with a placeholder: `amas.context.<name>`.
        return f"`{name}`" in README or (name.endswith(".") and f"`{name}" in README)

    missing = sorted(name for name in names if not documented(name))
    assert not missing, f"undocumented signal names: {missing}"
