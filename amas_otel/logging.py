"""Structured logging on structlog.  (Foundation stub: the logging issue completes it.)"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["get_logger"]


def get_logger(name: str | None = None, component: str | None = None) -> Any:
    """A structlog logger named ``name``, bound to ``component`` when given."""
    logger = structlog.get_logger(name)
    return logger.bind(component=component) if component else logger
