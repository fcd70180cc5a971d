"""What a format learns from the git checkout around a pipeline file: branch, commit, files, changes."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


def _git(directory: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


@dataclass
class Checkout:
    directory: Path

    @cached_property
    def root(self) -> Path | None:
        top = _git(self.directory, "rev-parse", "--show-toplevel")
        return Path(top.strip()) if top else None

    @cached_property
    def branch(self) -> str | None:
        name = _git(self.directory, "rev-parse", "--abbrev-ref", "HEAD")
        return name.strip() if name and name.strip() != "HEAD" else None

    @cached_property
    def commit(self) -> str | None:
        sha = _git(self.directory, "rev-parse", "HEAD")
        return sha.strip() if sha else None

    @cached_property
    def origin(self) -> str | None:
        url = _git(self.directory, "remote", "get-url", "origin")
        return url.strip() if url else None

    @cached_property
    def files(self) -> tuple[str, ...] | None:
        """The files a clone would have, plus uncommitted and untracked ones that .gitignore does not hide,
        relative to `directory`; None outside a checkout."""
        listed = _git(self.directory, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        if listed is None:
            return None
        return tuple(sorted({name for name in listed.split("\0") if name}))

    @cached_property
    def changed(self) -> tuple[str, ...] | None:
        """Files changed by the last commit and in the working tree, relative to the repository root."""
        if self.root is None:
            return None
        last = _git(self.directory, "show", "--name-only", "--pretty=format:", "HEAD") or ""
        working = _git(self.directory, "diff", "--name-only", "HEAD") or ""
        untracked = _git(self.directory, "ls-files", "--others", "--exclude-standard", "--full-name") or ""
        return tuple(sorted({line for line in (last + working + untracked).splitlines() if line}))
