from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from amas_otel import project_root as pr
from amas_otel.project_root import ProjectRootError, find_project_root, validate_project_structure
from tests.conftest import PYTHON, python_env


def _tree(base: Path, *markers: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for marker in markers:
        target = base / marker
        if marker == ".git":
            target.mkdir()
        else:
            target.write_text("")
    return base


def test_strategies_in_order(tmp_path: Path) -> None:
    repo = _tree(tmp_path / "repo", ".git")
    package = _tree(repo / "packages" / "svc", "pyproject.toml")
    deep = package / "src" / "svc"
    deep.mkdir(parents=True)
    # .git wins over a nearer pyproject.toml: it is the primary strategy.
    assert find_project_root(deep, max_depth=20, security_level="medium") == repo
    plain = _tree(tmp_path / "plain", "requirements.txt")
    inner = _tree(plain / "lib", "pyproject.toml")
    assert find_project_root(inner / ".", max_depth=20, security_level="medium") == inner
    legacy = _tree(tmp_path / "legacy", "setup.cfg")
    (legacy / "a" / "b").mkdir(parents=True)
    assert find_project_root(legacy / "a" / "b", max_depth=20, security_level="medium") == legacy


def test_fallback_is_the_safe_start_directory(tmp_path: Path) -> None:
    lonely = tmp_path / "nothing" / "here"
    lonely.mkdir(parents=True)
    assert find_project_root(lonely, max_depth=1, security_level="medium") == lonely


def test_depth_is_bounded(tmp_path: Path) -> None:
    root = _tree(tmp_path / "p", "pyproject.toml")
    deep = root / "1" / "2" / "3" / "4"
    deep.mkdir(parents=True)
    assert find_project_root(deep, max_depth=4, security_level="medium") == root
    assert find_project_root(deep, max_depth=3, security_level="medium") == deep


def test_start_file_uses_its_directory(tmp_path: Path) -> None:
    root = _tree(tmp_path / "p", "pyproject.toml")
    module = root / "app.py"
    module.write_text("")
    assert find_project_root(module, max_depth=5, security_level="medium") == root


def test_missing_start_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectRootError, match="does not exist"):
        find_project_root(tmp_path / "missing", max_depth=5, security_level="medium")


def test_symlink_loop_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ProjectRootError, match="loop|cannot be resolved"):
        find_project_root(tmp_path / "a", max_depth=5, security_level="medium")


@pytest.mark.parametrize("start", ["/proc/self", "/sys/kernel", "/etc", "/dev"])
def test_restricted_directories_are_refused(start: str) -> None:
    with pytest.raises(ProjectRootError, match="restricted system directory"):
        find_project_root(start, max_depth=5, security_level="medium")


def test_root_is_never_returned() -> None:
    with pytest.raises(ProjectRootError, match="never a project root"):
        find_project_root("/", max_depth=5, security_level="low")


def test_security_levels_differ(tmp_path: Path) -> None:
    # /etc is only refused from medium up.
    assert find_project_root("/etc", max_depth=1, security_level="low") == Path("/etc")
    with pytest.raises(ProjectRootError):
        find_project_root("/etc", max_depth=1, security_level="medium")
    real = _tree(tmp_path / "real", "pyproject.toml")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert find_project_root(link, max_depth=3, security_level="medium") == real
    with pytest.raises(ProjectRootError, match="symbolic link"):
        find_project_root(link, max_depth=3, security_level="high")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    assert find_project_root(open_dir, max_depth=1, security_level="medium") == open_dir
    with pytest.raises(ProjectRootError, match="world-writable"):
        find_project_root(open_dir, max_depth=1, security_level="high")


def test_high_ignores_symlinked_markers(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    target = tmp_path / "elsewhere.toml"
    target.write_text("")
    (root / "pyproject.toml").symlink_to(target)
    assert find_project_root(root, max_depth=1, security_level="medium") == root
    # Not a marker at high: falls back to the start directory itself, found by no marker.
    assert not validate_project_structure(root, security_level="high")


def test_unreadable_start_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o700)
    tmp_path.chmod(0o755)
    # Root reads everything, so run the check as an unprivileged user.
    script = (
        "import os, sys\n"
        "from amas_otel.project_root import find_project_root, ProjectRootError\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    find_project_root({str(locked)!r}, max_depth=3, security_level='medium')\n"
        "except ProjectRootError as exc:\n"
        "    print('ERR', exc)\n"
    )
    if os.geteuid() != 0:
        locked.chmod(0)
        script = script.replace("os.setgid(65534); os.setuid(65534)\n", "")
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=python_env(), timeout=60)
    assert "ERR" in result.stdout, result.stderr
    assert "not readable" in result.stdout or "cannot be resolved" in result.stdout


def test_get_project_root_is_cached_and_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _tree(tmp_path / "one", "pyproject.toml")
    monkeypatch.chdir(first)
    pr.clear_cache()
    calls = []
    original = pr.find_project_root
    monkeypatch.setattr(pr, "find_project_root", lambda *a, **k: calls.append(a) or original(*a, **k))
    assert pr.get_project_root() == first
    assert pr.get_project_root() == first
    assert len(calls) == 1
    monkeypatch.setenv("PROJECT_ROOT_CACHE_ENABLED", "false")
    pr.get_project_root()
    pr.get_project_root()
    assert len(calls) == 3
    monkeypatch.setenv("PROJECT_ROOT_MAX_DEPTH", "zero")
    with pytest.raises(ProjectRootError, match="PROJECT_ROOT_MAX_DEPTH"):
        pr.get_project_root()


def test_validate_project_structure(tmp_path: Path) -> None:
    assert validate_project_structure(_tree(tmp_path / "ok", "setup.py"))
    assert not validate_project_structure(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not validate_project_structure(empty)
    assert not validate_project_structure("/etc")


def _amas_imports(module: str) -> set[str]:
    """The amas_otel modules ``module`` imports anywhere in its source (functions included)."""
    import ast

    import amas_otel

    tree = ast.parse((Path(amas_otel.__file__).parent / f"{module}.py").read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name for name in names if name.startswith("amas_otel.")}


def test_config_and_project_root_do_not_import_each_other() -> None:
    """config finds its YAML files with the settings-free walk; project_root reads config's settings."""
    assert "amas_otel.project_root" not in _amas_imports("config")
    assert _amas_imports("project_search") == set()
    assert {"amas_otel.config", "amas_otel.project_search"} <= _amas_imports("project_root")


@pytest.mark.parametrize("module", ["amas_otel.config", "amas_otel.project_root", "amas_otel.project_search"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Imported before anything else (the package's __init__ aside), each module's names are complete."""
    script = f"import importlib; m = importlib.import_module({module!r}); print([n for n in m.__all__ if not hasattr(m, n)])"
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=python_env(), timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr
