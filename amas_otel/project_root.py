"""Find the project a process belongs to: safely, within a bounded walk, cached.

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
import stat
from pathlib import Path

__all__ = [
    "ProjectRootError",
    "RESTRICTED_DIRECTORIES",
    "find_project_root",
    "get_project_root",
    "validate_project_structure",
    "clear_cache",
]

_STRATEGIES: tuple[tuple[str, ...], ...] = (
    (".git",),
    ("pyproject.toml",),
    ("setup.py", "setup.cfg", "requirements.txt"),
)

_PSEUDO = ("/proc", "/sys", "/dev")
_SYSTEM = (
    "/etc",
    "/boot",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/usr",
    "/run",
    "/var/run",
    "/var/lib",
    "/var/log",
    "/root/.ssh",
)
_SYSTEM_EXCEPTIONS = ("/usr/local/src", "/usr/src")

#: Restricted directory prefixes per security level (``/`` itself is always refused).
RESTRICTED_DIRECTORIES: dict[str, tuple[str, ...]] = {
    "low": _PSEUDO,
    "medium": _PSEUDO + _SYSTEM,
    "high": _PSEUDO + _SYSTEM,
}


class ProjectRootError(Exception):
    """The project root cannot be determined safely; the message says why."""


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + os.sep)


def _restriction(path: Path, level: str) -> str | None:
    """Why ``path`` (resolved) may not be used, or ``None`` when it may."""
    text = str(path)
    if text == os.sep:
        return "the file system root '/' is never a project root"
    if any(_is_under(text, ok) for ok in _SYSTEM_EXCEPTIONS) and level != "low":
        return None
    for prefix in RESTRICTED_DIRECTORIES[level]:
        if _is_under(text, prefix):
            return f"{text!r} is inside the restricted system directory {prefix!r} (security level {level})"
    if level == "high":
        try:
            mode = path.stat().st_mode
        except OSError:
            return None
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            return f"{text!r} is world-writable without the sticky bit (security level high)"
    return None


def _has_marker(directory: Path, names: tuple[str, ...], level: str) -> bool:
    for name in names:
        candidate = directory / name
        try:
            info = candidate.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            if level == "high":
                continue
            if not candidate.exists():
                continue
        return True
    return False


def _resolve_start(start: str | os.PathLike[str] | None, level: str) -> Path:
    raw = Path(os.getcwd() if start is None else start).expanduser()
    if not raw.is_absolute():
        raw = Path(os.getcwd()) / raw
    try:
        resolved = raw.resolve(strict=True)
    except FileNotFoundError:
        raise ProjectRootError(f"start path {str(raw)!r} does not exist") from None
    except RuntimeError as exc:  # Python reports symlink loops this way
        raise ProjectRootError(f"start path {str(raw)!r} cannot be resolved: {exc}") from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise ProjectRootError(f"start path {str(raw)!r} is a symbolic link loop") from None
        raise ProjectRootError(f"start path {str(raw)!r} cannot be resolved: {exc.strerror}") from None
    if level == "high" and resolved != Path(os.path.abspath(raw)):
        raise ProjectRootError(
            f"start path {str(raw)!r} goes through a symbolic link to {str(resolved)!r}; "
            "security level high refuses links (use medium to allow them)"
        )
    if resolved.is_file():
        resolved = resolved.parent
    if not resolved.is_dir():
        raise ProjectRootError(f"start path {str(raw)!r} is neither a directory nor a file")
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise ProjectRootError(f"start directory {str(resolved)!r} is not readable by this process")
    reason = _restriction(resolved, level)
    if reason and resolved != Path(os.sep):
        raise ProjectRootError(f"refusing to search from start path: {reason}")
    return resolved


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
        from amas_otel.config import ConfigError, load_settings

        # Only the environment is consulted here: the YAML files are found
        # through the project root, so they cannot also decide how it is found.
        try:
            configured = load_settings(config_files=()).project_root
        except ConfigError as exc:
            raise ProjectRootError(str(exc)) from None
        max_depth = configured.max_depth if max_depth is None else max_depth
        security_level = configured.security_level if security_level is None else security_level
    if security_level not in RESTRICTED_DIRECTORIES:
        raise ProjectRootError(
            f"security_level {security_level!r} is not one of " + ", ".join(RESTRICTED_DIRECTORIES)
        )
    if not isinstance(max_depth, int) or max_depth < 1:
        raise ProjectRootError(f"max_depth must be a whole number of at least 1, got {max_depth!r}")

    origin = _resolve_start(start, security_level)
    for markers in _STRATEGIES:
        directory = origin
        for _ in range(max_depth + 1):
            if _restriction(directory, security_level) is not None:
                break
            if _has_marker(directory, markers, security_level):
                return directory
            if directory.parent == directory:
                break
            directory = directory.parent
    reason = _restriction(origin, security_level)
    if reason:
        raise ProjectRootError(f"no project markers found and the start directory is not safe: {reason}")
    return origin


@functools.lru_cache(maxsize=32)
def _cached_root(cwd: str, max_depth: int, security_level: str) -> Path:
    return find_project_root(cwd, max_depth=max_depth, security_level=security_level)


def get_project_root() -> Path:
    """The project root of the working directory, cached while ``PROJECT_ROOT_CACHE_ENABLED``."""
    from amas_otel.config import ConfigError, load_settings

    try:
        configured = load_settings(config_files=()).project_root
    except ConfigError as exc:
        raise ProjectRootError(str(exc)) from None
    if not configured.cache_enabled:
        return find_project_root(None, max_depth=configured.max_depth, security_level=configured.security_level)
    return _cached_root(os.getcwd(), configured.max_depth, configured.security_level)


def clear_cache() -> None:
    """Forget cached project roots (after ``chdir`` into another project, in tests)."""
    _cached_root.cache_clear()


def validate_project_structure(path: str | os.PathLike[str], *, security_level: str = "medium") -> bool:
    """True when ``path`` is an existing, safe directory holding at least one project marker."""
    try:
        directory = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if not directory.is_dir() or _restriction(directory, security_level) is not None:
        return False
    return any(_has_marker(directory, markers, security_level) for markers in _STRATEGIES)
