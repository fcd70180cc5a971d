"""Artifacts: files a step declares, collected from its container when it ends, restored into later steps."""

from __future__ import annotations

import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from runner.backend.base import Backend
from runner.globs import matches


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks, so a tar stream is read without holding it whole."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


class ArtifactStore:
    """The run's artifacts on disk, a folder per step, so a later run can take one step's files. Restored
    in the order they were collected: a later declaration of the same path replaces the earlier file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.order: list[str] = []  # step ids, the latest collected last

    def of_step(self, step_id: str) -> Path:
        return self.directory / step_id

    def _collected(self, step_id: str) -> None:
        if step_id in self.order:
            self.order.remove(step_id)
        self.order.append(step_id)

    def collect(
        self, backend: Backend, container_id: str, workdir: str, globs: tuple[str, ...], step_id: str
    ) -> tuple[list[str], list[str]]:
        """Copy the files under `workdir` that match `globs` out of the container: the paths kept, and
        those refused (links that point outside the directory, special files)."""
        refused: list[str] = []
        reader = io.BufferedReader(ChunkReader(backend.get_archive(container_id, workdir)))
        collected: list[str] = []
        target_dir = self.of_step(step_id)
        with self.lock, tarfile.open(fileobj=reader, mode="r|") as stream:
            target_dir.mkdir(parents=True, exist_ok=True)
            self._collected(step_id)
            for member in stream:
                relative = PurePosixPath(*PurePosixPath(member.name).parts[1:]).as_posix()
                if relative in ("", ".") or not matches(relative, globs, contents=True) or member.isdir():
                    continue
                member.name = relative
                target = target_dir / relative
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                try:
                    stream.extract(member, target_dir, filter="data")
                except tarfile.FilterError:
                    refused.append(relative)
                    continue
                collected.append(relative)
        return collected, refused

    def adopt(self, step_id: str, source: Path) -> bool:
        """A step's artifacts from an earlier run, as if it had just collected them; False when that run
        kept none (or they have been pruned since)."""
        if not source.is_dir():
            return False
        with self.lock:
            target = self.of_step(step_id)
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, symlinks=True)
            self._collected(step_id)
        return True

    def archive(self, prefix: str) -> bytes | None:
        """A tar of every artifact under `prefix`, or None when there is none."""
        with self.lock:
            files: dict[str, Path] = {}
            for step_id in self.order:
                folder = self.of_step(step_id)
                for path in sorted(folder.rglob("*")):
                    if not path.is_dir() or path.is_symlink():
                        files[path.relative_to(folder).as_posix()] = path
            if not files:
                return None
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for relative, path in sorted(files.items()):
                    tar.add(path, arcname=f"{prefix.strip('/')}/{relative}", recursive=False)
            return buffer.getvalue()


def prune(root: Path, keep: set[str], older_than: float) -> None:
    """Remove the artifact folders of runs not in `keep` that were last written before `older_than`."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if folder.name in keep or not folder.is_dir():
            continue
        try:
            if folder.stat().st_mtime < older_than:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
