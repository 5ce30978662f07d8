from __future__ import annotations

from pathlib import Path

from amas_otel.config import OtelSettings
from amas_otel.resource import build_resource, detect_project, read_git_revision

SHA = "89abcdef0123456789abcdef0123456789abcdef"


def test_packed_refs_and_detached_head(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/release\n")
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{SHA} refs/heads/release\n")
    assert read_git_revision(tmp_path) == (SHA, "release")
    (git / "HEAD").write_text(SHA + "\n")
    assert read_git_revision(tmp_path) == (SHA, None)


def test_worktree_gitdir_file(tmp_path: Path) -> None:
    main_git = tmp_path / "main" / ".git"
    worktree_git = main_git / "worktrees" / "wt"
    (main_git / "refs" / "heads").mkdir(parents=True)
    worktree_git.mkdir(parents=True)
    (main_git / "refs" / "heads" / "feature").write_text(SHA)
    (worktree_git / "HEAD").write_text("ref: refs/heads/feature\n")
    (worktree_git / "commondir").write_text("../..\n")
    checkout = tmp_path / "wt"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {worktree_git}\n")
    assert read_git_revision(checkout) == (SHA, "feature")


def test_unborn_branch_and_garbage(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert read_git_revision(tmp_path) == (None, "main")
    (tmp_path / ".git" / "HEAD").write_text("x" * 10_000)
    assert read_git_revision(tmp_path) == (None, None)


def test_dynamic_version_and_broken_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "amas-otel"\ndynamic = ["version"]\n')
    detected = detect_project(tmp_path)
    assert detected["service.name"] == "amas-otel" and detected["service.version"]
    (tmp_path / "pyproject.toml").write_text("[project\nname=")
    assert "service.name" not in detect_project(tmp_path)


def test_explicit_resource_attributes_override_detection(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "detected"\nversion = "1"\n')
    resource = build_resource(
        OtelSettings(resource_attributes={"service.version": "2", "team": "core"}), project_root=tmp_path
    )
    assert resource.attributes["service.name"] == "detected"
    assert resource.attributes["service.version"] == "2" and resource.attributes["team"] == "core"
    named = build_resource(OtelSettings(service_name="explicit"), project_root=tmp_path)
    assert named.attributes["service.name"] == "explicit"
