"""Every use of a private name of opentelemetry, its exporters or structlog, behind one gate.

Each module here is one fast path with a public-API twin that gives the same
result; :mod:`amas_otel._fastpath.gate` decides which are on (tested versions
and a self-test, checked by ``configure()``) and switches one off for the
process when it fails at run time.  Nothing outside this package reads or
writes those private names.
"""

from __future__ import annotations

from amas_otel._fastpath.gate import FastPath, check_all, fast_paths

__all__ = ["FastPath", "check_all", "fast_paths"]
