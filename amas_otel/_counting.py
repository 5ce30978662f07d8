"""Exact counters for hot paths that take no lock."""

from __future__ import annotations

import itertools

__all__ = ["count_of"]


def count_of(counter: itertools.count) -> int:
    """How many times ``next(counter)`` ran on an ``itertools.count()`` (started at 0).

    ``next`` on an :class:`itertools.count` is atomic under the GIL, which
    makes it the only lock-free exact counter CPython has; its repr is "count(N)".
    """
    return int(repr(counter)[6:-1])
