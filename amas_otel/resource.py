"""The OTel :class:`~opentelemetry.sdk.resources.Resource` that describes this service.

Sources, highest precedence first: ``OTEL_SERVICE_NAME``; ``OTEL_RESOURCE_ATTRIBUTES``;
detection from the project root (``pyproject.toml``'s ``[project]`` name and
version, the ``.git`` head revision); host and process attributes.
"""

from __future__ import annotations

import os
import platform
import socket
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path

from opentelemetry.sdk.resources import Resource

from amas_otel.config import OtelSettings, Settings
from amas_otel.project_root import ProjectRootError, find_project_root
from amas_otel.semconv import ResourceAttr

__all__ = ["build_resource", "describe_resource", "detect_project", "read_git_revision"]

# A .git/HEAD or ref file larger than this is not one git wrote.
_MAX_GIT_FILE = 4096


def _read_small(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_GIT_FILE + 1)
    except OSError:
        return None
    if len(data) > _MAX_GIT_FILE:
        return None
    return data.decode("utf-8", "replace").strip()


def _git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    content = _read_small(dot_git) if dot_git.is_file() else None
    if content and content.startswith("gitdir:"):
        target = Path(content.partition(":")[2].strip())
        return target if target.is_absolute() else (root / target).resolve()
    return None


def read_git_revision(root: Path) -> tuple[str | None, str | None]:
    """``(revision, branch)`` of the checkout at ``root`` read from ``.git``, without running git."""
    git_dir = _git_dir(root)
    if git_dir is None:
        return None, None
    head = _read_small(git_dir / "HEAD")
    if not head:
        return None, None
    if not head.startswith("ref:"):
        return (head if _is_sha(head) else None), None
    ref = head.partition(":")[2].strip()
    branch = ref.removeprefix("refs/heads/")
    common = git_dir
    commondir = _read_small(git_dir / "commondir")
    if commondir:
        common = (git_dir / commondir).resolve()
    for base in (git_dir, common):
        sha = _read_small(base / ref)
        if sha and _is_sha(sha):
            return sha, branch
    packed = common / "packed-refs"
    try:
        with packed.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                sha, _, name = line.strip().partition(" ")
                if name == ref and _is_sha(sha):
                    return sha, branch
    except OSError:
        pass
    return None, branch  # a branch with no commits yet


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def detect_project(root: Path) -> dict[str, str]:
    """Resource attributes detected from the project at ``root``."""
    return {key: value for key, (value, _) in _detected(root).items()}


def _detected(root: Path) -> dict[str, tuple[str, str]]:
    """:func:`detect_project`'s attributes with where each was read: ``{key: (value, source)}``."""
    attributes = {ResourceAttr.PROJECT_ROOT: (str(root), "project root detection")}
    pyproject = root / "pyproject.toml"
    try:
        with pyproject.open("rb") as handle:
            project = tomllib.load(handle).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        project = {}
    name = project.get("name")
    if isinstance(name, str) and name:
        attributes[ResourceAttr.SERVICE_NAME] = (name, f"{pyproject} [project].name")
        version, source = project.get("version"), f"{pyproject} [project].version"
        if not isinstance(version, str) and "version" in project.get("dynamic", ()):
            version, source = _installed_version(name), f"installed distribution {name!r} (dynamic version)"
        if isinstance(version, str) and version:
            attributes[ResourceAttr.SERVICE_VERSION] = (version, source)
    revision, branch = read_git_revision(root)
    if revision:
        attributes[ResourceAttr.VCS_REF_HEAD_REVISION] = (revision, f"{root / '.git'} HEAD")
    if branch:
        attributes[ResourceAttr.VCS_REF_HEAD_NAME] = (branch, f"{root / '.git'} HEAD")
    return attributes


def _installed_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def build_resource(otel: OtelSettings, *, project_root: Path | None = None) -> Resource:
    """The resource for these settings; ``project_root`` defaults to the detected one."""
    resolved = _resolved(otel, project_root, {})
    # Resource.create adds the telemetry.sdk.* attributes and fills
    # service.name with "unknown_service" when nothing above named it.
    return Resource.create({key: value for key, (value, _) in resolved.items()})


def describe_resource(settings: Settings, *, project_root: Path | None = None) -> list[tuple[str, str, str]]:
    """``(attribute, value, source)`` for what identifies the service: ``service.name``,
    ``service.version``, the VCS revision and branch, the project root — as
    :func:`build_resource` resolves them for ``settings`` (``amas-otel config``)."""
    resolved = _resolved(settings.otel, project_root, settings.sources)
    shown = (
        ResourceAttr.SERVICE_NAME,
        ResourceAttr.SERVICE_VERSION,
        ResourceAttr.VCS_REF_HEAD_REVISION,
        ResourceAttr.VCS_REF_HEAD_NAME,
        ResourceAttr.PROJECT_ROOT,
    )
    rows = []
    for key in shown:
        value, source = resolved.get(key, ("", "not found"))
        if key == ResourceAttr.SERVICE_NAME and not value:
            value, source = "unknown_service:python", "OpenTelemetry's default (nothing named the service)"
        rows.append((key, str(value), source))
    return rows


def _resolved(
    otel: OtelSettings, project_root: Path | None, sources: Mapping[str, str]
) -> dict[str, tuple[str | int, str]]:
    """Every attribute :func:`build_resource` sets, with its source, lowest precedence first."""
    process = "the running process"
    attributes: dict[str, tuple[str | int, str]] = {
        ResourceAttr.HOST_NAME: (socket.gethostname(), process),
        ResourceAttr.PROCESS_PID: (os.getpid(), process),
        ResourceAttr.PROCESS_RUNTIME_NAME: (platform.python_implementation().lower(), process),
        ResourceAttr.PROCESS_RUNTIME_VERSION: (platform.python_version(), process),
        ResourceAttr.SERVICE_INSTANCE_ID: (str(uuid.uuid4()), "a UUID per process"),
    }
    if project_root is None:
        try:
            project_root = find_project_root(None)
        except ProjectRootError:
            project_root = None
    if project_root is not None:
        attributes.update(_detected(project_root))
    given = sources.get("otel.resource_attributes", "env OTEL_RESOURCE_ATTRIBUTES")
    for key, value in (otel.resource_attributes or {}).items():
        attributes[str(key)] = (str(value), f"{given} (resource attributes)")
    if otel.service_name:
        attributes[ResourceAttr.SERVICE_NAME] = (otel.service_name, sources.get("otel.service_name", "env OTEL_SERVICE_NAME"))
    return attributes
