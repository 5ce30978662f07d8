"""Find the project a process belongs to, within the configured limits, cached.

The walk itself is :mod:`amas_otel.project_search` (which reads no settings, so
:mod:`amas_otel.config` can use it); this module adds the ``PROJECT_ROOT_*``
settings and the cache.

Strategies, in order; each walks from the start directory up through at most
``PROJECT_ROOT_MAX_DEPTH`` parents before the next one is tried:

1. a directory holding ``.git`` (a directory, or a file for worktrees),
2. a directory holding ``pyproject.toml``,
3. a directory holding ``setup.py``, ``setup.cfg`` or ``requirements.txt``,
4. the start directory itself, if it is safe.

Restricted system directories are never entered nor returned.  What counts as
restricted depends on ``PROJECT_ROOT_SECURITY_LEVEL``:

========  ===================================================================
level     refuses
========  ===================================================================
low       ``/`` and the kernel's pseudo file systems: ``/proc``, ``/sys``, ``/dev``
medium    as low, plus system directories: ``/etc``, ``/boot``, ``/bin``,
          ``/sbin``, ``/lib``, ``/lib32``, ``/lib64``, ``/usr`` (but not
          ``/usr/local/src`` or ``/usr/src``), ``/run``, ``/var/run``,
          ``/var/lib``, ``/var/log``, ``/root/.ssh``
high      as medium, plus: a start path reached through a symbolic link, a
          marker that is a symbolic link, and world-writable directories
          without the sticky bit (anyone could plant a marker there)
========  ===================================================================
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from amas_otel.config import ConfigError, ProjectRootSettings, load_settings
from amas_otel.project_search import (
    RESTRICTED_DIRECTORIES,
    ProjectRootError,
    search_project_root,
    validate_project_structure,
)

__all__ = [
    "ProjectRootError",
    "RESTRICTED_DIRECTORIES",
    "find_project_root",
    "get_project_root",
    "validate_project_structure",
    "clear_cache",
]


def _configured_limits() -> ProjectRootSettings:
    # Only the environment is consulted here: the YAML files are found
    # through the project root, so they cannot also decide how it is found.
    try:
        return load_settings(config_files=()).project_root
    except ConfigError as exc:
        raise ProjectRootError(str(exc)) from None


def find_project_root(
    start: str | os.PathLike[str] | None = None,
    *,
    max_depth: int | None = None,
    security_level: str | None = None,
) -> Path:
    """Return the project root for ``start`` (default: the working directory).

    ``max_depth`` and ``security_level`` default to the configured
    ``PROJECT_ROOT_MAX_DEPTH`` and ``PROJECT_ROOT_SECURITY_LEVEL``.  Raises
    :class:`ProjectRootError` when ``start`` does not exist, is a symlink loop,
    is unreadable or restricted, or when no safe directory is found.
    """
    if max_depth is None or security_level is None:
        configured = _configured_limits()
        max_depth = configured.max_depth if max_depth is None else max_depth
        security_level = configured.security_level if security_level is None else security_level
    return search_project_root(start, max_depth=max_depth, security_level=security_level)


@functools.lru_cache(maxsize=32)
def _cached_root(cwd: str, max_depth: int, security_level: str) -> Path:
    return find_project_root(cwd, max_depth=max_depth, security_level=security_level)


def get_project_root() -> Path:
    """The project root of the working directory, cached while ``PROJECT_ROOT_CACHE_ENABLED``."""
    configured = _configured_limits()
    if not configured.cache_enabled:
        return find_project_root(None, max_depth=configured.max_depth, security_level=configured.security_level)
    return _cached_root(os.getcwd(), configured.max_depth, configured.security_level)


def clear_cache() -> None:
    """Forget cached project roots (after ``chdir`` into another project, in tests)."""
    _cached_root.cache_clear()
