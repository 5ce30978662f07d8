"""Incoming ``baggage`` headers cut to the W3C Baggage limits before anything parses them.

The W3C Baggage specification lets a receiver drop list-members beyond
8192 bytes in all and 180 list-members (OpenTelemetry Python's limits too,
with 4096 bytes per list-member).  OpenTelemetry's propagator enforces them
by logging a WARNING that quotes the whole header and dropping all of it: a
100 KB header made each request write 100 KB of log, twice.
:func:`cap_baggage` keeps the leading list-members that fit instead, and says
so at most once a minute without quoting anything.
"""

from __future__ import annotations

import logging
import time

__all__ = ["cap_baggage", "MAX_BAGGAGE_BYTES", "MAX_BAGGAGE_MEMBERS", "MAX_MEMBER_BYTES"]

MAX_BAGGAGE_BYTES = 8192
MAX_BAGGAGE_MEMBERS = 180
MAX_MEMBER_BYTES = 4096
_WARNING_INTERVAL = 60.0

_log = logging.getLogger("amas_otel.baggage")
_last_warning = [-_WARNING_INTERVAL]


def cap_baggage(header: str) -> str:
    """``header`` (a ``baggage`` value, latin-1 decoded) within the W3C limits.

    Returned unchanged when it fits.  Otherwise the leading list-members that
    fit in 8192 bytes and 180 list-members are kept, skipping any list-member
    over 4096 bytes or not ASCII (which the propagator would drop with a
    warning each), and a warning is logged at most once a minute.
    """
    if len(header) <= MAX_BAGGAGE_BYTES and header.count(",") < MAX_BAGGAGE_MEMBERS and header.isascii():
        return header
    kept: list[str] = []
    size = -1  # no comma before the first list-member
    members = header.split(",")
    for member in members:
        member = member.strip(" \t")
        if not member or len(member) > MAX_MEMBER_BYTES or not member.isascii():
            continue
        if len(kept) == MAX_BAGGAGE_MEMBERS or size + 1 + len(member) > MAX_BAGGAGE_BYTES:
            break
        kept.append(member)
        size += 1 + len(member)
    now = time.monotonic()
    if now - _last_warning[0] >= _WARNING_INTERVAL:
        _last_warning[0] = now
        _log.warning(
            "amas_otel: incoming baggage of %d bytes and %d list-members is over the W3C limits "
            "(%d bytes, %d list-members, %d bytes each); the first %d list-members that fit were kept "
            "(this warning at most once a minute)",
            len(header),
            len(members),
            MAX_BAGGAGE_BYTES,
            MAX_BAGGAGE_MEMBERS,
            MAX_MEMBER_BYTES,
            len(kept),
        )
    return ",".join(kept)
