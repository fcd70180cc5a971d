"""The source tree a run starts from, as a tar: for the shared workspace volume, or a fresh copy per step."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

from runner.globs import matches

SKIPPED_NAMES = frozenset({".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"})


class SourceTree:
    """Builds each archive once per run; a step that copies the tree gets it under its working directory."""

    def __init__(self, directory: Path, files: tuple[str, ...] | None) -> None:
        self.directory = directory
        self.files = files
        self.archives: dict[tuple[str, tuple[str, ...]], bytes] = {}
        self.lock = threading.Lock()

    def archive(self, prefix: str = "", only: tuple[str, ...] = ()) -> bytes:
        """The tree under `prefix`; with `only`, just the files those globs match (and `.git`)."""
        with self.lock:
            key = (prefix, only)
            if key not in self.archives:
                self.archives[key] = self._build(prefix.strip("/"), only)
            return self.archives[key]

    def _build(self, prefix: str, only: tuple[str, ...] = ()) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            if prefix:
                self._add_parents(tar, prefix)
            for path in self._paths():
                arcname = (
                    f"{prefix}/{path.relative_to(self.directory).as_posix()}"
                    if prefix
                    else (path.relative_to(self.directory).as_posix())
                )
                tar.add(
                    path,
                    arcname=arcname,
                    recursive=self.files is None or path.name == ".git",
                    filter=_skip_caches if not only else _only(only, prefix),
                )
        return buffer.getvalue()

    def _paths(self) -> list[Path]:
        if self.files is None:
            return [path for path in sorted(self.directory.iterdir()) if path.name not in SKIPPED_NAMES]
        listed = [self.directory / name for name in self.files]
        git = self.directory / ".git"
        return [path for path in listed if path.exists() or path.is_symlink()] + (
            [git] if git.is_dir() else []
        )

    def _add_parents(self, tar: tarfile.TarFile, prefix: str) -> None:
        parts = prefix.split("/")
        for depth in range(1, len(parts) + 1):
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)


def _only(globs: tuple[str, ...], prefix: str) -> Callable[[tarfile.TarInfo], tarfile.TarInfo | None]:
    """A filter that keeps `.git`, the directories, and the files the globs match."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if _skip_caches(info) is None:
            return None
        relative = info.name.removeprefix(prefix).lstrip("/") if prefix else info.name
        if info.isdir() or relative == ".git" or relative.startswith(".git/"):
            return info
        return info if matches(relative, globs, contents=True) else None

    return keep


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    if any(part in SKIPPED_NAMES for part in parts):
        return None
    return info
