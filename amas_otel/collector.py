"""Build, check and run amas-otelcol, amas-otel's OpenTelemetry Collector distribution.

:func:`build_collector` builds the distribution described by
``collector/builder-config.yaml`` (an OpenTelemetry Collector Builder manifest)
with the local Go toolchain and caches the binary under the project's cache
folder, keyed by the manifest's content.  :func:`validate_config` runs that
binary's own ``validate`` on a configuration and adds only what the binary
cannot know: the redaction processor blocks the key list of
:mod:`amas_otel._redaction_keys`, and an ``otlp`` receiver listens where this
application's settings make it send.  :func:`run_collector` starts the binary.

``register_cli`` adds ``collector build|validate|run`` to an argparse CLI;
``python -m amas_otel.collector`` runs the same commands.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_CONFIG",
    "EXIT_UNAVAILABLE",
    "CollectorUnavailable",
    "Problem",
    "build_collector",
    "cached_binary",
    "default_manifest",
    "find_collector_binary",
    "main",
    "register_cli",
    "run_collector",
    "validate_config",
]

#: The configuration file the CLI uses when none is named.
DEFAULT_CONFIG = "otel-collector.yaml"
#: Exit status of ``collector build|validate|run`` when there is neither a collector binary nor Go to build one.
EXIT_UNAVAILABLE = 127
_MANIFEST = Path("collector") / "builder-config.yaml"
_BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
_CORE_PREFIX = "go.opentelemetry.io/collector/"
_OTHER_BINARIES = ("otelcol-contrib", "otelcol")
#: Where the collector's otlp receiver listens when a protocol is enabled without an endpoint.
_OTLP_DEFAULT_ENDPOINT = {"grpc": "localhost:4317", "http": "localhost:4318"}
_GO_HINT = (
    "Go is not installed (no `go` on PATH), so amas-otelcol cannot be built.  Install Go 1.26 or later "
    "(Debian: apt-get install golang-go; or the archive from go.dev/dl with /usr/local/go/bin on PATH) and run "
    "`amas-otel collector build`, or point AMAS_OTELCOL_BIN at an otelcol-contrib 0.121 or later."
)


class CollectorUnavailable(FileNotFoundError):
    """Neither a collector binary nor a Go toolchain to build one; the message says what to install."""

    def __init__(self, message: str = _GO_HINT) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file; ``line`` is 1-based, None when unknown."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


# --------------------------------------------------------------------------
# Building the distribution
# --------------------------------------------------------------------------


def default_manifest() -> Path:
    """``collector/builder-config.yaml`` of the working directory's project, else of this checkout."""
    here = Path.cwd() / _MANIFEST
    return here if here.is_file() else Path(__file__).resolve().parent.parent / _MANIFEST


def _cache_dir(manifest: Path) -> Path:
    """``$AMAS_CACHE/collector``, else ``.cache/collector`` of the project that holds ``manifest``."""
    root = os.environ.get("AMAS_CACHE") or manifest.resolve().parent.parent / ".cache"
    return Path(root) / "collector"


def cached_binary(manifest: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`build_collector` puts the binary for ``manifest``'s current content (it may not exist yet)."""
    path = Path(manifest) if manifest else default_manifest()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    name = yaml.safe_load(path.read_text(encoding="utf-8"))["dist"]["name"]
    return _cache_dir(path) / digest / name


def _builder_version(manifest: dict[str, Any]) -> str:
    """The core release the manifest's modules are at: the builder is pinned to it."""
    for section in ("receivers", "processors", "exporters", "extensions", "connectors"):
        for entry in manifest.get(section) or ():
            module, _, version = entry["gomod"].partition(" ")
            if module.startswith(_CORE_PREFIX) and version.startswith("v0."):
                return version
    raise ValueError("the manifest names no go.opentelemetry.io/collector/ module at a v0.x release")


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise CollectorUnavailable()
    return go


def _run_quietly(command: list[str], env: dict[str, str]) -> None:
    """Run a build step at lower CPU priority (builds share the machine); raise with its output on failure."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, preexec_fn=lambda: os.nice(10))
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:2])} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")


def build_collector(manifest: str | os.PathLike[str] | None = None, *, log: Any = sys.stderr) -> Path:
    """Build the distribution of ``manifest`` (default :func:`default_manifest`) unless it is cached; return its path.

    The builder module is installed at the manifest's core release into the
    cache, the binary is built there and moved into place only when complete,
    so an interrupted build leaves nothing that looks usable.  Raises
    :class:`CollectorUnavailable` without Go, :class:`RuntimeError` when a
    build step fails.
    """
    manifest_path = Path(manifest) if manifest else default_manifest()
    binary = cached_binary(manifest_path)
    if binary.is_file():
        return binary
    go = _go()
    spec = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    version = _builder_version(spec)
    cache = _cache_dir(manifest_path)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a waiter then finds the binary
        if binary.is_file():
            return binary
        builder = cache / f"builder-{version}" / "builder"
        if not builder.is_file():
            print(f"installing the collector builder {version} ...", file=log, flush=True)
            _run_quietly([go, "install", f"{_BUILDER_MODULE}@{version}"], {**os.environ, "GOBIN": str(builder.parent)})
        with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as work:
            spec["dist"]["output_path"] = str(Path(work) / "src")
            config = Path(work) / "builder-config.yaml"
            config.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
            print(f"building {spec['dist']['name']} from {manifest_path} (several minutes the first time) ...",
                  file=log, flush=True)
            goflags = " ".join(filter(None, [os.environ.get("GOFLAGS"), "-buildvcs=false"]))
            _run_quietly([str(builder), f"--config={config}"], {**os.environ, "GOFLAGS": goflags})
            binary.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(work) / "src" / spec["dist"]["name"], binary)
    return binary


def find_collector_binary(manifest: str | os.PathLike[str] | None = None) -> str | None:
    """``AMAS_OTELCOL_BIN``, else the cached build of the manifest, else otelcol-contrib/otelcol on PATH; None if none."""
    explicit = os.environ.get("AMAS_OTELCOL_BIN")
    if explicit:
        return shutil.which(explicit)
    with contextlib.suppress(OSError, KeyError, TypeError, yaml.YAMLError):
        built = cached_binary(manifest)
        if built.is_file():
            return str(built)
    return next(filter(None, map(shutil.which, _OTHER_BINARIES)), None)


def _binary_or_build() -> str:
    """A collector binary, building amas-otelcol when there is none (:class:`CollectorUnavailable` without Go)."""
    return find_collector_binary() or str(build_collector())


# --------------------------------------------------------------------------
# What the binary cannot know
# --------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: str) -> str:
    """``${env:NAME:-default}`` / ``${NAME}`` references expanded the way the collector does."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return os.environ.get(match.group(1), match.group(2) or "")

    return _ENV_REF.sub(replace, value)


def _lines(text: str) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key, by its path of keys."""
    found: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found[(*path, str(key.value))] = key.start_mark.line + 1
                walk(value, (*path, str(key.value)))

    with contextlib.suppress(yaml.YAMLError):
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            walk(root, ())
    return found


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_redaction(doc: dict[str, Any], lines: dict[tuple[str, ...], int], add: Any) -> None:
    """Every pipeline redacts, and every redaction processor blocks the app's key list."""
    from amas_otel._redaction_keys import blocked_key_patterns

    processors = doc.get("processors") or {}
    redactions = {cid for cid in processors if str(cid).split("/")[0] == "redaction"}
    for cid in sorted(redactions):
        if tuple((processors[cid] or {}).get("blocked_key_patterns") or ()) != blocked_key_patterns():
            add(lines.get(("processors", cid)), f"processors.{cid}.blocked_key_patterns is not the key list of "
                "amas_otel/_redaction_keys.py; regenerate it with: python -m amas_otel._redaction_keys")
    for pid, pipeline in ((doc.get("service") or {}).get("pipelines") or {}).items():
        if not redactions & set((pipeline or {}).get("processors") or ()):
            add(lines.get(("service", "pipelines", pid)), f"service.pipelines.{pid} has no redaction processor; "
                "secrets from clients that do not redact would pass")


def _check_app_agreement(doc: dict[str, Any], lines: dict[tuple[str, ...], int], settings: Any, add: Any) -> None:
    """An ``otlp`` receiver of every signal's pipeline listens on the protocol, port and interface the app sends to."""
    otel = settings.otel
    protocol = "grpc" if otel.otlp_protocol == "grpc" else "http"
    target = urllib.parse.urlsplit(otel.otlp_signal_endpoint("traces"))
    app_port = target.port or (443 if target.scheme == "https" else 80)
    app_host = target.hostname or ""
    app_says = f"the app sends OTLP over {otel.otlp_protocol} to {app_host}:{app_port}"
    receivers = doc.get("receivers") or {}
    matching, mismatches = set(), []
    for cid, config in receivers.items():
        if str(cid).split("/")[0] != "otlp" or protocol not in ((config or {}).get("protocols") or {}):
            continue
        where = ("receivers", cid, "protocols", protocol)
        endpoint = ((config["protocols"][protocol]) or {}).get("endpoint") or _OTLP_DEFAULT_ENDPOINT[protocol]
        host, _, port = _expand(str(endpoint)).rpartition(":")
        if port != str(app_port):
            mismatches.append((lines.get(where), f"receivers.{cid}.protocols.{protocol} listens on port {port} but {app_says}"))
        elif _is_loopback(app_host) and host not in ("", "0.0.0.0", "::", "[::]") and not _is_loopback(host):
            mismatches.append((lines.get(where), f"receivers.{cid}.protocols.{protocol} listens on {host}, not on "
                               f"loopback, but {app_says}"))
        else:
            matching.add(cid)
    if not matching:
        for line, message in mismatches or [(lines.get(("receivers",)), f"no otlp receiver enables protocols."
                                                f"{protocol}, but {app_says}")]:
            add(line, message)
        return
    pipelines = (doc.get("service") or {}).get("pipelines") or {}
    for signal_type in ("traces", "metrics", "logs"):
        if not any(str(pid).split("/")[0] == signal_type and matching & set((p or {}).get("receivers") or ())
                   for pid, p in pipelines.items()):
            add(lines.get(("service", "pipelines")), f"service.pipelines: no {signal_type} pipeline receives from "
                f"{', '.join(sorted(matching))}; the app's OTLP {signal_type} would be refused")


def _binary_validate(binary: str, file: str) -> list[Problem]:
    try:
        done = subprocess.run([binary, "validate", f"--config={file}"], capture_output=True, text=True, timeout=120,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Problem(file, None, f"{binary} validate could not run: {exc}")]
    if done.returncode == 0:
        return []
    output = (done.stderr or done.stdout).strip()
    return [Problem(file, None, f"{Path(binary).name} validate (exit {done.returncode}): {output}")]


def validate_config(
    path: str | os.PathLike[str] = DEFAULT_CONFIG, *, settings: Any = None, binary: str | None = None
) -> list[Problem]:
    """Problems found in the collector configuration at ``path``; empty when it is sound.

    The collector binary (``binary``, else :func:`find_collector_binary`,
    else a fresh :func:`build_collector`) validates components, settings,
    regular expressions and pipelines; when it accepts the file, the
    redaction key list and the agreement with ``settings`` (the app's
    :class:`amas_otel.config.Settings`, default: those in effect) are checked.
    Raises :class:`CollectorUnavailable` when there is neither a binary nor Go.
    """
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(file, None, f"cannot read the configuration: {exc}")]
    problems = _binary_validate(binary or _binary_or_build(), file)
    if problems:
        return problems
    doc, lines = yaml.safe_load(text), _lines(text)

    def add(line: int | None, message: str) -> None:
        problems.append(Problem(file, line, message))

    _check_redaction(doc, lines, add)
    if settings is None:
        from amas_otel.config import get_settings

        settings = get_settings()
    _check_app_agreement(doc, lines, settings, add)
    return sorted(problems, key=lambda p: (p.line or 0, p.message))


def run_collector(path: str | os.PathLike[str] = DEFAULT_CONFIG, *, args: Sequence[str] = ()) -> int:
    """Run the collector (:func:`find_collector_binary`, built if need be) with ``path`` in the foreground.

    Returns its exit code.  Raises :class:`CollectorUnavailable` when there is
    no binary and no Go, :class:`FileNotFoundError` when ``path`` does not
    exist.  Ctrl-C / SIGTERM are passed on to the collector, which shuts down cleanly.
    """
    config = Path(path)
    if not config.is_file():
        raise FileNotFoundError(f"collector configuration {os.fspath(path)!r} does not exist")
    process = subprocess.Popen([_binary_or_build(), f"--config={config}", *args])

    def forward(signum: int, _frame: Any) -> None:
        process.send_signal(signum)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, forward) if main_thread else None
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                process.send_signal(signal.SIGINT)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _unavailable(exc: CollectorUnavailable) -> int:
    print(exc, file=sys.stderr)
    return EXIT_UNAVAILABLE


def _cmd_build(options: argparse.Namespace) -> int:
    try:
        print(build_collector(options.manifest))
    except CollectorUnavailable as exc:
        return _unavailable(exc)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        print(f"amas-otel collector build: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_validate(options: argparse.Namespace) -> int:
    try:
        problems = validate_config(options.file)
    except CollectorUnavailable as exc:
        return _unavailable(exc)
    except RuntimeError as exc:  # the build failed
        print(f"amas-otel collector validate: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{options.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{options.file}: OK ({Path(_binary_or_build()).name} validate, redaction keys, app OTLP settings)")
    return 0


def _cmd_run(options: argparse.Namespace) -> int:
    try:
        return run_collector(options.file, args=options.collector_args)
    except CollectorUnavailable as exc:
        return _unavailable(exc)
    except (FileNotFoundError, RuntimeError) as exc:
        print(exc, file=sys.stderr)
        return 2


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``collector build``, ``collector validate [FILE]`` and ``collector run [FILE]`` to an argparse CLI.

    Each leaf parser sets ``func``: call ``options.func(options)`` for the exit code.
    """
    parser = subparsers.add_parser(
        "collector",
        help="build, check or run the OpenTelemetry Collector (amas-otelcol)",
        description="Build amas-otelcol, check or run a collector configuration (default ./otel-collector.yaml).  "
        f"Exit status {EXIT_UNAVAILABLE} when there is neither a collector binary nor Go to build one.",
    )
    commands = parser.add_subparsers(dest="collector_command", metavar="{build,validate,run}", required=True)
    build = commands.add_parser(
        "build",
        help="build amas-otelcol (cached) and print its path",
        description="Build the distribution of collector/builder-config.yaml with Go and the collector builder "
        "at the manifest's release; the binary is cached under .cache/collector/ (or $AMAS_CACHE/collector/) by "
        "the manifest's content, so an unchanged manifest is not built again.",
    )
    build.add_argument("--manifest", default=None, help=f"OCB manifest (default {_MANIFEST})")
    build.set_defaults(func=_cmd_build)
    validate = commands.add_parser(
        "validate",
        help="check a collector configuration with the collector's own validate",
        description="Run the collector's own validate (building amas-otelcol if needed), then check that the "
        "redaction processor blocks amas-otel's key list and that an otlp receiver listens where the app's "
        "OTLP settings send.  Exit status 1 when problems are found.",
    )
    validate.add_argument("file", nargs="?", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
    validate.set_defaults(func=_cmd_validate)
    run = commands.add_parser(
        "run",
        help="start the collector with a configuration",
        description="Start the collector (AMAS_OTELCOL_BIN, the built amas-otelcol, or otelcol-contrib on PATH; "
        "built first if there is none) with the configuration, in the foreground.",
    )
    run.add_argument("file", nargs="?", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
    run.add_argument("collector_args", nargs=argparse.REMAINDER, help="further arguments for the collector (after --)")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m amas_otel.collector build|validate|run [FILE]``."""
    parser = argparse.ArgumentParser(prog="amas-otel")
    commands = parser.add_subparsers(dest="command", required=True)
    register_cli(commands)
    options = parser.parse_args(["collector", *(sys.argv[1:] if argv is None else argv)])
    return options.func(options)


if __name__ == "__main__":
    sys.exit(main())
