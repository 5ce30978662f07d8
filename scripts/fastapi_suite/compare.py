"""Compare FastAPI test-suite runs test by test against the bare run and the allow-list.

    python compare.py ALLOWLIST BARE.xml MODE=RUN.xml [MODE=RUN.xml ...]

Each RUN is a pytest JUnit XML report.  A test whose outcome (passed, failed, error, skipped) differs
from the bare run must match an allow-list entry for that mode; an entry that matches no difference is
stale and fails too, so the list says exactly what differs.  Allow-list lines:

    MODE PATTERN  # REASON

MODE is ``launcher``, ``in-code`` or ``both``; PATTERN a ``module::test`` id as in the report
(``tests.test_x::test_y[param]``), where ``*`` and ``?`` are wildcards and brackets are literal; the
reason, after two spaces and ``#``, is required.  Exit status 1 on any
unexplained difference or stale entry, and when the bare run itself did not pass (a test environment
missing one of the suite's plugins fails every run alike, which would otherwise look like no difference).
"""

from __future__ import annotations

import fnmatch
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

__all__ = ["main"]

_MODES = ("launcher", "in-code")


def outcomes(report: Path) -> dict[str, str]:
    result: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                break
        # A test that failed and then errored in teardown is reported twice: keep the worse.
        if result.get(test_id) not in ("failed", "error"):
            result[test_id] = outcome
    return result


def allow_list(path: Path) -> list[tuple[str, str, str]]:
    entries = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # Test ids may hold spaces and '#': the reason starts at the first "  # ".
        spec, _, reason = line.partition("  # ")
        mode, _, pattern = spec.strip().partition(" ")
        if mode not in (*_MODES, "both") or not pattern.strip() or not reason.strip():
            raise SystemExit(f"{path}:{number}: expected 'MODE PATTERN  # REASON' with MODE in launcher, in-code, both")
        entries.append((mode, pattern.strip(), reason.strip()))
    return entries


def main(argv: list[str]) -> int:
    entries = allow_list(Path(argv[0]))
    bare = outcomes(Path(argv[1]))
    used: set[int] = set()
    unexplained = 0
    print(f"bare: {len(bare)} tests, {dict(sorted(Counter(bare.values()).items()))}")
    broken = sorted(test_id for test_id, outcome in bare.items() if outcome in ("failed", "error"))
    if not bare or broken:
        print(f"the bare run did not pass ({len(broken)} failed or errored, e.g. {broken[:3]}): nothing to compare against")
        return 1
    for spec in argv[2:]:
        mode, _, report = spec.partition("=")
        if mode not in _MODES:
            raise SystemExit(f"unknown mode {mode!r}: expected one of {', '.join(_MODES)}")
        run = outcomes(Path(report))
        differing = {
            test_id: (bare.get(test_id, "absent"), run.get(test_id, "absent"))
            for test_id in bare.keys() | run.keys()
            if bare.get(test_id) != run.get(test_id)
        }
        allowed = 0
        for test_id, (before, after) in sorted(differing.items()):
            matches = [
                index
                for index, (entry_mode, pattern, _) in enumerate(entries)
                if entry_mode in (mode, "both") and fnmatch.fnmatchcase(test_id, pattern.replace("[", "[[]"))
            ]
            if matches:
                used.update(matches)
                allowed += 1
            else:
                unexplained += 1
                print(f"UNEXPLAINED [{mode}] {test_id}: bare {before}, {mode} {after}")
        print(
            f"{mode}: {len(run)} tests, {dict(sorted(Counter(run.values()).items()))}; "
            f"{len(differing)} differ from bare, {allowed} allow-listed"
        )
    stale = [entry for index, entry in enumerate(entries) if index not in used]
    for mode, pattern, reason in stale:
        print(f"STALE allow-list entry [{mode}] {pattern} ({reason}): matches no difference")
    print(f"allow-list: {len(entries)} entries, {len(stale)} stale; {unexplained} unexplained differences")
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
