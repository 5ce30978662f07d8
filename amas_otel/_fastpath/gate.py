"""The gate every fast path passes: tested versions, a self-test, and switching off for good on a failure.

A fast path reads or writes private names of opentelemetry or structlog to
skip work their public API repeats on every span, record or measurement.  It
is only as safe as the release it was written against, so each one declares
the distribution versions it was tested with and a self-test that sends a
canary through it and through its public-API twin and compares the results.
:func:`check_all` (run by ``configure()``) turns a fast path on only when both
agree; otherwise the public path serves and one WARNING names the fast path
and the versions.  A fast path that raises while running calls
:meth:`FastPath.failed`: it is off for the rest of the process, the event is
counted in :data:`amas_otel.semconv.FASTPATH_FAILURES`, one WARNING is
logged, and the caller sends the item through the public path.

``AMAS_FAST_PATHS=off`` keeps every fast path off (the public paths only).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any
from importlib import metadata

from packaging.version import InvalidVersion, Version

from amas_otel.scope import amas_meter
from amas_otel.semconv import FASTPATH_FAILURES, FASTPATH_NAME

__all__ = ["FastPath", "fast_paths", "check_all"]

_log = logging.getLogger("amas_otel.fastpath")
_registry: dict[str, FastPath] = {}
#: Where FASTPATH_FAILURES is counted: None for the global meter provider (tests pass their own).
failures_meter_provider: Any = None
_lock = threading.RLock()


class FastPath:
    """One fast path: ``on`` is True only after its versions and self-test were checked and while it has not failed.

    ``tested`` maps each distribution the fast path reads the internals of to
    ``(oldest tested, first untested)`` versions.  ``self_test`` raises when
    the fast path's result differs from its public twin's.  Hot paths read
    ``on`` (an attribute) per item; :meth:`enabled` checks once, on first use.
    """

    __slots__ = ("name", "tested", "self_test", "on", "reason", "checked")

    def __init__(self, name: str, tested: Mapping[str, tuple[str, str]], self_test: Callable[[], None]) -> None:
        self.name = name
        self.tested = dict(tested)
        self.self_test = self_test
        self.on = False
        self.reason = "not checked yet"
        self.checked = False
        _registry[name] = self

    def enabled(self) -> bool:
        """``on``, checking versions and self-test the first time (``configure()`` does it up front)."""
        if not self.checked:
            self.check()
        return self.on

    def check(self) -> bool:
        """Decide ``on``: tested versions installed, ``AMAS_FAST_PATHS`` not off, self-test passed."""
        with _lock:
            if self.checked:
                return self.on
            self.checked = True
            if os.environ.get("AMAS_FAST_PATHS", "on").strip().lower() in ("off", "0", "false", "no"):
                self.reason = "off: AMAS_FAST_PATHS=off"
                return False
            versions = _installed(self.tested)
            untested = _untested(self.tested, versions)
            if untested:
                self.reason = "off: untested " + ", ".join(untested)
                _log.warning("amas_otel: fast path %s is off, public API used instead: untested %s", self.name, ", ".join(untested))
                return False
            try:
                self.self_test()
            except Exception as exc:  # noqa: BLE001 - any difference or error keeps the public path
                self.reason = f"off: self-test failed ({type(exc).__name__}: {exc})"
                _log.warning(
                    "amas_otel: fast path %s is off, public API used instead: its self-test failed with %s (%s): %s",
                    self.name,
                    ", ".join(f"{d} {v}" for d, v in versions.items()),
                    type(exc).__name__,
                    exc,
                )
                return False
            self.on = True
            self.reason = "on: " + ", ".join(f"{d} {v}" for d, v in versions.items())
            return True

    def failed(self, exc: BaseException) -> None:
        """Switch off for the process after ``exc`` at run time: counted, one WARNING; the caller takes the public path."""
        with _lock:
            if not self.on:
                return
            self.on = False
            self.reason = f"off: failed at run time ({type(exc).__name__}: {exc})"
        _log.warning(
            "amas_otel: fast path %s failed (%s: %s) and is off for this process; the public API is used instead",
            self.name,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        try:
            meter = amas_meter(failures_meter_provider)
            meter.create_counter(FASTPATH_FAILURES, unit="{failure}", description="Fast paths switched off at run time").add(
                1, {FASTPATH_NAME: self.name}
            )
        except Exception:  # noqa: BLE001 - the count must not break the caller
            _log.debug("amas_otel: cannot count a fast-path failure", exc_info=True)

    @staticmethod
    def within_tested(tested: Mapping[str, tuple[str, str]]) -> bool:
        """True when every distribution of ``tested`` is installed at a version in its range."""
        return not _untested(tested, _installed(tested))

    def reset(self) -> None:
        """Forget the decision (tests; a process decides once)."""
        with _lock:
            self.on, self.checked, self.reason = False, False, "not checked yet"


def _installed(tested: Mapping[str, tuple[str, str]]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for dist in tested:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def _untested(tested: Mapping[str, tuple[str, str]], versions: Mapping[str, str | None]) -> list[str]:
    return [
        f"{dist} {versions[dist] or 'not installed'} (tested {low} to before {high})"
        for dist, (low, high) in tested.items()
        if not _within(versions[dist], low, high)
    ]


def _within(found: str | None, low: str, high: str) -> bool:
    if found is None:
        return False
    try:
        return Version(low) <= Version(found) < Version(high)
    except InvalidVersion:
        return False


def fast_paths() -> dict[str, FastPath]:
    """Every fast path by name (imports the modules that define them)."""
    from amas_otel._fastpath import histogram, log_records, otlp_spans, span_fields  # noqa: F401 - they register

    return dict(_registry)


def check_all() -> dict[str, FastPath]:
    """Check every fast path (``configure()`` calls this); returns them by name."""
    paths = fast_paths()
    for path in paths.values():
        path.check()
    return paths
