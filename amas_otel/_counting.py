"""Exact counters for hot paths that take no lock."""

from __future__ import annotations

import itertools
import threading

__all__ = ["Tally"]


class Tally(itertools.count):
    """A counter stepped with ``next(tally)`` on the hot path and read with :meth:`value`.

    ``next`` on an :class:`itertools.count` is atomic under the GIL (C code,
    inherited unchanged here), which makes it the only lock-free exact
    counter CPython has.  Reading takes one more step and subtracts the
    steps earlier reads took, under a lock readers share.
    """

    __slots__ = ("_reads", "_lock")

    def __new__(cls) -> Tally:
        self = super().__new__(cls)
        self._reads = 0
        self._lock = threading.Lock()
        return self

    def value(self) -> int:
        """How many times ``next(tally)`` ran outside :meth:`value`."""
        with self._lock:
            steps = next(self) - self._reads
            self._reads += 1
            return steps
