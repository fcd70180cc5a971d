"""The source tree a run starts from, as a tar stream: for the shared workspace volume, or a fresh copy per
step. Nothing of it is held in memory: each archive is read from disk as the engine takes it."""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from runner.globs import matches
from runner.progress import activity, counted, watched
from runner.tarstream import BLOCK, TarWriter, coalesced, directory_member

# What no step needs and every checkout grows: virtual environments and tools' caches.
DEFAULT_EXCLUDES = (".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache")


@dataclass(frozen=True)
class Exclusions:
    """Patterns of what the copy leaves out: a name (`node_modules`, `*.log`) anywhere in the tree, or a
    path from its top when the pattern holds a `/` (`data/raw`, `build/*.o`)."""

    patterns: tuple[str, ...] = DEFAULT_EXCLUDES

    @cached_property
    def _names(self) -> re.Pattern[str] | None:
        """One expression for every name pattern: a copy asks about each of thousands of files."""
        names = [fnmatch.translate(pattern) for pattern in self.patterns if "/" not in pattern]
        return re.compile("|".join(names)) if names else None

    @cached_property
    def _paths(self) -> re.Pattern[str] | None:
        paths = [fnmatch.translate(pattern.strip("/")) for pattern in self.patterns if "/" in pattern]
        return re.compile("|".join(paths)) if paths else None

    def excludes(self, relative: str) -> bool:
        parts = relative.split("/")
        if self._names is not None and any(self._names.match(part) for part in parts):
            return True
        paths = self._paths
        return paths is not None and any(
            paths.match("/".join(parts[:depth])) for depth in range(1, len(parts) + 1)
        )


class SourceTree:
    """The run's source tree; a step that copies it gets it under its working directory."""

    def __init__(
        self, directory: Path, files: tuple[str, ...] | None, exclusions: Exclusions = Exclusions()
    ) -> None:
        self.directory = directory
        self.files = files  # the files git lists, when the tree is a checkout: what a clone would hold
        self.exclusions = exclusions

    def stream(self, prefix: str = "", only: tuple[str, ...] = ()) -> Iterator[bytes]:
        """The tree under `prefix`, as chunks of a tar stream; with `only`, just the files those globs
        match (and `.git`)."""
        prefix = prefix.strip("/")
        writer = TarWriter()

        def pieces() -> Iterator[bytes]:
            parts = prefix.split("/") if prefix else []
            for depth in range(1, len(parts) + 1):
                yield writer.header(directory_member("/".join(parts[:depth])))
            for path, relative in self.entries(only):
                info = writer.describe(path, f"{prefix}/{relative}" if prefix else relative)
                if info is not None:
                    yield from writer.member(path, info)

        return coalesced(pieces())

    def archive_size(self, only: tuple[str, ...] = ()) -> int:
        """About how many bytes `stream` makes: each member's header and its data in whole blocks."""
        total = 0
        for path, _ in self.entries(only):
            try:
                size = path.lstat().st_size if path.is_file() and not path.is_symlink() else 0
            except OSError:
                continue
            total += BLOCK + -(-size // BLOCK) * BLOCK
        return total

    @contextlib.contextmanager
    def copying(self, prefix: str = "", only: tuple[str, ...] = ()) -> Iterator[Iterator[bytes]]:
        """`stream`, shown as an activity while it is read (a terminal shows how far the copy is)."""
        if not watched():  # nobody looks: the tree is not walked twice
            yield self.stream(prefix, only)
            return
        total = self.archive_size(only)
        with activity(f"copying {self.directory.name or self.directory} into the engine", "bytes") as update:
            yield counted(self.stream(prefix, only), update, total)

    def entries(self, only: tuple[str, ...] = ()) -> Iterator[tuple[Path, str]]:
        """Each file and folder the copy holds, with its path relative to the tree, in name order."""
        for top in self._tops():
            yield from self._walk(top, top.relative_to(self.directory).as_posix(), only)

    def _walk(self, path: Path, relative: str, only: tuple[str, ...]) -> Iterator[tuple[Path, str]]:
        if self.exclusions.excludes(relative):
            return
        in_git = relative == ".git" or relative.startswith(".git/")
        folder = path.is_dir() and not path.is_symlink()
        if folder or in_git or not only or matches(relative, only, contents=True):
            yield path, relative
        if folder and (self.files is None or in_git):
            try:
                children = sorted(child.name for child in path.iterdir())
            except OSError:
                return
            for name in children:
                yield from self._walk(path / name, f"{relative}/{name}", only)

    def _tops(self) -> list[Path]:
        if self.files is None:
            return sorted(self.directory.iterdir())
        listed = [self.directory / name for name in self.files]
        git = self.directory / ".git"
        return [path for path in listed if path.exists() or path.is_symlink()] + (
            [git] if git.is_dir() else []
        )

    def excluded(self) -> list[str]:
        """What the exclusions leave out, for `runner run -v`: each folder once, not the files inside it."""
        found: dict[str, None] = {}
        for top in self._tops():
            self._find_excluded(top, top.relative_to(self.directory).as_posix(), found)
        return list(found)

    def _find_excluded(self, path: Path, relative: str, found: dict[str, None]) -> None:
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            if self.exclusions.excludes(prefix := "/".join(parts[:depth])):
                found[prefix] = None
                return
        if path.is_dir() and not path.is_symlink() and (self.files is None or relative == ".git"):
            for child in sorted(path.iterdir()):
                self._find_excluded(child, f"{relative}/{child.name}", found)
