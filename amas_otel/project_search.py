"""Walk up from a directory to its project root, refusing restricted directories.

The file-system half of :mod:`amas_otel.project_root`, with every limit passed
in: it reads no settings, so :mod:`amas_otel.config` can use it to find its
YAML files without importing the module that reads the settings.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "ProjectRootError",
    "RESTRICTED_DIRECTORIES",
    "search_project_root",
    "validate_project_structure",
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


def search_project_root(start: str | os.PathLike[str] | None, *, max_depth: int, security_level: str) -> Path:
    """The project root for ``start`` (None: the working directory); see :mod:`amas_otel.project_root`."""
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




def validate_project_structure(path: str | os.PathLike[str], *, security_level: str = "medium") -> bool:
    """True when ``path`` is an existing, safe directory holding at least one project marker."""
    try:
        directory = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if not directory.is_dir() or _restriction(directory, security_level) is not None:
        return False
    return any(_has_marker(directory, markers, security_level) for markers in _STRATEGIES)
