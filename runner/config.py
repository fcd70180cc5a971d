"""Command-line settings that are not part of a pipeline: the image map, extra environment, runner.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from runner.errors import InputError

CONFIG_NAME = "runner.toml"


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


def config_images(pipeline_path: Path) -> dict[str, str]:
    """The `[images]` table of runner.toml beside the pipeline file, then in the working directory."""
    images: dict[str, str] = {}
    for directory in (Path.cwd(), pipeline_path.resolve().parent):
        path = directory / CONFIG_NAME
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{path}: {exc}", "fix the TOML syntax") from exc
        table = data.get("images", {})
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise InputError(
                f"{path}: [images] must map image names to local image names",
                'write e.g. redis = "runner/redis:bookworm"',
            )
        images.update(table)
    return images
