"""Flush telemetry before a terminating signal ends the process.

A signal whose handler is the default action (``SIG_DFL``) kills the process
on the spot: ``atexit`` never runs, so spans, log records and metrics still
in the batch queues are lost.  uvicorn catches SIGTERM, stops serving, then
restores the handler it found and raises the signal again, which is exactly
that case (and gunicorn's UvicornWorker resets SIGTERM to the default first).

:func:`shutdown_on_signals` (run by :func:`amas_otel.configure` from the main
thread) puts a handler in front of the default action: it shuts amas-otel down
(flushing within ``AMAS_SHUTDOWN_TIMEOUT_SECONDS``), then restores the default
and raises the signal again, so the process still ends the way it would have
— killed by that signal, with the same exit status.  A handler that was
already installed keeps deciding: it is called and nothing else is done (it
either exits through Python, where ``atexit`` flushes, or keeps the process
running).  An ignored signal stays ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

__all__ = ["shutdown_on_signals"]

#: The handler each signal had before ours, by signal number.
_previous: dict[int, Any] = {}


def shutdown_on_signals(signals: Iterable[signal.Signals] = (signal.SIGTERM,)) -> bool:
    """Flush and shut amas-otel down when one of ``signals`` arrives, then let it act as before.

    Python can set signal handlers only in the main thread: elsewhere this
    does nothing and returns False.  Calling again does not stack handlers.
    Returns True when every signal in ``signals`` is covered.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    covered = True
    for signum in signals:
        current = signal.getsignal(signum)
        if current is _handle:
            continue
        if current is signal.SIG_IGN or current is None:  # ignored on purpose, or owned by C code
            covered = False
            continue
        _previous[int(signum)] = current
        signal.signal(signum, _handle)
    return covered


def _handle(signum: int, frame: FrameType | None) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    from amas_otel.sdk import shutdown

    try:
        shutdown()  # bounded by AMAS_SHUTDOWN_TIMEOUT_SECONDS; never raises
    finally:
        # The default action now, as if we had never been here: the process
        # ends killed by this signal, which is what its parent expects to see.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
