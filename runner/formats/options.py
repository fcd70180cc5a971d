"""What a format may need besides the file: choices made on the command line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# (name, default, allowed values) -> the value a person typed
Prompt = Callable[[str, str | None, tuple[str, ...]], str]


@dataclass(frozen=True)
class LoadOptions:
    pipeline: str | None = None  # which pipeline of a file that has several, e.g. "custom:release"
    branch: str | None = None
    tag: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)  # values for a pipeline's declared variables
    env: Mapping[str, str] = field(default_factory=dict)  # the environment that `$VAR` references read
    prompt: Prompt | None = None  # asks for a missing variable; None when no terminal is attached
    build_number: int = 1
    strict: bool = False  # warnings become errors
    check_only: bool = False  # the pipeline is checked, not run: values nobody gave are not required
    flow_dirs: tuple[Path, ...] = ()  # where subflows are looked for, besides the file's own folder
    skip_unsupported: bool = False  # tasks this tool cannot run are skipped, not refused
    allow_host_process: bool = False  # Kestra's Process task runner runs on this machine
    trigger: Mapping[str, str] = field(default_factory=dict)  # what a Kestra trigger would have set
    namespace_files: Path | None = (
        None  # where Kestra's read() finds namespace files (default: the flow's folder)
    )
