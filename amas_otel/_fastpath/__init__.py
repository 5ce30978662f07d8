"""The only place amas-otel uses private names of opentelemetry, its exporters or structlog.

Each fast path here has a public-API twin that gives the same result;
:mod:`amas_otel._fastpath.gate` decides which are on (tested versions and a
self-test, checked by ``configure()``) and switches one off for the process
when it fails at run time.  :mod:`amas_otel._fastpath.fork` is not a fast
path but the one SDK hook with no public equivalent: it says which private
name it uses and degrades to doing nothing on an SDK without it; nor is
:mod:`amas_otel._fastpath.instrumentors`, an attribute check the FastAPI
instrumentor offers no public question for.  Nothing
outside this package reads or writes those private names.
"""

from __future__ import annotations

from amas_otel._fastpath.gate import FastPath, check_all, fast_paths

__all__ = ["FastPath", "check_all", "fast_paths"]
