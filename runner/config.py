"""Command-line settings that are not part of a pipeline: the image map, extra environment, runner.toml."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.backend.base import EngineSettings
from runner.durations import parse_duration
from runner.errors import InputError

CONFIG_NAME = "runner.toml"
ENGINE_VARIABLE = "RUNNER_ENGINE"  # what --engine sets, so processes the runner starts use the same engine
HOST_VARIABLES = ("RUNNER_HOST_OVERRIDE", "TESTCONTAINERS_HOST_OVERRIDE")
SOCKET_VARIABLES = ("RUNNER_ENGINE_SOCKET", "TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE")
ENGINE_KEYS = {"engine": "engine", "host": "host_override", "engine_socket": "host_socket"}


def parse_pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise InputError(f"{option} {value!r} is not NAME=VALUE", f"write it as {option} NAME=VALUE")
        pairs[key] = rest
    return pairs


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments are skipped; `export ` and matching quotes are dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the env file {path}: {exc}", "check the path") from exc
    env: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InputError(
                f"{path}:{number}:1: expected KEY=VALUE, got {raw!r}", "write one KEY=VALUE per line"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def _config_files(pipeline_path: Path | None) -> list[tuple[Path, dict[str, Any]]]:
    """runner.toml in the working directory, then beside the pipeline file: the later one wins."""
    directories = [Path.cwd()]
    if pipeline_path is not None and pipeline_path.resolve().parent != Path.cwd().resolve():
        directories.append(pipeline_path.resolve().parent)
    found = []
    for directory in directories:
        path = directory / CONFIG_NAME
        if not path.is_file():
            continue
        try:
            found.append((path, tomllib.loads(path.read_text(encoding="utf-8"))))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: {exc}", "fix the TOML syntax") from exc
    return found


def engine_settings(
    pipeline_path: Path | None, explicit: str | None = None, env: Mapping[str, str] | None = None
) -> EngineSettings:
    """Which engine to use and how to reach what it publishes: --engine (or RUNNER_ENGINE), then
    `engine`, `host` and `engine_socket` in runner.toml; the environment's overrides win over the file for
    `host` and `engine_socket`, as testcontainers' do."""
    env = os.environ if env is None else env
    found: dict[str, tuple[str, str]] = {}
    for path, data in _config_files(pipeline_path):
        for key, field_name in ENGINE_KEYS.items():
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise InputError(
                    f"{path}: `{key}` must be a non-empty string", f'write e.g. {key} = "{_example(key)}"'
                )
            found[field_name] = (value.strip(), f"{key} in {path}")
    for names, field_name in ((HOST_VARIABLES, "host_override"), (SOCKET_VARIABLES, "host_socket")):
        for name in names:
            if env.get(name):
                found[field_name] = (env[name], name)
                break
    engine = explicit or env.get(ENGINE_VARIABLE) or None
    host, host_source = found.get("host_override", (None, ""))
    host_socket, socket_source = found.get("host_socket", (None, ""))
    return EngineSettings(
        engine=engine,
        configured_engine=found.get("engine", (None, ""))[0],
        host_override=host,
        host_override_source=host_source,
        host_socket=host_socket,
        host_socket_source=socket_source,
    )


REGISTRY_VARIABLE = "RUNNER_REGISTRY"


def registry_setting(pipeline_path: Path | None, env: Mapping[str, str] | None = None) -> str | None:
    """The registry a cluster's nodes pull from, as they reach it: RUNNER_REGISTRY, else `registry =` in
    runner.toml (--registry wins over both)."""
    env = os.environ if env is None else env
    if env.get(REGISTRY_VARIABLE):
        return env[REGISTRY_VARIABLE]
    chosen: str | None = None
    for path, data in _config_files(pipeline_path):
        value = data.get("registry")
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise InputError(
                f"{path}: `registry` must be a non-empty string", 'write e.g. registry = "registry:5000"'
            )
        chosen = value.strip()
    return chosen


def _example(key: str) -> str:
    examples = {"engine": "tcp://build-box:2375", "host": "build-box", "engine_socket": "/run/docker.sock"}
    return examples[key]


def config_images(pipeline_path: Path) -> dict[str, str]:
    """The `[images]` table of runner.toml in the working directory, then beside the pipeline file."""
    images: dict[str, str] = {}
    for path, data in _config_files(pipeline_path):
        table = data.get("images", {})
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise InputError(
                f"{path}: [images] must map image names to local image names",
                'write e.g. redis = "runner/redis:bookworm"',
            )
        images.update(table)
    return images


def config_exclusions(pipeline_path: Path, defaults: tuple[str, ...]) -> tuple[str, ...]:
    """What the copy of the source tree leaves out: `defaults`, unless `[workspace] default_excludes =
    false`, plus `[workspace] exclude`, from runner.toml in the working directory, then beside the
    pipeline file."""
    patterns = list(defaults)
    for path, data in _config_files(pipeline_path):
        table = data.get("workspace", {})
        if not isinstance(table, dict):
            raise InputError(
                f"{path}: [workspace] must be a table", 'write e.g. [workspace] exclude = ["node_modules"]'
            )
        unknown = sorted(set(table) - {"exclude", "default_excludes"})
        if unknown:
            raise InputError(
                f"{path}: [workspace] has no setting {unknown[0]!r}",
                "it takes `exclude` (a list of names or paths) and `default_excludes` (true or false)",
            )
        keep_defaults = table.get("default_excludes", True)
        if not isinstance(keep_defaults, bool):
            raise InputError(
                f"{path}: [workspace] default_excludes must be true or false",
                "write default_excludes = false",
            )
        if not keep_defaults:
            patterns = [p for p in patterns if p not in defaults]
        exclude = table.get("exclude", [])
        if not isinstance(exclude, list) or not all(
            isinstance(item, str) and item.strip("/") for item in exclude
        ):
            raise InputError(
                f"{path}: [workspace] exclude must be a list of names or paths",
                'write e.g. exclude = ["node_modules", "*.log", "data/raw"]',
            )
        patterns += [item for item in exclude if item not in patterns]
    return tuple(patterns)


LOG_DEFAULTS = {"keep": "30d", "max_size": "1GB"}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?)?b?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in `500MB`, `2GiB`, `1g`, `1000000`; raises ValueError with a message meant for a user."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a size; write it like 500MB or 2GB")
    number, letter, binary = match.groups()
    power = " kmgt".index(letter.lower()) if letter else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def config_log_retention(pipeline_path: Path | None) -> tuple[float, int]:
    """How long the logs of a run are kept (seconds) and how much all runs' logs may take (bytes):
    `[logs] keep` and `max_size` of runner.toml, else 30 days and 1 GB."""
    settings: dict[str, object] = dict(LOG_DEFAULTS)
    for path, data in _config_files(pipeline_path):
        table = data.get("logs", {})
        if not isinstance(table, dict):
            raise InputError(f"{path}: [logs] must be a table", 'write e.g. [logs] keep = "14d"')
        unknown = sorted(set(table) - set(LOG_DEFAULTS))
        if unknown:
            raise InputError(
                f"{path}: [logs] has no setting {unknown[0]!r}",
                'it takes `keep` (an age, e.g. "14d") and `max_size` (e.g. "500MB")',
            )
        settings.update(table)
    try:
        keep = parse_duration(settings["keep"])
    except ValueError as exc:
        raise InputError(f"runner.toml: [logs] keep: {exc}", 'write e.g. keep = "14d"') from None
    try:
        size = parse_size(str(settings["max_size"]))
    except ValueError as exc:
        raise InputError(f"runner.toml: [logs] max_size: {exc}", 'write e.g. max_size = "500MB"') from None
    return keep, size
