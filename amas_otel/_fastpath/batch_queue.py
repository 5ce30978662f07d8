"""Putting items straight into the SDK's batch export queues (``opentelemetry.sdk._shared_internal.BatchProcessor``).

``BatchProcessor.emit`` compares the queue's process id with ``os.getpid()``,
a system call, on every item (a forked child restarts the queue).  The hot
paths of spans and log records append to a running queue with room directly,
comparing with a copy of the process id that an at-fork hook keeps current;
a full, shut-down or forked queue is left to ``emit`` (its drop warning and
metrics, its restart).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["enqueue", "enqueues"]

# What enqueue reads of a BatchProcessor besides emit.
_QUEUE_INTERNALS = ("_queue", "_pid", "_shutdown", "_max_queue_size", "_max_export_batch_size", "_worker_awaken")

_process_id = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _process_id.__setitem__(0, os.getpid()))


def enqueues(queue: Any) -> bool:
    """True when :func:`enqueue` can take ``queue`` (a ``BatchProcessor`` of the SDK layout it was written against)."""
    return callable(getattr(queue, "emit", None)) and all(hasattr(queue, name) for name in _QUEUE_INTERNALS)


def enqueue(queue: Any, item: Any) -> None:
    """``queue.emit(item)``, without its ``os.getpid()`` call when the queue is running and has room."""
    pending = queue._queue  # noqa: SLF001 - see the module docstring
    if queue._pid == _process_id[0] and not queue._shutdown and len(pending) != queue._max_queue_size:  # noqa: SLF001
        pending.appendleft(item)
        # The SDK's own wake-up rule: a full batch wakes the export thread.
        if len(pending) >= queue._max_export_batch_size and not queue._worker_awaken.is_set():  # noqa: SLF001
            queue._worker_awaken.set()  # noqa: SLF001
    else:
        queue.emit(item)
